"""Daemon start-up: `mdfd serve --config config/sim.yaml --simulate` from exec to READY=1.

The benchmark plays systemd: it binds a UNIX datagram socket, passes it as NOTIFY_SOCKET, starts
the daemon as a process (private state directory, free loopback ports) and times the first
datagram carrying READY=1 — interpreter start, imports, config, simulators up, instruments
connected, control socket bound. Baseline: the bare interpreter start plus
`import mdfd.daemons.cli`, the floor any `mdfd` command pays. Lower is better for both; the
ratio says how many times the floor the whole start-up takes.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import Figure, arguments, report

REPO = Path(__file__).resolve().parent.parent
READY_TIMEOUT = 60.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_to_ready() -> float:
    """Seconds from spawning `mdfd serve` to its READY=1 datagram; the daemon is then stopped."""
    with tempfile.TemporaryDirectory(prefix="mdfd-bench-") as tmp:
        notify_path = Path(tmp) / "notify.sock"
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as notify:
            notify.bind(str(notify_path))
            env = dict(
                os.environ,
                NOTIFY_SOCKET=str(notify_path),
                MDFD_VAR=str(Path(tmp) / "var"),
                MDFD_FURNACE_PORT=str(free_port()),
                MDFD_REACTOR_PORT=str(free_port()),
                MDFD_METER_PORT=str(free_port()),
            )
            command = [sys.executable, "-m", "mdfd.daemons.cli", "serve"]
            command += ["--config", str(REPO / "config" / "sim.yaml"), "--simulate"]
            began = time.perf_counter()
            proc = subprocess.Popen(
                command, env=env, cwd=tmp, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
            )
            try:
                deadline = began + READY_TIMEOUT
                while True:
                    remaining = deadline - time.perf_counter()
                    if remaining <= 0 or proc.poll() is not None:
                        raise RuntimeError("mdfd serve did not report READY=1")
                    notify.settimeout(min(remaining, 1.0))
                    try:
                        message = notify.recv(4096).decode("utf-8", "replace")
                    except TimeoutError:
                        continue
                    if "READY=1" in message.splitlines():
                        return time.perf_counter() - began
            finally:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=10)
                if proc.stderr is not None:
                    proc.stderr.close()


def bare_import() -> float:
    began = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import mdfd.daemons.cli"], check=True, timeout=60)
    return time.perf_counter() - began


def cli_help() -> float:
    began = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "mdfd.daemons.cli", "--help"],
        check=True,
        timeout=60,
        stdout=subprocess.DEVNULL,
    )
    return time.perf_counter() - began


def run(quick: bool = False) -> list[Figure]:
    repeats = 3 if quick else 5
    ready, floor, helps = [], [], []
    for _ in range(repeats):
        ready.append(start_to_ready())
        floor.append(bare_import())
        helps.append(cli_help())
    return [
        Figure(
            "mdfd serve --simulate on config/sim.yaml: start to READY=1",
            "s",
            ready,
            "python -c 'import mdfd.daemons.cli'",
            floor,
            higher_is_better=False,
            note="ratio < 1: start-up costs that many times the bare import",
        ),
        Figure(
            "mdfd --help (every subcommand registered)",
            "s",
            helps,
            "python -c 'import mdfd.daemons.cli'",
            floor,
            higher_is_better=False,
        ),
    ]


def main() -> None:
    parser = arguments(__doc__)
    args = parser.parse_args()
    report(run(quick=args.quick), args.json)


if __name__ == "__main__":
    main()
