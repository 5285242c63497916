"""The engine's clock: the wall clock on a real MDF, a scaled one on a simulated MDF.

Dwell, hold, ramp, timeouts and acquisition rates in a recipe are in process time; on a sim
config declaring `time_scale`, process time runs that many times faster than the wall, exactly
as the simulators' physics do, so a realistic recipe dry-runs unchanged.
"""

from __future__ import annotations

import asyncio
import time


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
        if seconds > 0:
            await asyncio.sleep(seconds / self.scale)

    async def sleep_until(self, when: float) -> None:
        await self.sleep(when - self.now())

    def wall_seconds(self, seconds: float) -> float:
        return seconds / self.scale
