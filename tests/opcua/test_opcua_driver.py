"""The opcua driver against the reactor simulator over real TCP: reads, typed writes,
subscriptions and browse."""

from __future__ import annotations

import asyncio

import pytest
from asyncua import Client, ua
from opcua_support import NAMESPACE, eventually, instrument

from mdfd.drivers import (
    ChannelError,
    DriverContext,
    InstrumentDisconnected,
    Quality,
    Reading,
    Subscribable,
)
from mdfd.drivers.opcua import OpcUaDriver
from mdfd.simulators.reactor import ReactorSimulator
from mdfd.simulators.world import World
from tests.support import refused_port


async def test_scan_reads_every_channel_with_units_and_types(driver: OpcUaDriver) -> None:
    await driver.write("ph_sp", 6.5)
    names = list(driver.config.channels)
    readings = await driver.read(names)
    assert list(readings) == names
    assert readings["ph_sp"].value == 6.5
    assert readings["ph_sp"].unit == "dimensionless"
    assert readings["temperature"].unit == "degC"
    assert isinstance(readings["temperature"].value, float)
    assert isinstance(readings["sample_interval"].value, int)
    assert isinstance(readings["pump"].value, bool)
    assert readings["fault_bad"].value == ""
    assert all(r.quality is Quality.GOOD for r in readings.values())
    identity = await driver.identify()
    assert identity.startswith("mdfd,Reactor skid simulator,urn:mdfd:sim:reactor:reactor")


async def test_a_nan_value_with_a_good_status_is_a_bad_reading(driver: OpcUaDriver) -> None:
    await driver.write("fault_invalid", "Bath.pH")  # the sensor overflows: NaN, status Good
    try:
        reading = await eventually(
            lambda: driver.read(["ph"]), lambda r: r["ph"].value != r["ph"].value
        )
    finally:
        await driver.write("fault_invalid", "")
    assert reading["ph"].quality is Quality.BAD


async def test_writes_use_the_nodes_declared_types_and_reach_the_world(
    reactor: ReactorSimulator, world: World
) -> None:
    opcua = OpcUaDriver("reactor", instrument(reactor.url), DriverContext(world.clock.now))
    await opcua.connect()
    try:
        await opcua.write("temperature_sp", 150)  # an int for a Double node
        await opcua.write("agitator", 750)  # an int for a Float node
        await opcua.write("sample_interval", 30.0)  # a whole float for a UInt16 node
        await opcua.write("pump", 0)  # 0 for a Boolean node
        got = await opcua.read(["temperature_sp", "agitator", "sample_interval", "pump"])
    finally:
        await opcua.close()
    assert got["temperature_sp"].value == 150.0
    assert isinstance(got["temperature_sp"].value, float)
    assert got["agitator"].value == 750.0
    assert got["sample_interval"].value == 30
    assert got["pump"].value is False
    assert world.skid.temperature.setpoint == 150.0
    assert world.skid.feed_flow.setpoint == 0.0  # pump stopped
    async with Client(reactor.url) as client:
        index = await client.get_namespace_index(NAMESPACE)
        interval = client.get_node(ua.NodeId("Analyser.SampleInterval", index))
        assert (await interval.read_data_value()).Value.VariantType == ua.VariantType.UInt16
        speed = client.get_node(ua.NodeId("Reactor.AgitatorSpeed", index))
        assert (await speed.read_data_value()).Value.VariantType == ua.VariantType.Float


async def test_refused_writes_name_the_channel_and_send_nothing(driver: OpcUaDriver) -> None:
    before = (await driver.read(["sample_interval"]))["sample_interval"].value
    cases = [
        ("sample_interval", 2.5, "not a whole number"),
        ("sample_interval", 70000, "does not fit UInt16"),
        ("pump", "yes", "not a boolean"),
        ("temperature_sp", 451, "outside limits"),
        ("temperature", 30.0, "not writable"),
        ("nope", 1.0, "no such channel"),
    ]
    for channel, value, message in cases:
        with pytest.raises(ChannelError, match=message) as caught:
            await driver.write(channel, value)  # type: ignore[arg-type]
        assert caught.value.channel == channel
    assert (await driver.read(["sample_interval"]))["sample_interval"].value == before


