"""The reactor's address space as a generic OPC-UA client sees it (asyncua's own client, no
mdfd code): browse paths translate, analog values are AnalogItemType with EURange and
EngineeringUnits, and a setpoint outside EURange is refused with BadOutOfRange."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from asyncua import Client, ua
from asyncua.ua import uaerrors
from opcua_support import NAMESPACE

from mdfd.drivers import ProtocolError
from mdfd.drivers.opcua import OpcUaDriver


@pytest.fixture
async def client(reactor_url: str) -> AsyncIterator[Client]:
    opcua = Client(reactor_url, timeout=5)
    async with opcua:
        yield opcua


async def test_browse_path_translates_to_the_variable(client: Client) -> None:
    ns = await client.get_namespace_index(NAMESPACE)
    node = await client.nodes.objects.get_child([f"{ns}:Reactor", f"{ns}:Pressure"])
    assert node.nodeid == ua.NodeId("Reactor.Pressure", ns)
    assert isinstance(await node.read_value(), float)


async def test_analog_items_carry_eu_range_and_engineering_units(client: Client) -> None:
    ns = await client.get_namespace_index(NAMESPACE)
    setpoint = client.get_node(ua.NodeId("Reactor.TemperatureSetpoint", ns))
    assert await setpoint.read_type_definition() == ua.NodeId(ua.ObjectIds.AnalogItemType)
    eu_range = await (await setpoint.get_child("0:EURange")).read_value()
    assert (eu_range.Low, eu_range.High) == (20.0, 450.0)
    units = await (await setpoint.get_child("0:EngineeringUnits")).read_value()
    assert units.DisplayName.Text == "°C"
    assert units.UnitId == int.from_bytes(b"CEL", "big")


@pytest.mark.parametrize("value", [900.0, -50.0])
async def test_setpoint_outside_eu_range_is_refused_and_not_taken(
    client: Client, value: float
) -> None:
    ns = await client.get_namespace_index(NAMESPACE)
    setpoint = client.get_node(ua.NodeId("Reactor.TemperatureSetpoint", ns))
    before = await setpoint.read_value()
    with pytest.raises(uaerrors.BadOutOfRange):
        await setpoint.write_value(ua.Variant(value, ua.VariantType.Double))
    assert await setpoint.read_value() == before


async def test_setpoint_inside_eu_range_is_taken(client: Client) -> None:
    ns = await client.get_namespace_index(NAMESPACE)
    setpoint = client.get_node(ua.NodeId("Bath.pHSetpoint", ns))
    before = await setpoint.read_value()
    try:
        await setpoint.write_value(ua.Variant(6.5, ua.VariantType.Double))
        assert await setpoint.read_value() == 6.5
    finally:
        await setpoint.write_value(ua.Variant(before, ua.VariantType.Double))


async def test_driver_reports_the_servers_out_of_range_refusal(driver: OpcUaDriver) -> None:
    """pressure_sp has no limits in mdfd's config, so the server's EURange is what refuses."""
    before = (await driver.read(["pressure_sp"]))["pressure_sp"].value
    with pytest.raises(ProtocolError) as caught:
        await driver.write("pressure_sp", 80.0)
    assert caught.value.reply == "BadOutOfRange"
    assert (await driver.read(["pressure_sp"]))["pressure_sp"].value == before
