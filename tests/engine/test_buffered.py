"""Acquisitions from instruments that sample on their own clock (`drivers.Buffered`).

The memory driver with `buffer: true` stands in for a DAQ card: these tests pin what the
engine does with one — blocks of scans fetched, kept and checked as a whole; the count held
across a failed fetch; the acquisition stopped however the step ends; an instrument that hands
over nothing timed out — and that an instrument that cannot buffer is still polled.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from mdfd.daemons.engine.instruments import Instruments
from mdfd.daemons.engine.interlocks import MONITOR_PERIOD_SECONDS, InterlockBreach, InterlockGuard
from mdfd.daemons.storage import read_channel
from mdfd.drivers import Block, DriverContext, InstrumentTimeout, Reading, Scans
from mdfd.drivers.memory import MemoryDriver
from mdfd.recipes.steps import AcquireSpec

from .test_hot_path import acquire, connected, instruments_config


class Counted(MemoryDriver):
    """The buffered memory driver, counting its calls; the listed (1-based) fetches time out,
    and with `silent` every fetch hands over nothing."""

    def __init__(
        self,
        *args: object,
        failing: frozenset[int] = frozenset(),
        silent: bool = False,
        memory: int | None = None,
    ):
        super().__init__(*args)  # type: ignore[arg-type]
        self.failing, self.silent, self.memory = failing, silent, memory
        self.starts: list[int] = []
        self.fetched: list[int] = []
        self.stops = 0
        self.reads = 0  # queries of current values (`read`, `read_block`): the monitor's polls
        self.polled = asyncio.Event()
        self.fetching = asyncio.Event()

    async def read(self, channels: Sequence[str]) -> dict[str, Reading]:
        self.reads += 1
        self.polled.set()
        return await super().read(channels)

    async def read_block(self, channels: Sequence[str]) -> Block:
        self.reads += 1
        self.polled.set()
        return await super().read_block(channels)

    def buffers(self, channels: Sequence[str], rate: float, count: int) -> bool:
        """As the memory driver, but holding at most `memory` scans when given."""
        fits = self.memory is None or count <= self.memory
        return fits and super().buffers(channels, rate, count)

    async def start_buffer(self, channels: Sequence[str], rate: float, count: int) -> None:
        self.starts.append(count)
        await super().start_buffer(channels, rate, count)

    async def fetch_buffer(self, most: int) -> Scans:
        self.fetching.set()
        await asyncio.sleep(0)
        if len(self.fetched) + 1 in self.failing:
            self.fetched.append(-1)
            raise InstrumentTimeout(self.name, "no reply")
        scans = await super().fetch_buffer(0 if self.silent else most)
        self.fetched.append(len(scans))
        return scans

    async def stop_buffer(self) -> None:
        self.stops += 1
        await super().stop_buffer()


async def buffered(instruments: Instruments, name: str, **kwargs: object) -> Counted:
    """Instrument `name` swapped for a buffering (`buffer: true`) counted memory driver."""
    old = instruments.drivers[name]
    assert isinstance(old, MemoryDriver)
    config = old.config.model_copy(update={"buffer": True})
    driver = Counted(name, config, DriverContext(clock=old._context.clock), **kwargs)
    await driver.connect()
    instruments.drivers[name] = driver
    return driver


async def test_a_buffered_acquisition_takes_its_count_in_blocks_of_scans(tmp_path: Path) -> None:
    instruments, clock = await connected(tmp_path)
    driver = await buffered(instruments, "meter")
    spec = AcquireSpec(channels=["meter.resistivity", "meter.hardness"], rate=1000, count=5000)
    acquisition, path, error = await acquire(tmp_path, instruments, clock, spec)
    assert error is None
    assert driver.starts == [5000]
    assert driver.stops >= 1
    assert sum(driver.fetched) == 5000
    assert len(driver.fetched) < 5000 / 10  # blocks, not a round trip per scan
    assert acquisition.samples_written == 10_000
    hardness = read_channel(path, "meter.hardness")
    assert len(hardness.value) == 5000
    assert np.all(hardness.value == 60.0)
    assert np.allclose(np.diff(hardness.time), 1 / 1000, atol=1e-6)  # the instrument's clock
    result = acquisition.stats.results(["meter.resistivity"])["meter.resistivity"]
    assert (result.n, result.min, result.max) == (5000, 1.8, 1.8)
    assert result.mean == pytest.approx(1.8)


async def test_an_instrument_that_cannot_buffer_is_polled(tmp_path: Path) -> None:
    instruments, clock = await connected(tmp_path)
    driver = await buffered(instruments, "meter")
    # one step over two instruments: no single instrument's clock to sample on
    spec = AcquireSpec(channels=["meter.hardness", "furnace.setpoint"], rate=1000, count=20)
    _, path, error = await acquire(tmp_path, instruments, clock, spec)
    assert error is None
    assert driver.starts == []
    assert driver.fetched == []
    assert len(read_channel(path, "meter.hardness").value) == 20


async def test_an_acquisition_beyond_the_instruments_memory_is_polled(tmp_path: Path) -> None:
    instruments, clock = await connected(tmp_path)
    driver = await buffered(instruments, "meter", memory=100)
    fits = AcquireSpec(channels=["meter.hardness"], rate=1000, count=100)
    _, _, error = await acquire(tmp_path, instruments, clock, fits)
    assert error is None
    assert driver.starts == [100]
    beyond = AcquireSpec(channels=["meter.hardness"], rate=1000, count=150)
    _, path, error = await acquire(tmp_path, instruments, clock, beyond)
    assert error is None
    assert driver.starts == [100]  # not started for 150: read scan by scan instead
    assert len(read_channel(path, "meter.hardness").value) == 150


async def test_a_failed_fetch_starts_again_for_the_missing_scans(tmp_path: Path) -> None:
    instruments, clock = await connected(tmp_path)
    driver = await buffered(instruments, "meter", failing=frozenset({2}))
    spec = AcquireSpec(channels=["meter.hardness"], rate=1000, count=10_000)
    acquisition, path, error = await acquire(tmp_path, instruments, clock, spec)
    assert error is None
    assert driver.fetched[1] == -1  # the second fetch failed, with what it would have brought
    assert driver.starts == [10_000, 10_000 - driver.fetched[0]]  # again for what was missing
    assert sum(n for n in driver.fetched if n > 0) == 10_000
    assert len(read_channel(path, "meter.hardness").value) == 10_000
    assert acquisition.stats.results(["meter.hardness"])["meter.hardness"].n == 10_000


async def test_an_instrument_that_hands_over_nothing_times_out(tmp_path: Path) -> None:
    instruments, clock = await connected(tmp_path, operation=0.05)
    driver = await buffered(instruments, "meter", silent=True)
    spec = AcquireSpec(channels=["meter.hardness"], rate=10, count=5)
    acquisition, _, error = await acquire(tmp_path, instruments, clock, spec)
    assert isinstance(error, InstrumentTimeout)
    assert len(driver.starts) == 2  # the first attempt and the policy's one retry
    assert driver.stops == len(driver.starts) + 1  # before each start, and at the end
    assert acquisition.samples_written == 0


async def test_the_acquisition_is_stopped_when_the_step_is_cancelled(tmp_path: Path) -> None:
    instruments, clock = await connected(tmp_path, operation=5.0)
    driver = await buffered(instruments, "meter", silent=True)
    spec = AcquireSpec(channels=["meter.hardness"], rate=10, count=5)
    task = asyncio.create_task(acquire(tmp_path, instruments, clock, spec))
    async with asyncio.timeout(10):
        await driver.fetching.wait()
    stops = driver.stops
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert driver.stops == stops + 1


async def test_a_breach_inside_a_block_trips_with_its_first_value_and_the_block_is_kept(
    tmp_path: Path,
) -> None:
    instruments, clock = await connected(tmp_path, trip=990.0)
    guard = InterlockGuard(list(instruments_config(tmp_path).safety.interlocks), instruments)
    driver = await buffered(instruments, "furnace")
    await instruments.write("furnace.setpoint", 1000.0)  # 25 -> 1000 degC, tau 30 s: 990 at 137 s
    spec = AcquireSpec(channels=["furnace.temperature"], rate=10, count=3000)
    _, path, error = await acquire(
        tmp_path, instruments, clock, spec, check=guard.raise_if_breached
    )
    assert isinstance(error, InterlockBreach)
    temperature = read_channel(path, "furnace.temperature").value
    above = temperature[temperature > 990.0]
    assert above.size >= 1  # the block with the breach was kept
    assert error.value == above[0]  # the first scan past the bound tripped, not a later one
    assert temperature[0] < 990.0
    assert np.all(temperature[: np.argmax(temperature > 990.0)] <= 990.0)
    assert max(driver.fetched) > 1  # the breach was inside a block of several scans


async def test_the_monitor_leaves_alone_an_interlocked_channel_the_acquisition_checks(
    tmp_path: Path,
) -> None:
    """A query could disturb an instrument sampling on its own clock (a DMM aborts its run on
    a `MEASure?`), and each block fetched is checked against the interlocks anyway: while
    blocks arrive, the monitor sends the instrument nothing; once they stop, it polls again."""
    instruments, clock = await connected(tmp_path)
    guard = InterlockGuard(list(instruments_config(tmp_path).safety.interlocks), instruments)
    driver = await buffered(instruments, "furnace")
    monitor = asyncio.create_task(guard.monitor())
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(5):
            await driver.polled.wait()  # nothing has checked the channel yet: it is polled
        before = driver.reads
        # 45,000 scans at 10 Hz on a clock 3000 times fast: 1.5 s of wall time
        spec = AcquireSpec(channels=["furnace.temperature"], rate=10, count=45_000)
        began = loop.time()
        _, path, error = await acquire(
            tmp_path, instruments, clock, spec, check=guard.raise_if_breached
        )
        assert error is None
        assert read_channel(path, "furnace.temperature").value.size == 45_000
        assert loop.time() - began > 4 * MONITOR_PERIOD_SECONDS  # polls were due meanwhile
        assert len(driver.fetched) > 4
        # Polled every 0.25 s, the furnace was read 6 times more (measured before the change);
        # now a poll already under way as the acquisition began, and one more only after a
        # stall of the loop of 0.25 s between two fetches on a busy machine.
        assert driver.reads <= before + 2
        after = driver.reads
        driver.polled.clear()
        async with asyncio.timeout(5):
            await driver.polled.wait()  # the blocks stopped: the monitor polls again
        assert driver.reads > after
    finally:
        monitor.cancel()
        await asyncio.gather(monitor, return_exceptions=True)
        await instruments.close()
