"""`mdfd serve` as mdfd@.service runs it: Type=notify lifecycle on a real notify socket, the
watchdog pinged from the work loop, SIGHUP reload, SIGTERM exit 0, files private to the group;
inside the unit's system-call filter, address families, MDWE and umask where the machine can
apply them (see sandbox.py)."""

from __future__ import annotations

import json
import signal
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from sandbox import command as sandboxed
from sandbox import unavailable
from support import REPO

WAIT = 60.0  # upper bound for any wait; never a pass/fail threshold
CONFIG = """
mdf: {{id: svc-mdf, domain: metal, site: TEST}}
storage: {{data_dir: {root}/data, state_dir: {root}/state, runtime_dir: {root}/run}}
vocabulary: {vocabulary}
instruments:
  furnace:
    driver: memory
    channels:
      temperature: {{unit: degC, follows: setpoint, tau: 30, initial: 25}}
      setpoint: {{unit: degC, writable: true, limits: {{min: 0, max: 1400}}, initial: 25}}
safety:
  safe_state: {{furnace.setpoint: 25}}
upstream:
  publishers: [{{type: file, name: spool, directory: {root}/spool}}]
"""


class NotifySocket:
    def __init__(self, path: Path) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(WAIT)

    def until(self, key: str) -> list[dict[str, str]]:
        """Every message up to and including the first one carrying `key`."""
        seen: list[dict[str, str]] = []
        while not seen or key not in seen[-1]:
            data = self.sock.recv(4096).decode()
            seen.append(dict(line.split("=", 1) for line in data.split("\n")))
        return seen


@pytest.mark.slow
def test_serve_under_the_unit(tmp_path: Path) -> None:
    root = tmp_path / "var"
    config = tmp_path / "svc-mdf.yaml"
    config.write_text(CONFIG.format(root=root, vocabulary=REPO / "config" / "vocabulary.yaml"))
    notify = NotifySocket(tmp_path / "notify.sock")
    env = {
        "PATH": "/usr/bin:/bin",
        "NOTIFY_SOCKET": str(tmp_path / "notify.sock"),
        "WATCHDOG_USEC": "2000000",
        "PYTHONFAULTHANDLER": "1",
    }
    serve = [sys.executable, "-m", "mdfd.daemons.cli.mdfd", "serve", "--config", str(config)]
    if unavailable() is None:
        serve = sandboxed(REPO / "systemd" / "mdfd@.service", *serve)
    log = (tmp_path / "serve.log").open("w")
    process = subprocess.Popen(serve, env=env, cwd=REPO, stdout=log, stderr=log)
    try:
        ready = notify.until("READY")[-1]
        assert ready["READY"] == "1"
        # The work loop proves progress while idle: pings keep coming.
        assert notify.until("WATCHDOG")[-1] == {"WATCHDOG": "1"}
        assert notify.until("WATCHDOG")[-1] == {"WATCHDOG": "1"}

        control = root / "run" / "control.sock"
        assert stat.S_IMODE(control.stat().st_mode) == 0o660
        for path in (root / "state").iterdir():
            assert stat.S_IMODE(path.stat().st_mode) & 0o007 == 0, path  # UMask=0007
        status = subprocess.run(
            [
                sys.executable,
                "-m",
                "mdfd.daemons.cli.mdfctl",
                "--config",
                str(config),
                "status",
                "--json",
            ],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=WAIT,
            check=False,
        )
        assert status.returncode == 0, status.stderr
        assert json.loads(status.stdout)["mdf"]["id"] == "svc-mdf"

        process.send_signal(signal.SIGHUP)  # ExecReload=
        reload = notify.until("RELOADING")[-1]
        assert int(reload["MONOTONIC_USEC"]) > 0
        assert notify.until("READY")[-1]["READY"] == "1"

        process.send_signal(signal.SIGTERM)  # systemctl stop
        assert notify.until("STOPPING")[-1]["STOPPING"] == "1"
        assert process.wait(timeout=WAIT) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=WAIT)
        log.close()
        notify.sock.close()
