"""The test helpers themselves: children log to files, a failed test shows their output, and
the config builder writes what the loader accepts."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from mdfd.daemons.core.config import load_config
from tests.daemon.harness import Daemon, environment, write_config
from tests.support import (
    PORT_TAKEN,
    REPO,
    SIM_CONFIG,
    Child,
    free_port,
    mdf_config,
    mdfd,
    refused_port,
    retry_port_race,
    sim_env,
    stop_process,
)

# Four times a pipe's 64 KiB: with stderr=PIPE and nobody reading, the child blocks mid-write.
CHATTY = "import sys\nsys.stderr.write('x' * 256 * 1024)\nsys.stderr.flush()\nprint('done')\n"


def test_a_chatty_child_never_blocks_on_its_output(tmp_path: Path) -> None:
    child = Child([sys.executable, "-c", CHATTY], logs=tmp_path, name="chatty")
    code, out, err = child.finish(timeout=60)  # an upper bound; a full pipe would hit it
    assert code == 0
    assert out == "done\n"
    assert len(err) == 256 * 1024
    assert child.err_path.parent == tmp_path


def test_wait_for_line_fails_at_once_when_the_child_exits_without_it(tmp_path: Path) -> None:
    child = Child(
        [sys.executable, "-c", "import sys; sys.stderr.write('boom\\n')"], logs=tmp_path, name="x"
    )
    try:
        with pytest.raises(AssertionError, match=r"exited \(0\)[^\n]*\n.*boom"):
            child.wait_for_line("never written", timeout=60)
    finally:
        stop_process(child)


FAILING = """
import sys
from tests.support import Child


def test_fails(tmp_path):
    child = Child([sys.executable, "-c", "print('child says hello')"], logs=tmp_path, name="hi")
    child.finish(timeout=60)
    assert False
"""


def test_a_failed_test_reports_the_output_of_its_children(tmp_path: Path) -> None:
    """A failing test in a throwaway directory whose conftest takes the hooks of ours."""
    inner = tmp_path / "inner"
    inner.mkdir()
    (inner / "conftest.py").write_text(
        "from tests.conftest import pytest_runtest_makereport, pytest_runtest_setup  # noqa\n"
    )
    (inner / "test_failing.py").write_text(FAILING)
    (inner / "pytest.ini").write_text("[pytest]\n")
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:xdist", "-p", "no:cacheprovider", "-q",
         "-c", str(inner / "pytest.ini"), "--rootdir", str(inner), str(inner)],
        cwd=REPO, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 1, result.stdout + result.stderr
    assert "hi-1 stdout" in result.stdout, result.stdout
    assert "child says hello" in result.stdout


def test_mdf_config_writes_a_config_the_loader_accepts(tmp_path: Path) -> None:
    loaded = load_config(mdf_config(tmp_path, simulation={"time_scale": 200}, safety=None))
    model = loaded.model
    assert sorted(model.instruments) == ["furnace", "meter"]
    assert model.storage.state_dir == tmp_path / "var" / "state"
    assert model.simulation.time_scale == 200
    assert "safety" not in yaml.safe_load((tmp_path / "mdf.yaml").read_text())


def test_a_refused_port_refuses_and_cannot_be_taken_while_held() -> None:
    with refused_port() as port:
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=5)
        with socket.socket() as other, pytest.raises(OSError, match="in use"):
            other.bind(("127.0.0.1", port))


SIM_RECIPE = """\
recipe: {name: port-race, version: "1"}
sweep:
  parameters:
    temperature: {unit: degC, values: [300]}
steps:
  - set: {furnace.setpoint: temperature}
  - acquire: {channels: [furnace.temperature], rate: 1, count: 2}
"""


def test_a_port_taken_between_free_port_and_the_bind_is_retried_once(tmp_path: Path) -> None:
    """The first attempt's furnace port is taken (as another xdist worker might); the run is
    refused (exit 2, nothing touched) and the second attempt, on fresh ports, completes."""
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(SIM_RECIPE)
    attempts: list[subprocess.CompletedProcess[str]] = []

    def attempt() -> subprocess.CompletedProcess[str]:
        env = sim_env(tmp_path / "var", MDFD_TIME_SCALE="3000")
        command = ("run", "--simulate", "--json", "--config", str(SIM_CONFIG), str(recipe))
        if attempts:
            attempts.append(mdfd(*command, env=env, timeout=120))
            return attempts[-1]
        with socket.socket() as thief:
            thief.bind(("127.0.0.1", int(env["MDFD_FURNACE_PORT"])))
            thief.listen()
            attempts.append(mdfd(*command, env=env, timeout=120))
        return attempts[-1]

    result = retry_port_race(attempt)
    assert len(attempts) == 2
    assert attempts[0].returncode == 2
    assert PORT_TAKEN in attempts[0].stderr
    assert result.returncode == 0, result.stderr[-3000:]


def test_a_daemon_whose_control_port_was_taken_is_started_again_on_a_fresh_one(
    tmp_path: Path,
) -> None:
    ports: list[int] = []

    def attempt() -> Daemon:
        with contextlib.ExitStack() as stack:
            if ports:
                port = free_port()
            else:  # the first attempt's port is taken, as by another xdist worker
                thief = stack.enter_context(socket.socket())
                thief.bind(("127.0.0.1", 0))
                thief.listen()
                port = thief.getsockname()[1]
            ports.append(port)
            extra = f"control:\n  tcp: {{host: 127.0.0.1, port: {port}, token_env: TOKEN}}\n"
            daemon = Daemon(write_config(tmp_path, extra=extra), env=environment(TOKEN="t"))
            return daemon.start()

    daemon = retry_port_race(attempt)
    try:
        assert len(ports) == 2
        assert "address already in use" in daemon.log_text()  # the first attempt's end
        with socket.create_connection(("127.0.0.1", ports[1]), timeout=5):
            pass  # the second daemon serves on its port
    finally:
        daemon.stop()
