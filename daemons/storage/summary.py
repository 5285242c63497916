"""A point's summary row for the data file, made from the point's statistics as arrays."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from mdfd.daemons.core.stats import EMPTY, PointStats, Stats

from .h5file import PointRow


class SummaryRows:
    """The file's channels and sweep parameters, and the summary row of a point for them."""

    def __init__(self, path: Path, channels: Sequence[str], parameters: Sequence[str]) -> None:
        self._path = path
        self._names = tuple(channels)
        self.columns = {name: k for k, name in enumerate(channels)}
        self._parameters = list(parameters)
        self._known_parameters = frozenset(parameters)

    def row(
        self,
        point_index: int,
        parameters: Mapping[str, float],
        stats: PointStats | Mapping[str, Stats],
        started: float,
        ended: float,
        status: str,
    ) -> PointRow:
        """The row from the statistics' table, whatever the number of channels (the engine's
        channels are the file's, in its order: no lookup, no copy). Channels without
        statistics are NaN (n 0); a name the file does not have is refused."""
        if not isinstance(stats, PointStats):
            stats = PointStats.of(stats)
        unknown = parameters.keys() - self._known_parameters
        if stats.channels == self._names:
            columns: slice | np.ndarray = slice(None)
        else:
            unknown |= set(stats.channels) - set(self.columns)
            columns = np.array([self.columns.get(c, -1) for c in stats.channels], dtype=np.intp)
        if unknown:
            raise ValueError(f"{self._path}: point {point_index}: unknown names {sorted(unknown)}")
        if isinstance(columns, slice):  # the file's channels: the table as it is
            table = stats.table
        else:
            table = np.repeat(EMPTY, len(self._names), axis=1)
            table[:, columns] = stats.table
        values = [float(parameters.get(name, math.nan)) for name in self._parameters]
        encoded = status.encode("ascii", "replace")[:16]
        return PointRow(int(point_index), values, table, float(started), float(ended), encoded)
