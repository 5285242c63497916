"""What the way to READY=1 and a first `mdfctl status` import (ADR 0075), without timing.

The daemon runs as a real process under `python -X importtime`, which writes one line per module
it imports to stderr, interleaved in order with the JSON log lines. Everything imported before
the `daemon serving` line is on the way to READY=1: config validation through the drivers' and
simulators' light config models, the state database, the control API. The protocol libraries
come after, with the simulators and the instrument connections — the test sees them arrive, so
it would see them move back before READY. `mdfctl status` is run the same way against it.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from tests.support import REPO, SIM_CONFIG, Child, edit_config, sim_env, stop_process

from .harness import WAIT, wait_until

PROTOCOL_LIBRARIES = ("pymodbus", "asyncua")
"""Kept off the way to READY. pyvisa is not: its resource-name grammar validates a VISA
instrument's `resource`, and a copy of that grammar would drift (ADR 0075)."""
WHEN_USED = ("h5py", "aiomqtt", "paho", "mdfd.daemons.upstream.publishers.http")
"""Imported when a run's file is opened / a publisher starts, never before READY=1 (ADR 0085)."""
NOT_FOR_MDFCTL = (
    "aiohttp",
    "pymodbus",
    "asyncua",
    "pyvisa",
    "h5py",
    "numpy",
    "pint",
    "mdfd.daemons.engine",
)
"""aiohttp too: it was 0.135 s of `mdfctl`'s CPU (ADR 0085)."""


def _split(stderr: str, marker: str) -> tuple[list[str], list[str]]:
    """Modules imported before the JSON log line whose event is `marker`, and after it."""
    before: list[str] = []
    after: list[str] = []
    current = before
    for line in _entries(stderr):
        if line.startswith("import time:"):
            name = line.rsplit("|", 1)[-1].strip()
            if name != "imported package":  # the header line
                current.append(name)
        elif line.startswith("{") and json.loads(line).get("event") == marker:
            current = after
    assert current is after, f"no {marker!r} log line"
    return before, after


def _entries(stderr: str) -> list[str]:
    """stderr's log lines and import-time lines, in order. The interpreter writes its import
    times to the file descriptor from whichever thread imports, so one can land between a log
    line and its newline: such a line is cut after the JSON object."""
    entries = []
    for line in stderr.splitlines():
        if line.startswith("{"):
            _, end = JSON.raw_decode(line)
            entries.append(line[:end])
            line = line[end:]
        if line:
            entries.append(line)
    return entries


JSON = json.JSONDecoder()


def _of(modules: list[str], packages: tuple[str, ...]) -> set[str]:
    """Which of `packages` (or a module inside one) appear in `modules`."""
    return {p for p in packages for m in modules if m == p or m.startswith(f"{p}.")}


def _serve(
    tmp_path: Path, *args: str, config: Path = SIM_CONFIG
) -> tuple[Child, Path, dict[str, str]]:
    """`mdfd serve` on config/sim.yaml under `-X importtime`; its log is the file returned."""
    env = sim_env(tmp_path / "var")
    env.pop("NOTIFY_SOCKET", None)
    log = tmp_path / "serve.log"
    daemon = Child(
        [sys.executable, "-X", "importtime", "-m", "mdfd.daemons.cli.mdfd", "--log-json", "serve",
         "--config", str(config), *args],
        logs=tmp_path,
        name="mdfd-serve",
        env=env,
        log=log,
    )  # fmt: skip
    return daemon, log, env


def test_without_simulators_the_drivers_load_after_ready(tmp_path: Path) -> None:
    """Real instruments (here: nothing listens at their addresses) are connected to in the
    background after READY=1, their drivers imported then too."""
    daemon, log, _ = _serve(tmp_path)
    try:

        def drivers_imported() -> bool:
            text = log.read_text(errors="replace")
            assert daemon.poll() is None, text[-4000:]
            imported = [line.rsplit("|", 1)[-1].strip() for line in text.splitlines()]
            return _of(imported, PROTOCOL_LIBRARIES) == set(PROTOCOL_LIBRARIES)

        wait_until(drivers_imported, "the drivers imported")
    finally:
        stop_process(daemon, timeout=WAIT)
    before, after = _split(log.read_text(errors="replace"), "daemon serving")
    assert "mdfd.daemons.core.config" in before
    assert _of(before, PROTOCOL_LIBRARIES) == set()
    assert _of(after, PROTOCOL_LIBRARIES) == set(PROTOCOL_LIBRARIES)


def test_protocol_libraries_load_after_ready_and_mdfctl_status_loads_none(
    tmp_path: Path,
) -> None:
    daemon, log, env = _serve(tmp_path, "--simulate")
    try:

        def connected() -> bool:
            text = log.read_text(errors="replace")
            assert daemon.poll() is None, text[-4000:]
            return text.count('"instrument available"') >= 3

        wait_until(connected, "every instrument available")
        status = subprocess.run(
            [sys.executable, "-X", "importtime", "-m", "mdfd.daemons.cli.mdfctl",
             "--config", str(SIM_CONFIG), "--json", "status"],
            env=env,
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=WAIT,
            check=False,
        )  # fmt: skip
    finally:
        stop_process(daemon, timeout=WAIT)

    before, after = _split(log.read_text(errors="replace"), "daemon serving")
    assert "mdfd.daemons.core.config" in before
    assert "mdfd.daemons.serve.api" in before
    assert _of(before, PROTOCOL_LIBRARIES) == set()
    # The simulators and the instruments' drivers brought them in, after READY=1.
    assert _of(after, PROTOCOL_LIBRARIES) == set(PROTOCOL_LIBRARIES)

    assert status.returncode == 0, status.stderr[-3000:]
    assert set(json.loads(status.stdout)["instruments"]) == {"furnace", "reactor", "meter"}
    imported = [
        line.rsplit("|", 1)[-1].strip()
        for line in status.stderr.splitlines()
        if line.startswith("import time:")
    ]
    assert "mdfd.daemons.cli.client" in imported
    assert _of(imported, NOT_FOR_MDFCTL) == set()


def test_h5py_and_the_publishers_libraries_load_only_when_used(tmp_path: Path) -> None:
    """No run, so no file opened: h5py is never imported. The MQTT and HTTP publishers (their
    peers do not listen: they retry) import their libraries when their drains start them,
    after READY=1."""
    config = edit_config(
        Path(shutil.copy(SIM_CONFIG, tmp_path / "sim.yaml")),
        lambda model: model["upstream"]["publishers"].extend(
            [
                {"type": "mqtt", "name": "broker", "host": "127.0.0.1", "port": 1},
                {"type": "http", "name": "platform", "url": "http://127.0.0.1:1/records"},
            ]
        ),
    )
    daemon, log, _ = _serve(tmp_path, "--simulate", config=config)
    try:

        def started() -> bool:
            text = log.read_text(errors="replace")
            assert daemon.poll() is None, text[-4000:]
            imported = [line.rsplit("|", 1)[-1].strip() for line in text.splitlines()]
            return text.count('"instrument available"') >= 3 and _of(imported, WHEN_USED) == set(
                WHEN_USED
            ) - {"h5py"}

        wait_until(started, "every instrument available and both publishers started")
    finally:
        stop_process(daemon, timeout=WAIT)
    before, after = _split(log.read_text(errors="replace"), "daemon serving")
    assert "mdfd.daemons.engine.runner" in before
    assert _of(before, WHEN_USED) == set()
    assert _of(after, WHEN_USED) == set(WHEN_USED) - {"h5py"}
