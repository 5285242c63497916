"""Every fault the furnace can inject, switched at run time through its fault registers, gives
the typed error the engine decides on; and the link recovers from each."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest
from modbus_support import furnace_settings, hold_temperature, instrument
from structlog.testing import capture_logs

from mdfd.drivers import (
    DriverContext,
    InstrumentDisconnected,
    InstrumentTimeout,
    ProtocolError,
    WriteOutcomeUnknown,
)
from mdfd.drivers.modbus import ModbusDriver, ModbusInstrument
from mdfd.drivers.modbus.transport import GarbledReply
from mdfd.simulators.furnace import FurnaceSimulator
from mdfd.simulators.nullmodem import NullModem
from mdfd.simulators.world import World


async def connected(furnace: FurnaceSimulator, transport: str, **extra: object) -> ModbusDriver:
    driver = ModbusDriver("furnace", instrument(furnace, transport, **extra), DriverContext())
    await driver.connect()
    return driver


async def test_exception_responses(driver: ModbusDriver) -> None:
    await driver.write("fault_exception", 6)
    with pytest.raises(ProtocolError, match=r"exception 6 \(DEVICE_BUSY\)") as caught:
        await driver.read(["temperature"])
    assert caught.value.address == "unit 1 input_register 10..11"
    assert caught.value.channel == "temperature"
    await driver.write("fault_exception", 0)
    assert isinstance((await driver.read(["temperature"]))["temperature"].value, float)


async def test_corrupted_frames_are_garbled_replies(driver: ModbusDriver) -> None:
    await driver.write("fault_corrupt", 1)
    with pytest.raises(GarbledReply, match="could not be decoded") as caught:
        await driver.read(["temperature"])
    assert isinstance(caught.value, ProtocolError)
    assert caught.value.reply  # the bytes that came back, in hex
    assert isinstance((await driver.read(["temperature"]))["temperature"].value, float)


async def test_a_garbled_read_is_one_attempt_even_with_retries_configured(
    furnace: FurnaceSimulator, transport: str
) -> None:
    """The engine owns retries: the old `retries` key is ignored (with a warning), and a
    garbled read is reported once instead of being repeated inside the driver."""
    with capture_logs() as logs:
        driver = await connected(furnace, transport, retries=1)
    try:
        assert any(e["event"] == "deprecated config key ignored" for e in logs)
        await driver.write("fault_corrupt", 1)
        reads_before = furnace.requests[4]
        with pytest.raises(GarbledReply):
            await driver.read(["temperature"])
        assert furnace.requests[4] == reads_before + 1
        assert isinstance((await driver.read(["temperature"]))["temperature"].value, float)
    finally:
        await driver.close()


async def test_latency(driver: ModbusDriver, furnace: FurnaceSimulator) -> None:
    await driver.write("fault_latency", 100)
    assert isinstance((await driver.read(["temperature"]))["temperature"].value, float)
    await driver.write("fault_latency", 1500)
    with pytest.raises(InstrumentTimeout, match=r"no reply within 1.0s"):
        await driver.read(["temperature"])
    await asyncio.sleep(0.6)  # let the late reply pass before talking again
    await driver.write("fault_latency", 0)
    assert furnace.faults.latency_ms == 0
    assert isinstance((await driver.read(["temperature"]))["temperature"].value, float)


async def test_the_reply_to_an_abandoned_read_never_answers_the_next_one(
    furnace: FurnaceSimulator, transport: str
) -> None:
    """A caller that gives up (cancels) leaves its reply on the way; the next read of the same
    shape must get its own answer: on TCP by transaction id, on RTU by waiting that reply out
    and dropping it before sending."""
    driver = await connected(furnace, transport, timeout=2.0)
    try:
        await driver.write("setpoint", 250.0)
        await driver.write("ramp_rate", 10.0)
        await driver.write("fault_latency", 400)
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(driver.read(["setpoint"]), 0.1)
        readings = await driver.read(["ramp_rate"])
        assert readings["ramp_rate"].value == pytest.approx(10.0)
        await driver.write("fault_latency", 0)
        assert (await driver.read(["setpoint"]))["setpoint"].value == pytest.approx(250.0)
    finally:
        await driver.close()


async def test_dropped_tcp_connection_is_reported_then_reconnected(
    furnace: FurnaceSimulator,
) -> None:
    driver = await connected(furnace, "tcp")
    try:
        assert driver.link is not None
        await driver.write("fault_drop", 1)
        with pytest.raises(InstrumentDisconnected, match="lost during the request"):
            await driver.read(["temperature"])
        assert isinstance((await driver.read(["temperature"]))["temperature"].value, float)
        assert driver.link.connects == 2
    finally:
        await driver.close()


async def test_each_dropped_request_is_one_error_and_the_next_call_reconnects(
    furnace: FurnaceSimulator,
) -> None:
    driver = await connected(furnace, "tcp", retries=2)
    try:
        await driver.write("fault_drop", 2)
        for _ in range(2):
            with pytest.raises(InstrumentDisconnected, match="lost during the request"):
                await driver.read(["temperature"])
        assert isinstance((await driver.read(["temperature"]))["temperature"].value, float)
        assert driver.link is not None
        assert driver.link.connects == 3
    finally:
        await driver.close()


async def test_dropped_rtu_request_is_a_timeout(furnace: FurnaceSimulator) -> None:
    driver = await connected(furnace, "rtu")
    try:
        await driver.write("fault_drop", 1)
        with pytest.raises(InstrumentTimeout):
            await driver.read(["temperature"])
        assert isinstance((await driver.read(["temperature"]))["temperature"].value, float)
    finally:
        await driver.close()


async def test_write_with_unknown_outcome_is_reported_and_not_repeated(
    driver: ModbusDriver, furnace: FurnaceSimulator
) -> None:
    await driver.write("fault_drop", 1)
    writes_before = furnace.requests[16]
    with capture_logs() as logs, pytest.raises(WriteOutcomeUnknown, match="not repeated"):
        await driver.write("setpoint", 432.0)
    assert furnace.requests[16] == writes_before + 1  # sent exactly once...
    assert furnace.world.zone.setpoint == pytest.approx(432.0)  # ...and it did land
    assert any(e["event"] == "modbus write outcome unknown; not repeated" for e in logs)


async def test_corrupted_write_reply_is_an_unknown_outcome(driver: ModbusDriver) -> None:
    await driver.write("fault_corrupt", 1)
    with pytest.raises(WriteOutcomeUnknown):
        await driver.write("setpoint", 250.0)


async def test_stuck_value(driver: ModbusDriver, furnace: FurnaceSimulator) -> None:
    hold_temperature(furnace, 300.0)
    await driver.write("fault_stuck", 1)
    first = (await driver.read(["temperature"]))["temperature"].value
    hold_temperature(furnace, 500.0)
    assert (await driver.read(["temperature", "pv_int16"]))["temperature"].value == first
    await driver.write("fault_stuck", 0)
    assert (await driver.read(["temperature"]))["temperature"].value == pytest.approx(500.0)


async def test_faults_from_settings(link_path: Path, world: World) -> None:
    furnace = FurnaceSimulator(
        "furnace", furnace_settings(link_path, faults={"exception_code": 4}), world
    )
    await furnace.start()
    try:
        driver = await connected(furnace, "tcp")
        try:
            with pytest.raises(ProtocolError, match="DEVICE_FAILURE"):
                await driver.read(["temperature"])
        finally:
            await driver.close()
    finally:
        await furnace.stop()


async def test_unknown_unit_behind_tcp_is_a_gateway_exception(furnace: FurnaceSimulator) -> None:
    driver = await connected(furnace, "tcp", unit=9)
    try:
        with pytest.raises(ProtocolError, match=r"unit 9 answered with Modbus exception 11"):
            await driver.read(["temperature"])
    finally:
        await driver.close()


async def test_units_on_one_rtu_bus_share_one_connection(furnace: FurnaceSimulator) -> None:
    first = await connected(furnace, "rtu")
    second = await connected(furnace, "rtu")
    absent = await connected(furnace, "rtu", unit=9)
    try:
        assert first.link is second.link is absent.link
        assert first.link is not None
        assert first.link.refs == 3
        results = await asyncio.gather(
            *(d.read(["temperature", "running"]) for d in (first, second, first, second))
        )
        assert all(r["running"].value is True for r in results)
        with pytest.raises(InstrumentTimeout, match="unit 9"):
            await absent.read(["temperature"])
        assert first.link.connected  # one silent unit does not close the port for the others
        assert isinstance((await second.read(["temperature"]))["temperature"].value, float)
    finally:
        for driver in (first, second, absent):
            await driver.close()
    assert first.link is None


@pytest.mark.parametrize("transport", ["tcp", "rtu"])
async def test_reconnects_after_the_simulator_restarts(
    link_path: Path, world: World, transport: str
) -> None:
    furnace = FurnaceSimulator("furnace", furnace_settings(link_path), world)
    await furnace.start()
    port = furnace.tcp_port
    driver = await connected(furnace, transport)
    try:
        assert isinstance((await driver.read(["temperature"]))["temperature"].value, float)
        await furnace.stop()
        with pytest.raises((InstrumentDisconnected, InstrumentTimeout)):
            await driver.read(["temperature"])
        furnace = FurnaceSimulator("furnace", furnace_settings(link_path, port=port), world)
        await furnace.start()
        assert isinstance((await driver.read(["temperature"]))["temperature"].value, float)
        assert driver.link is not None
        assert driver.link.connects == 2
    finally:
        await driver.close()
        await furnace.stop()


class SilentPeer:
    """A peer that takes requests and never answers, then vanishes on cue: a TCP listener, or
    the far end of a null-modem pty pair with nobody reading for a device."""

    def __init__(self, transport: str) -> None:
        self.transport = transport
        self.request_arrived = asyncio.Event()
        self._server: asyncio.Server | None = None
        self._connections: list[asyncio.StreamWriter] = []
        self._modem: NullModem | None = None
        self._line = -1

    async def start(self) -> dict[str, object]:
        if self.transport == "tcp":
            self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
            port = self._server.sockets[0].getsockname()[1]
            return {"type": "tcp", "host": "127.0.0.1", "port": port}
        self._modem = NullModem()
        self._modem.open()
        self._line = os.open(self._modem.server_path, os.O_RDONLY | os.O_NOCTTY | os.O_NONBLOCK)
        asyncio.get_running_loop().add_reader(self._line, self.request_arrived.set)
        return {"type": "rtu", "device": self._modem.client_path}

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._connections.append(writer)
        while await reader.read(260):
            self.request_arrived.set()

    def vanish(self) -> None:
        for writer in self._connections:
            writer.close()
        if self._modem is not None:
            asyncio.get_running_loop().remove_reader(self._line)
            os.close(self._line)
            self._modem.close()
            self._modem = None

    async def stop(self) -> None:
        self.vanish()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()


@pytest.mark.parametrize("transport", ["tcp", "rtu"])
async def test_a_peer_lost_mid_request_fails_it_at_once(transport: str) -> None:
    """The request in flight fails when the link goes, not when its (long) timeout ends."""
    peer = SilentPeer(transport)
    config = ModbusInstrument.model_validate(
        {
            "driver": "modbus",
            "link": await peer.start(),
            "timeout": 60.0,
            "reconnect": {"attempts": 1},
            "channels": {"temperature": {"table": "input_register", "address": 10}},
        }
    )
    driver = ModbusDriver("silent", config, DriverContext())
    try:
        await driver.connect()
        reading = asyncio.create_task(driver.read(["temperature"]))
        await asyncio.wait_for(peer.request_arrived.wait(), 10)
        peer.vanish()
        with pytest.raises(InstrumentDisconnected, match="lost during the request"):
            await asyncio.wait_for(reading, 10)  # an upper bound, far below the timeout
    finally:
        await driver.close()
        await peer.stop()


async def test_unreachable_instrument(furnace: FurnaceSimulator, tmp_path: Path) -> None:
    driver = ModbusDriver(
        "furnace",
        instrument(furnace, "rtu", link={"type": "rtu", "device": str(tmp_path / "absent")}),
        DriverContext(),
    )
    with pytest.raises(InstrumentDisconnected, match="after 2 attempts"):
        await driver.connect()
    assert driver.link is None


async def test_a_late_read_reply_is_never_taken_for_a_writes_answer(
    furnace: FurnaceSimulator,
) -> None:
    """RTU has no transaction ids: after a timeout, the late reply of the read arrives while
    the next request waits. For a write that must be an unknown outcome, not a success."""
    driver = await connected(furnace, "rtu")
    try:
        await driver.write("fault_latency", 1500)
        with pytest.raises(InstrumentTimeout):
            await driver.read(["temperature"])  # its reply comes 0.5 s after we gave up
        with pytest.raises(WriteOutcomeUnknown, match="reply to function 4"):
            await driver.write("setpoint", 100.0)
        await driver.write("fault_latency", 0)
    finally:
        await driver.close()
