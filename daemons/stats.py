"""Running statistics of a channel within a point, in constant memory.

A ten-million-sample run must not hold its samples to summarise them: Welford's update keeps
mean and variance numerically stable with O(1) state per channel.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Stats:
    mean: float
    std: float
    min: float
    max: float
    n: int
    last: float = math.nan


@dataclass(slots=True)
class RunningStats:
    n: int = 0
    mean: float = 0.0
    _m2: float = 0.0
    min: float = math.inf
    max: float = -math.inf
    last: float = math.nan

    def add(self, value: float) -> None:
        self.last = value
        self.n += 1
        delta = value - self.mean
        self.mean += delta / self.n
        self._m2 += delta * (value - self.mean)
        self.min = min(self.min, value)
        self.max = max(self.max, value)

    def result(self) -> Stats:
        if self.n == 0:
            nan = math.nan
            return Stats(nan, nan, nan, nan, 0)
        std = math.sqrt(self._m2 / (self.n - 1)) if self.n > 1 else 0.0
        return Stats(self.mean, std, self.min, self.max, self.n, self.last)
