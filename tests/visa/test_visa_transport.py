"""The two transports behind the driver: mdfd's own asyncio socket for `TCPIP::...::SOCKET`,
pyvisa (public API only) on a worker thread for the rest (decision 0052)."""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from visa_support import driver_config, meter_settings

from mdfd.drivers import DriverContext, InstrumentDisconnected, InstrumentTimeout
from mdfd.drivers.visa import VisaDriver, VisaInstrument
from mdfd.simulators.meter import MeterSimulator

DRIVERS = Path(__file__).parents[2] / "drivers"
PRIVATE = re.compile(r"visalib|sessions\[|MSG_PEEK|\.interface")
TRACE_POINTS = 20_000  # ~300 kB: well past asyncio's default 64 kB line limit


def test_no_private_state_of_a_visa_library_is_used() -> None:
    found = [
        f"{path.relative_to(DRIVERS)}:{number}: {line.strip()}"
        for path in sorted(DRIVERS.rglob("*.py"))
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if PRIVATE.search(line)
    ]
    assert found == []


async def test_a_socket_resource_runs_on_the_event_loop_alone(meter: MeterSimulator) -> None:
    before = set(threading.enumerate())
    driver = VisaDriver("meter", driver_config(meter, "tcp"), DriverContext())
    await driver.connect()
    try:
        await driver.write("specimen", 4)
        assert (await driver.read(["specimen"]))["specimen"].value == 4
        assert [t.name for t in set(threading.enumerate()) - before if t.is_alive()] == []
    finally:
        await driver.close()


async def test_a_write_to_a_vanished_serial_port_is_sent_on_the_new_one(
    meter: MeterSimulator,
) -> None:
    """The pty's other end closed (as when a USB adapter is unplugged and plugged back): the
    hung-up port is seen before anything is sent, so the write goes out on the reopened port
    instead of ending as WriteOutcomeUnknown."""
    driver = VisaDriver("meter", driver_config(meter, "serial"), DriverContext())
    await driver.connect()
    world = meter.meter.world
    try:
        await meter.stop()
        replacement = MeterSimulator("meter", meter_settings(meter.settings.link), world)
        await replacement.start()
        try:
            await driver.write("specimen", 11)
            assert replacement.meter.specimen_id == 11
        finally:
            await replacement.stop()
    finally:
        await driver.close()


async def test_a_cancelled_exchange_never_answers_the_next(
    driver: VisaDriver, meter: MeterSimulator
) -> None:
    meter.faults.delay = 0.3
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(driver.read(["capacitance"]), 0.05)
    meter.faults.delay = 0.0
    readings = await driver.read(["specimen", "capacitance"])
    assert readings["specimen"].value == 0
    assert isinstance(readings["capacitance"].value, float)


class CrlfTracer:
    """A peer nobody here wrote the driver for: CR LF terminated, a 300 kB trace reply."""

    def __init__(self) -> None:
        self.received: list[bytes] = []
        self.trace = [round(0.5 * i, 1) for i in range(TRACE_POINTS)]
        self.silent = False
        self.hang_up_on_trace = False

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while line := await reader.readuntil(b"\r\n"):
                self.received.append(line)
                if self.silent:
                    continue
                if self.hang_up_on_trace and line == b"TRAC?\r\n":
                    return  # the query arrived; the peer goes away before answering
                if line == b"*IDN?\r\n":
                    writer.write(b"ACME,TRACER,1,0\r\n")
                elif line == b"TRAC?\r\n":
                    writer.write(",".join(map(str, self.trace)).encode() + b"\r\n")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


@pytest.fixture
async def tracer() -> AsyncIterator[tuple[CrlfTracer, str]]:
    peer = CrlfTracer()
    server = await asyncio.start_server(peer.serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield peer, f"TCPIP::127.0.0.1::{port}::SOCKET"
    finally:
        server.close()
        await asyncio.wait_for(server.wait_closed(), 5)


async def test_a_read_lost_mid_exchange_is_one_attempt(tracer: tuple[CrlfTracer, str]) -> None:
    """Before: the driver reopened the session and asked again by itself; the engine owns
    retries (its on_error policy), so the peer sees the query once and the caller the error."""
    peer, resource = tracer
    driver = VisaDriver("tracer", tracer_config(resource), DriverContext())
    await driver.connect()
    try:
        peer.hang_up_on_trace = True
        with pytest.raises(InstrumentDisconnected):
            await driver.read(["trace"])
        assert peer.received.count(b"TRAC?\r\n") == 1
        peer.hang_up_on_trace = False
        assert (await driver.read(["trace"]))["trace"].value == peer.trace  # next call reopens
    finally:
        await driver.close()


def tracer_config(resource: str) -> VisaInstrument:
    return VisaInstrument.model_validate(
        {
            "driver": "visa",
            "resource": resource,
            "read_termination": "\r\n",
            "write_termination": "\r\n",
            "timeout": 1.0,
            "error_queue": None,
            "channels": {
                "trace": {"query": "TRAC?", "parse": "floats"},
                "mode": {"writable": True, "write": "MODE {value}"},
            },
        }
    )


async def test_terminations_and_a_long_reply_over_the_socket(
    tracer: tuple[CrlfTracer, str],
) -> None:
    peer, resource = tracer
    driver = VisaDriver("tracer", tracer_config(resource), DriverContext())
    await driver.connect()
    try:
        assert await driver.identify() == "ACME,TRACER,1,0"
        assert (await driver.read(["trace"]))["trace"].value == peer.trace
        await driver.write("mode", 2)
        await driver.identify()  # answered after the peer has read the command before it
        assert peer.received[-2:] == [b"MODE 2\r\n", b"*IDN?\r\n"]
        peer.silent = True
        with pytest.raises(InstrumentTimeout, match="TRAC"):
            await driver.read(["trace"])
    finally:
        await driver.close()
