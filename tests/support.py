"""Helpers shared by tests: free ports, waiting for listeners, running `mdfd` as a process."""

from __future__ import annotations

import contextlib
import csv
import errno
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SIM_CONFIG = REPO / "config" / "sim.yaml"
EXAMPLES = REPO / "recipes" / "examples"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


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
    """Environment for a `config/sim.yaml` process with private state and free ports."""
    env = dict(os.environ)
    env.update(
        MDFD_VAR=str(var_dir),
        MDFD_FURNACE_PORT=str(free_port()),
        MDFD_REACTOR_PORT=str(free_port()),
        MDFD_METER_PORT=str(free_port()),
    )
    env.update(extra)
    return env


def mdfd(
    *args: str, env: dict[str, str] | None = None, timeout: float = 120.0, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the `mdfd` CLI as a separate process and wait for it."""
    return subprocess.run(
        [sys.executable, "-m", "mdfd.daemons.cli", *args],
        env=env,
        cwd=cwd or REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def start_mdfd(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.Popen[str]:
    """Start the `mdfd` CLI as a background process; the caller stops it by its PID."""
    return subprocess.Popen(
        [sys.executable, "-m", "mdfd.daemons.cli", *args],
        env=env,
        cwd=cwd or REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


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
