"""One instrument's scans on the event loop side, gathered into blocks for the writer thread.

A block is a fixed-size numpy table (`rows` scans x the instrument's channels) filled row by
row, each scan in one numpy assignment. A channel a scan did not read is NaN with `sampled` 0,
so a reader can tell it from an invalid sample (NaN with `sampled` 1).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .h5build import InstrumentPlan

_ALL = slice(None)


@dataclass(slots=True)
class ScanBlock:
    """Scans handed to the writer: time/point [scans], value/sampled [scans, channels]."""

    instrument: int
    time: np.ndarray
    value: np.ndarray
    point: np.ndarray
    sampled: np.ndarray


class ScanBuffer:
    """The block being filled for one instrument (index `number` in the file's series)."""

    def __init__(self, number: int, plan: InstrumentPlan, rows: int) -> None:
        self.number = number
        self.names = [spec.name for spec in plan.channels]
        self.column = {name: k for k, name in enumerate(self.names)}
        width = len(self.names)
        self.time = np.empty(rows, np.float64)
        self.point = np.empty(rows, np.int64)
        self.value = np.empty((rows, width), np.float64)
        self.sampled = np.ones((rows, width), np.uint8)  # 0s only where a scan read some
        self.rows = rows
        self.count = 0  # rows in the block; the caller hands it off when count == rows
        self._partial = False  # a row of this block has 0s in `sampled`
        self._selections: dict[tuple[str, ...], slice | list[int]] = {}

    def add_scan(
        self, channels: Sequence[str], t: float, values: np.ndarray, point_index: int
    ) -> None:
        """One scan as a row; the caller hands the block off when it is full."""
        columns = self._selections.get(tuple(channels)) or self._columns(channels)
        if len(channels) != values.shape[0]:
            raise ValueError(f"{len(channels)} channels, {values.shape[0]} values")
        row = self.count
        self.time[row] = t
        self.point[row] = point_index
        if columns is _ALL:
            self.value[row] = values
        else:
            self.value[row] = np.nan
            self.sampled[row] = 0
            self.value[row, columns] = values
            self.sampled[row, columns] = 1
            self._partial = True
        self.count = row + 1

    def add_scans(
        self, channels: Sequence[str], times: np.ndarray, values: np.ndarray, point_index: int
    ) -> int:
        """Scans as rows (`values[k]` taken at `times[k]`), as many as the block has room for;
        how many it took. The caller hands the full block off and passes the rest again."""
        columns = self._selections.get(tuple(channels)) or self._columns(channels)
        if values.ndim != 2 or values.shape != (times.shape[0], len(channels)):
            raise ValueError(f"{len(channels)} channels, values of shape {values.shape}")
        start = self.count
        taken = min(self.rows - start, times.shape[0])
        stop = start + taken
        self.time[start:stop] = times[:taken]
        self.point[start:stop] = point_index
        if columns is _ALL:
            self.value[start:stop] = values[:taken]
        else:
            self.value[start:stop] = np.nan
            self.sampled[start:stop] = 0
            self.value[start:stop, columns] = values[:taken]
            self.sampled[start:stop, columns] = 1
            self._partial = True
        self.count = stop
        return taken

    def take(self) -> ScanBlock:
        """The complete rows as a block of their own (copies); the buffer starts empty."""
        rows = self.count
        block = ScanBlock(
            self.number,
            self.time[:rows].copy(),
            self.value[:rows].copy(),
            self.point[:rows].copy(),
            self.sampled[:rows].copy(),
        )
        if self._partial:
            self.sampled.fill(1)
            self._partial = False
        self.count = 0
        return block

    def _columns(self, channels: Sequence[str]) -> slice | list[int]:
        """The columns of a channel list seen for the first time (then kept by `add_scan`)."""
        key = tuple(channels)
        unknown = [name for name in key if name not in self.column]
        if unknown:
            raise KeyError(unknown[0])
        if len(set(key)) != len(key):
            raise ValueError(f"a channel appears twice in {list(key)}")
        columns = [self.column[name] for name in key]
        found: slice | list[int] = _ALL if columns == list(range(len(self.names))) else columns
        self._selections[key] = found
        return found
