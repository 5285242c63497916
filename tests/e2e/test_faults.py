"""The engine against simulators in a separate process: safety and failure behaviour.

The simulators outlive the run here, so what the run left the instruments in — the safe
state — can be read back from them afterwards, through the wire like any client would.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import (
    EXAMPLES,
    REPO,
    SIM_CONFIG,
    Child,
    mdfd,
    retry_port_race,
    sim_env,
    start_mdfd,
    stop_process,
)
from tests.support import start_simulators as simulators

METAL = EXAMPLES / "metal-annealing.yaml"


class Rig:
    def __init__(self, config: Path, env: dict[str, str], process: Child, logs: Path):
        self.config = config
        self.env = env
        self.process = process
        self.logs = logs

    def probe(self, instrument: str, channel: str) -> float:
        result = mdfd(
            "probe", "--config", str(self.config), instrument, channel, "--json", env=self.env
        )
        assert result.returncode == 0, result.stderr
        return float(json.loads(result.stdout)["channels"][channel]["value"])

    def scpi(self, command: str) -> None:
        port = int(self.env["MDFD_METER_PORT"])
        with socket.create_connection(("127.0.0.1", port), timeout=5) as connection:
            connection.sendall(command.encode() + b"\n")


def rig_config(tmp_path: Path, interlock_above: float = 1450) -> Path:
    text = SIM_CONFIG.read_text()
    text = text.replace(
        "vocabulary: vocabulary.yaml", f"vocabulary: {REPO / 'config' / 'vocabulary.yaml'}"
    )
    text = text.replace(
        "{channel: furnace.temperature, above: 1450,",
        f"{{channel: furnace.temperature, above: {interlock_above},",
    )
    path = tmp_path / "rig.yaml"
    path.write_text(text)
    return path


@pytest.fixture
def rig(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Rig]:
    interlock = getattr(request, "param", 1450)
    config = rig_config(tmp_path, interlock)
    env = sim_env(tmp_path / "var", MDFD_TIME_SCALE="1500")

    def attempt() -> Child:
        env.update(sim_env(tmp_path / "var", MDFD_TIME_SCALE="1500"))  # fresh ports
        return start_simulators(config, env, tmp_path / "endpoints.json")

    process = retry_port_race(attempt)
    try:
        yield Rig(config, env, process, tmp_path)
    finally:
        stop_process(process)


def start_simulators(config: Path, env: dict[str, str], endpoints: Path) -> Child:
    """`mdfd sim` as a process, returned once it has written its endpoints (all listening)."""
    return simulators(config, logs=endpoints.parent, env=env, endpoints=endpoints)[0]


def start_run(rig: Rig, recipe: Path = METAL, config: Path | None = None) -> Child:
    return start_mdfd(
        "run",
        "--json",
        "--config",
        str(config or rig.config),
        str(recipe),
        logs=rig.logs,
        env=rig.env,
    )


def wait_for_first_point(rig: Rig, run: Child, timeout: float = 90) -> None:
    import sqlite3

    state = Path(rig.env["MDFD_VAR"]) / "sim-mdf-01" / "state" / "state.sqlite3"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert run.poll() is None, run.err_text()[-3000:]
        if state.exists():
            connection = sqlite3.connect(state)
            try:
                if connection.execute("SELECT COUNT(*) FROM points").fetchone()[0]:
                    return
            except sqlite3.OperationalError:
                pass
            finally:
                connection.close()
        time.sleep(0.1)
    raise TimeoutError("no point completed")


def finish(run: Child, timeout: float = 120) -> tuple[int, dict, str]:
    code, out, err = run.finish(timeout)
    lines = out.strip().splitlines()
    return code, (json.loads(lines[-1]) if lines else {}), err


def test_sigterm_stops_in_the_safe_state_read_back_from_the_furnace(rig: Rig) -> None:
    run = start_run(rig)
    wait_for_first_point(rig, run)
    assert rig.probe("furnace", "setpoint") > 100
    run.send_signal(signal.SIGTERM)
    code, summary, err = finish(run)
    assert code == 3, err[-2000:]
    assert summary["status"] == "interrupted"
    assert rig.probe("furnace", "setpoint") == pytest.approx(25.0)


@pytest.mark.parametrize("rig", [280.0], indirect=True)
def test_interlock_breach_fails_the_run_and_drives_the_safe_state(rig: Rig) -> None:
    code, summary, err = finish(start_run(rig))
    assert code == 1, err[-2000:]
    assert summary["status"] == "failed"
    assert "furnace.temperature" in summary["message"]
    assert "above 280" in summary["message"]
    assert summary["points_done"] >= 2  # the 200 and 250 degC points completed
    assert rig.probe("furnace", "setpoint") == pytest.approx(25.0)
    assert "interlock breached" in err


def test_meter_fault_outlasting_the_retry_policy_stops_the_run(rig: Rig) -> None:
    run = start_run(rig)
    wait_for_first_point(rig, run)
    rig.scpi("SIM:FAULT:MUTE 100000")
    code, summary, err = finish(run)
    assert code == 1, err[-2000:]
    assert summary["status"] == "failed"
    assert "meter" in summary["message"]
    assert "retrying" in err
    rig.scpi("SIM:FAULT:MUTE 0")
    assert rig.probe("furnace", "setpoint") == pytest.approx(25.0)


def test_simulators_vanishing_mid_run_fail_the_run_without_hanging(rig: Rig) -> None:
    run = start_run(rig)
    wait_for_first_point(rig, run)
    os.kill(rig.process.pid, signal.SIGKILL)
    rig.process.wait(timeout=10)
    code, summary, err = finish(run, timeout=180)
    assert code == 1, err[-2000:]
    assert summary["status"] == "failed"
    assert summary["points_done"] >= 1
    assert "safe state write failed" in err


DWELL_RECIPE = """
recipe: {name: dwell-guard, version: "1"}
sweep:
  parameters:
    temperature: {unit: degC, values: [100, 110, 120, 130, 140, 150]}
