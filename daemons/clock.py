"""The engine's clock: the wall clock on a real MDF, a scaled one on a simulated MDF.

Dwell, hold, ramp, timeouts and acquisition rates in a recipe are in process time; on a sim
config declaring `time_scale`, process time runs that many times faster than the wall, exactly
as the simulators' physics do, so a realistic recipe dry-runs unchanged.
"""

from __future__ import annotations

import asyncio
import time
from typing import Literal

SELECT_GRANULARITY = 0.001  # seconds: epoll waits in whole milliseconds
BUSY_WALL_SECONDS = 0.001  # a schedule running behind gives the loop a turn this often


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
        self._turn_due = 0.0  # monotonic time by which a due wait must yield again

    def now(self) -> float:
        """Process time as epoch seconds (equal to the wall clock when scale is 1)."""
        return self._wall0 + (time.monotonic() - self._mono0) * self.scale

    async def sleep(self, seconds: float) -> None:
        """Sleep in process seconds; a wait under epoll's 1 ms granularity yields instead.

        The selector rounds every timeout up to a whole millisecond, so a 100 us wait (one
        sample at 10 kHz) would cost a full millisecond; below that the loop keeps running
        other tasks with `sleep(0)` until the deadline, which is both shorter and on time.
        A wait already due yields only if this clock has not given the loop a turn for
        `BUSY_WALL_SECONDS`: a schedule that has fallen behind (a fast clock, a driver whose
        reads never suspend) must not starve the loop — the interlock monitor, the control
        API, the watchdog, the storage writer's hand-backs — yet a turn per sample (a few us
        each) would be most of the cost of a fast acquisition. Reads that never suspend arm no
        timer (see `instruments.bounded`), so no cancelled timer handles pile up in the loop's
        heap between turns (asyncio purges them only then: 150 MB over 3M samples, once).
        """
        await self._wait(seconds / self.scale, time.monotonic())

    async def sleep_until(self, when: float) -> None:
        mono = time.monotonic()
        wall = (when - self._wall0) / self.scale - (mono - self._mono0)
        if wall > 0 or mono >= self._turn_due:
            await self._wait(wall, mono)

    async def _wait(self, wall: float, mono: float) -> None:
        if wall >= SELECT_GRANULARITY:
            await asyncio.sleep(wall)
        elif wall > 0 or mono >= self._turn_due:
            deadline = mono + wall
            await asyncio.sleep(0)
            while time.monotonic() < deadline:  # noqa: ASYNC110 - a deadline, not an event
                await asyncio.sleep(0)
        else:
            return
        self._turn_due = time.monotonic() + BUSY_WALL_SECONDS

    def wall_seconds(self, seconds: float) -> float:
        return seconds / self.scale
