"""Acquisition: channels sampled at a rate for a duration or a count, into HDF5 and statistics.

Scheduling is drift-free: sample i is due at t0 + i / rate, so 10 Hz for 60 s gives 600
samples, not 590; when the instruments are slower than the schedule, samples come back to back
and the count still holds. Channels an instrument pushes (OPC-UA subscriptions) are taken from
its stream instead of polled.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import TYPE_CHECKING, Any

from mdfd.drivers import Reading, Subscribable
from mdfd.recipes.model import AcquireSpec

from ..resolve import duration_for
from ..stats import RunningStats
from .events import EventBus
from .instruments import Instruments, split

if TYPE_CHECKING:
    from .steps import StepContext

EVENT_PERIOD_WALL_SECONDS = 0.25


class Acquisition:
    """Per-run sample sink; `begin_point` resets the per-point statistics."""

    def __init__(self, sink: Any, instruments: Instruments, events: EventBus) -> None:
        self._sink = sink
        self._instruments = instruments
        self._events = events
        self.stats: dict[str, RunningStats] = {}
        self.latest: dict[str, float] = {}
        self.samples_written = 0
        self._point = 0
        self._last_event = 0.0

    def begin_point(self, point_index: int, channels: list[str]) -> None:
        self._point = point_index
        self.stats = {channel: RunningStats() for channel in channels}

    def record(self, channel: str, reading: Reading) -> None:
        value = reading.value
        if isinstance(value, bool):
            value = float(value)
        if not isinstance(value, int | float):
            return
        self._sink.add_sample(channel, reading.timestamp, float(value), self._point)
        self.stats.setdefault(channel, RunningStats()).add(float(value))
        self.latest[channel] = float(value)
        self.samples_written += 1
        now = time.monotonic()
        if now - self._last_event >= EVENT_PERIOD_WALL_SECONDS:
            self._last_event = now
            self._events.publish("readings", point=self._point, values=dict(self.latest))

    async def run(self, spec: AcquireSpec, ctx: StepContext) -> None:
        clock = ctx.clock
        if spec.count is not None:
            count = spec.count
        else:
            count = round(duration_for(spec.duration or 0, ctx.point, ctx.recipe) * spec.rate)
        polled = [c for c in spec.channels if not self._instruments.subscribed(c)]
        pushed = [c for c in spec.channels if c not in polled]
        ctx.log.info("acquire", channels=spec.channels, rate=spec.rate, samples=count)
        before = {channel: self._count(channel) for channel in pushed}
        async with self._streaming(pushed):
            began = clock.now()
            for index in range(count):
                await clock.sleep_until(began + index / spec.rate)
                if polled:
                    readings = await ctx.with_retries(
                        "acquire", lambda: self._instruments.read(polled)
                    )
                    ctx.check_interlocks()
                    for channel in polled:
                        self.record(channel, readings[channel])
                    if self._sink.needs_drain:
                        await self._sink.drain()
                else:
                    ctx.check_interlocks()
            await clock.sleep_until(began + count / spec.rate)
        quiet = [c for c in pushed if self._count(c) == before[c]]
        if quiet:
            # A pushed channel that did not change in the window still has a value: take the
            # driver's latest so the point's statistics are never empty.
            readings = await ctx.with_retries("acquire", lambda: self._instruments.read(quiet))
            for channel in quiet:
                self.record(channel, readings[channel])
        await self._sink.drain()

    def _count(self, channel: str) -> int:
        stats = self.stats.get(channel)
        return stats.n if stats is not None else 0

    @contextlib.asynccontextmanager
    async def _streaming(self, channels: list[str]):
        """Consume pushed channels for the duration of the block; the task dies with it."""
        if not channels:
            yield
            return
        by_instrument: dict[str, list[str]] = {}
        for qualified in channels:
            instrument, channel = split(qualified)
            by_instrument.setdefault(instrument, []).append(channel)
        tasks = [
            asyncio.create_task(self._consume(instrument, names))
            for instrument, names in by_instrument.items()
        ]
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _consume(self, instrument: str, channels: list[str]) -> None:
        driver = self._instruments.driver(instrument)
        assert isinstance(driver, Subscribable)
        async for channel, reading in driver.stream(channels):
            self.record(f"{instrument}.{channel}", reading)
