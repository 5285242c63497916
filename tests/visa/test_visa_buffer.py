"""Buffered acquisitions through the meter's reading memory, over the real wire: the driver's
own socket transport and pyvisa on the pty. The meter's world runs at 600x (conftest), and the
driver is given the world's clock, so rates and times are simulated seconds throughout."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import numpy as np
import pytest
from pydantic import ValidationError
from visa_support import BUFFER, driver_config, instrument

from mdfd.drivers import (
    BAD_CODE,
    GOOD_CODE,
    Buffered,
    ChannelError,
    DriverContext,
    InstrumentDisconnected,
    InstrumentTimeout,
    ProtocolError,
    Scans,
)
from mdfd.drivers.visa import VisaDriver
from mdfd.drivers.visa.buffer import BufferRun
from mdfd.drivers.visa.parse import ParseFailure, parse_readings
from mdfd.simulators.meter import MeterSimulator
from mdfd.simulators.world import World

RES = ["resistivity"]
RATE = 2.0  # scans per simulated second: 1200 per wall second at 600x
SLOW = 0.001  # one scan per 1000 simulated s (1.7 wall s): the second is never due in a test


@pytest.fixture
async def buffered(
    meter: MeterSimulator, world: World, transport: str
) -> AsyncIterator[VisaDriver]:
    driver = VisaDriver(
        "meter",
        driver_config(meter, transport, buffer=BUFFER),
        DriverContext(clock=world.clock.now),
    )
    await driver.connect()
    try:
        yield driver
    finally:
        await driver.close()


async def fetch_all(
    driver: VisaDriver, clock: Callable[[], float], count: int, most: int
) -> list[Scans]:
    """Fetch until `count` scans came, checking on every fetch that none is placed later than
    now (the instrument cannot have taken a scan that is not yet due)."""
    fetches: list[Scans] = []
    deadline = time.monotonic() + 30
    while sum(map(len, fetches)) < count and time.monotonic() < deadline:
        scans = await driver.fetch_buffer(most)
        now = clock()
        assert len(scans) <= most
        if len(scans):
            assert scans.times[-1] <= now
        fetches.append(scans)
        await asyncio.sleep(0.02)
    return fetches


async def test_a_buffered_acquisition_returns_every_scan_in_order(
    buffered: VisaDriver, world: World
) -> None:
    assert isinstance(buffered, Buffered)
    count, most = 600, 100
    reference = (await buffered.read(RES))["resistivity"].value
    assert isinstance(reference, float)
    before = world.clock.now()
    await buffered.start_buffer(RES, RATE, count)
    after = world.clock.now()

    fetches = await fetch_all(buffered, world.clock.now, count, most)
    scans = [s for s in fetches if len(s)]
    assert sum(map(len, scans)) == count
    assert len(scans) >= count // most
    times = np.concatenate([s.times for s in scans])
    values = np.concatenate([s.values for s in scans])
    quality = np.concatenate([s.quality for s in scans])
    assert before <= times[0] <= after
    np.testing.assert_allclose(times, times[0] + np.arange(count) / RATE, rtol=0, atol=1e-6)
    assert values.shape == quality.shape == (count, 1)
    assert all(s.channels == ("resistivity",) for s in scans)
    assert not quality.any()
    np.testing.assert_allclose(values[:, 0], reference, rtol=0.02)
    assert values.std() > 0  # readings with the meter's noise, not one value repeated
    # All came, and no more will: the run has its count.
    assert len(await buffered.fetch_buffer(most)) == 0
    assert world.clock.now() >= times[-1]


async def test_a_fetch_before_the_next_scan_is_due_is_empty(buffered: VisaDriver) -> None:
    await buffered.start_buffer(RES, SLOW, 3)
    first = await buffered.fetch_buffer(10)  # the first scan is taken at once
    assert len(first) == 1
    none = await buffered.fetch_buffer(10)
    assert len(none) == 0
    assert none.values.shape == none.quality.shape == (0, 1)
    assert none.times.shape == (0,)


async def test_most_bounds_a_fetch(buffered: VisaDriver) -> None:
    await buffered.start_buffer(RES, RATE, 1000)
    await asyncio.sleep(0.1)  # ~60 simulated s: ~120 scans due
    first = await buffered.fetch_buffer(7)
    second = await buffered.fetch_buffer(7)
    assert len(first) == len(second) == 7
    np.testing.assert_allclose(second.times - first.times, 7 / RATE)
    await buffered.stop_buffer()


async def test_stop_stops_and_a_new_start_sees_only_new_scans(
    buffered: VisaDriver, meter: MeterSimulator, world: World
) -> None:
    await buffered.start_buffer(RES, RATE, 100_000)
    await asyncio.sleep(0.05)
    await buffered.stop_buffer()
    left = meter.meter.memory.points()
    assert left > 0  # unfetched readings the instrument still holds
    await asyncio.sleep(0.05)
    assert meter.meter.memory.points() == left  # stopped: no new scan since

    before = world.clock.now()
    await buffered.start_buffer(RES, SLOW, 5)
    scans = await buffered.fetch_buffer(1000)
    assert len(scans) == 1  # only the new run's first scan, none of the old run's
    assert scans.times[0] >= before
    await buffered.stop_buffer()
    await buffered.stop_buffer()  # harmless twice


async def test_garbled_fetch_is_a_protocol_error(
    buffered: VisaDriver, meter: MeterSimulator
) -> None:
    await buffered.start_buffer(RES, RATE, 1000)
    await asyncio.sleep(0.05)  # ~60 scans due
    meter.faults.garbage = 1
    with pytest.raises(ProtocolError) as caught:
        await buffered.fetch_buffer(10)
    assert "R? 10" in caught.value.message
    assert caught.value.channel == "resistivity"
    assert isinstance(caught.value.reply, bytes)
    assert len(await buffered.fetch_buffer(10)) == 10  # the session is still in step


async def test_a_muted_fetch_times_out_and_the_run_must_start_again(
    buffered: VisaDriver, meter: MeterSimulator
) -> None:
    await buffered.start_buffer(RES, RATE, 1000)
    meter.faults.mute = 1
    with pytest.raises(InstrumentTimeout, match="R\\? 10"):
        await buffered.fetch_buffer(10)
    # The session is stale: reopening it runs `init` (*RST), which clears the memory, so the
    # fetch does not pretend to go on.
    with pytest.raises(InstrumentDisconnected, match="start it again"):
        await buffered.fetch_buffer(10)
    await buffered.stop_buffer()
    await buffered.start_buffer(RES, SLOW, 2)
    assert len(await buffered.fetch_buffer(10)) == 1


@pytest.mark.parametrize("per_message", [1, 2])  # R? and STAT:QUES? apart, or in one message
async def test_a_memory_overflow_fails_the_fetch(
    meter: MeterSimulator, world: World, per_message: int
) -> None:
    config = driver_config(
        meter,
        "tcp",
        buffer=BUFFER,
        queries_per_message=per_message,
        timeout=10.0,  # the sim takes 50,000 readings at once
    )
    driver = VisaDriver("meter", config, DriverContext(clock=world.clock.now))
    await driver.connect()
    try:
        await driver.start_buffer(RES, 1, 10)
        assert len(await driver.fetch_buffer(10)) == 1  # no overflow: the flag reads 0
        await driver.start_buffer(RES, 50_000, 1_000_000)
        await asyncio.sleep(0.01)  # 6 simulated s: 300,000 readings for a memory of 50,000
        with pytest.raises(ProtocolError, match="overflowed"):
            await driver.fetch_buffer(10)
    finally:
        await driver.close()


async def test_a_session_reopened_by_a_read_fails_the_fetch(
    meter: MeterSimulator, world: World
) -> None:
    """A read that found the link down reopened the session (and ran `init`: *RST clears the
    memory), so the run's count is no longer the instrument's: the fetch says so."""
    driver = VisaDriver(
        "meter", driver_config(meter, "tcp", buffer=BUFFER), DriverContext(clock=world.clock.now)
    )
    await driver.connect()
    try:
        await driver.start_buffer(RES, RATE, 1000)
        meter.drop_connections()
        await asyncio.sleep(0.05)
        await driver.read(RES)
        with pytest.raises(InstrumentDisconnected, match="start it again"):
            await driver.fetch_buffer(10)
    finally:
        await driver.close()


async def test_a_fetch_after_close_is_disconnected(buffered: VisaDriver) -> None:
    await buffered.start_buffer(RES, RATE, 10)
    await buffered.close()
    with pytest.raises(InstrumentDisconnected):
        await buffered.fetch_buffer(10)
    await buffered.stop_buffer()  # not connected: nothing to do


@pytest.mark.parametrize(
    ("channels", "rate", "count", "expected"),
    [
        (["resistivity"], 50_000, 10, True),
        (["resistivity"], 0.5, 10, True),
        (["resistivity"], 10, 1_000_000, True),
        (["resistivity"], 10, 1_000_001, False),  # beyond the memory's max_count: polled
        (["resistivity"], 10, 0, False),
        (["resistivity"], 50_001, 10, False),
        (["resistivity"], 0, 10, False),
        (["hardness"], 10, 10, False),
        (["resistivity", "hardness"], 10, 10, False),
        ([], 10, 10, False),
    ],
)
def test_buffers(channels: list[str], rate: float, count: int, expected: bool) -> None:
    driver = VisaDriver(
        "meter", instrument("TCPIP::127.0.0.1::1::SOCKET", buffer=BUFFER), DriverContext()
    )
    assert driver.buffers(channels, rate, count) is expected


async def test_no_buffer_section_buffers_nothing() -> None:
    driver = VisaDriver("meter", instrument("TCPIP::127.0.0.1::1::SOCKET"), DriverContext())
    assert not driver.buffers(RES, 1.0, 10)
    with pytest.raises(ChannelError, match="no `buffer`"):
        await driver.start_buffer(RES, 1.0, 10)


async def test_start_outside_the_bounds_is_refused_before_the_wire() -> None:
    # No simulator behind the port: a ChannelError proves nothing was tried on the wire.
    driver = VisaDriver(
        "meter", instrument("TCPIP::127.0.0.1::1::SOCKET", buffer=BUFFER), DriverContext()
    )
    with pytest.raises(ChannelError, match="takes only"):
        await driver.start_buffer(["hardness"], 1.0, 10)
    with pytest.raises(ChannelError, match="1 to 1000000"):
        await driver.start_buffer(RES, 1.0, 1_000_001)


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"channel": "nope"}, "buffer", "buffer.channel 'nope' is not a channel"),
        ({"channel": "identity_model"}, "buffer", "must hold a number"),
        ({"fetch": "R?"}, "buffer.fetch", "at most {most}"),
        ({"fetch": "R? {count}"}, "buffer.fetch", "unknown placeholder count"),
        ({"start": ["SAMP:COUN {count}", "INIT"]}, "buffer.start", "{count} and {interval}"),
        ({"start": ["SAMP:COUN {count}", "SAMP:TIM {interval:d}"]}, "buffer.start", "filled"),
        ({"start": ["SAMP:COUN {value}"]}, "buffer.start", "unknown placeholder value"),
        ({"stop": ["ABOR {most}"]}, "buffer.stop", "unknown placeholder most"),
        ({"max_rate": 0}, "buffer.max_rate", "greater than 0"),
        ({"depth": 5}, "buffer.depth", "Extra inputs"),
    ],
)
def test_config_errors_name_the_field(change: dict[str, Any], field: str, message: str) -> None:
    with pytest.raises(ValidationError) as caught:
        instrument("TCPIP::127.0.0.1::1::SOCKET", buffer={**BUFFER, **change})
    text = str(caught.value)
    assert field in text
    assert message in text


def test_a_reading_that_is_no_finite_number_is_bad() -> None:
    run = BufferRun("resistivity", start=100.0, rate=4.0, count=10, session=1, fetched=2)
    scans = run.scans(np.array([1.5, np.nan, np.inf, -np.inf]))
    np.testing.assert_array_equal(scans.values[:, 0], [1.5, np.nan, np.nan, np.nan])
    np.testing.assert_array_equal(scans.quality[:, 0], [GOOD_CODE] + [BAD_CODE] * 3)
    np.testing.assert_array_equal(scans.times, [100.5, 100.75, 101.0, 101.25])
    assert run.remaining == 4


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"#10", []),
        (b"", []),
        (b"#213+1.0,+2.0E+00", [1.0, 2.0]),
        (b"1.5,-2,nan", [1.5, -2.0, float("nan")]),
    ],
)
def test_readings_parse(raw: bytes, expected: list[float]) -> None:
    np.testing.assert_array_equal(parse_readings(raw, "ascii"), np.array(expected))


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"#15abc", "announces 5 bytes, holds 3"),
        (b"#0", "not a definite-length block"),
        (b"#2x", "not 2 digits"),
        (b"1,x", "not a number: 'x'"),
    ],
)
def test_garbled_readings(raw: bytes, message: str) -> None:
    with pytest.raises(ParseFailure, match=message):
        parse_readings(raw, "ascii")
