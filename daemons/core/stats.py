"""Running statistics of a channel within a point, in constant memory.

A ten-million-sample run must not hold its samples to summarise them: Welford's update keeps
mean and variance numerically stable with O(1) state per channel. A fast acquisition folds its
samples in by blocks rather than one Python call per sample: `summarise` reduces a 2-D block
(one row per channel) with numpy in one pass for all channels, and `RunningStats.merge` folds a
channel's share into its running statistics (`add_block` is the same for one channel).

A NaN or ±inf sample (a device's "no value", an overflowed float) is no measurement: it is
counted in `invalid` and kept out of n, mean, std, min, max and last. Folded in, one NaN would
make the mean NaN for the rest of the point, and a channel of NaNs would end `min inf, max -inf`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

SMALL_BLOCK = 32  # samples: below this numpy's fixed cost per call exceeds a Python loop

Positions = slice | np.ndarray
"""Where a step's channels are in a `ColumnStats`: all of them in order (a slice), or indices."""

# The rows of a statistics table (`Summary.table`, `ColumnStats.table`): one column per
# channel, one row per quantity. Counts are float64 there (exact up to 2**53 samples).
N, MEAN, M2, MIN, MAX, LAST, INVALID = range(7)
TABLE_ROWS = 7
EMPTY = np.array([0.0, 0.0, 0.0, math.inf, -math.inf, math.nan, 0.0])[:, None]
"""A channel's column before any sample: what `ColumnStats.reset` writes, in one assignment."""


@dataclass(frozen=True, slots=True)
class Summary:
    """A block's statistics per channel, ready to merge: a table of `TABLE_ROWS` rows (`N`,
    `MEAN`, `M2`, `MIN`, `MAX`, `LAST`, `INVALID`) and a column per row of the block.

    `m2` is the sum of squared deviations from the block's own mean; `last` the last finite
    sample (NaN when there is none); channels with `n == 0` have NaN mean and zero m2. One
    table rather than seven arrays, because a point of one channel and one scan — a sweep
    over a slow instrument — pays numpy's fixed cost per call, not per sample: merging and
    resetting a table are one call each. `every` says whether each channel had a finite
    sample, which the summary knows anyway and a merge would otherwise ask numpy again.
    """

    table: np.ndarray
    every: bool

    @property
    def n(self) -> np.ndarray:
        return self.table[N]

    @property
    def mean(self) -> np.ndarray:
        return self.table[MEAN]

    @property
    def m2(self) -> np.ndarray:
        return self.table[M2]

    @property
    def min(self) -> np.ndarray:
        return self.table[MIN]

    @property
    def max(self) -> np.ndarray:
        return self.table[MAX]

    @property
    def last(self) -> np.ndarray:
        return self.table[LAST]

    @property
    def invalid(self) -> np.ndarray:
        return self.table[INVALID]


def summarise(block: np.ndarray) -> Summary:
    """The statistics of each row of a 2-D float64 block (channels x samples), NaN/inf apart.

    Each row's samples are contiguous, so numpy sums them pairwise; the deviations are taken
    from the row's own mean (two passes), which is at least as stable as Welford.
    """
    width, k = block.shape
    if not k:
        table = np.empty((TABLE_ROWS, width))
        table[:] = EMPTY
        table[MEAN] = math.nan
        return Summary(table, not width)
    if width * k < SMALL_BLOCK:
        return _summarise_small(block)
    return _summarise_numpy(block)


def _summarise_numpy(block: np.ndarray) -> Summary:
    """`summarise` of a non-empty block with numpy: a dozen calls, whatever its size."""
    width, k = block.shape
    table = np.empty((TABLE_ROWS, width))
    finite = np.isfinite(block)
    every = bool(finite.all())
    if every:  # the usual case: no NaN or inf anywhere, no masking needed
        table[N] = k
        table[INVALID] = 0
        mean = np.add.reduce(block, axis=1, out=table[MEAN])
        mean /= k
        deviations = block - mean[:, None]
        np.minimum.reduce(block, axis=1, out=table[MIN])
        np.maximum.reduce(block, axis=1, out=table[MAX])
        table[LAST] = block[:, -1]
    else:
        n = np.add.reduce(finite, axis=1, out=table[N])
        every = bool(n.all())
        table[INVALID] = k - n
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = np.add.reduce(np.where(finite, block, 0.0), axis=1, out=table[MEAN])
            mean /= n
        deviations = np.where(finite, block - mean[:, None], 0.0)
        table[MIN] = np.where(finite, block, math.inf).min(axis=1)
        table[MAX] = np.where(finite, block, -math.inf).max(axis=1)
        at = k - 1 - np.argmax(finite[:, ::-1], axis=1)  # the last finite sample of each row
        table[LAST] = np.where(n > 0, block[np.arange(width), at], math.nan)
    deviations *= deviations
    np.add.reduce(deviations, axis=1, out=table[M2])
    return Summary(table, every)


