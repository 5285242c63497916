"""Simulated time.

A sim config declares a time scale so that a realistic recipe (hours of dwell at 5 °C/min)
dry-runs in a minute. The simulators' physics and the engine read the same kind of clock:
sim time advances `scale` seconds per wall second from a common epoch, so two processes that
share the scale agree on durations without talking to each other.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field


@dataclass
class ScaledClock:
    scale: float = 1.0
    _wall0: float = field(default_factory=time.time)
    _mono0: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        if self.scale <= 0:
            raise ValueError(f"time scale must be positive, got {self.scale}")

    def now(self) -> float:
        """Sim epoch seconds: wall time at start plus scaled elapsed time."""
        return self._wall0 + (time.monotonic() - self._mono0) * self.scale

    def real_seconds(self, sim_seconds: float) -> float:
        return sim_seconds / self.scale
