"""Helpers shared by tests: free ports, waiting for listeners, running `mdfd` as a process
(its output to files), building MDF configs."""

from __future__ import annotations

import contextlib
import csv
import errno
import itertools
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
SIM_CONFIG = REPO / "config" / "sim.yaml"
EXAMPLES = REPO / "recipes" / "examples"


def free_port() -> int:
    """A port that was free a moment ago, for a process that must be told its port up front.

    Residual race: the port is closed before it is handed on, so under xdist another process
    may bind it first (the child then fails with "address in use"). Prefer port 0 and ask the
    process where it listens (`start_simulators` reads `mdfd sim --endpoints-file`), or
    `refused_port` for an address where nothing may listen; keep this for fixed ports such
    as config/sim.yaml's MDFD_*_PORT (`sim_env`), whose callers retry once (`retry_port_race`).
    """
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def refused_port() -> Iterator[int]:
    """A port bound by this process and never listened on: every connection to it is refused,
    and no other process can take it while the block runs (unlike a closed `free_port`)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield int(sock.getsockname()[1])


# What mdfd says when a port it was told to bind is taken: "port N is already in use by ..."
# (a simulator: exit 2, nothing touched) or "... address already in use" (a control socket).
PORT_TAKEN = "already in use"
T = TypeVar("T")


def retry_port_race(attempt: Callable[[], T]) -> T:
    """`attempt()`, once more if a port it took from `free_port` was taken in between.

    `attempt` must choose fresh ports itself (e.g. call `sim_env`). The race shows as an
    `mdfd` result with exit 2 naming the taken port, or as an AssertionError carrying that
    message (`start_simulators`, `Daemon.start`); mdfd stops before running anything, so
    trying again is safe. A second failure is reported as it is.
    """
    try:
        result = attempt()
    except AssertionError as exc:
        if PORT_TAKEN not in str(exc).lower():
            raise
        return attempt()
    if (
        isinstance(result, subprocess.CompletedProcess)
        and result.returncode == 2
        and PORT_TAKEN in result.stderr.lower()
    ):
        return attempt()
    return result


def require_tool(tool: str, package: str) -> str:
    """The tool's path; if it is missing, skip the test here, naming the Debian package.

    `scripts/test` installs Debian packages only as root (CI, a fresh machine); a non-root
    developer gets these skips, listed by `pytest -rs`, instead of a FileNotFoundError.
    """
    path = shutil.which(tool)
    if path is None:
        pytest.skip(
            f"{tool} is not installed (apt-get install {package}; as root scripts/test does)"
        )
    return path


def wait_for_port(port: int, host: str = "127.0.0.1", timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"nothing listens on {host}:{port} after {timeout}s") from None
            time.sleep(0.05)


def sim_env(var_dir: Path, **extra: str) -> dict[str, str]:
    """Environment for a `config/sim.yaml` process with private state and free ports.

    config/sim.yaml takes its ports from MDFD_*_PORT for the instruments and the simulators
    alike, so they are fixed before the process starts (`free_port`, with its residual race;
    wrap the start in `retry_port_race`)."""
    env = dict(os.environ)
    env.update(
        MDFD_VAR=str(var_dir),
        MDFD_FURNACE_PORT=str(free_port()),
        MDFD_REACTOR_PORT=str(free_port()),
        MDFD_METER_PORT=str(free_port()),
        MDFD_WEB_PORT="0",
    )
    env.update(extra)
    return env


def mdfd(
    *args: str, env: dict[str, str] | None = None, timeout: float = 120.0, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the `mdfd` CLI as a separate process and wait for it."""
    return subprocess.run(
        [sys.executable, "-m", "mdfd.daemons.cli.mdfd", *args],
        env=env,
        cwd=cwd or REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


class Child(subprocess.Popen[str]):
    """A long-lived child (daemon, simulator, run) whose stdout and stderr go to files.

    A pipe nobody reads fills at 64 KiB and then blocks a chatty child mid-write, so the
    test hangs for a reason that has nothing to do with the code under test. Files never
    fill; the test reads them when it wants (`out_text`, `err_text`, `wait_for_line`), and
    `tests/conftest.py` prints their tails when a test fails. With `log`, both streams are
    appended to that one file instead (a daemon's log, kept across restarts).
    """

    def __init__(
        self,
        command: list[str],
        *,
        logs: Path,
        name: str,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
        log: Path | None = None,
    ) -> None:
        logs.mkdir(parents=True, exist_ok=True)
        stem = f"{name}-{next(_CHILD_NUMBERS)}"
        self.name = stem
        self.out_path = log or logs / f"{stem}.stdout"
        self.err_path = log or logs / f"{stem}.stderr"
        mode = "a" if log else "w"
        with self.out_path.open(mode) as out, self.err_path.open(mode) as err:
            super().__init__(command, env=env, cwd=cwd or REPO, stdout=out, stderr=err, text=True)
        CHILDREN.append(self)

    def out_text(self) -> str:
        return self.out_path.read_text(errors="replace")

    def err_text(self) -> str:
        return self.err_path.read_text(errors="replace")

    def finish(self, timeout: float) -> tuple[int, str, str]:
        """Wait (an upper bound) for the child to exit; its code, stdout and stderr.

        On timeout the child is stopped and `subprocess.TimeoutExpired` propagates."""
        try:
            code = self.wait(timeout=timeout)
        finally:
            stop_process(self)
        return code, self.out_text(), self.err_text()

    def wait_for_line(self, text: str, timeout: float = 60.0, stream: str = "stderr") -> str:
        """The first line of `stream` containing `text`, once the child has written it.

        Fails at once if the child exits first; `timeout` is an upper bound, not a threshold."""
        path = self.err_path if stream == "stderr" else self.out_path
        deadline = time.monotonic() + timeout
        while True:
            exited = self.poll() is not None
            for line in path.read_text(errors="replace").splitlines():
                if text in line:
                    return line
            if exited:
                raise AssertionError(
                    f"{self.name} exited ({self.returncode}) before writing {text!r}:\n"
                    + self.err_text()[-3000:]
                )
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.name} wrote no {text!r} within {timeout} s")
            time.sleep(0.05)


