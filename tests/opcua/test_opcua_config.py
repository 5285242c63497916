"""Offline checks: node id forms, value encoding by declared type, config validation and the
sim.yaml channel contract."""

from __future__ import annotations

import uuid

import pytest
from asyncua import ua
from pydantic import ValidationError

from mdfd.daemons.core.config import load_config
from mdfd.drivers.opcua import OpcUaInstrument
from mdfd.drivers.opcua.nodeids import format_node, parse_node
from mdfd.drivers.opcua.values import encode
from mdfd.simulators.opcua_space import TAGS_BY_KEY
from mdfd.simulators.reactor import ReactorSettings
from mdfd.simulators.reactor_settings import TAG_KEYS
from tests.support import SIM_CONFIG

NAMESPACES = ["http://opcfoundation.org/UA/", "urn:server", "urn:mdfd:sim:reactor"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("ns=2;s=Reactor.Temperature", ua.NodeId("Reactor.Temperature", 2)),
        ("ns=2;s=a;b=c", ua.NodeId("a;b=c", 2)),
        ("ns=0;i=2259", ua.NodeId(2259, 0)),
        ("i=7", ua.NodeId(7, 2)),  # no namespace given: the instrument's default
        ("ns=1;i=7", ua.NodeId(7, 1)),
        ("nsu=urn:mdfd:sim:reactor;i=7", ua.NodeId(7, 2)),
        ("s=Bath.pH", ua.NodeId("Bath.pH", 2)),  # the instrument's default namespace
        (f"ns=3;g={uuid.UUID(int=5)}", ua.NodeId(uuid.UUID(int=5), 3, ua.NodeIdType.Guid)),
        ("ns=2;b=TWFu", ua.NodeId(b"Man", 2, ua.NodeIdType.ByteString)),
    ],
)
def test_node_id_forms_resolve(text: str, expected: ua.NodeId) -> None:
    assert parse_node(text).resolve(NAMESPACES, "urn:mdfd:sim:reactor") == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("Reactor.Temperature", "must start with i=, s=, g= or b="),
        ("ns=x;i=1", "not a number"),
        ("ns=2;i=abc", "not a valid Numeric"),
        ("ns=2;g=not-a-guid", "not a valid Guid"),
        ("ns=2", "expected ';'"),
        ("ns=2;nsu=urn:a;i=1", "not both"),
        ("i=-1", "unsigned"),
    ],
)
def test_bad_node_ids_say_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_node(text)


def test_unknown_namespace_uri_is_named() -> None:
    with pytest.raises(LookupError, match="urn:missing"):
        parse_node("nsu=urn:missing;i=1").resolve(NAMESPACES)


def test_format_node_prefers_the_namespace_uri() -> None:
    assert format_node(ua.NodeId("X", 2), NAMESPACES) == "nsu=urn:mdfd:sim:reactor;s=X"
    assert format_node(ua.NodeId(85, 0), NAMESPACES) == "i=85"
    assert format_node(ua.NodeId(9, 7)) == "ns=7;i=9"


@pytest.mark.parametrize(
    ("value", "variant", "expected"),
    [
        (150, ua.VariantType.Double, 150.0),
        (2.5, ua.VariantType.Float, 2.5),
        (30.0, ua.VariantType.UInt16, 30),
        (-5, ua.VariantType.Int32, -5),
        (1, ua.VariantType.Boolean, True),
        (False, ua.VariantType.Boolean, False),
        ("run", ua.VariantType.String, "run"),
    ],
)
def test_values_take_the_declared_type(
    value: object, variant: ua.VariantType, expected: object
) -> None:
    encoded = encode(value, variant)  # type: ignore[arg-type]
    assert encoded.VariantType == variant
    assert encoded.Value == expected
    assert type(encoded.Value) is type(expected)


@pytest.mark.parametrize(
    ("value", "variant"),
    [
        (-1, ua.VariantType.UInt16),
        (256, ua.VariantType.Byte),
        (1.5, ua.VariantType.Int32),
        (True, ua.VariantType.Double),
        ("1", ua.VariantType.Double),
        (2, ua.VariantType.Boolean),
        (5, ua.VariantType.String),
        (1.0, ua.VariantType.DateTime),
    ],
)
def test_values_that_do_not_fit_are_refused(value: object, variant: ua.VariantType) -> None:
    with pytest.raises(ValueError, match=r"not a|does not fit|not supported"):
        encode(value, variant)  # type: ignore[arg-type]


def _config(**fields: object) -> dict[str, object]:
    spec: dict[str, object] = {
        "driver": "opcua",
        "endpoint": "opc.tcp://127.0.0.1:4840/x",
        "channels": {"t": {"node": "ns=2;s=T"}},
    }
    spec.update(fields)
    return spec


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"security": {"policy": "Basic256Sha256"}}, "needs certificate and private_key"),
        ({"password_env": "PW"}, "username is not"),
        ({"channels": {"t": {"node": "T"}}}, "must start with"),
        ({"endpoint": "http://x"}, "opc"),
        ({"security": {"policy": "Basic128"}}, "Basic256Sha256"),
        ({"channels": {"t": {"node": "i=1", "period": 1}}}, "Extra inputs"),
    ],
)
def test_config_mistakes_are_refused(fields: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        OpcUaInstrument.model_validate(_config(**fields))


def test_simulator_settings_are_checked() -> None:
    with pytest.raises(ValidationError, match="needs certificate_dir"):
        ReactorSettings(security=["Basic256Sha256"])
    with pytest.raises(ValidationError, match="unknown variables"):
        ReactorSettings.model_validate({"faults": {"stuck": ["Reactor.Nope"]}})


def test_fault_settings_name_exactly_the_address_space_variables() -> None:
    """The settings know the variables without asyncua (ADR 0075); the address space has them."""
    assert set(TAGS_BY_KEY) == TAG_KEYS
    assert ReactorSettings.model_validate({"faults": {"bad": sorted(TAG_KEYS)}}).faults.bad


def test_sim_yaml_keeps_the_reactor_channel_contract() -> None:
    config = load_config(SIM_CONFIG).model
    reactor = config.instruments["reactor"]
    assert reactor.driver == "opcua"
    units = {name: channel.unit for name, channel in reactor.channels.items()}
    assert units == {
        "temperature": "degC",
        "temperature_sp": "degC",
        "pressure": "bar",
        "pressure_sp": "bar",
        "feed_flow": "L/min",
        "feed_flow_sp": "L/min",
        "ph": "dimensionless",
        "ph_sp": "dimensionless",
        "valve": "percent",
        "conversion": "percent",
        "selectivity": "percent",
    }
    assert reactor.channels["temperature_sp"].limits.max == 450  # type: ignore[union-attr]
    assert config.simulators["reactor"].kind == "reactor"
