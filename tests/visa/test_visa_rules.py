"""Parse rules, write templates and config validation of the visa driver, without a wire."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from mdfd.drivers.visa import VisaChannel, VisaInstrument
from mdfd.drivers.visa.parse import ParseFailure, error_entry, format_command, parse_reply


def channel(**fields: Any) -> VisaChannel:
    return VisaChannel.model_validate({"query": "X?", **fields})


@pytest.mark.parametrize(
    ("reply", "fields", "expected"),
    [
        ("+1.234560E+02\n", {}, 123.456),
        ("  -5e-3 ", {}, -0.005),
        ("1.0,2.5,3", {"field": 1}, 2.5),
        ("1.0;2.5;3", {"field": 2, "separator": ";"}, 3.0),
        ("1,2,3.5", {"parse": "floats"}, [1.0, 2.0, 3.5]),
        ("+7", {"parse": "int"}, 7),
        ("1.2E+01", {"parse": "int"}, 12),
        ("ON", {"parse": "bool"}, True),
        ("0", {"parse": "bool"}, False),
        ('ACME,"LCR 9",1,2', {"parse": "string", "field": 1}, "LCR 9"),
    ],
)
def test_parse_rules(reply: str, fields: dict[str, Any], expected: object) -> None:
    assert parse_reply(reply, channel(**fields)) == expected


@pytest.mark.parametrize(
    ("reply", "fields"),
    [
        ("#@!", {}),
        ("1.0,2.0", {"field": 5}),
        ("1,x,3", {"parse": "floats"}),
        ("1.5", {"parse": "int"}),
        ("MAYBE", {"parse": "bool"}),
    ],
)
def test_parse_failures(reply: str, fields: dict[str, Any]) -> None:
    with pytest.raises(ParseFailure):
        parse_reply(reply, channel(**fields))


def test_error_entries() -> None:
    assert error_entry('+0,"No error"') == 0
    assert error_entry('-113,"Undefined header"') == -113
    assert error_entry("0, No Error") == 0
    with pytest.raises(ParseFailure):
        error_entry("garbage")


def test_write_templates() -> None:
    assert format_command("SPEC:NEW {value:d}", 12.0) == "SPEC:NEW 12"
    assert format_command("OUTP {value:d}", True) == "OUTP 1"
    assert format_command("VOLT {value:.3f}", 1.5) == "VOLT 1.500"
    with pytest.raises(ParseFailure):
        format_command("SPEC:NEW {value:d}", 1.5)


def instrument(**fields: Any) -> dict[str, Any]:
    return {
        "driver": "visa",
        "resource": "TCPIP::127.0.0.1::5025::SOCKET",
        "channels": {"x": {"query": "X?"}},
        **fields,
    }


@pytest.mark.parametrize(
    "bad",
    [
        {"resource": "NOT::A::RESOURCE"},
        {"serial": {"baud_rate": 9600}},  # serial settings on a TCP resource
        {"channels": {"x": {"writable": True}}},  # writable without a template
        {"channels": {"x": {"query": "X?", "write": "X {value}"}}},  # template, not writable
        {"channels": {"x": {"writable": True, "write": "X {val}"}}},  # wrong placeholder
        {"channels": {"x": {}}},  # neither query nor write
        {"channels": {"x": {"query": "X?", "parse": "floats", "field": 1}}},
        {"channels": {"x": {"query": "X?", "adress": 3}}},  # typo: unknown key
        {"timeout": 0},
        {"read_termination": ""},  # a raw socket's replies could not be told apart
    ],
)
def test_config_refuses(bad: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        VisaInstrument.model_validate(instrument(**bad))


def test_config_accepts_serial_and_other_backends() -> None:
    config = VisaInstrument.model_validate(
        instrument(
            resource="ASRL/dev/ttyUSB0::INSTR",
            backend="@ivi",
            serial={
                "baud_rate": 19200,
                "parity": "even",
                "stop_bits": 2,
                "flow_control": "rts_cts",
            },
            error_queue=None,
        )
    )
    assert config.is_serial
    assert config.serial is not None
    assert config.serial.parity == "even"
    assert not VisaInstrument.model_validate(instrument()).is_serial
