"""The meter simulator's reading memory, command by command, on a clock the test moves."""

from __future__ import annotations

import pytest

from mdfd.simulators.clock import ScaledClock
from mdfd.simulators.meter import Meter, MeterSettings
from mdfd.simulators.reading_memory import MEMORY_SIZE
from mdfd.simulators.world import World


class ManualClock(ScaledClock):
    """Simulated time that moves only when the test says."""

    def __init__(self) -> None:
        super().__init__(1.0)
        self.time = 1_000.0

    def now(self) -> float:
        return self.time


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


def hot_meter(clock: ManualClock, noise: float = 0.002) -> Meter:
    """A meter whose specimen anneals at 450 °C: resistivity falls by the second."""
    world = World(clock, seed=3)
    world.zone.temperature = world.zone.setpoint = world.zone.working_setpoint = 450.0
    return Meter(MeterSettings(kind="meter", noise=noise), world, drop=lambda: None)


def run(meter: Meter, *commands: str) -> list[str]:
    replies = [reply for command in commands for reply in meter.execute(command)]
    assert meter.execute("SYST:ERR?") == ['+0,"No error"']
    return replies


def readings(block: str) -> list[float]:
    """The readings of an `R?` block, checking its length field."""
    digits = int(block[1])
    length = int(block[2 : 2 + digits])
    data = block[2 + digits :]
    assert len(data) == length
    return [float(value) for value in data.split(",")] if data else []


def test_samples_are_paced_by_the_timer_and_counted(clock: ManualClock) -> None:
    meter = hot_meter(clock)
    run(meter, "CONF:RES", "TRIG:SOUR IMM", "SAMP:SOUR TIM", "SAMP:COUN 5", "SAMP:TIM 2")
    assert run(meter, "CONF?", "SAMP:COUN?", "SAMP:TIM?") == ['"RES"', "+5", "+2.00000000E+00"]
    run(meter, "INIT")
    assert run(meter, "DATA:POIN?") == ["+1"]  # the first at once
    clock.time += 3.9
    assert run(meter, "DATA:POIN?") == ["+2"]
    clock.time += 0.1
    assert run(meter, "DATA:POIN?") == ["+3"]
    clock.time += 100
    assert run(meter, "DATA:POIN?") == ["+5"]  # the count, however long it runs
    first = readings(run(meter, "R? 3")[0])
    assert len(first) == 3
    assert run(meter, "DATA:POIN?") == ["+2"]  # read and erased
    assert len(readings(run(meter, "R?")[0])) == 2
    assert run(meter, "R? 10") == ["#10"]
    run(meter, "INIT")  # the run had ended: a new one may start


def test_readings_are_the_measurement_at_their_sample_time(clock: ManualClock) -> None:
    """The same physics as MEAS:RES? asked at each sample's time (noise off to compare)."""
    polled_clock = ManualClock()
    buffered, polled = hot_meter(clock, noise=0.0), hot_meter(polled_clock, noise=0.0)
    start = clock.time
    run(buffered, "CONF:RES", "SAMP:COUN 4", "SAMP:TIM 30", "INIT")
    clock.time += 95
    taken = readings(run(buffered, "R? 4")[0])
    expected = []
    for k in range(4):
        polled_clock.time = start + 30 * k
        expected.append(float(run(polled, "MEAS:RES?")[0]))
    assert taken == expected
    assert taken[0] > taken[-1]  # annealing: the samples are not all one moment's


@pytest.mark.parametrize(
    ("command", "code"),
    [
        ("SAMP:COUN 1000001", "-222"),
        ("SAMP:COUN 0", "-222"),
        ("SAMP:COUN 2.5", "-224"),
        ("SAMP:TIM 0", "-222"),
        ("SAMP:TIM 3601", "-222"),
        ("R? 0", "-222"),
        ("TRIG:SOUR BUS", "-224"),
        ("SAMP:SOUR IMM", "-224"),
        ("CONF:RES 10", "-108"),
    ],
)
def test_out_of_range_settings_are_errors(clock: ManualClock, command: str, code: str) -> None:
    meter = hot_meter(clock)
    run(meter, "SAMP:COUN 7")
    assert meter.execute(command) == []
    assert meter.execute("SYST:ERR?")[0].startswith(f"{code},")
    assert run(meter, "SAMP:COUN?") == ["+7"]  # the setting is unchanged


def test_abort_stops_and_the_next_init_clears(clock: ManualClock) -> None:
    meter = hot_meter(clock)
    run(meter, "SAMP:COUN 100", "SAMP:TIM 1", "INIT")
    clock.time += 2.5
    run(meter, "ABOR")
    clock.time += 50
    assert run(meter, "DATA:POIN?") == ["+3"]  # stopped, the memory kept
    run(meter, "ABOR")  # harmless when nothing runs
    run(meter, "INIT")
    assert run(meter, "DATA:POIN?") == ["+1"]  # cleared: only the new run's first


def test_init_while_running_is_ignored_with_an_error(clock: ManualClock) -> None:
    meter = hot_meter(clock)
    run(meter, "SAMP:COUN 10", "INIT")
    meter.execute("INIT")
    assert meter.execute("SYST:ERR?") == ['-213,"Init ignored"']


def test_configure_and_reset_stop_the_run_and_restore_defaults(clock: ManualClock) -> None:
    meter = hot_meter(clock)
    run(meter, "CONF:HARD", "SAMP:COUN 10", "SAMP:TIM 0.5", "INIT")
    run(meter, "CONF:KS")
    assert run(meter, "DATA:POIN?", "SAMP:COUN?", "CONF?") == ["+0", "+1", '"KS"']
    run(meter, "SAMP:COUN 10", "INIT", "*RST")
    assert run(meter, "DATA:POIN?", "CONF?") == ["+0", '"CAP"']


def test_an_overflow_keeps_the_newest_and_sets_questionable_bit_14(clock: ManualClock) -> None:
    meter = hot_meter(clock)
    run(meter, "SAMP:COUN 1000000", "SAMP:TIM 0.001", "INIT")
    assert run(meter, "STAT:QUES?") == ["0"]
    clock.time += 80  # 80,001 samples due, the memory holds 50,000
    assert run(meter, "DATA:POIN?") == [f"+{MEMORY_SIZE}"]
    assert run(meter, "STAT:QUES?") == ["16384"]
    assert run(meter, "STAT:QUES:EVEN?") == ["0"]  # read and cleared
    clock.time += 0.0105  # 10 more: the oldest 10 are pushed out
    assert run(meter, "DATA:POIN?", "STAT:QUES?") == [f"+{MEMORY_SIZE}", "16384"]
    clock.time += 0.0105  # and 10 more, before a *CLS clears the event
    assert run(meter, "*CLS", "STAT:QUES?") == ["0"]
