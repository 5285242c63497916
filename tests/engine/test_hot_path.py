"""The engine's per-read path keeps its guarantees, whether a driver's call suspends or not.

Every read and write runs under a plain `asyncio.timeout`; an acquisition's scans share one
timeout context rescheduled per read. These tests pin what must not change: a stuck operation
times out (alone or mid-acquisition, where the policy retries it and the scans go on), the
schedule's sleeps never count against a read's timeout, a cancellation reaches the driver,
every reading of an interlocked channel is checked, the loop stays responsive during a fast
acquisition, statistics folded in blocks equal those added one by one.
"""

from __future__ import annotations

import asyncio
import math
import random
import statistics
import time
from array import array
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pytest

from mdfd.daemons.core.clock import EngineClock
from mdfd.daemons.core.config import MdfConfig, load_config
from mdfd.daemons.core.stats import SMALL_BLOCK, RunningStats
from mdfd.daemons.engine.acquisition import Acquisition
from mdfd.daemons.engine.events import EventBus, Readings
from mdfd.daemons.engine.instruments import Instruments
from mdfd.daemons.engine.interlocks import InterlockBreach, InterlockGuard
from mdfd.daemons.engine.steps import StepContext
from mdfd.daemons.storage import read_channel
from mdfd.daemons.storage.hdf5_writer import ChannelSpec, RunFile
from mdfd.drivers import (
    Block,
    DriverContext,
    InstrumentError,
    InstrumentTimeout,
    Reading,
    Value,
    WriteOutcomeUnknown,
)
from mdfd.drivers.memory import MemoryDriver
from mdfd.recipes.loader import load_recipe
from mdfd.recipes.steps import AcquireSpec

from .conftest import write_config, write_recipe


class Misbehaving(MemoryDriver):
    """The memory driver with `_turn` before every read, columnar (`read_block`) or not: the
    engine takes whichever the driver offers, and a fault must reach it either way."""

    async def _turn(self) -> None:
        pass

    async def read(self, channels: Sequence[str]) -> dict[str, Reading]:
        await self._turn()
        return await super().read(channels)

    async def read_block(self, channels: Sequence[str]) -> Block:
        await self._turn()
        return await super().read_block(channels)


class Stalled(Misbehaving):
    """An instrument that stopped answering: reads and writes wait forever."""

    waiting = 0
    cancelled = 0

    async def _turn(self) -> None:
        self.waiting += 1
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        raise AssertionError("unreachable")

    async def write(self, channel: str, value: Value) -> None:
        await asyncio.Event().wait()


class StallsOnce(Misbehaving):
    """Answers every read but the listed (1-based) ones, which wait until cancelled."""

    def __init__(self, *args: object, stalling: set[int]) -> None:
        super().__init__(*args)  # type: ignore[arg-type]
        self.stalling = stalling
        self.reads = 0
        self.cancelled = 0

    async def _turn(self) -> None:
        self.reads += 1
        if self.reads in self.stalling:
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                self.cancelled += 1
                raise


class Suspending(Misbehaving):
    """Like the memory driver, but every read goes through the event loop first."""

    async def _turn(self) -> None:
        await asyncio.sleep(0)


class Flaky(Misbehaving):
    """Times out on the reads whose (1-based) numbers are listed."""

    def __init__(self, *args: object, failing: set[int]) -> None:
        super().__init__(*args)  # type: ignore[arg-type]
        self.failing = failing
        self.reads = 0

    async def _turn(self) -> None:
        self.reads += 1
        if self.reads in self.failing:
            raise InstrumentTimeout(self.name, "no reply")


async def connected(
    tmp_path: Path, trip: float = 1450.0, operation: float | None = None
) -> tuple[Instruments, EngineClock]:
    timeouts = None if operation is None else {"operation": operation}
    config = load_config(write_config(tmp_path, trip=trip, timeouts=timeouts))
    clock = EngineClock(config.model.time_scale)
    instruments = Instruments(config.model, ["furnace", "meter"], clock.now)
    await instruments.connect()
    return instruments, clock


