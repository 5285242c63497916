"""`mdfd serve` as a real process, `mdfctl` as a real process, and a tiny HTTP client for the
control socket (raw http.client, so the tests do not share code with the client under test)."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from tests.support import REPO, Child, mdf_config, memory_instruments, stop_process

WAIT = 60.0  # upper bound for any wait; never a pass/fail threshold

RECIPE = """
recipe: {{name: {name}, version: "1"}}
sweep:
  parameters:
    temperature: {{unit: degC, values: {temperatures}}}
steps:
  - set: {{meter.specimen: 1}}
  - ramp: {{channel: furnace.setpoint, to: temperature, rate: 50 degC/min}}
  - dwell: {dwell}
  - acquire: {{channels: [meter.resistivity, furnace.temperature], rate: 2, count: 4}}
record:
  process:
    - {{code: PRC_ANNEAL_TEMP, from: temperature}}
  properties:
    - {{code: PRP_ELECTRICAL_RESISTIVITY, from: meter.resistivity}}
"""


def write_config(tmp_path: Path, extra: str = "") -> Path:
    """The memory MDF the daemon tests serve (interlock at 1450 degC, a file spool upstream);
    `extra` is YAML text of further top-level sections."""
    instruments = memory_instruments()
    del instruments["meter"]["channels"]["hardness"]
    return mdf_config(
        tmp_path,
        instruments=instruments,
        safety={
            "interlocks": [
                {"channel": "furnace.temperature", "above": 1450, "message": "over-temperature"}
            ],
            "safe_state": {"furnace.setpoint": 25},
        },
        upstream={
            "publishers": [
                {"type": "file", "name": "spool", "directory": str(tmp_path / "var" / "spool")}
            ]
        },
        **(yaml.safe_load(extra) or {}),
    )


def write_recipe(
    tmp_path: Path,
    name: str = "daemon-test",
    temperatures: str = "[200, 300, 400]",
    dwell: str = "25 min",
) -> Path:
    """At time scale 3000 a 25 min dwell is half a wall second: points take about 0.5 s."""
    path = tmp_path / f"{name}.yaml"
    path.write_text(
        textwrap.dedent(RECIPE.format(name=name, temperatures=temperatures, dwell=dwell))
    )
    return path


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: Path) -> None:
        super().__init__("mdfd", timeout=WAIT)
        self._path = str(path)

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(WAIT)
        self.sock.connect(self._path)


def http_request(
    connection: http.client.HTTPConnection,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, Any]:
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        data = response.read()
    finally:
        connection.close()
    if response.getheader("Content-Type", "").startswith("application/json"):
        return response.status, json.loads(data)
    return response.status, data.decode(errors="replace")


class Daemon:
    """One `mdfd serve` process; its log goes to a file (a full pipe would stall it)."""

    def __init__(
        self, config: Path, *args: str, env: dict[str, str] | None = None, log: Path | None = None
    ) -> None:
        self.config = config
        self.args = args
        self.env = env
        self.log = log or config.parent / "serve.log"
        self.socket = config.parent / "var" / "run" / "control.sock"
        self.process: Child | None = None

    def start(self, wait: bool = True) -> Daemon:
        self.process = Child(
            [sys.executable, "-m", "mdfd.daemons.cli.mdfd", "serve", "--config", str(self.config),
             *self.args],
            logs=self.log.parent,
            name="mdfd-serve",
            env=self.env,
            log=self.log,
        )  # fmt: skip
        if wait:
            wait_until(self._serving, f"the daemon serving on {self.socket}", self)
        return self

    def _serving(self) -> bool:
        try:
            return self.request("GET", "/status")[0] == 200
        except OSError:
            return False

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, Any]:
        return http_request(_UnixConnection(self.socket), method, path, body, headers)

    def get(self, path: str) -> Any:
        status, data = self.request("GET", path)
        assert status == 200, (status, data)
        return data

    def run(self, run_id: str) -> dict[str, Any]:
        return self.get(f"/runs/{run_id}")

    def wait_status(self, run_id: str, *statuses: str) -> dict[str, Any]:
        found: dict[str, Any] = {}

        def reached() -> bool:
            found.update(self.run(run_id))
            return found["status"] in statuses

        wait_until(reached, f"run {run_id} to become {'/'.join(statuses)}", self)
        return found

    def wait_points(self, run_id: str, at_least: int) -> dict[str, Any]:
        found: dict[str, Any] = {}

        def reached() -> bool:
            found.update(self.run(run_id))
            return found["points_done"] >= at_least

        wait_until(reached, f"run {run_id} to reach {at_least} points", self)
        return found

    def signal(self, signum: int) -> None:
        assert self.process is not None
        self.process.send_signal(signum)

    def kill9(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=WAIT)

    def wait_exit(self) -> int:
        assert self.process is not None
        return self.process.wait(timeout=WAIT)

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process, timeout=WAIT)

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log_text(self) -> str:
        return self.log.read_text() if self.log.exists() else ""


def wait_until(predicate: Callable[[], bool], what: str, daemon: Daemon | None = None) -> None:
    deadline = time.monotonic() + WAIT
    while not predicate():
        if daemon is not None and daemon.process is not None and daemon.process.poll() is not None:
            raise AssertionError(
                f"daemon exited ({daemon.process.returncode}) while waiting for {what}:\n"
                + daemon.log_text()[-4000:]
            )
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def mdfctl(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mdfd.daemons.cli.mdfctl", *args],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=WAIT * 2,
        check=False,
    )


def submit(config: Path, recipe: Path, env: dict[str, str] | None = None) -> str:
    done = mdfctl("--config", str(config), "submit", str(recipe), "--json", env=env)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)["id"]


def point_rows(state_dir: Path, run_id: str) -> list[tuple[int, str]]:
    """The checkpoint table as SQLite has it (read-only; the daemon may still be writing)."""
    uri = f"file:{state_dir / 'state.sqlite3'}?mode=ro"
    with contextlib.closing(sqlite3.connect(uri, uri=True, timeout=WAIT)) as connection:
        return connection.execute(
            "SELECT point_index, status FROM points WHERE run_id = ? ORDER BY point_index",
            (run_id,),
        ).fetchall()


def environment(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("NOTIFY_SOCKET", None)
    env.pop("WATCHDOG_USEC", None)
    env.update(extra)
    return env
