"""Acquisition: channels sampled at a rate for a duration or a count, into HDF5 and statistics.

Scheduling is drift-free: sample i is due at t0 + i / rate, so 10 Hz for 60 s gives 600
samples, not 590; when the instruments are slower than the schedule, samples come back to back
and the count still holds. Channels an instrument pushes (OPC-UA subscriptions) are sampled and
held at the same schedule: the driver answers a read of one from its latest notification,
stamped at the read, so an acquisition of 10 gives 10 samples however often the server
notifies (a server that samples slower than asked says so in a warning at connect).

The polling loop is the engine's hottest path (a memory instrument is read millions of times
in a benchmark or a dry run, a line of a hundred instruments carries ten thousand channels), so
it is columnar: each scan is a `Scan` (a float64 per channel, a timestamp per instrument) read
with one call per instrument; the interlocks are checked on those arrays inside the read, the
values go to the file one call per instrument and into a 2-D buffer (channels x scans) that is
folded into the statistics with numpy when it is full and when the step ends. No Python object
is made per sample. What can be worked out once per step is (the read plan, the buffer).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from mdfd.daemons.core.stats import ColumnStats, Positions, summarise
from mdfd.drivers import InstrumentError, Scans
from mdfd.recipes.steps import AcquireSpec

from .events import EventBus, Readings
from .instruments import Instruments, Part, Reader, Scan
from .tails import Tails

if TYPE_CHECKING:
    from .steps import StepContext

EVENT_PERIOD_WALL_SECONDS = 0.25
FETCH_PERIOD_WALL_SECONDS = 0.05  # at most this long between fetches of a buffered acquisition
STATS_BLOCK_SCANS = 4096  # scans whose samples wait in a buffer before joining the statistics
STATS_BLOCK_SAMPLES = 1 << 20  # ... and at most this many samples (8 MiB) for wide scans


class Acquisition:
    """Per-run sample sink; `begin_point` resets the per-point statistics."""

    def __init__(self, sink: Any, instruments: Instruments, events: EventBus) -> None:
        self._sink = sink
        self._instruments = instruments
        self._events = events
        self.stats = ColumnStats(())
        self.tails = Tails()  # the windows an adaptive campaign's reducers ask for
        self.latest: dict[str, float] = {}
        self.samples_written = 0
        self._point = 0
        self._last_event = 0.0

    def begin_point(self, point_index: int, channels: list[str]) -> None:
        """New statistics for the point: the last point's arrays reset when it had exactly
        these channels (its snapshot holds copies), else a new set."""
        self._point = point_index
        if self.stats.channels == channels:
            self.stats.reset()
        else:
            self.stats = ColumnStats(channels)
        self.tails.begin_point()

    async def run(self, spec: AcquireSpec, ctx: StepContext) -> None:
        count = spec.samples(ctx.point, ctx.recipe)
        ctx.log.info("acquire", channels=spec.channels, rate=spec.rate, samples=count)
        await self._scan(list(spec.channels), count, spec.rate, ctx)
        await self._sink.drain()

    async def _scan(self, channels: list[str], count: int, rate: float, ctx: StepContext) -> None:
        """`count` scans of the polled `channels` on the drift-free schedule.

        The scans share one timeout context, armed around each read by `Reader.scan_within`.
        A read that fails or runs out of time leaves that context: it is retried under the
        recipe's error policy (each attempt with a timeout of its own) and the scans go on in
        a new context. Each scan's values pass the interlock checks inside the read; the
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
        if reader.buffers(rate, count):
            await self._buffered(reader, count, rate, ctx)
            return
        names, point = reader.channels, self._point
        at = self.stats.positions(names)
        rows = max(1, min(count, STATS_BLOCK_SCANS, STATS_BLOCK_SAMPLES // len(names)))
        pending = np.empty((len(names), rows))  # a row per channel: its samples contiguous
        filled = 0
        not_numbers: set[str] = set()

        async def take(scan: Scan) -> None:
            """One scan's values: checked, then into the file and the statistics' buffer."""
            nonlocal filled
            check()
            for channel, value in scan.not_numbers:
                # Validation refuses channels known to give text or arrays; one that does
                # so anyway is an invalid sample (NaN), counted and said, not dropped.
                if channel not in not_numbers:
                    not_numbers.add(channel)
                    ctx.log.warning(
                        "acquired value is not a number; stored as an invalid sample",
                        channel=channel,
                        value=repr(value)[:80],
                    )
            pending[:, filled] = scan.values
            filled += 1
            self.samples_written += len(names)
            if self._store(reader.parts, scan, point) or self._sink.needs_drain:
                await self._sink.drain()
            if filled == rows:
                self._fold(at, names, pending, filled)
                filled = 0
            now = time.monotonic()
            if now - self._last_event >= EVENT_PERIOD_WALL_SECONDS:
                self._publish(now, names, scan.values)

        began = clock.now()
        index = 0
        try:
            while index < count:
                deadline = asyncio.timeout(None)
                try:
                    async with deadline:
                        while index < count:
                            await clock.sleep_until(began + index / rate)
                            await take(await reader.scan_within(deadline))
                            index += 1
                    break
                except TimeoutError:
                    if not deadline.expired():
                        raise
                    error: InstrumentError = reader.timed_out()
                except InstrumentError as exc:
                    error = exc
                await take(await ctx.retry("acquire", reader.scan, error))
                index += 1
            if clock.now() < began + count / rate:  # the loop had its turn before each scan
                await clock.sleep_until(began + count / rate)
        finally:
            self._fold(at, names, pending, filled)

    async def _buffered(self, reader: Reader, count: int, rate: float, ctx: StepContext) -> None:
        """`count` scans one instrument takes on its own clock (`Reader.buffers`), fetched a
        block at a time: one round trip per block instead of one per scan (decision 0089).

        The engine fetches when a block of scans is due or `FETCH_PERIOD_WALL_SECONDS` have
        passed, whichever comes first, but never before the next scan is due (at slow rates,
        a scan a fetch); an instrument that hands over nothing for the read timeout after
        that is timed out. A failed fetch may have taken its scans with it, so a retry (the
        recipe's error policy) starts the acquisition again for the scans still missing: the
        count holds. Each block passes the interlock checks inside the fetch; it is kept
        before the breach check raises, because its scans were measured (thousands of them,
        the breaching one among them: the evidence), where a polled scan that breaches is one
        value and is not. A breach is seen within a fetch period and a round trip. The
        acquisition is stopped when the step ends, however it ends.
        """
        clock, check = ctx.clock, ctx.check_interlocks
        names, point, part = reader.channels, self._point, reader.parts[0]
        at = self.stats.positions(names)
        most = max(1, min(count, STATS_BLOCK_SCANS, STATS_BLOCK_SAMPLES // len(names)))
        period = FETCH_PERIOD_WALL_SECONDS * clock.scale
        pause = min(clock.wall_seconds(1 / rate), reader.timeout / 4)
        loop = asyncio.get_running_loop()
        taken = since_start = 0
        began = 0.0
        ctx.log.info("acquiring on the instrument's clock", instrument=part.instrument, block=most)

        async def arrival() -> Scans:
            """The next scans: fetched once a block is due or a period has passed (but not
            before the next scan is due), and again `pause` later while the instrument has
            none yet — for at most the read timeout."""
            soonest = began + since_start / rate
            block = began + (since_start + most - 1) / rate
            await clock.sleep_until(max(soonest, min(block, clock.now() + period)))
            waiting_since = loop.time()
            while True:
                scans = await reader.fetch_buffer(min(most, count - taken))
                if len(scans):
                    return scans
                if loop.time() - waiting_since > reader.timeout:
                    raise reader.timed_out()
                await clock.sleep_wall(pause)

        async def start() -> Scans:
            nonlocal began, since_start
            await reader.stop_buffer()
            await reader.start_buffer(rate, count - taken)
            began, since_start = clock.now(), 0
            return await arrival()

        try:
            scans = await ctx.with_retries("acquire", start)
            while True:
                if self._keep(part, scans, point, at):
                    await self._sink.drain()
                taken += len(scans)
                since_start += len(scans)
                check()
                if taken >= count:
                    break
                try:
                    scans = await arrival()
                except InstrumentError as exc:
                    scans = await ctx.retry("acquire", start, exc)
            if clock.now() < began + since_start / rate:
                await clock.sleep_until(began + since_start / rate)
        finally:
            await self._stop_buffer(reader, ctx)

    def _keep(self, part: Part, scans: Scans, point: int, at: Positions) -> bool:
        """A checked block of scans into the file, the windows and the statistics; True when
        the file wants a drain."""
        values = scans.values
        self.samples_written += values.size
        self.tails.add_scans(part.channels, scans.times, values)
        drain = self._sink.add_scans(part.instrument, part.channels, scans.times, values, point)
        self.stats.merge(at, summarise(np.ascontiguousarray(values.T)))
        self.latest.update(zip(part.channels, values[-1].tolist(), strict=True))
        now = time.monotonic()
        if now - self._last_event >= EVENT_PERIOD_WALL_SECONDS:
            self._publish(now, part.channels, values[-1])
        return bool(drain or self._sink.needs_drain)

    @staticmethod
    async def _stop_buffer(reader: Reader, ctx: StepContext) -> None:
        """Stop the instrument's acquisition; a failure to is said, not raised over the step's
        own outcome (the next start clears the instrument's memory anyway)."""
        try:
            await reader.stop_buffer()
        except InstrumentError as exc:
            ctx.log.warning("buffered acquisition not stopped", error=str(exc))

    def _store(self, parts: Sequence[Part], scan: Scan, point: int) -> bool:
        """The scan into the data file, one call per instrument; True when it wants a drain.

        The one place that knows the file's entry point for samples.
        """
        drain = False
        for part, t in zip(parts, scan.times, strict=True):
            values = scan.values[part.start : part.stop]
            self.tails.add(part.channels, t, values)
            if self._sink.add_scan(part.instrument, part.channels, t, values, point):
                drain = True
        return drain

    def _fold(self, at: Positions, names: Sequence[str], pending: np.ndarray, filled: int) -> None:
        """Move the buffered scans into the point's statistics (at positions `at`) and the
        latest values."""
        if not filled:
            return
        block = pending[:, :filled]
        self.stats.merge(at, summarise(block))
        self.latest.update(zip(names, block[:, -1].tolist(), strict=True))

    def _publish(self, now: float, names: Sequence[str], values: np.ndarray) -> None:
        """The latest values of every channel so far, this step's from its last scan."""
        self._last_event = now
        self.latest.update(zip(names, values.tolist(), strict=True))
        self._events.publish(Readings(point=self._point, values=dict(self.latest)))
