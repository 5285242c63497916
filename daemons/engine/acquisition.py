"""Acquisition: channels sampled at a rate for a duration or a count, into HDF5 and statistics.

Scheduling is drift-free: sample i is due at t0 + i / rate, so 10 Hz for 60 s gives 600
samples, not 590; when the instruments are slower than the schedule, samples come back to back
and the count still holds. Channels an instrument pushes (OPC-UA subscriptions) are sampled and
held at the same schedule: the driver answers a read of one from its latest notification,
stamped at the read, so an acquisition of 10 gives 10 samples however often the server
notifies (a server that samples slower than asked says so in a warning at connect).

The polling loop is the engine's hottest path (a memory instrument is read millions of times
in a benchmark or a dry run), so per scan it does only what each scan must: read under the
retry policy, check the interlocks, hand each sample to the file. What can be worked out once
per step is (the read plan, the channels' buffers), and statistics are folded in by blocks.
"""

from __future__ import annotations

import time
from array import array
from typing import TYPE_CHECKING, Any

from mdfd.drivers import InstrumentError, Value
from mdfd.recipes.model import AcquireSpec

from ..resolve import duration_for
from ..stats import RunningStats
from .events import EventBus, Readings
from .instruments import Instruments

if TYPE_CHECKING:
    from .steps import StepContext

EVENT_PERIOD_WALL_SECONDS = 0.25
STATS_BLOCK_SCANS = 4096  # scans whose samples wait in a buffer before joining the statistics


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

    async def run(self, spec: AcquireSpec, ctx: StepContext) -> None:
        if spec.count is not None:
            count = spec.count
        else:
            count = round(duration_for(spec.duration or 0, ctx.point, ctx.recipe) * spec.rate)
        ctx.log.info("acquire", channels=spec.channels, rate=spec.rate, samples=count)
        await self._scan(list(spec.channels), count, spec.rate, ctx)
        await self._sink.drain()

    async def _scan(self, channels: list[str], count: int, rate: float, ctx: StepContext) -> None:
        """`count` scans of the polled `channels` on the drift-free schedule.

        Each scan's readings pass the interlock hooks inside `read`; the breach check follows
        before any of them is kept, and so before the next read.
        """
        clock, check = ctx.clock, ctx.check_interlocks
        if not channels:
            began = clock.now()
            for index in range(count):
                await clock.sleep_until(began + index / rate)
                check()
            await clock.sleep_until(began + count / rate)
            return
        reader = self._instruments.reader(channels)
        read, add, point = reader.read, self._sink.add_sample, self._point
        slots = [(channel, array("d")) for channel in reader.channels]
        names = reader.channels
        keeps = [pending.append for _, pending in slots]
        width = len(slots)
        until_fold = STATS_BLOCK_SCANS
        began = clock.now()
        try:
            for index in range(count):
                await clock.sleep_until(began + index / rate)
                try:
                    readings = await read()
                except InstrumentError as exc:
                    readings = await ctx.retry("acquire", read, exc)
                check()
                drain = False
                written = width
                for channel, reading, keep in zip(names, readings, keeps, strict=True):
                    value = reading.value
                    if type(value) is not float:
                        value = _scalar(value)
                        if value is None:
                            written -= 1
                            continue
                    if add(channel, reading.timestamp, value, point):
                        drain = True
                    keep(value)
                self.samples_written += written
                if drain or self._sink.needs_drain:
                    await self._sink.drain()
                now = time.monotonic()
                if now - self._last_event >= EVENT_PERIOD_WALL_SECONDS:
                    self._fold(slots)
                    self._publish(now)
                    until_fold = STATS_BLOCK_SCANS
                until_fold -= 1
                if not until_fold:
                    self._fold(slots)
                    until_fold = STATS_BLOCK_SCANS
            await clock.sleep_until(began + count / rate)
        finally:
            self._fold(slots)

    def _fold(self, slots: list[tuple[str, array[float]]]) -> None:
        """Move the buffered samples into the point's statistics and the latest values."""
        for channel, pending in slots:
            if pending:
                self._stats(channel).add_block(pending)
                self.latest[channel] = pending[-1]
                del pending[:]

    def _stats(self, channel: str) -> RunningStats:
        stats = self.stats.get(channel)
        if stats is None:
            stats = self.stats[channel] = RunningStats()
        return stats

    def _publish(self, now: float) -> None:
        self._last_event = now
        self._events.publish(Readings(point=self._point, values=dict(self.latest)))


def _scalar(value: Value) -> float | None:
    """A sample's value as stored: numbers (bools too) as float; strings and arrays are not."""
    if isinstance(value, int | float):
        return float(value)
    return None
