"""Reading a run file, also while its writer is still appending (SWMR) or after a crash.

Opened read-only in SWMR-read mode, which works for finished files too. Datasets of one table
can differ in length for a moment while the writer appends, so a table is cut to its shortest
column: a reader sees whole rows only. Files of layouts 1 and 2 (releases 0.1 and 0.2, one
group and column per channel, see `layout`) read the same through `legacy` (ADR 0073).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from . import legacy
from .errors import StorageError
from .layout import (
    ENTRY,
    ENTRY_TIMES,
    LAYOUT_ATTR,
    LIBVER,
    POINT_END,
    POINT_INDEX,
    POINT_START,
    POINT_STATUS,
    SAMPLE,
    STATS,
    SUMMARY,
    ChannelSpec,
    Material,
    series_group,
    stat_column,
)
from .rows import ChannelData, whole_rows


@dataclass(frozen=True)
class Summary:
    """The per-point table: `columns` in table order, every array `rows` long."""

    parameters: list[str]
    parameter_units: dict[str, str]
    channels: list[ChannelSpec]
    columns: dict[str, np.ndarray]
    metadata: dict[str, Any]
    materials: list[Material] = field(default_factory=list)

    @property
    def clock(self) -> str:
        """ "wall" or "simulated": what the point times are (see `layout.CLOCKS`).

        A layout-1 file did not say; its `time_scale` tells (1 is the wall clock).
        """
        found = self.metadata.get("clock")
        if found:
            return str(found)
        return "wall" if float(self.metadata.get("time_scale", 1.0)) == 1.0 else "simulated"

    @property
    def rows(self) -> int:
        return len(self.columns[POINT_INDEX])

    def completed(self) -> np.ndarray:
        """Row indices of points measured to the end (not failed or skipped)."""
        return np.flatnonzero(self.columns[POINT_STATUS] == "completed")


@contextmanager
def open_run_file(path: Path) -> Iterator[h5py.File]:
    try:
        handle = h5py.File(path, "r", libver=LIBVER, swmr=True)
    except (OSError, ValueError) as exc:
        raise StorageError(f"{path}: cannot open: {exc}") from exc
    with handle:
        yield handle


def _text(value: Any) -> Any:
    return value.decode() if isinstance(value, bytes) else value


def _entry_metadata(handle: h5py.File) -> dict[str, Any]:
    """/entry's attributes, plus its start_time/end_time fields (attributes in layout 1)."""
    entry = handle[ENTRY]
    metadata = {key: _text(value) for key, value in entry.attrs.items()}
    for name in ENTRY_TIMES:
        if name in entry:
            metadata[name] = _text(entry[name][()])
    return metadata


def _materials(handle: h5py.File) -> list[Material]:
    if SAMPLE not in handle:
        return []
    found = []
    for category in ("raw_materials", "composition"):
        group = handle[SAMPLE].get(category)
        for code, dataset in (group or {}).items():
            value = _text(dataset[()])
            value = value if isinstance(value, str) else float(value)
            found.append(Material(category, code, value, _text(dataset.attrs.get("units", ""))))
    return found


def read_metadata(path: Path) -> dict[str, Any]:
    """The run metadata: /entry's attributes and its start/end times."""
    with open_run_file(path) as handle:
        return _entry_metadata(handle)


def read_summary(path: Path) -> Summary:
    with open_run_file(path) as handle:
        try:
            group = handle[SUMMARY]
            specs = json.loads(group.attrs["channels"])
            channels = [ChannelSpec(c["name"], c["unit"]) for c in specs]
            params = json.loads(group.attrs["parameters"])
            metadata = _entry_metadata(handle)
        except (KeyError, ValueError) as exc:
            raise StorageError(f"{path}: not an mdfd run file ({exc})") from exc
        layout = int(handle.attrs.get(LAYOUT_ATTR, 1))
        try:
            if layout < 3:
                columns = legacy.summary_columns(group, params, channels, layout)
            else:
                columns = _summary_columns(group, params, channels)
        except KeyError as exc:
            raise StorageError(f"{path}: not an mdfd run file ({exc})") from exc
        materials = _materials(handle)
    columns[POINT_STATUS] = columns[POINT_STATUS].astype(str)
    rows = len(columns[POINT_INDEX])
    names = [POINT_INDEX, *(p["name"] for p in params)]
    names += [stat_column(c.name, stat) for c in channels for stat in STATS]
    names += [POINT_START, POINT_END, POINT_STATUS]
    return Summary(
        parameters=[p["name"] for p in params],
        parameter_units={p["name"]: p["unit"] for p in params},
        channels=channels,
        columns={name: columns.get(name, np.zeros(rows, np.int64)) for name in names},
        metadata=metadata,
        materials=materials,
    )


def _summary_columns(
    group: h5py.Group, params: list[dict[str, str]], channels: list[ChannelSpec]
) -> dict[str, np.ndarray]:
    """Layout 3: 1-D columns as they are, each statistic's [points, channels] split by channel."""
    scalars = [POINT_INDEX, *(p["name"] for p in params), POINT_START, POINT_END, POINT_STATUS]
    data = whole_rows([group[name] for name in (*scalars, *STATS)])
    columns = dict(zip(scalars, data, strict=False))
    for stat, table in zip(STATS, data[len(scalars) :], strict=True):
        for k, channel in enumerate(channels):
            columns[stat_column(channel.name, stat)] = table[:, k]
    return columns


def read_channel(path: Path, channel: str) -> ChannelData:
    """Every sample of one channel: time (epoch s, see `Summary.clock`), value, point index.

    In layout 3, the scans of its instrument that read it (a NaN value among them is an
    invalid sample; scans that read other channels only are left out).
    """
    with open_run_file(path) as handle:
        if int(handle.attrs.get(LAYOUT_ATTR, 1)) < 3:
            return legacy.read_channel(handle, path, channel)
        name = series_group(channel.partition(".")[0])
        try:
            group = handle[name]
            column = list(group["value"].attrs["channels"]).index(channel)
        except (KeyError, ValueError):
            raise StorageError(f"{path}: no channel {channel!r}") from None
        fields = [group[n] for n in ("time", "value", POINT_INDEX, "sampled")]
        time, value, point, sampled = whole_rows(fields)
    read = sampled[:, column] == 1
    return ChannelData(time[read], value[read, column], point[read])
