"""One `reconnect: {attempts, initial, maximum}` block for every driver; the keys each driver
had before load on as deprecated aliases, each with a warning naming its replacement."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError
from structlog.testing import capture_logs

from mdfd.daemons.core.config import load_config
from mdfd.drivers import InstrumentDisconnected, Reconnect
from mdfd.drivers.modbus import ModbusInstrument
from mdfd.drivers.opcua import OpcUaInstrument
from mdfd.drivers.visa import VisaInstrument
from mdfd.recipes.located import InputError

BASES: dict[str, tuple[type[BaseModel], dict[str, Any]]] = {
    "modbus": (
        ModbusInstrument,
        {
            "driver": "modbus",
            "link": {"type": "tcp", "host": "127.0.0.1", "port": 502},
            "channels": {"t": {"table": "input_register", "address": 0}},
        },
    ),
    "opcua": (
        OpcUaInstrument,
        {
            "driver": "opcua",
            "endpoint": "opc.tcp://127.0.0.1:4840",
            "channels": {"t": {"node": "ns=2;i=7"}},
        },
    ),
    "visa": (
        VisaInstrument,
        {
            "driver": "visa",
            "resource": "TCPIP::127.0.0.1::5025::SOCKET",
            "channels": {"t": {"query": "MEAS?"}},
        },
    ),
}

OLD_SPELLINGS: dict[str, dict[str, Any]] = {
    "modbus": {"reconnect_attempts": 7, "reconnect_backoff": 0.3, "reconnect_backoff_max": 9.0},
    "opcua": {"reconnect": {"connect_attempts": 7, "initial_delay": 0.3, "max_delay": 9.0}},
}


@pytest.mark.parametrize("driver", sorted(BASES))
def test_every_driver_takes_the_same_reconnect_block(driver: str) -> None:
    model, base = BASES[driver]
    config = model.model_validate(
        {**base, "reconnect": {"attempts": 7, "initial": 0.3, "maximum": 9.0}}
    )
    assert config.reconnect == Reconnect(attempts=7, initial=0.3, maximum=9.0)  # type: ignore[attr-defined]
    assert model.model_validate(base).reconnect == Reconnect()  # type: ignore[attr-defined]


@pytest.mark.parametrize("driver", sorted(OLD_SPELLINGS))
def test_old_keys_load_as_deprecated_aliases(driver: str) -> None:
    model, base = BASES[driver]
    with capture_logs() as logs:
        config = model.model_validate({**base, **OLD_SPELLINGS[driver]})
    assert config.reconnect == Reconnect(attempts=7, initial=0.3, maximum=9.0)  # type: ignore[attr-defined]
    renamed = {e["key"]: e["use"] for e in logs if e["event"] == "deprecated config key"}
    assert sorted(renamed.values()) == [
        "reconnect.attempts",
        "reconnect.initial",
        "reconnect.maximum",
    ]
    assert all(e["log_level"] == "warning" for e in logs)


def test_an_old_key_and_its_replacement_together_are_refused() -> None:
    model, base = BASES["modbus"]
    with pytest.raises(ValidationError, match=r"give only `reconnect\.attempts`"):
        model.model_validate({**base, "reconnect_attempts": 2, "reconnect": {"attempts": 3}})
    model, base = BASES["opcua"]
    with pytest.raises(ValidationError, match=r"give only `reconnect\.maximum`"):
        model.model_validate({**base, "reconnect": {"max_delay": 2.0, "maximum": 3.0}})


def test_modbus_retries_is_ignored_with_a_warning_naming_on_error() -> None:
    model, base = BASES["modbus"]
    with capture_logs() as logs:
        config = model.model_validate({**base, "retries": 3})
    assert "retries" not in config.model_dump()
    (event,) = [e for e in logs if e["event"] == "deprecated config key ignored"]
    assert event["key"] == "retries"
    assert "on_error" in event["reason"]


@pytest.mark.parametrize(
    ("reconnect", "expected"),
    [
        (Reconnect(attempts=5, initial=0.5, maximum=1.5), [0.5, 1.0, 1.5, 1.5]),
        (Reconnect(attempts=1), []),
    ],
)
async def test_backoff_doubles_up_to_its_maximum(
    reconnect: Reconnect, expected: list[float]
) -> None:
    waits: list[float] = []
    tries = 0

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    async def refused() -> None:
        nonlocal tries
        tries += 1
        raise InstrumentDisconnected("furnace", "connection refused")

    with pytest.raises(InstrumentDisconnected):
        await reconnect.retrying(InstrumentDisconnected, sleep=sleep)(refused)
    assert (waits, tries) == (expected, reconnect.attempts)


CONFIG = """\
mdf: {{id: alias-mdf, domain: metal, site: KR-TEST}}
storage: {{data_dir: {var}/data, state_dir: {var}/state}}
instruments:
  furnace:
    driver: modbus
    link: {{type: tcp, host: 127.0.0.1, port: 502}}
{extra}
    channels:
      temperature: {{table: input_register, address: 0}}
"""


def test_a_config_file_with_the_old_keys_loads(tmp_path: Path) -> None:
    path = tmp_path / "mdf.yaml"
    path.write_text(CONFIG.format(var=tmp_path, extra="    retries: 2\n    reconnect_backoff: 0.5"))
    config = load_config(path).model.instruments["furnace"]
    assert config.reconnect == Reconnect(initial=0.5)  # type: ignore[attr-defined]


def test_old_and_new_keys_together_are_a_located_error(tmp_path: Path) -> None:
    path = tmp_path / "mdf.yaml"
    path.write_text(
        CONFIG.format(var=tmp_path, extra="    reconnect_backoff: 0.5\n    reconnect: {initial: 1}")
    )
    with pytest.raises(InputError) as caught:
        load_config(path)
    (problem,) = caught.value.problems
    assert problem.line == 4  # the instrument's line
    assert problem.field == "instruments.furnace"
    assert "give only `reconnect.initial`" in problem.message