async def swap(instruments: Instruments, name: str, cls: type, **kwargs: object) -> MemoryDriver:
    old = instruments.drivers[name]
    assert isinstance(old, MemoryDriver)
    driver = cls(name, old.config, DriverContext(clock=old._context.clock), **kwargs)
    await driver.connect()
    instruments.drivers[name] = driver
    return driver


async def test_a_read_stuck_after_suspending_is_an_instrument_timeout(tmp_path: Path) -> None:
    instruments, _ = await connected(tmp_path, operation=0.05)
    driver = await swap(instruments, "meter", Stalled)
    with pytest.raises(InstrumentTimeout, match="read took over"):
        await instruments.read(["meter.resistivity", "meter.hardness"])
    assert driver.cancelled == 1  # the driver's coroutine was unwound, not abandoned
    assert instruments.errors == 1
    with pytest.raises(InstrumentTimeout):  # the same read plan, again
        await instruments.read(["furnace.temperature", "meter.resistivity", "meter.hardness"])
    assert driver.cancelled == 2
    assert instruments.errors == 2


async def test_a_write_stuck_is_a_write_of_unknown_outcome(tmp_path: Path) -> None:
    instruments, _ = await connected(tmp_path, operation=0.05)
    await swap(instruments, "furnace", Stalled)
    with pytest.raises(WriteOutcomeUnknown, match="write took over"):
        await instruments.write("furnace.setpoint", 100.0)
    assert instruments.errors == 1


async def test_cancelling_a_suspended_read_cancels_the_driver_and_is_no_timeout(
    tmp_path: Path,
) -> None:
    instruments, _ = await connected(tmp_path)
    driver = await swap(instruments, "meter", Stalled)
    task = asyncio.create_task(instruments.read(["meter.resistivity"]))
    await asyncio.sleep(0)  # the task starts and the driver's read suspends
    assert driver.waiting == 1
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert driver.cancelled == 1
    assert instruments.errors == 0


async def test_reads_that_suspend_or_not_give_the_same_readings(tmp_path: Path) -> None:
    instruments, _ = await connected(tmp_path)
    channels = ["meter.resistivity", "furnace.temperature", "meter.hardness"]
    direct = await instruments.read(channels)
    await swap(instruments, "meter", Suspending)
    instruments._readers.clear()  # the swapped driver must be the one read
    suspended = await instruments.read(channels)
    expected = {"meter.resistivity": 1.8, "meter.hardness": 60, "furnace.temperature": 25}
    assert {c: r.value for c, r in direct.items()} == expected
    assert {c: r.value for c, r in suspended.items()} == expected
    reader = instruments.reader(channels)
    assert set(reader.channels) == set(channels)
    values = [r.value for r in await reader.read()]
    assert values == [expected[c] for c in reader.channels]


class Watch:
    """Block checks that record what they are shown: of `channel` only, or of every channel."""

    def __init__(self, channel: str | None = None) -> None:
        self.channel = channel
        self.seen: list[tuple[str, float]] = []

    def plan(self, channels: tuple[str, ...]) -> Callable[[np.ndarray], None] | None:
        watched = [(i, c) for i, c in enumerate(channels) if self.channel in (None, c)]
        if not watched:
            return None
        return lambda values: self.seen.extend((c, float(values[i])) for i, c in watched)


async def test_checks_see_every_read_of_their_channels_and_only_those(tmp_path: Path) -> None:
    instruments, _ = await connected(tmp_path)
    hardness, everything = Watch("meter.hardness"), Watch()
    instruments.on_block(hardness)
    instruments.on_block(everything)
    reader = instruments.reader(["furnace.temperature", "meter.hardness"])
    for _ in range(3):
        await reader.read()  # readings
        await reader.scan()  # columns
    await instruments.read(["meter.hardness"])
    assert hardness.seen == [("meter.hardness", 60.0)] * 7
    channels = sorted(c for c, _ in everything.seen)
    assert channels == sorted(["furnace.temperature"] * 6 + ["meter.hardness"] * 7)


