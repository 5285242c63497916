"""The engine's clock: the wall clock on a real MDF, a scaled one on a simulated MDF.

Dwell, hold, ramp, timeouts and acquisition rates in a recipe are in process time; on a sim
config declaring `time_scale`, process time runs that many times faster than the wall, exactly
as the simulators' physics do, so a realistic recipe dry-runs unchanged.
"""

from __future__ import annotations

import asyncio
import time
from typing import Literal


def clock_kind(scale: float) -> Literal["wall", "simulated"]:
    """What process time is, for files and records: "wall" at scale 1, else "simulated"."""
    return "wall" if scale == 1.0 else "simulated"


class EngineClock:
    def __init__(self, scale: float = 1.0) -> None:
        if scale <= 0:
            raise ValueError(f"time scale must be positive, got {scale}")
        self.scale = scale
        self._wall0 = time.time()
        self._mono0 = time.monotonic()

    def now(self) -> float:
        """Process time as epoch seconds (equal to the wall clock when scale is 1)."""
        return self._wall0 + (time.monotonic() - self._mono0) * self.scale

    async def sleep(self, seconds: float) -> None:
        """Sleep `seconds` of process time with `asyncio.sleep`; a wait of zero or less yields.

        The event loop wakes timers no finer than its selector: epoll waits in whole
        milliseconds, so a positive wait under 1 ms of wall time (one sample at 10 kHz on a
        real clock) costs up to a millisecond. On a drift-free schedule that is jitter, not
        drift: the samples that came due meanwhile are taken back to back. A wait already due
        still yields once (`asyncio.sleep(0)`), so a schedule that has fallen behind (a fast
        clock, a driver whose reads never suspend) never starves the loop: the interlock
        monitor, the control API and the watchdog get a turn between any two scans.
        """
        await asyncio.sleep(seconds / self.scale)

    async def sleep_until(self, when: float) -> None:
        """Sleep until process time `when` (see `sleep`)."""
        await asyncio.sleep((when - self.now()) / self.scale)

    async def sleep_wall(self, seconds: float) -> None:
        """Sleep `seconds` of wall time whatever the scale: a retry's backoff, because faults
        and reconnects take real seconds on a simulated MDF too (decisions 0022, 0063)."""
        await asyncio.sleep(seconds)

    def wall_seconds(self, seconds: float) -> float:
        return seconds / self.scale