steps:
  - set: {furnace.setpoint: temperature}
  - dwell: 2 h
  - acquire: {channels: [furnace.temperature], rate: 1, count: 2}
on_error: {retries: 0, backoff: 1 s, then: fail_point}
"""


def furnace_fault(rig: Rig, exception_code: int) -> None:
    """Switch the simulated furnace's "every reply is this exception" fault (register 902)."""
    from pymodbus.client import ModbusTcpClient

    client = ModbusTcpClient("127.0.0.1", port=int(rig.env["MDFD_FURNACE_PORT"]), timeout=5)
    assert client.connect()
    try:
        assert not client.write_register(902, exception_code, device_id=1).isError()
    finally:
        client.close()


def test_an_interlock_that_cannot_be_read_stops_the_run(rig: Rig, tmp_path: Path) -> None:
    """Device busy during a dwell: a warning at once, then the run stops as failed."""
    config = tmp_path / "guarded.yaml"
    config.write_text(
        rig.config.read_text().replace("safety:\n", "safety:\n  unverifiable_after: 1 s\n", 1)
    )
    recipe = tmp_path / "dwell.yaml"
    recipe.write_text(DWELL_RECIPE)
    run = start_run(rig, recipe, config)
    wait_for_first_point(rig, run)
    furnace_fault(rig, 6)  # SERVER_DEVICE_BUSY on every request
    try:  # until the guard gives up on the furnace
        run.wait_for_line("interlock unverifiable too long", timeout=120)
    finally:
        furnace_fault(rig, 0)  # the fault ends: the safe-state write, retried, gets through
    code, summary, err = finish(run)
    seen = err.splitlines()
    assert code == 1, err[-2000:]
    assert summary["status"] == "failed"
    assert "interlock unverifiable" in summary["message"]
    assert "furnace.temperature" in summary["message"]
    assert summary["points_done"] < summary["points_total"]
    warning = json.loads(next(line for line in seen if "interlock unverifiable" in line))
    assert warning["level"] == "warning"
    assert warning["channels"] == ["furnace.temperature"]
    assert rig.probe("furnace", "setpoint") == pytest.approx(25.0)


