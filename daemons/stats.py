"""Running statistics of a channel within a point, in constant memory.

A ten-million-sample run must not hold its samples to summarise them: Welford's update keeps
mean and variance numerically stable with O(1) state per channel. A fast acquisition folds its
samples in by blocks (`add_block`) rather than one Python call per sample.

A NaN or ±inf sample (a device's "no value", an overflowed float) is no measurement: it is
counted in `invalid` and kept out of n, mean, std, min, max and last. Folded in, one NaN would
make the mean NaN for the rest of the point, and a channel of NaNs would end `min inf, max -inf`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

SMALL_BLOCK = 32  # samples: below this numpy's fixed cost per call exceeds a Python loop


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

        The block's own mean and sum of squared deviations are computed by numpy (pairwise
        sums, two passes: at least as stable as Welford) and merged with the update of Chan,
        Golub and LeVeque, which is Welford's for a block. Non-finite samples are counted
        apart, as in `add`.
        """
        k = len(values)
        if k < SMALL_BLOCK:
            for value in values:
                self.add(value)
            return
        block = np.asarray(values, dtype=np.float64)
        finite = np.isfinite(block)
        if not finite.all():
            self.invalid += k - int(finite.sum())
            block = block[finite]
            k = len(block)
            if k == 0:
                return
        block_mean = float(block.mean())
        deviations = block - block_mean
        block_m2 = float((deviations * deviations).sum())
        before = self.n
        self.n = n = before + k
        delta = block_mean - self.mean
        self.mean += delta * k / n
        self._m2 += block_m2 + delta * delta * before * k / n
        self.min = min(self.min, float(block.min()))
        self.max = max(self.max, float(block.max()))
        self.last = float(block[-1])

    def result(self) -> Stats:
        if self.n == 0:
            nan = math.nan
            return Stats(nan, nan, nan, nan, 0, invalid=self.invalid)
        std = math.sqrt(self._m2 / (self.n - 1)) if self.n > 1 else 0.0
        return Stats(self.mean, std, self.min, self.max, self.n, self.last, self.invalid)
