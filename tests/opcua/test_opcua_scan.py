"""Polled scans against a plain asyncua server whose values carry chosen status codes: what the
prepared Read request (kept per channel set, rebuilt on reconnect) makes of each answer."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from asyncua import Server, ua
from opcua_support import eventually

from mdfd.drivers import DriverContext, ProtocolError, Quality
from mdfd.drivers.opcua import OpcUaDriver, OpcUaInstrument
from tests.support import free_port

URI = "urn:mdfd:test:scan"


def _config(url: str, channels: dict[str, Any], **overrides: Any) -> OpcUaInstrument:
    spec: dict[str, Any] = {
        "driver": "opcua",
        "endpoint": url,
        "namespace": URI,
        "timeout": 3.0,
        "publishing_interval": 50,
        "reconnect": {"initial_delay": 0.1, "max_delay": 0.5, "connect_attempts": 2},
        "channels": channels,
    }
    spec.update(overrides)
    return OpcUaInstrument.model_validate(spec)


async def _server(url: str, namespaces: list[str], value: float) -> Server:
    """A server whose `URI` namespace has the index len(namespaces) + 2."""
    server = Server()
    await server.init()
    server.set_endpoint(url)
    for uri in namespaces:
        await server.register_namespace(uri)
    idx = await server.register_namespace(URI)
    await server.nodes.objects.add_variable(ua.NodeId("Level", idx), "Level", value)
    return server


async def _set(server: Server, node: ua.NodeId, value: ua.Variant, status: int = 0) -> None:
    await server.write_attribute_value(node, ua.DataValue(value, StatusCode=ua.StatusCode(status)))


@pytest.fixture
async def statuses() -> AsyncIterator[tuple[str, Server, int]]:
    """Variables answering with each kind of status, and values that are not plain scalars."""
    url = f"opc.tcp://127.0.0.1:{free_port()}/scan"
    server = await _server(url, [], 1.5)
    idx = 2
    initial = {
        "Good": ua.Variant(2.5, ua.VariantType.Double),
        "Info": ua.Variant(3, ua.VariantType.Int32),
        "Uncertain": ua.Variant(4.5, ua.VariantType.Double),
        "Bad": ua.Variant(0.0, ua.VariantType.Double),
        "Text": ua.Variant(ua.LocalizedText("on", "en")),
        "Node": ua.Variant(ua.NodeId(2259, 0)),
        "Curve": ua.Variant([1, 2, 3], ua.VariantType.Int32),
    }
    for name, variant in initial.items():
        await server.nodes.objects.add_variable(ua.NodeId(name, idx), name, variant)
    await server.nodes.objects.add_variable(
        ua.NodeId("Empty", idx),
        "Empty",
        ua.Variant(),
        datatype=ua.NodeId(ua.ObjectIds.BaseDataType),
    )
    for name, status in (
        ("Info", ua.StatusCodes.GoodLocalOverride),
        ("Uncertain", ua.StatusCodes.UncertainLastUsableValue),
        ("Bad", ua.StatusCodes.BadSensorFailure),
    ):
        await _set(server, ua.NodeId(name, idx), initial[name], status)
    async with server:
        yield url, server, idx


CHANNELS = {
    "good": {"node": "s=Good", "unit": "bar"},
    "info": {"node": "s=Info", "unit": "rpm"},
    "uncertain": {"node": "s=Uncertain", "unit": "degC"},
    "bad": {"node": "s=Bad", "unit": "bar"},
    "text": {"node": "s=Text"},
    "node": {"node": "s=Node"},
    "curve": {"node": "s=Curve", "unit": "V"},
    "empty": {"node": "s=Empty"},
    "level": {"node": "s=Level", "unit": "m", "subscribe": True},
}


async def test_statuses_become_qualities_or_errors_naming_channel_and_node(
    statuses: tuple[str, Server, int],
) -> None:
    url, server, idx = statuses
    driver = OpcUaDriver("scan", _config(url, CHANNELS), DriverContext(clock=lambda: 42.0))
    await driver.connect()
    try:
        names = ["uncertain", "good", "text", "info", "node", "curve"]
        for _ in range(3):  # the prepared request is reused, the answers are fresh
            readings = await driver.read(names)
            assert list(readings) == names
            assert [r.value for r in readings.values()] == [
                4.5,
                2.5,
                "on",
                3,
                "i=2259",
                [1.0, 2.0, 3.0],
            ]
            assert [r.quality for r in readings.values()] == [
                Quality.UNCERTAIN,
                Quality.GOOD,
                Quality.GOOD,
                Quality.GOOD,
                Quality.GOOD,
                Quality.GOOD,
            ]
            assert [r.unit for r in readings.values()] == ["degC", "bar", "", "rpm", "", "V"]
            assert {r.timestamp for r in readings.values()} == {42.0}
        await _set(server, ua.NodeId("Good", idx), ua.Variant(7.25, ua.VariantType.Double))
        assert (await driver.read(names))["good"].value == 7.25
        assert list(await driver.read(["good", "info", "good"])) == ["good", "info"]
        with pytest.raises(ProtocolError, match="BadSensorFailure") as bad:
            await driver.read(["good", "bad"])
        assert (bad.value.channel, bad.value.address) == ("bad", "s=Bad")
        assert bad.value.reply == "BadSensorFailure"
        with pytest.raises(ProtocolError, match="no value") as empty:
            await driver.read(["empty"])
        assert (empty.value.channel, empty.value.address) == ("empty", "s=Empty")
    finally:
        await driver.close()


async def test_subscribed_and_polled_channels_come_back_in_the_order_asked(
    statuses: tuple[str, Server, int],
) -> None:
    url, server, idx = statuses
    driver = OpcUaDriver("scan", _config(url, CHANNELS), DriverContext())
    await driver.connect()
    try:
        names = ["level", "good", "uncertain"]
        # Read at once: until its first notification the subscribed channel is polled too.
        first = await driver.read(names)
        assert list(first) == names
        assert [r.value for r in first.values()] == [1.5, 2.5, 4.5]
        await _set(server, ua.NodeId("Level", idx), ua.Variant(8.0, ua.VariantType.Double))
        later = await eventually(lambda: driver.read(names), lambda r: r["level"].value == 8.0)
        assert list(later) == names
        assert later["uncertain"].quality is Quality.UNCERTAIN
    finally:
        await driver.close()


async def test_a_reconnect_to_moved_namespaces_prepares_the_scan_again() -> None:
    url = f"opc.tcp://127.0.0.1:{free_port()}/scan"
    channels = {"level": {"node": "s=Level", "unit": "m"}}
    driver = OpcUaDriver("scan", _config(url, channels, watchdog_interval=0.2), DriverContext())
    first = await _server(url, ["urn:mdfd:test:other"], 1.0)
    async with first:
        await driver.connect()
        try:
            assert (await driver.read(["level"]))["level"].value == 1.0
        except BaseException:
            await driver.close()
            raise
    try:
        # The same node now lives in namespace 2, not 3: a request kept from the first
        # session would ask for a node this server does not have.
        second = await _server(url, [], 2.0)
        async with second:
            readings = await eventually(
                lambda: driver.read(["level"]), lambda r: r["level"].value == 2.0
            )
            assert readings["level"].quality is Quality.GOOD
    finally:
        await driver.close()