SWEEP_RECIPE = """
recipe: {name: short-fault, version: "1"}
sweep:
  parameters:
    temperature: {unit: degC, values: [100, 110, 120, 130, 140, 150, 160, 170, 180, 190]}
steps:
  - set: {furnace.setpoint: temperature}
  - dwell: 20 min
  - acquire: {channels: [furnace.temperature], rate: 1, count: 2}
on_error: {retries: 1, backoff: 1 s, then: fail_point}
"""


def test_a_short_fault_fails_one_point_and_the_run_says_so(rig: Rig, tmp_path: Path) -> None:
    """4 s of "device busy": the point it hits fails, the next one waits for the furnace, and
    the run ends completed_with_failures (exit 4) naming how many failed."""
    recipe = tmp_path / "sweep.yaml"
    recipe.write_text(SWEEP_RECIPE)
    run = start_run(rig, recipe)
    wait_for_first_point(rig, run)
    furnace_fault(rig, 6)
    try:
        time.sleep(4)  # the fault's length, not a bound on anything measured
    finally:
        furnace_fault(rig, 0)
    code, summary, err = finish(run)
    assert code == 4, err[-2000:]
    assert summary["status"] == "completed_with_failures"
    assert summary["points_done"] == 10
    assert summary["points_failed"] == 1
    assert summary["message"] == "1 of 10 points failed"
    assert "waiting for instruments before the next point" in err


REACTOR_RECIPE = """
recipe: {name: server-restart, version: "1"}
sweep:
  parameters:
    temperature: {unit: degC, values: [100, 110, 120, 130, 140, 150, 160, 170, 180, 190]}
steps:
  - set: {reactor.temperature_sp: temperature}
  - dwell: 20 min
  - acquire: {channels: [reactor.temperature], rate: 1, count: 2}
on_error: {retries: 1, backoff: 1 s, then: fail_point}
"""


def test_a_server_restart_costs_at_most_the_point_it_hits(rig: Rig, tmp_path: Path) -> None:
    """The OPC-UA (and Modbus) servers restart mid-sweep: the driver reconnects and the next
    point waits for it, instead of every point failing while it does."""
    config = tmp_path / "patient.yaml"  # the restart must not trip the interlock monitor
    config.write_text(
        rig.config.read_text().replace("safety:\n", "safety:\n  unverifiable_after: 5 min\n", 1)
    )
    recipe = tmp_path / "reactor.yaml"
    recipe.write_text(REACTOR_RECIPE)
    run = start_run(rig, recipe, config)
    wait_for_first_point(rig, run)
    stop_process(rig.process)
    time.sleep(1)  # the restart's length, not a bound on anything measured
    rig.process = start_simulators(rig.config, rig.env, tmp_path / "endpoints-again.json")
    try:
        code, summary, err = finish(run, timeout=300)
    finally:
        stop_process(rig.process)
    assert summary["points_done"] == 10, err[-2000:]
    assert summary["points_failed"] <= 1, err[-2000:]
    assert code == (4 if summary["points_failed"] else 0)


def test_the_wait_for_instruments_is_bounded(rig: Rig, tmp_path: Path) -> None:
    """A furnace busy for good: each point waits its bounded time, fails, and the run ends
    completed_with_failures instead of hanging (interlock stop disabled to isolate the wait)."""
    config = tmp_path / "unguarded.yaml"
    config.write_text(
        rig.config.read_text().replace("safety:\n", "safety:\n  unverifiable_after: null\n", 1)
    )
    recipe = tmp_path / "bounded.yaml"
    text = SWEEP_RECIPE.replace(
        "values: [100, 110, 120, 130, 140, 150, 160, 170, 180, 190]", "values: [100, 110, 120]"
    )
    recipe.write_text(
        text.replace("then: fail_point}", "then: fail_point, wait_for_instruments: 1 s}")
    )
    run = start_run(rig, recipe, config)
    wait_for_first_point(rig, run)
    furnace_fault(rig, 6)
    try:
        code, summary, err = finish(run)
    finally:
        furnace_fault(rig, 0)
    assert code == 4, err[-2000:]
    assert summary["status"] == "completed_with_failures"
    assert summary["points_failed"] == 2
    assert summary["message"] == "2 of 3 points failed"
    assert "instruments still not answering; the next point goes ahead" in err