async def test_setpoints_drive_the_simulated_process(driver: OpcUaDriver) -> None:
    await driver.write("temperature_sp", 300.0)
    await driver.write("feed_flow_sp", 2.5)
    await driver.write("pump", True)

    async def scan() -> dict[str, Reading]:
        return await driver.read(["temperature", "feed_flow", "valve", "conversion"])

    done = await eventually(scan, lambda r: r["temperature"].value > 290.0)
    assert done["feed_flow"].value == pytest.approx(2.5, abs=0.1)
    assert done["valve"].value == pytest.approx(50.0, abs=3.0)
    await eventually(scan, lambda r: r["conversion"].value > 5.0)
    await driver.write("temperature_sp", 25.0)
    await driver.write("feed_flow_sp", 0.0)


async def test_subscription_streams_changes_and_read_returns_the_latest(
    driver: OpcUaDriver,
) -> None:
    assert isinstance(driver, Subscribable)
    assert list(driver.subscribed_channels()) == ["temperature", "selectivity"]
    await driver.write("temperature_sp", 25.0)
    await eventually(lambda: driver.read(["temperature"]), lambda r: r["temperature"].value < 40.0)
    await driver.write("temperature_sp", 200.0)
    seen: list[float] = []
    stream = driver.stream(["temperature"])
    async with asyncio.timeout(20):
        async for channel, reading in stream:
            assert channel == "temperature"
            assert reading.unit == "degC"
            seen.append(float(reading.value))
            if reading.value > 150.0:
                break
    await stream.aclose()  # type: ignore[attr-defined]
    assert len(seen) >= 2
    assert seen[-1] > seen[0]
    assert (await driver.read(["temperature"]))["temperature"].value > 150.0
    await driver.write("temperature_sp", 25.0)


async def test_stream_refuses_unsubscribed_channels(driver: OpcUaDriver) -> None:
    with pytest.raises(ChannelError, match="not subscribed"):
        driver.stream(["pressure"])


async def test_stream_ends_when_the_driver_closes(reactor_url: str) -> None:
    opcua = OpcUaDriver("reactor", instrument(reactor_url), DriverContext())
    await opcua.connect()
    received: list[str] = []

    async def consume() -> None:
        async for channel, _reading in opcua.stream([]):
            received.append(channel)

    consumer = asyncio.create_task(consume())
    await eventually(lambda: asyncio.sleep(0, received), lambda r: len(r) >= 2)
    await opcua.close()
    await asyncio.wait_for(consumer, 5)
    assert set(received) <= {"temperature", "selectivity"}


async def test_browse_lists_variables_with_types_units_and_access(driver: OpcUaDriver) -> None:
    entries = {entry.path: entry for entry in await driver.browse()}
    temperature = entries["Reactor/Temperature"]
    assert temperature.node == f"nsu={NAMESPACE};s=Reactor.Temperature"
    assert temperature.data_type == "Double"
    assert temperature.unit == "°C"
    assert isinstance(temperature.value, float)
    assert not temperature.writable
    assert entries["Reactor/TemperatureSetpoint"].writable
    assert entries["Analyser/SampleInterval"].data_type == "UInt16"
    assert entries["Faults/Restart"].value is False
    assert not any(path.startswith("Server") for path in entries)
    analyser = await driver.browse("s=Analyser")
    assert {entry.path for entry in analyser} == {
        "Conversion",
        "Selectivity",
        "SampleInterval",
        "SampleCount",
    }
    with pytest.raises(ChannelError, match="identifier must start"):
        await driver.browse("Analyser")


async def test_unknown_node_or_namespace_fails_connect_naming_it(reactor_url: str) -> None:
    config = instrument(reactor_url, channels={"x": {"node": "s=Reactor.Nope"}})
    with pytest.raises(ChannelError, match="BadNodeIdUnknown") as caught:
        await OpcUaDriver("reactor", config, DriverContext()).connect()
    assert caught.value.channel == "x"
    assert caught.value.address == "s=Reactor.Nope"
    config = instrument(reactor_url, channels={"y": {"node": "nsu=urn:elsewhere;s=A"}})
    with pytest.raises(ChannelError, match="urn:elsewhere") as caught:
        await OpcUaDriver("reactor", config, DriverContext()).connect()
    assert caught.value.channel == "y"


async def test_nothing_listening_is_disconnected() -> None:
    with refused_port() as port:
        config = instrument(f"opc.tcp://127.0.0.1:{port}/none")
        opcua = OpcUaDriver("reactor", config, DriverContext())
        with pytest.raises(InstrumentDisconnected, match="connection failed"):
            await opcua.connect()
    with pytest.raises(InstrumentDisconnected, match="not connected"):
        await opcua.read(["temperature"])