def _summarise_small(block: np.ndarray) -> Summary:
    """`summarise` in Python floats, for a block of fewer than `SMALL_BLOCK` samples.

    The usual point of a sweep over slow instruments reads a few channels once: numpy's dozen
    calls then cost more than the arithmetic (~1 µs each warm, more between a wire's replies),
    and this takes two. The same statistics, to rounding (the tests summarise the same blocks
    both ways).
    """
    columns = []
    every = True
    for row in block.tolist():
        values = [v for v in row if math.isfinite(v)]
        k = len(values)
        invalid = float(len(row) - k)
        if not k:
            every = False
            columns.append((0.0, math.nan, 0.0, math.inf, -math.inf, math.nan, invalid))
        elif k == 1:  # a point's single scan: the sample is its own statistics
            v = values[0]
            columns.append((1.0, v, 0.0, v, v, v, invalid))
        else:
            mean = sum(values) / k
            m2 = sum((v - mean) * (v - mean) for v in values)
            columns.append((float(k), mean, m2, min(values), max(values), values[-1], invalid))
    return Summary(np.array(columns).T, every)  # a row per channel, viewed as a column


@dataclass(frozen=True, slots=True)
class Stats:
    mean: float
    std: float
    min: float
    max: float
    n: int
    last: float = math.nan
    invalid: int = 0
    """Samples that were NaN or ±inf, not counted in n."""


@dataclass(slots=True)
class RunningStats:
    n: int = 0
    mean: float = 0.0
    _m2: float = 0.0
    min: float = math.inf
    max: float = -math.inf
    last: float = math.nan
    invalid: int = 0

    def add(self, value: float) -> None:
        if not math.isfinite(value):
            self.invalid += 1
            return
        self.last = value
        self.n += 1
        delta = value - self.mean
        self.mean += delta / self.n
        self._m2 += delta * (value - self.mean)
        self.min = min(self.min, value)
        self.max = max(self.max, value)

    def add_block(self, values: Sequence[float]) -> None:
        """Fold in many samples at once, with the same result as `add` one by one (to rounding).

        The block is summarised by `summarise` (numpy) and merged by `merge`; small blocks go
        through `add`, where numpy's fixed cost per call would exceed the loop's.
        """
        if len(values) < SMALL_BLOCK:
            for value in values:
                self.add(value)
            return
        s = summarise(np.asarray(values, dtype=np.float64).reshape(1, -1))
        self.merge(
            int(s.n[0]),
            float(s.mean[0]),
            float(s.m2[0]),
            float(s.min[0]),
            float(s.max[0]),
            float(s.last[0]),
            int(s.invalid[0]),
        )

    def merge(
        self, k: int, mean: float, m2: float, low: float, high: float, last: float, invalid: int
    ) -> None:
        """Fold in a block's statistics (one channel's entries of a `Summary`).

        The update of Chan, Golub and LeVeque, which is Welford's for a block.
        """
        self.invalid += invalid
        if k == 0:
            return
        before = self.n
        self.n = n = before + k
        delta = mean - self.mean
        self.mean += delta * k / n
        self._m2 += m2 + delta * delta * before * k / n
        self.min = min(self.min, low)
        self.max = max(self.max, high)
        self.last = last

    def result(self) -> Stats:
        if self.n == 0:
            nan = math.nan
            return Stats(nan, nan, nan, nan, 0, invalid=self.invalid)
        std = math.sqrt(self._m2 / (self.n - 1)) if self.n > 1 else 0.0
        return Stats(self.mean, std, self.min, self.max, self.n, self.last, self.invalid)