async def test_the_guard_trips_on_the_reading_that_crosses_the_bound(tmp_path: Path) -> None:
    instruments, _ = await connected(tmp_path, trip=20.0)  # the furnace starts at 25 degC
    guard = InterlockGuard(list(instruments_config(tmp_path).safety.interlocks), instruments)
    await instruments.read(["meter.resistivity"])
    guard.raise_if_breached()  # not an interlocked channel: nothing to trip on
    await instruments.reader(["meter.resistivity", "furnace.temperature"]).read()
    with pytest.raises(InterlockBreach, match=r"furnace.temperature = 25 is above 20"):
        guard.raise_if_breached()


async def test_a_breaching_reading_trips_even_if_another_instrument_fails(
    tmp_path: Path,
) -> None:
    instruments, _ = await connected(tmp_path, trip=20.0)
    guard = InterlockGuard(list(instruments_config(tmp_path).safety.interlocks), instruments)
    await swap(instruments, "meter", Flaky, failing={1})
    with pytest.raises(InstrumentTimeout):
        await instruments.read(["meter.resistivity", "furnace.temperature"])
    with pytest.raises(InterlockBreach):
        guard.raise_if_breached()


def instruments_config(tmp_path: Path) -> MdfConfig:
    return load_config(tmp_path / "mdf.yaml").model


async def acquire(
    tmp_path: Path,
    instruments: Instruments,
    clock: EngineClock,
    spec: AcquireSpec,
    events: EventBus | None = None,
    check: Callable[[], None] = lambda: None,
) -> tuple[Acquisition, Path, BaseException | None]:
    """One acquire step into a real data file, `check` its interlock check; the error it
    ended with, if any."""
    config = load_config(tmp_path / "mdf.yaml")
    recipe = load_recipe(write_recipe(tmp_path))  # on_error: retries 1, backoff 1 s
    path = tmp_path / "run.h5"
    run_file = RunFile(
        path, metadata={}, channels=[ChannelSpec(c, "") for c in spec.channels], parameters=[]
    )
    await run_file.open()
    acquisition = Acquisition(run_file, instruments, events or EventBus())
    acquisition.begin_point(0, list(spec.channels))
    ctx = StepContext(recipe.model, config.model, instruments, clock, 0, {}, acquisition, check)
    error: BaseException | None = None
    try:
        await acquisition.run(spec, ctx)
    except (InstrumentError, InterlockBreach) as exc:
        error = exc
    finally:
        await run_file.commit()
        await run_file.close("completed")
    return acquisition, path, error


async def test_an_acquisition_retries_failed_reads_and_keeps_its_count(tmp_path: Path) -> None:
    instruments, clock = await connected(tmp_path)
    driver = await swap(instruments, "meter", Flaky, failing={3, 7, 40})
    spec = AcquireSpec(channels=["meter.resistivity", "meter.hardness"], rate=1000, count=50)
    acquisition, path, error = await acquire(tmp_path, instruments, clock, spec)
    assert error is None
    assert driver.reads == 53
    assert acquisition.samples_written == 100
    for channel, value in (("meter.resistivity", 1.8), ("meter.hardness", 60.0)):
        result = acquisition.stats.results([channel])[channel]
        assert (result.n, result.mean, result.std, result.min, result.max, result.last) == (
            50,
            value,
            0.0,
            value,
            value,
            value,
        )
    assert len(read_channel(path, "meter.hardness").value) == 50


