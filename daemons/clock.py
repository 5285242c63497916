"""The engine's clock: the wall clock on a real MDF, a scaled one on a simulated MDF.

Dwell, hold, ramp, timeouts and acquisition rates in a recipe are in process time; on a sim
config declaring `time_scale`, process time runs that many times faster than the wall, exactly
as the simulators' physics do, so a realistic recipe dry-runs unchanged.
"""

from __future__ import annotations

import asyncio
import time

SELECT_GRANULARITY = 0.001  # seconds: epoll waits in whole milliseconds


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
        """Sleep in process seconds; a wait under epoll's 1 ms granularity yields instead.

        The selector rounds every timeout up to a whole millisecond, so a 100 us wait (one
        sample at 10 kHz) would cost a full millisecond; below that the loop keeps running
        other tasks with `sleep(0)` until the deadline, which is both shorter and on time.
        A wait already due still yields once: a schedule that has fallen behind (a fast clock,
        a driver whose reads never suspend) must not starve the loop — the interlock monitor,
        the control API, the watchdog — nor let the loop's heap of cancelled per-read timeout
        handles grow, which asyncio only purges between iterations (150 MB over 3M samples).
        """
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        wall = seconds / self.scale
        if wall >= SELECT_GRANULARITY:
            await asyncio.sleep(wall)
            return
        deadline = time.monotonic() + wall
        while time.monotonic() < deadline:  # noqa: ASYNC110 - a deadline, not an event
            await asyncio.sleep(0)

    async def sleep_until(self, when: float) -> None:
        await self.sleep(when - self.now())

    def wall_seconds(self, seconds: float) -> float:
        return seconds / self.scale