# Every child started in this process, for the failure report in tests/conftest.py (xdist
# workers are separate processes, so each has its own list).
CHILDREN: list[Child] = []
_CHILD_NUMBERS = itertools.count(1)


def start_mdfd(
    *args: str, logs: Path, env: dict[str, str] | None = None, cwd: Path | None = None
) -> Child:
    """Start the `mdfd` CLI as a background process logging to files in `logs` (the test's
    tmp dir); the caller stops it by its PID (`stop_process`)."""
    return Child(
        [sys.executable, "-m", "mdfd.daemons.cli.mdfd", *args],
        logs=logs,
        name="mdfd-" + next((a for a in args if not a.startswith("-")), "cli"),
        env=env,
        cwd=cwd,
    )


def start_simulators(
    config: Path,
    *args: str,
    logs: Path,
    env: dict[str, str] | None = None,
    endpoints: Path | None = None,
    timeout: float = 60.0,
) -> tuple[Child, dict[str, dict[str, str]]]:
    """`mdfd sim` as its own process, returned once every simulator listens, with where
    (`{simulator: {"tcp": "127.0.0.1:40123", ...}}` from `--endpoints-file`).

    `args` go before `sim` (e.g. `--log-json`). A simulator configured on port 0 gets a free
    one from the kernel and says which here: no race with another test for the number."""
    endpoints = endpoints or logs / "endpoints.json"
    endpoints.unlink(missing_ok=True)
    process = start_mdfd(
        *args, "sim", "--config", str(config), "--endpoints-file", str(endpoints),
        logs=logs, env=env,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + timeout
        while not endpoints.exists():
            if process.poll() is not None:
                raise AssertionError(f"simulators exited: {process.err_text()[-3000:]}")
            if time.monotonic() > deadline:
                raise AssertionError(f"simulators did not start within {timeout} s")
            time.sleep(0.05)
        return process, json.loads(endpoints.read_text())
    except BaseException:
        stop_process(process)
        raise


def endpoint_port(endpoint: str) -> int:
    """The port of a `host:port` endpoint as the simulators report it."""
    return int(endpoint.rsplit(":", 1)[1])


def stop_process(process: subprocess.Popen[str], timeout: float = 15.0) -> None:
    """Terminate by PID, escalate to kill, and reap — never leave a child behind."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=timeout)
    for stream in (process.stdout, process.stderr):
        if stream is not None:
            stream.close()


def memory_instruments() -> dict[str, Any]:
    """The memory-driver furnace and meter most engine, daemon and upstream tests run on."""
    return {
        "furnace": {
            "driver": "memory",
            "channels": {
                "temperature": {"unit": "degC", "follows": "setpoint", "tau": 30, "initial": 25},
                "setpoint": {
                    "unit": "degC",
                    "writable": True,
                    "limits": {"min": 0, "max": 1400},
                    "initial": 25,
                },
            },
        },
        "meter": {
            "driver": "memory",
            "channels": {
                "resistivity": {"unit": "microohm*cm", "initial": 1.8},
                "hardness": {"unit": "HV", "initial": 60},
                "specimen": {"writable": True},
            },
        },
    }


def mdf_config(tmp_path: Path, *, name: str = "mdf.yaml", **sections: Any) -> Path:
    """Write an MDF config to `tmp_path/name` and return its path.

    Built from dicts and dumped with yaml.safe_dump, so a test says only what differs from a
    plain MDF (private storage under `tmp_path/var`, the repository's vocabulary, time scale
    3000, the memory furnace and meter, a safe state) instead of copying a YAML template.
    Each keyword is a top-level section (`instruments=`, `simulators=`, `safety=`,
    `upstream=`...): given, it replaces the default section whole; given as None, it is left
    out.
    """
    var = tmp_path / "var"
    model: dict[str, Any] = {
        "mdf": {"id": "mem-mdf", "domain": "metal", "site": "TEST"},
        "storage": {
            "data_dir": str(var / "data"),
            "state_dir": str(var / "state"),
            "runtime_dir": str(var / "run"),
        },
        "vocabulary": str(REPO / "config" / "vocabulary.yaml"),
        "simulation": {"time_scale": 3000},
        "instruments": memory_instruments(),
        "safety": {"safe_state": {"furnace.setpoint": 25}},
    }
    model.update(sections)
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / name
    path.write_text(
        yaml.safe_dump({k: v for k, v in model.items() if v is not None}, sort_keys=False)
    )
    return path


def edit_config(path: Path, change: Callable[[dict[str, Any]], object]) -> Path:
    """Load the config at `path`, let `change` edit it as a dict, write it back: a test that
    needs one field different says which field, not which text."""
    model = yaml.safe_load(path.read_text())
    change(model)
    path.write_text(yaml.safe_dump(model, sort_keys=False))
    return path


def read_export(path: Path) -> list[dict[str, str]]:
    """The rows of an `mdfd export` CSV keyed by bare column name: the `#` comment block is
    skipped and the units are cut from the header (`furnace.temperature_mean [degC]`)."""
    lines = [line for line in path.read_text().splitlines() if not line.startswith("#")]
    reader = csv.reader(lines)
    names = [name.partition(" [")[0] for name in next(reader)]
    return [dict(zip(names, row, strict=True)) for row in reader]


@contextlib.contextmanager
def small_tmpfs(path: Path, size: str) -> Iterator[Path]:
    """A real file system of `size` (e.g. `8m`) at `path`, to fill; skips unless we may mount."""
    path.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def resize_tmpfs(path: Path, size: str) -> None:
    subprocess.run(["mount", "-o", f"remount,size={size}", str(path)], check=True)


def fill_disk(path: Path) -> Path:
    """Write `path` until its file system has no byte left (ENOSPC); returns the ballast."""
    chunk = bytes(64 * 1024)
    with path.open("wb", buffering=0) as ballast:
        try:
            while True:
                ballast.write(chunk)
        except OSError as exc:
            if exc.errno != errno.ENOSPC:
                raise
    return path
