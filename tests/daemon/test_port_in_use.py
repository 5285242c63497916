"""A simulator port already taken: one located line naming the port, who holds it and the
variable to change, exit 2 (bad setup, nothing touched) — from every command that starts the
simulators, run as processes against a port this test holds."""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from mdfd.daemons.core.clock import EngineClock
from mdfd.daemons.core.config import load_config
from mdfd.daemons.engine.events import EventBus
from mdfd.daemons.launch.simulation import running_simulators
from mdfd.daemons.serve.health import CONNECTING, HealthMonitor
from mdfd.daemons.serve.simulated import BackgroundSimulators
from mdfd.recipes.located import InputError, load_located
from tests.support import EXAMPLES, SIM_CONFIG, mdfd, sim_env

COMMANDS = {
    "run": (
        "run",
        "--simulate",
        "--config",
        str(SIM_CONFIG),
        str(EXAMPLES / "metal-annealing.yaml"),
    ),
    "serve": ("serve", "--simulate", "--config", str(SIM_CONFIG)),
    "sim": ("sim", "--config", str(SIM_CONFIG)),
}
SIMULATORS = {
    "reactor": "MDFD_REACTOR_PORT",
    "meter": "MDFD_METER_PORT",
}


@pytest.fixture
def held_port() -> Iterator[int]:
    """A loopback port this test process listens on, as a forgotten demo would."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


@pytest.mark.parametrize("command", COMMANDS)
def test_port_in_use_is_one_line_naming_port_holder_and_variable(
    tmp_path: Path, held_port: int, command: str
) -> None:
    env = sim_env(tmp_path / "var", MDFD_FURNACE_PORT=str(held_port))
    result = mdfd(*COMMANDS[command], env=env, timeout=60)
    assert result.returncode == 2, result.stderr
    [line] = result.stderr.splitlines()
    where = load_located(SIM_CONFIG).line_of(("simulators", "furnace", "port"))
    assert line.startswith(
        f"{SIM_CONFIG}:{where}: simulators.furnace.port: "
        f"port {held_port} is already in use by pid {os.getpid()} ("  # this test's process
    )
    assert line.endswith("); set MDFD_FURNACE_PORT to a free port")
    assert not (tmp_path / "var").exists()  # refused before a lock, a run row or a data file


@pytest.mark.parametrize("simulator", SIMULATORS)  # the furnace: the test above
def test_each_simulator_names_its_own_variable(
    tmp_path: Path, held_port: int, simulator: str
) -> None:
    env = sim_env(tmp_path / "var", **{SIMULATORS[simulator]: str(held_port)})
    result = mdfd(*COMMANDS["sim"], env=env, timeout=60)
    assert result.returncode == 2, result.stderr
    [line] = result.stderr.splitlines()
    assert f"simulators.{simulator}.port: port {held_port} is already in use" in line
    assert line.endswith(f"set {SIMULATORS[simulator]} to a free port")


async def test_port_taken_after_the_check_is_reported_the_same_way(
    tmp_path: Path, held_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The race: free when `require_simulators` looked, taken when the simulator binds."""
    for name, value in sim_env(tmp_path / "var", MDFD_METER_PORT=str(held_port)).items():
        monkeypatch.setenv(name, value)
    config = load_config(SIM_CONFIG)
    with pytest.raises(InputError) as raised:
        async with running_simulators(config):
            pytest.fail("the simulators started on a taken port")
    [problem] = raised.value.problems
    assert problem.field == "simulators.meter.port"
    assert f"port {held_port} is already in use by pid {os.getpid()}" in problem.message
    assert problem.message.endswith("set MDFD_METER_PORT to a free port")


def _listening(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(5)
        return probe.connect_ex(("127.0.0.1", port)) == 0


async def test_simulators_started_beside_the_one_that_failed_are_stopped(
    tmp_path: Path, held_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The simulators start concurrently; when one cannot, the others, whether they had
    finished starting or not, are stopped: nothing is left listening on their ports."""
    env = sim_env(tmp_path / "var", MDFD_METER_PORT=str(held_port))
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    config = load_config(SIM_CONFIG)
    with pytest.raises(InputError):
        async with running_simulators(config):
            pytest.fail("the simulators started on a taken port")
    for variable in ("MDFD_FURNACE_PORT", "MDFD_REACTOR_PORT"):
        assert not _listening(int(env[variable])), variable


async def test_a_simulator_failing_after_ready_is_handed_to_the_daemon_and_no_monitor_starts(
    tmp_path: Path, held_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`serve --simulate` starts its simulators after READY=1: the failure reaches the daemon
    (which stops and exits with it), and the instruments were never tried meanwhile."""
    for name, value in sim_env(tmp_path / "var", MDFD_REACTOR_PORT=str(held_port)).items():
        monkeypatch.setenv(name, value)
    config = load_config(SIM_CONFIG)
    failures: list[BaseException] = []
    arrived = asyncio.Event()

    def failed(exc: BaseException) -> None:
        failures.append(exc)
        arrived.set()

    health = HealthMonitor(config.model, EngineClock().now, EventBus(), deferred=True)
    async with health, BackgroundSimulators(config, health, failed) as simulators:
        simulators.start()
        async with asyncio.timeout(60):
            await arrived.wait()
        states = {h.state for h in health.health.values()}
    [failure] = failures
    assert isinstance(failure, InputError)
    assert failure.problems[0].field == "simulators.reactor.port"
    assert states == {CONNECTING}
    assert all(h.errors == 0 for h in health.health.values())
