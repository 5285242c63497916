"""Per-instrument `timeouts: {connect, operation}`: configuration shared by every driver, with
located errors, defaults equal to the bounds the engine had as constants, and the engine
keeping each instrument's own bound (decision 0063)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

import pytest
import yaml

from mdfd.daemons.cli.commands.schema import schema_for
from mdfd.daemons.core.clock import EngineClock
from mdfd.daemons.core.config import load_config
from mdfd.daemons.engine.instruments import Instruments
from mdfd.drivers import DriverContext, InstrumentTimeout, Reading, Value, WriteOutcomeUnknown
from mdfd.drivers.memory import MemoryDriver
from mdfd.recipes.located import InputError
from tests.support import mdf_config, memory_instruments


class Stalled(MemoryDriver):
    """An instrument that stopped answering: reads and writes wait until cancelled."""

    async def read(self, channels: Sequence[str]) -> dict[str, Reading]:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    async def write(self, channel: str, value: Value) -> None:
        await asyncio.Event().wait()


def config_with(tmp_path: Path, **timeouts: object) -> Path:
    """The memory MDF; `timeouts` per instrument name (absent: the defaults)."""
    instruments = memory_instruments()
    for name, value in timeouts.items():
        instruments[name]["timeouts"] = value
    return mdf_config(tmp_path, instruments=instruments)


def test_every_instrument_has_the_engine_s_former_bounds_by_default(tmp_path: Path) -> None:
    config = load_config(config_with(tmp_path)).model
    for instrument in config.instruments.values():
        assert (instrument.timeouts.connect, instrument.timeouts.operation) == (30.0, 60.0)


def test_timeouts_take_seconds_or_durations(tmp_path: Path) -> None:
    path = config_with(
        tmp_path,
        furnace={"connect": "5 s", "operation": "500 ms"},
        meter={"connect": 2, "operation": "2 min"},
    )
    instruments = load_config(path).model.instruments
    assert instruments["furnace"].timeouts.connect == 5.0
    assert instruments["furnace"].timeouts.operation == 0.5
    assert instruments["meter"].timeouts.connect == 2.0
    assert instruments["meter"].timeouts.operation == 120.0


@pytest.mark.parametrize(
    ("value", "field", "message"),
    [
        ({"operation": 0}, "operation", "greater than 0"),
        ({"operation": "2 parsecs"}, "operation", "expected a duration such as '5 s'"),
        ({"connect": 7200}, "connect", "less than or equal to 3600"),
        ({"read": 2}, "read", "unknown key"),
    ],
)
def test_a_bad_timeout_is_refused_at_its_line(
    tmp_path: Path, value: dict[str, object], field: str, message: str
) -> None:
    path = config_with(tmp_path, meter=value)
    with pytest.raises(InputError) as caught:
        load_config(path)
    [problem] = caught.value.problems
    assert problem.source == str(path)
    assert problem.field == f"instruments.meter.timeouts.{field}"
    assert message in problem.message
    lines = path.read_text().splitlines()
    assert problem.line is not None
    assert "timeouts" in lines[problem.line - 1] or field in lines[problem.line - 1]


def test_the_config_reference_shows_the_timeouts() -> None:
    schema = schema_for("config")
    text = yaml.safe_dump(schema)
    assert "Timeouts" in schema.get("$defs", {})
    timeouts = schema["$defs"]["Timeouts"]["properties"]
    for name, default in (("connect", 30.0), ("operation", 60.0)):
        field = timeouts[name].get("anyOf", [timeouts[name]])[0]  # or a ${VAR} reference
        assert field["default"] == default
    assert "reconnect included" in text


async def test_each_instrument_s_calls_are_bounded_by_its_own_operation_timeout(
    tmp_path: Path,
) -> None:
    path = config_with(tmp_path, furnace={"operation": "50 ms"}, meter={"operation": "3 s"})
    config = load_config(path).model
    instruments = Instruments(config, ["furnace", "meter"], EngineClock().now)
    await instruments.connect()
    for name in ("furnace", "meter"):
        old = instruments.drivers[name]
        assert isinstance(old, MemoryDriver)
        instruments.drivers[name] = Stalled(name, old.config, DriverContext())
        await instruments.drivers[name].connect()
    with pytest.raises(WriteOutcomeUnknown, match=r"write took over 0\.05 s"):
        await instruments.write("furnace.setpoint", 100.0)
    with pytest.raises(InstrumentTimeout, match=r"read took over 0\.05 s"):
        await instruments.read(["furnace.temperature"])
    # read together, the instruments get the longer bound: the meter's
    assert instruments.reader(["furnace.temperature", "meter.resistivity"]).timeout == 3.0
