"""Each fault of the reactor simulator, injected over the wire through its `Faults` folder,
and what the driver makes of it: typed errors naming node and status, frozen values, timeouts,
and a reconnect with the subscription re-created after a server restart."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest
import structlog.testing
from asyncua import Client, ua
from opcua_support import NAMESPACE, eventually, instrument

from mdfd.drivers import (
    DriverContext,
    InstrumentDisconnected,
    InstrumentTimeout,
    ProtocolError,
    Quality,
    Reading,
    WriteOutcomeUnknown,
)
from mdfd.drivers.opcua import OpcUaDriver


async def _error_of(driver: OpcUaDriver, channel: str) -> ProtocolError | None:
    try:
        await driver.read([channel])
    except ProtocolError as exc:
        return exc
    return None


@contextlib.asynccontextmanager
async def _collecting(driver: OpcUaDriver, channel: str) -> AsyncIterator[list[Reading]]:
    """Readings of `channel` streamed into a list by a task this context owns."""
    readings: list[Reading] = []

    async def consume() -> None:
        async for _channel, reading in driver.stream([channel]):
            readings.append(reading)

    task = asyncio.create_task(consume())
    try:
        yield readings
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _set_fault(url: str, name: str, value: ua.Variant) -> None:
    """Through a plain asyncua client, so the driver under test does not have to answer."""
    async with Client(url, timeout=10) as client:
        index = await client.get_namespace_index(NAMESPACE)
        await client.get_node(ua.NodeId(f"Faults.{name}", index)).write_value(value)


async def test_bad_quality_is_a_protocol_error_naming_node_and_status(
    driver: OpcUaDriver,
) -> None:
    async with _collecting(driver, "temperature") as streamed:
        await driver.write("fault_bad", "Reactor.Pressure,Reactor.Temperature")
        try:
            error = await eventually(lambda: _error_of(driver, "pressure"), lambda e: e is not None)
            assert error is not None
            assert error.channel == "pressure"
            assert error.address == "s=Reactor.Pressure"
            assert error.reply == "BadSensorFailure"
            assert "BadSensorFailure" in str(error)
            await eventually(
                lambda: asyncio.sleep(0, streamed),
                lambda r: bool(r) and r[-1].quality is Quality.BAD,
            )
            with pytest.raises(ProtocolError, match="BadSensorFailure"):
                await driver.read(["temperature"])
            assert (await driver.read(["ph"]))["ph"].quality is Quality.GOOD
        finally:
            await driver.write("fault_bad", "")
        recovered = await eventually(lambda: driver.read(["pressure", "temperature"]))
        assert recovered["pressure"].quality is Quality.GOOD
        assert streamed[-1].quality is Quality.GOOD


async def test_stuck_variable_stops_changing(driver: OpcUaDriver) -> None:
    await driver.write("pressure_sp", 1.0)
    await driver.write("fault_stuck", "Reactor.Pressure")
    try:
        first = (await driver.read(["pressure"]))["pressure"].value
        await driver.write("pressure_sp", 20.0)
        await asyncio.sleep(0.5)  # 300 simulated seconds: fifteen time constants
        assert (await driver.read(["pressure"]))["pressure"].value == first
    finally:
        await driver.write("fault_stuck", "")
    await eventually(lambda: driver.read(["pressure"]), lambda r: r["pressure"].value > 15.0)
    await driver.write("pressure_sp", 1.0)


async def test_slow_responses_time_out_then_recover(reactor_url: str) -> None:
    config = instrument(reactor_url, timeout=0.5, watchdog_interval=30.0)
    opcua = OpcUaDriver("reactor", config, DriverContext())
    await opcua.connect()
    try:
        await _set_fault(reactor_url, "ResponseDelay", ua.Variant(100.0, ua.VariantType.Double))
        slow = await opcua.read(["temperature_sp", "pressure"])
        assert slow["pressure"].quality is Quality.GOOD
        await _set_fault(reactor_url, "ResponseDelay", ua.Variant(1500.0, ua.VariantType.Double))
        try:
            with pytest.raises(InstrumentTimeout, match=r"no answer within 0.5 s"):
                await opcua.read(["temperature_sp", "pressure"])
            with pytest.raises(WriteOutcomeUnknown, match="no answer to the write"):
                await opcua.write("ph_sp", 3.25)
        finally:
            await _set_fault(reactor_url, "ResponseDelay", ua.Variant(0.0, ua.VariantType.Double))
        # The unanswered write did land: that is why it is reported, never repeated.
        late = await eventually(lambda: opcua.read(["ph_sp"]), lambda r: r["ph_sp"].value == 3.25)
        assert late["ph_sp"].quality is Quality.GOOD
        await opcua.write("ph_sp", 7.0)
    finally:
        await opcua.close()


async def test_server_restart_reconnects_and_resumes_the_subscription(
    driver: OpcUaDriver,
) -> None:
    async def state() -> str:
        try:
            await driver.read(["pressure"])
        except InstrumentDisconnected:
            return "down"
        return "up"

    async with _collecting(driver, "temperature") as streamed:
        await eventually(lambda: asyncio.sleep(0, len(streamed)), lambda n: n >= 2)
        with structlog.testing.capture_logs() as logs:
            await driver.write("fault_restart", True)
            await eventually(state, lambda s: s == "down")
            await eventually(state, lambda s: s == "up")
        events = [entry["event"] for entry in logs]
        assert "connection lost; reconnecting" in events
        assert "reconnected; session and subscription re-created" in events
        after = len(streamed)
        await eventually(lambda: asyncio.sleep(0, len(streamed)), lambda n: n >= after + 2)
    readings = await driver.read(["temperature", "fault_restart"])
    assert readings["fault_restart"].value is False
    assert readings["temperature"].quality is Quality.GOOD
