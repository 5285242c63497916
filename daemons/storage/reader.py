"""Reading a run file, also while its writer is still appending (SWMR) or after a crash.

Opened read-only in SWMR-read mode, which works for finished files too. Datasets of one table
can differ in length for a moment while the writer appends, so a table is cut to its shortest
column: a reader sees whole rows only. Files of layout 1 (release 0.1, see `layout`) read
the same: their dotted column names are mapped to today's, their attribute times to fields.
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
    channel_group,
    legacy_channel_group,
    stat_column,
    stat_dataset,
)


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


@dataclass(frozen=True)
class ChannelData:
    time: np.ndarray
    value: np.ndarray
    point_index: np.ndarray


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


def _whole_rows(datasets: list[h5py.Dataset]) -> list[np.ndarray]:
    for dataset in datasets:
        dataset.refresh()
    rows = min(dataset.shape[0] for dataset in datasets)
    return [dataset[:rows] for dataset in datasets]


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
        legacy = LAYOUT_ATTR not in handle.attrs
        stored = stat_column if legacy else stat_dataset
        names = [POINT_INDEX, *(p["name"] for p in params)]
        names += [stat_column(c.name, stat) for c in channels for stat in STATS]
        names += [POINT_START, POINT_END, POINT_STATUS]
        paths = [POINT_INDEX, *(p["name"] for p in params)]
        paths += [stored(c.name, stat) for c in channels for stat in STATS]
        paths += [POINT_START, POINT_END, POINT_STATUS]
        # Files written before NaN samples were counted apart have no `_invalid` columns.
        kept = [
            (name, stored_as)
            for name, stored_as in zip(names, paths, strict=True)
            if stored_as in group or not name.endswith("_invalid")
        ]
        try:
            data = _whole_rows([group[stored_as] for _, stored_as in kept])
        except KeyError as exc:
            raise StorageError(f"{path}: not an mdfd run file ({exc})") from exc
        data[-1] = data[-1].astype(str)
        materials = _materials(handle)
    columns = dict(zip((name for name, _ in kept), data, strict=True))
    rows = len(data[0])
    return Summary(
        parameters=[p["name"] for p in params],
        parameter_units={p["name"]: p["unit"] for p in params},
        channels=channels,
        columns={name: columns.get(name, np.zeros(rows, np.int64)) for name in names},
        metadata=metadata,
        materials=materials,
    )


def read_channel(path: Path, channel: str) -> ChannelData:
    """Every sample of one channel: time (epoch s, see `Summary.clock`), value, point index."""
    with open_run_file(path) as handle:
        name = channel_group(channel)
        if LAYOUT_ATTR not in handle.attrs:
            name = legacy_channel_group(channel)
        if name not in handle:
            raise StorageError(f"{path}: no channel {channel!r}")
        group = handle[name]
        time, value, point = _whole_rows([group["time"], group["value"], group[POINT_INDEX]])
    return ChannelData(time, value, point)