async def test_an_acquisition_stops_when_retries_run_out_with_what_it_had(
    tmp_path: Path,
) -> None:
    instruments, clock = await connected(tmp_path)
    await swap(instruments, "meter", Flaky, failing={11, 12})  # retries: 1
    spec = AcquireSpec(channels=["meter.resistivity"], rate=1000, count=50)
    acquisition, path, error = await acquire(tmp_path, instruments, clock, spec)
    assert isinstance(error, InstrumentTimeout)
    assert (
        acquisition.stats.results(["meter.resistivity"])["meter.resistivity"].n == 10
    )  # folded in despite the failure
    assert acquisition.samples_written == 10
    assert len(read_channel(path, "meter.resistivity").value) == 10


async def test_watchers_get_the_latest_values_of_a_fast_acquisition(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mdfd.daemons.engine import acquisition as acquisition_module

    monkeypatch.setattr(acquisition_module, "EVENT_PERIOD_WALL_SECONDS", 0.0)
    instruments, clock = await connected(tmp_path)
    events = EventBus()
    spec = AcquireSpec(channels=["meter.resistivity", "meter.hardness"], rate=1000, count=20)
    with events.watch() as queue:
        await acquire(tmp_path, instruments, clock, spec, events)
    received = [queue.get_nowait() for _ in range(queue.qsize())]
    assert len(received) == 20  # one per scan when the period allows it
    assert all(isinstance(e, Readings) and e.point == 0 for e in received)
    assert received[-1].values == {"meter.resistivity": 1.8, "meter.hardness": 60.0}


def test_block_statistics_equal_one_by_one() -> None:
    rng = random.Random(7)
    sizes = (0, 1, 2, SMALL_BLOCK - 1, SMALL_BLOCK, SMALL_BLOCK + 1, 5000, 20_000)
    for offset in (1e3, 1e9):  # a furnace's degC; a counter far from zero (Welford's worst)
        for size in sizes:
            values = [offset + rng.gauss(0.0, 3.0) for _ in range(size)]
            one = RunningStats()
            for value in values:
                one.add(value)
            blocks = RunningStats()
            for start in range(0, size, 4096):
                blocks.add_block(array("d", values[start : start + 4096]))
            a, b = one.result(), blocks.result()
            assert a.n == b.n == size
            if size:
                expected = (min(values), max(values), values[-1])
                assert (a.min, a.max, a.last) == (b.min, b.max, b.last) == expected
            if size > 1:
                mean, std = statistics.fmean(values), statistics.stdev(values)
                assert abs(b.mean - mean) <= abs(a.mean - mean) + 1e-15 * offset
                assert abs(b.std - std) <= abs(a.std - std) + 1e-12 * std
                if offset < 1e6:
                    assert b.mean == pytest.approx(mean, rel=1e-15)
                    assert b.std == pytest.approx(std, rel=1e-9)


def test_nan_and_inf_samples_are_counted_apart_and_kept_out_of_the_statistics() -> None:
    for body in ([1.0, 2.0] * 40, [1.0, 2.0]):  # the numpy block path and the small one
        values = [math.nan, *body[:2], math.inf, *body[2:], -math.inf, math.nan]
        one, blocks = RunningStats(), RunningStats()
        for value in values:
            one.add(value)
        blocks.add_block(array("d", values))
        for stats in (one.result(), blocks.result()):
            assert (stats.min, stats.max, stats.n, stats.invalid) == (1.0, 2.0, len(body), 4)
            assert stats.mean == 1.5
            assert stats.last == 2.0
            assert stats.std == pytest.approx(statistics.stdev(body))


def test_a_channel_of_nan_only_has_no_statistics_but_its_count() -> None:
    for size in (3, SMALL_BLOCK + 1):
        stats = RunningStats()
        stats.add_block(array("d", [math.nan] * size))
        result = stats.result()
        assert (result.n, result.invalid) == (0, size)
        assert all(math.isnan(v) for v in (result.mean, result.std, result.min, result.max))


async def test_a_clock_running_behind_still_gives_the_loop_turns() -> None:
    clock = EngineClock(100_000.0)
    turns = 0

    async def other() -> None:
        nonlocal turns
        while True:
            await asyncio.sleep(0)
            turns += 1

    task = asyncio.create_task(other())
    try:
        began, deadline = clock.now(), time.monotonic() + 30.0
        while turns < 3 and time.monotonic() < deadline:
            await clock.sleep_until(began)  # long due: the schedule is behind
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert turns >= 3


async def test_a_read_stuck_mid_acquisition_times_out_and_is_retried(tmp_path: Path) -> None:
    instruments, clock = await connected(tmp_path, operation=0.05)
    driver = await swap(instruments, "meter", StallsOnce, stalling={3, 12})
    spec = AcquireSpec(channels=["meter.resistivity", "meter.hardness"], rate=1000, count=20)
    acquisition, path, error = await acquire(tmp_path, instruments, clock, spec)
    assert error is None
    assert driver.cancelled == 2  # each stuck read was unwound by its timeout
    assert driver.reads == 22  # 20 scans and the two retried reads
    assert instruments.errors == 2
    assert acquisition.samples_written == 40
    assert acquisition.stats.results(["meter.hardness"])["meter.hardness"].n == 20
    assert len(read_channel(path, "meter.hardness").value) == 20


async def test_the_schedule_s_sleeps_do_not_count_against_a_read_timeout(tmp_path: Path) -> None:
    config = load_config(write_config(tmp_path, scale=1.0, timeouts={"operation": "50 ms"}))
    clock = EngineClock(config.model.time_scale)
    instruments = Instruments(config.model, ["furnace", "meter"], clock.now)
    await instruments.connect()
    # 10 Hz on the wall clock: 0.1 s between reads, twice the read timeout
    spec = AcquireSpec(channels=["meter.resistivity"], rate=10, count=4)
    acquisition, _, error = await acquire(tmp_path, instruments, clock, spec)
    assert error is None
    assert instruments.errors == 0
    assert acquisition.samples_written == 4


async def test_the_loop_stays_responsive_during_a_fast_acquisition(tmp_path: Path) -> None:
    """A schedule far behind (10 kHz at time scale 3,000 on a memory driver whose reads
    never suspend) still lets a timer-driven task (the interlock monitor, the watchdog) and the
    loop's I/O run: five 1 ms ticks and a round trip over a socket happen mid-acquisition."""
    instruments, clock = await connected(tmp_path)
    hardness = Watch("meter.hardness")
    instruments.on_block(hardness)
    spec = AcquireSpec(channels=["meter.resistivity", "meter.hardness"], rate=10_000, count=10**7)
    config = load_config(tmp_path / "mdf.yaml")
    recipe = load_recipe(write_recipe(tmp_path))
    run_file = RunFile(
        tmp_path / "run.h5",
        metadata={},
        channels=[ChannelSpec(c, "") for c in spec.channels],
        parameters=[],
    )
    await run_file.open()
    acquisition = Acquisition(run_file, instruments, EventBus())
    acquisition.begin_point(0, list(spec.channels))
    ctx = StepContext(
        recipe.model, config.model, instruments, clock, 0, {}, acquisition, lambda: None
    )

    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(await reader.readline())
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]

    async def watchdog() -> tuple[list[int], bytes]:
        seen: list[int] = []
        while len(seen) < 5:
            await asyncio.sleep(0.001)
            seen.append(len(hardness.seen))
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"ping\n")
        answer = await reader.readline()
        writer.close()
        return seen, answer

    task = asyncio.create_task(acquisition.run(spec, ctx))
    try:
        seen, answer = await asyncio.wait_for(watchdog(), 60.0)  # an upper bound, not a target
        during = len(hardness.seen)
        assert not task.done()
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        server.close()
        await server.wait_closed()
        await run_file.close("aborted")
    assert answer == b"ping\n"
    assert seen == sorted(seen)
    assert 0 < during < spec.count  # all of it happened while the acquisition was running
