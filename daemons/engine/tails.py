"""The last seconds of chosen channels within a point, for a windowed reducer.

An adaptive campaign may optimise the mean of a channel over the last part of each point
(`reduce: {mean_of_last: 30 s}`): the settled end of a transient, not the whole of it. The
point's statistics are kept as running sums (`ColumnStats`), which cannot forget the early
samples, so the channels that need a window keep their recent samples here — only those
channels, and only as many as the window holds (rate × window), dropped as they age out.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence

import numpy as np


class Tails:
    """Per channel, the samples of the current point no older than its window, measured back
    from its newest sample (in the engine's clock, the clock the scans are stamped with)."""

    def __init__(self) -> None:
        self._windows: dict[str, float] = {}
        self._samples: dict[str, deque[tuple[float, float]]] = {}

    def keep(self, channel: str, seconds: float) -> None:
        """Keep `channel`'s last `seconds` from the next point on (the longest window asked)."""
        self._windows[channel] = max(seconds, self._windows.get(channel, 0.0))

    def begin_point(self) -> None:
        self._samples = {channel: deque() for channel in self._windows}

    def add(self, channels: Sequence[str], t: float, values: np.ndarray) -> None:
        """One scan of an instrument; a no-op unless a window was asked for."""
        if not self._samples:
            return
        for channel, value in zip(channels, values.tolist(), strict=True):
            samples = self._samples.get(channel)
            if samples is None:
                continue
            samples.append((t, value))
            horizon = t - self._windows[channel]
            while samples[0][0] < horizon:
                samples.popleft()

    def add_scans(self, channels: Sequence[str], times: np.ndarray, values: np.ndarray) -> None:
        """Many scans of an instrument (`values[k]` taken at `times[k]`); a no-op unless a
        window was asked for."""
        if not self._samples:
            return
        for t, row in zip(times.tolist(), values, strict=True):
            self.add(channels, t, row)

    def mean(self, channel: str) -> float:
        """The mean of the channel's valid samples in its window; NaN when there are none."""
        valid = [value for _, value in self._samples.get(channel, ()) if math.isfinite(value)]
        return math.fsum(valid) / len(valid) if valid else math.nan
