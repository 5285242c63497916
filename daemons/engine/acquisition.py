"""Acquisition: channels sampled at a rate for a duration or a count, into HDF5 and statistics.

Scheduling is drift-free: sample i is due at t0 + i / rate, so 10 Hz for 60 s gives 600
samples, not 590; when the instruments are slower than the schedule, samples come back to back
and the count still holds. Channels an instrument pushes (OPC-UA subscriptions) are sampled and
held at the same schedule: the driver answers a read of one from its latest notification,
stamped at the read, so an acquisition of 10 gives 10 samples however often the server
notifies (a server that samples slower than asked says so in a warning at connect).

The polling loop is the engine's hottest path (a memory instrument is read millions of times
in a benchmark or a dry run), so per scan it does only what each scan must: read within the
step's timeout context, check the interlocks, hand each sample to the file. What can be worked
out once per step is (the read plan, the channels' buffers), and statistics are folded in by
blocks.
"""

from __future__ import annotations

import asyncio
import math
import time
from array import array
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from mdfd.drivers import InstrumentError, Reading
from mdfd.recipes.model import AcquireSpec

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
        count = spec.samples(ctx.point, ctx.recipe)
        ctx.log.info("acquire", channels=spec.channels, rate=spec.rate, samples=count)
        await self._scan(list(spec.channels), count, spec.rate, ctx)
        await self._sink.drain()

    async def _scan(self, channels: list[str], count: int, rate: float, ctx: StepContext) -> None:
        """`count` scans of the polled `channels` on the drift-free schedule.

        The scans share one timeout context, armed around each read by `Reader.read_within`.
        A read that fails or runs out of time leaves that context: it is retried under the
        recipe's error policy (each attempt with a timeout of its own) and the scans go on in
        a new context. Each scan's readings pass the interlock hooks inside the read; the
        breach check follows before any of them is kept, and so before the next read.
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
        add, point = self._sink.add_sample, self._point
        slots = [(channel, array("d")) for channel in reader.channels]
        names = reader.channels
        keeps = [pending.append for _, pending in slots]
        width = len(slots)
        until_fold = STATS_BLOCK_SCANS

        not_numbers: set[str] = set()

        async def take(readings: Sequence[Reading]) -> None:
            """One scan's readings: checked, then into the file and the statistics' buffers."""
            nonlocal until_fold
            check()
            drain = False
            for channel, reading, keep in zip(names, readings, keeps, strict=True):
                sample = reading.value
                if type(sample) is float:
                    value = sample
                elif isinstance(sample, int | float):
                    value = float(sample)
                else:
                    # Validation refuses channels known to give text or arrays; one that
                    # does so anyway is an invalid sample (NaN), counted and said, not dropped.
                    value = math.nan
                    if channel not in not_numbers:
                        not_numbers.add(channel)
                        ctx.log.warning(
                            "acquired value is not a number; stored as an invalid sample",
                            channel=channel,
                            value=repr(sample)[:80],
                        )
                if add(channel, reading.timestamp, value, point):
                    drain = True
                keep(value)
            self.samples_written += width
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

        began = clock.now()
        index = 0
        try:
            while index < count:
                deadline = asyncio.timeout(None)
                try:
                    async with deadline:
                        while index < count:
                            await clock.sleep_until(began + index / rate)
                            await take(await reader.read_within(deadline))
                            index += 1
                    break
                except TimeoutError:
                    if not deadline.expired():
                        raise
                    error: InstrumentError = reader.timed_out()
                except InstrumentError as exc:
                    error = exc
                await take(await ctx.retry("acquire", reader.read, error))
                index += 1
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