class ColumnStats:
    """The running statistics of many channels (a point's), as one table: what `RunningStats`
    is for one channel, merged a whole block at a time with numpy instead of channel by channel.

    A point of ten thousand channels would otherwise make ten thousand `RunningStats` when it
    begins and merge into each of them in a Python loop. `table` has the rows of a `Summary`
    and a column per channel, so that a point's reset, its first merge and its snapshot are one
    numpy call each whatever the number of channels. Channels met that were not declared when
    the point began are added on first use.
    """

    def __init__(self, channels: Sequence[str]) -> None:
        self.channels: list[str] = []
        self._names: tuple[str, ...] = ()  # `channels` as the snapshots name them
        self._index: dict[str, int] = {}
        self.table = np.empty((TABLE_ROWS, 0))
        self._fresh = True  # no block merged since the point began
        self.positions(channels)

    def reset(self) -> None:
        """Forget every sample, keep the channels: a point like the last one begins without
        indexing its channels again (3 ms at 10,000 channels)."""
        self.table[:] = EMPTY
        self._fresh = True

    def positions(self, channels: Sequence[str]) -> Positions:
        """Where `channels` are in the table (adding those not there yet): a step works it
        out once and merges its blocks there. A step of all the point's channels, in order
        (the usual one), gets a slice: no lookup, and views instead of gathered copies."""
        if list(channels) == self.channels:
            return slice(None)
        new = [c for c in dict.fromkeys(channels) if c not in self._index]
        if new:
            for channel in new:
                self._index[channel] = len(self.channels)
                self.channels.append(channel)
            self._names = tuple(self.channels)
            self.table = np.concatenate([self.table, np.repeat(EMPTY, len(new), axis=1)], axis=1)
        return np.array([self._index[c] for c in channels], dtype=np.intp)

    def merge(self, at: Positions, s: Summary) -> None:
        """Fold in a block's `Summary` for the channels at positions `at` (as `merge` of
        `RunningStats`, vectorised: the update of Chan, Golub and LeVeque).

        The first block of a point in which every channel has a sample — most points have
        one acquisition — is the statistics as they stand: it is copied in, not merged."""
        block, every = s.table, s.every
        if every and self._fresh and isinstance(at, slice):
            self._fresh = False
            self.table[:, at] = block
            return
        self._fresh = False
        table = self.table
        table[INVALID, at] += block[INVALID]
        if not every:
            some = block[N] > 0
            if isinstance(at, slice):
                at = np.arange(len(self.channels))[at]
            at, block = at[some], block[:, some]
        k = block[N]
        before = table[N, at]
        n = before + k
        delta = block[MEAN] - table[MEAN, at]
        table[MEAN, at] += delta * k / n
        table[M2, at] += block[M2] + delta * delta * before * k / n
        table[N, at] = n
        table[MIN, at] = np.minimum(table[MIN, at], block[MIN])
        table[MAX, at] = np.maximum(table[MAX, at], block[MAX])
        table[LAST, at] = block[LAST]

    def snapshot(self) -> PointStats:
        """The statistics as they stand (a copy of the table): what a point hands to its file,
        checkpoint and records when it ends. One numpy call whatever the width; the `Stats`
        fields are derived where they are read, for a whole commit at once (decision 0093)."""
        return PointStats(self._names, self.table.copy())

    def results(self, channels: Sequence[str] | None = None) -> dict[str, Stats]:
        """Each channel's `Stats`, as `RunningStats.result` gives them."""
        names = self.channels if channels is None else list(channels)
        at = np.array([self._index[c] for c in names], dtype=np.intp)
        stats = PointStats(tuple(names), self.table[:, at])
        return {name: stats.at(k) for k, name in enumerate(names)}


FLOAT_FIELDS = ("mean", "std", "min", "max", "last")
COUNT_FIELDS = ("n", "invalid")
_FIELD_ROWS = {"mean": MEAN, "min": MIN, "max": MAX, "last": LAST}  # fields that are a row


def stat_field(table: np.ndarray, name: str) -> np.ndarray:
    """One `Stats` field (`name`) of a statistics table, or of a stack of them: the table's
    rows are its axis -2, so a commit's tables stacked along axis 0 give the field of every
    point in one call. Counts come as int64; a channel without a sample has NaN mean, std,
    min, max and last, as `RunningStats.result` says."""
    n = table[..., N, :]
    if name == "n":
        return n.astype(np.int64)
    if name == "invalid":
        return table[..., INVALID, :].astype(np.int64)
    if name == "std":
        field = np.sqrt(table[..., M2, :] / np.maximum(n - 1, 1))  # m2 >= 0; 0 for one sample
    else:
        field = table[..., _FIELD_ROWS[name], :].copy()
    field[n == 0] = math.nan
    return field


