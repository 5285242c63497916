"""`mdfd sim` as mdfd-sim.service runs it: READY=1 once every simulator listens, STOPPING=1
and exit 0 on SIGTERM; inside the unit's system-call filter and MDWE where the machine can
apply them (see sandbox.py)."""

from __future__ import annotations

import json
import signal
import socket
import sys
from pathlib import Path

import pytest
from sandbox import command as sandboxed
from sandbox import unavailable

from tests.support import REPO, SIM_CONFIG, Child, sim_env, stop_process

HERE = Path(__file__).resolve().parent
WAIT = 60.0


def _receive(sock: socket.socket) -> dict[str, str]:
    data = sock.recv(4096)
    return dict(line.split("=", 1) for line in data.decode().split("\n"))


@pytest.mark.slow
def test_simulators_notify_ready_and_stopping(tmp_path: Path) -> None:
    address = str(tmp_path / "notify.sock")
    endpoints_file = tmp_path / "endpoints.json"
    env = sim_env(tmp_path / "var", NOTIFY_SOCKET=address)
    command = [
        sys.executable,
        "-m",
        "mdfd.daemons.cli.mdfd",
        "sim",
        "--config",
        str(SIM_CONFIG),
        "--endpoints-file",
        str(endpoints_file),
    ]
    if unavailable() is None:
        command = sandboxed(REPO / "systemd/mdfd-sim.service", *command)
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(address)
        sock.settimeout(WAIT)
        process = Child(command, logs=tmp_path, name="mdfd-sim", env=env)
        try:
            ready = _receive(sock)
            assert ready["READY"] == "1"
            assert ready["STATUS"].startswith("simulating ")
            # Ready means listening: every TCP endpoint accepts a connection right now.
            endpoints = json.loads(endpoints_file.read_text())
            assert set(endpoints) == {"furnace", "meter", "reactor"}
            for name in ("MDFD_FURNACE_PORT", "MDFD_METER_PORT", "MDFD_REACTOR_PORT"):
                socket.create_connection(("127.0.0.1", int(env[name])), timeout=5).close()
            assert (tmp_path / "var/sim-mdf-01/run/furnace.pty").exists()
            process.send_signal(signal.SIGTERM)
            assert _receive(sock) == {"STOPPING": "1"}
            assert process.wait(timeout=WAIT) == 0, process.err_text()[-3000:]
        finally:
            stop_process(process)
