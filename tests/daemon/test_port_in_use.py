"""A simulator port already taken: one located line naming the port, who holds it and the
variable to change, exit 2 (bad setup, nothing touched) — from every command that starts the
simulators, run as processes against a port this test holds."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from mdfd.daemons.config import load_config
from mdfd.daemons.simulation import running_simulators
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
