"""The simulator's SCPI interpreter: header forms, program messages, the error queue."""

from __future__ import annotations

import pytest

from mdfd.simulators.clock import ScaledClock
from mdfd.simulators.meter import Meter, MeterSettings
from mdfd.simulators.scpi import CommandSet, ErrorQueue, execute, split_message
from mdfd.simulators.world import World


@pytest.fixture
def meter() -> Meter:
    return Meter(MeterSettings(kind="meter"), World(ScaledClock(1.0), seed=3), drop=lambda: None)


@pytest.mark.parametrize(
    "header", ["SYST:ERR?", "syst:err?", ":SYSTEM:ERROR?", "SYSTem:ERRor:NEXT?", "syst:err:next?"]
)
def test_short_long_and_optional_nodes(header: str) -> None:
    commands = CommandSet()
    commands.add("SYSTem:ERRor[:NEXT]?", lambda params: "ok")
    assert execute(commands, ErrorQueue(), header) == ["ok"]


def test_partial_forms_are_undefined() -> None:
    commands = CommandSet()
    commands.add("SYSTem:ERRor?", lambda params: "ok")
    errors = ErrorQueue()
    assert execute(commands, errors, "SYSTE:ERR?") == []
    assert execute(commands, errors, "SYST:ERR") == []  # the command form was not registered
    assert errors.pop().startswith("-113,")
    assert errors.pop().startswith("-113,")
    assert errors.pop() == '+0,"No error"'


def test_program_messages_split_outside_quotes() -> None:
    assert split_message('A 1;B "x;y";:C?') == ["A 1", 'B "x;y"', ":C?"]


def test_error_queue_is_fifo_and_overflows(meter: Meter) -> None:
    for _ in range(25):
        meter.execute("NOPE")
    assert meter.execute("SYST:ERR:COUN?") == ["20"]
    first = meter.execute("SYST:ERR?")[0]
    assert first.startswith("-113,")
    for _ in range(18):
        meter.execute("SYST:ERR?")
    assert meter.execute("SYST:ERR?") == ['-350,"Queue overflow"']
    assert meter.execute("SYST:ERR?") == ['+0,"No error"']


def test_common_commands(meter: Meter) -> None:
    meter.execute("SENS:AVER:COUN 8;NOPE")
    replies = meter.execute("*IDN?;*OPC?;SENS:AVER:COUN?")
    assert replies == ["MDFD,SIM-LCR-3000,SN0001,1.0", "1", "8"]
    meter.execute("*RST;*CLS")
    assert meter.execute("SENS:AVER:COUN?;:SYST:ERR?") == ["1", '+0,"No error"']


def test_headers_after_a_semicolon_are_relative(meter: Meter) -> None:
    meter.execute("SENS:AVER:COUN 4")
    assert meter.execute("SENS:AVER:COUN?;COUN?;*OPC?;COUN?") == ["4", "4", "1", "4"]
    assert len(meter.execute("MEAS:CAP?;LOSS?;:MEAS:HARD?")) == 3
    assert meter.execute("SYST:ERR?") == ['+0,"No error"']
    # Not rooted, the second header is MEAS:MEAS:LOSS?, as on a real instrument.
    assert len(meter.execute("MEAS:CAP?;MEAS:LOSS?")) == 1
    assert meter.execute("SYST:ERR?")[0] == '-113,"Undefined header;MEAS:MEAS:LOSS?"'
    # A new program message starts at the root again.
    assert meter.execute("SYST:ERR?") == ['+0,"No error"']


@pytest.mark.parametrize(
    ("command", "code"),
    [
        ("SPEC:NEW", -109),
        ("SPEC:NEW 1,2", -108),
        ("SPEC:NEW abc", -224),
        ("SPEC:NEW 1.5", -224),
        ("SPEC:NEW -1", -222),
        ("*IDN? 3", -108),
        ("MEAS:CAP", -113),
        ("MEAS CAP?", -113),
        ("ME$S?", -102),
    ],
)
def test_parameter_errors(meter: Meter, command: str, code: int) -> None:
    assert meter.execute(command) == []
    assert meter.execute("SYST:ERR?")[0].startswith(f"{code},")


def test_new_specimen_resets_the_world_specimen(meter: Meter) -> None:
    meter.world.specimen.recovery = 0.9
    meter.execute("SPEC:NEW 12")
    assert meter.world.specimen.recovery == 0.0
    assert meter.execute("SPEC?") == ["12"]
    hardness = float(meter.execute("MEAS:HARD?")[0])
    assert hardness == pytest.approx(120.0, rel=0.02)


def test_averaging_reduces_noise(meter: Meter) -> None:
    def spread(count: int) -> float:
        meter.execute(f"SENS:AVER:COUN {count}")
        values = [float(meter.execute("MEAS:CAP?")[0]) for _ in range(200)]
        mean = sum(values) / len(values)
        return (sum((v - mean) ** 2 for v in values) / len(values)) ** 0.5

    assert spread(100) < spread(1)
