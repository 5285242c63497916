"""Daemon start-up: `mdfd serve --config config/sim.yaml --simulate`, phase by phase.

The benchmark plays systemd: it binds a UNIX datagram socket, passes it as NOTIFY_SOCKET, starts
the daemon as a process (private state directory, free loopback ports, JSON logs on stderr) and
times, from the spawn: the daemon's first log line after its imports and config (`daemon
starting`), the last simulator listening, the control socket bound, the READY=1 datagram, the
first answer of an `mdfctl status` started when READY=1 arrives (what `systemctl start mdfd &&
mdfctl status` sees), and every instrument reported available. Baseline: the bare interpreter
start plus `import mdfd.daemons.cli`, the floor any `mdfd` command pays. Lower is better for
both; the ratio says how many times the floor each phase takes.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from bench.common import Figure, arguments, report

REPO = Path(__file__).resolve().parent.parent
CONFIG = REPO / "config" / "sim.yaml"
READY_TIMEOUT = 60.0
SETTLE_TIMEOUT = 60.0
PHASES = {
    "imports": "imports and config loaded (log 'daemon starting')",
    "simulators": "every simulator listening",
    "socket": "control socket serving",
    "ready": "READY=1",
    "status": "first `mdfctl status` answer (started at READY=1)",
    "instruments": "every instrument connected",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class LogWatch:
    """Reads the daemon's JSON log lines as they arrive, stamping each with the bench's clock."""

    simulators: int
    instruments: int
    began: float
    seen: dict[str, float] = field(default_factory=dict)
    _started: set[str] = field(default_factory=set)
    _available: set[str] = field(default_factory=set)

    def follow(self, stream: object) -> None:
        for raw in stream:  # type: ignore[attr-defined]
            try:
                entry = json.loads(raw)
            except ValueError:
                continue
            self.note(entry, time.perf_counter() - self.began)

    def note(self, entry: dict[str, object], at: float) -> None:
        event = entry.get("event")
        if event == "daemon starting":
            self.seen.setdefault("imports", at)
        elif event == "simulator started":
            self._started.add(str(entry.get("simulator")))
            if len(self._started) == self.simulators:
                self.seen.setdefault("simulators", at)
        elif event == "control API listening":
            self.seen.setdefault("socket", at)
        elif event == "instrument available":
            self._available.add(str(entry.get("instrument")))
            if len(self._available) == self.instruments:
                self.seen.setdefault("instruments", at)


def start_up() -> dict[str, float]:
    """Seconds from spawning `mdfd serve` to each phase of PHASES; the daemon is then stopped."""
    declared = yaml.safe_load(CONFIG.read_text(encoding="utf-8"))
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
                MDFD_WEB_PORT="0",
            )
            command = [sys.executable, "-m", "mdfd.daemons.cli", "--log-json", "serve"]
            command += ["--config", str(CONFIG), "--simulate"]
            began = time.perf_counter()
            proc = subprocess.Popen(
                command, env=env, cwd=tmp, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
            )
            logs = LogWatch(len(declared["simulators"]), len(declared["instruments"]), began)
            reader = threading.Thread(target=logs.follow, args=(proc.stderr,), daemon=True)
            reader.start()
            try:
                logs.seen["ready"] = wait_ready(notify, proc, began)
                status = [sys.executable, "-m", "mdfd.daemons.ctl", "--config", str(CONFIG)]
                subprocess.run(
                    [*status, "status"],
                    env=env,
                    check=True,
                    timeout=READY_TIMEOUT,
                    stdout=subprocess.DEVNULL,
                )
                logs.seen["status"] = time.perf_counter() - began
                deadline = time.perf_counter() + SETTLE_TIMEOUT
                while "instruments" not in logs.seen and time.perf_counter() < deadline:
                    time.sleep(0.05)
            finally:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=10)
                reader.join(timeout=10)
                if proc.stderr is not None:
                    proc.stderr.close()
            return dict(logs.seen)


def wait_ready(notify: socket.socket, proc: subprocess.Popen[bytes], began: float) -> float:
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
    phases: dict[str, list[float]] = {name: [] for name in PHASES}
    floor, helps = [], []
    for _ in range(repeats):
        for name, seconds in start_up().items():
            phases[name].append(seconds)
        floor.append(bare_import())
        helps.append(cli_help())
    figures = [
        Figure(
            f"mdfd serve --simulate on config/sim.yaml: start to {label}",
            "s",
            phases[name],
            "python -c 'import mdfd.daemons.cli'",
            floor,
            higher_is_better=False,
            note="ratio < 1: this phase costs that many times the bare import",
        )
        for name, label in PHASES.items()
        if phases[name]
    ]
    figures.append(
        Figure(
            "mdfd --help (every subcommand registered)",
            "s",
            helps,
            "python -c 'import mdfd.daemons.cli'",
            floor,
            higher_is_better=False,
        )
    )
    return figures


def main() -> None:
    parser = arguments(__doc__)
    args = parser.parse_args()
    report(run(quick=args.quick), args.json)


if __name__ == "__main__":
    main()
