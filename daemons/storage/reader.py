"""Reading a run file, also while its writer is still appending (SWMR) or after a crash.

Opened read-only in SWMR-read mode, which works for finished files too. Datasets of one table
can differ in length for a moment while the writer appends, so a table is cut to its shortest
column: a reader sees whole rows only.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from .errors import StorageError
from .layout import (
    ENTRY,
    LIBVER,
    POINT_END,
    POINT_INDEX,
    POINT_START,
    POINT_STATUS,
    STATS,
    SUMMARY,
    ChannelSpec,
    channel_group,
    stat_column,
)


@dataclass(frozen=True)
class Summary:
    """The per-point table: `columns` in table order, every array `rows` long."""

    parameters: list[str]
    parameter_units: dict[str, str]
    channels: list[ChannelSpec]
    columns: dict[str, np.ndarray]
    metadata: dict[str, Any]

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


def read_metadata(path: Path) -> dict[str, Any]:
    """The /entry attributes (run metadata, status, times)."""
    with open_run_file(path) as handle:
        return {key: _text(value) for key, value in handle[ENTRY].attrs.items()}


def read_summary(path: Path) -> Summary:
    with open_run_file(path) as handle:
        try:
            group = handle[SUMMARY]
            specs = json.loads(group.attrs["channels"])
            channels = [ChannelSpec(c["name"], c["unit"]) for c in specs]
            params = json.loads(group.attrs["parameters"])
            metadata = {key: _text(value) for key, value in handle[ENTRY].attrs.items()}
        except (KeyError, ValueError) as exc:
            raise StorageError(f"{path}: not an mdfd run file ({exc})") from exc
        names = [POINT_INDEX, *(p["name"] for p in params)]
        names += [stat_column(c.name, stat) for c in channels for stat in STATS]
        names += [POINT_START, POINT_END, POINT_STATUS]
        # Files written before NaN samples were counted apart have no `_invalid` columns.
        present = [name for name in names if name in group or not name.endswith("_invalid")]
        data = _whole_rows([group[name] for name in present])
        data[-1] = data[-1].astype(str)
    columns = dict(zip(present, data, strict=True))
    rows = len(data[0])
    return Summary(
        parameters=[p["name"] for p in params],
        parameter_units={p["name"]: p["unit"] for p in params},
        channels=channels,
        columns={name: columns.get(name, np.zeros(rows, np.int64)) for name in names},
        metadata=metadata,
    )


def read_channel(path: Path, channel: str) -> ChannelData:
    """Every sample of one channel: time (epoch s), value, point index."""
    with open_run_file(path) as handle:
        name = channel_group(channel)
        if name not in handle:
            raise StorageError(f"{path}: no channel {channel!r}")
        group = handle[name]
        time, value, point = _whole_rows([group["time"], group["value"], group[POINT_INDEX]])
    return ChannelData(time, value, point)