@dataclass(frozen=True, slots=True)
class PointStats:
    """A point's statistics per channel, in `channels` order: the columnar form of a
    `dict[str, Stats]` (same fields, same NaN for a channel without a finite sample).

    `table` is the running form, as `ColumnStats.table` holds it (rows `N`, `MEAN`, `M2`,
    `MIN`, `MAX`, `LAST`, `INVALID`, a column per channel), and the `Stats` fields are derived
    from it when read (`stat_field`). A point ends by copying its table, nothing more: the
    file's summary rows derive their fields for a whole commit at once, the checkpoint stores
    the table as it is, and only a reader that wants one channel (`get`) or all of them as JSON
    (`fields`, for the control API) pays per channel (decision 0093).
    """

    channels: tuple[str, ...]
    table: np.ndarray

    @classmethod
    def of(cls, stats: Mapping[str, Stats]) -> PointStats:
        """From per-channel `Stats` (writers and tests that summarise channel by channel).

        `std` goes back into the table as m2 = std² (n - 1), so a field read back may differ
        from the one given in its last bit."""
        rows = list(stats.values())
        return cls.from_arrays(
            tuple(stats), *(np.array([getattr(r, f) for r in rows]) for f in Stats.__slots__)
        )

    @classmethod
    def from_fields(cls, fields: Mapping[str, Mapping[str, float | int | None]]) -> PointStats:
        """The inverse of `fields` (checkpoints written before the columnar form): None or an
        absent field is NaN, an absent count 0."""
        columns = []
        for name in Stats.__slots__:
            default = 0 if name in COUNT_FIELDS else math.nan
            values = [f.get(name) for f in fields.values()]
            columns.append(np.array([default if v is None else v for v in values], dtype=float))
        return cls.from_arrays(tuple(fields), *columns)

    @classmethod
    def from_arrays(
        cls,
        channels: tuple[str, ...],
        mean: np.ndarray,
        std: np.ndarray,
        low: np.ndarray,
        high: np.ndarray,
        n: np.ndarray,
        last: np.ndarray,
        invalid: np.ndarray,
    ) -> PointStats:
        """From the `Stats` fields as arrays, in `Stats`' order (see `of` on `std`)."""
        n = np.asarray(n, dtype=float).reshape(len(channels))
        table = np.empty((TABLE_ROWS, len(channels)))
        table[N] = n
        table[MEAN] = mean
        table[M2] = np.where(n > 1, np.square(np.asarray(std, dtype=float)) * (n - 1), 0.0)
        table[MIN] = low
        table[MAX] = high
        table[LAST] = last
        table[INVALID] = invalid
        return cls(channels, table)

    @property
    def mean(self) -> np.ndarray:
        return stat_field(self.table, "mean")

    @property
    def std(self) -> np.ndarray:
        return stat_field(self.table, "std")

    @property
    def min(self) -> np.ndarray:
        return stat_field(self.table, "min")

    @property
    def max(self) -> np.ndarray:
        return stat_field(self.table, "max")

    @property
    def n(self) -> np.ndarray:
        return stat_field(self.table, "n")

    @property
    def last(self) -> np.ndarray:
        return stat_field(self.table, "last")

    @property
    def invalid(self) -> np.ndarray:
        return stat_field(self.table, "invalid")

    def get(self, channel: str) -> Stats | None:
        """One channel's `Stats`, or None when the point has no such channel."""
        try:
            k = self.channels.index(channel)
        except ValueError:
            return None
        return self.at(k)

    def at(self, k: int) -> Stats:
        """The `Stats` of the channel in column `k`: its column is a `RunningStats`'s state
        (the table's rows are that class's fields, in order), and `result` reads it."""
        n, mean, m2, low, high, last, invalid = self.table[:, k].tolist()
        return RunningStats(int(n), mean, m2, low, high, last, int(invalid)).result()

    def fields(self) -> dict[str, dict[str, float | int | None]]:
        """Every channel's statistics as JSON-ready fields (`Stats`' names; None for NaN or
        infinite), for the control API and `mdfctl show`."""
        columns = []
        for name in Stats.__slots__:
            column = stat_field(self.table, name)
            values = column.astype(object)
            if column.dtype.kind == "f":
                values[~np.isfinite(column)] = None
            columns.append(values.tolist())
        return {
            channel: dict(zip(Stats.__slots__, row, strict=True))
            for channel, row in zip(self.channels, zip(*columns, strict=True), strict=True)
        }
