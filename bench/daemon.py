"""Daemon start-up: `mdfd serve --config config/sim.yaml --simulate`, phase by phase.

The benchmark plays systemd: it binds a UNIX datagram socket, passes it as NOTIFY_SOCKET, starts
the daemon as a process (private state directory, free loopback ports, JSON logs on stderr) and
times, from the spawn: the daemon's first log line after its imports and config (`daemon
starting`), the control socket bound, the READY=1 datagram, the first answer of an `mdfctl
status` started when READY=1 arrives (what `systemctl start mdfd && mdfctl status` sees), every
simulator listening, every instrument reported available; then `mdfctl status` once more on the
settled daemon (the client's own cost), and the slowest `GET /status` answer while the daemon
starts its simulators and instruments after READY=1, polled every 20 ms (baseline: the same poll
on the settled daemon). What happens before `daemon starting` is split in a
process of its own that does the same steps (stamps on the shared monotonic clock): imports,
the YAML parsed, the config validated, the daemon's modules imported. Baseline: the bare
interpreter start, `python -c pass`, the floor of any Python process. Lower is better; the
ratio says how many times the floor each phase takes. Targets (issue 19): READY=1 < 1 s, the
first `mdfctl status` answer < 1.5 s.
"""

from __future__ import annotations

import http.client
import json
import os
import resource
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
POLL_SECONDS = 0.02
SETTLED_POLL_SECONDS = 2.0
STEPS = {
    "interpreter": "in-process: interpreter up, before the first import",
    "config_imports": "in-process: `mdfd.daemons.core.config` imported",
    "parsed": "in-process: config YAML parsed (located)",
    "validated": "in-process: config validated (load_config)",
    "daemon_imports": "in-process: `mdfd.daemons.serve.daemon` imported",
}
PHASES = {
    "imports": "imports and config loaded (log 'daemon starting')",
    "simulators": "every simulator listening",
    "socket": "control socket serving",
    "ready": "READY=1",
    "status": "first `mdfctl status` answer (started at READY=1)",
    "instruments": "every instrument connected",
}
TARGETS = {"ready": "; target < 1 s", "status": "; target < 1.5 s"}
STEP_SCRIPT = """
import json, sys, time
stamps = {"interpreter": time.monotonic()}
from mdfd.daemons.core.config import load_config
stamps["config_imports"] = time.monotonic()
from mdfd.recipes.located import load_located
load_located(sys.argv[1])
stamps["parsed"] = time.monotonic()
load_config(sys.argv[1])
stamps["validated"] = time.monotonic()  # load_config parses again: < the parse's own time
import mdfd.daemons.serve.daemon
stamps["daemon_imports"] = time.monotonic()
print(json.dumps(stamps))
"""


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


class _UnixHttp(http.client.HTTPConnection):
    def __init__(self, path: str) -> None:
        super().__init__("mdfd", timeout=READY_TIMEOUT)
        self._path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(READY_TIMEOUT)
        self.sock.connect(self._path)


class StatusPoller:
    """`GET /status` on the control socket every POLL_SECONDS, each answer's latency kept: does
    the event loop keep answering while the daemon imports and starts things after READY=1?"""

    def __init__(self, path: Path) -> None:
        self.path = str(path)
        self.latencies: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def __enter__(self) -> StatusPoller:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=READY_TIMEOUT)

    def _poll(self) -> None:
        while not self._stop.wait(POLL_SECONDS):
            connection = _UnixHttp(self.path)
            began = time.perf_counter()
            try:
                connection.request("GET", "/status")
                connection.getresponse().read()
            finally:
                connection.close()
            self.latencies.append(time.perf_counter() - began)


def start_up() -> dict[str, float]:
    """Seconds from spawning `mdfd serve` to each phase of PHASES, and `settled_status`: how
    long an `mdfctl status` takes once every instrument is connected. Then the daemon stops."""
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
            command = [sys.executable, "-m", "mdfd.daemons.cli.mdfd", "--log-json", "serve"]
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
                logs.seen["ready_cpu"] = cpu_seconds(proc.pid)
                control = Path(tmp) / "var" / "sim-mdf-01" / "run" / "control.sock"
                status = [sys.executable, "-m", "mdfd.daemons.cli.mdfctl", "--config", str(CONFIG)]
                with StatusPoller(control) as busy:
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
                with StatusPoller(control) as settled:
                    time.sleep(SETTLED_POLL_SECONDS)
                logs.seen["busy_status_max"] = max(busy.latencies)
                logs.seen["settled_status_max"] = max(settled.latencies)
                asked = time.perf_counter()
                subprocess.run(
                    [*status, "status"],
                    env=env,
                    check=True,
                    timeout=READY_TIMEOUT,
                    stdout=subprocess.DEVNULL,
                )
                logs.seen["settled_status"] = time.perf_counter() - asked
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


def in_process_steps() -> dict[str, float]:
    """Seconds from spawning STEP_SCRIPT to each of STEPS (`time.monotonic` is one clock for
    every process of the machine)."""
    with tempfile.TemporaryDirectory(prefix="mdfd-bench-") as tmp:
        env = dict(os.environ, MDFD_VAR=str(Path(tmp) / "var"))
        began = time.monotonic()
        done = subprocess.run(
            [sys.executable, "-c", STEP_SCRIPT, str(CONFIG)],
            env=env,
            cwd=tmp,
            check=True,
            timeout=60,
            capture_output=True,
            text=True,
        )
    stamps: dict[str, float] = json.loads(done.stdout)
    return {name: stamp - began for name, stamp in stamps.items()}


def cpu_seconds(pid: int) -> float:
    """User and system CPU seconds a running process has used, all its threads together: less
    noisy than wall time on a machine others share, and what a start costs a small PC."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def interpreter() -> tuple[float, float]:
    """Wall and CPU seconds of `python -c pass`."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    began = time.perf_counter()
    subprocess.run([sys.executable, "-c", "pass"], check=True, timeout=60)
    wall = time.perf_counter() - began
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    return wall, cpu


def bare_import() -> float:
    began = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import mdfd.daemons.cli.mdfd"], check=True, timeout=60)
    return time.perf_counter() - began


def cli_help() -> float:
    began = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "mdfd.daemons.cli.mdfd", "--help"],
        check=True,
        timeout=60,
        stdout=subprocess.DEVNULL,
    )
    return time.perf_counter() - began


def run(quick: bool = False) -> list[Figure]:
    repeats = 3 if quick else 5
    phases: dict[str, list[float]] = {name: [] for name in PHASES}
    steps: dict[str, list[float]] = {name: [] for name in STEPS}
    floor, floor_cpu, imports, helps, settled, ready_cpu = [], [], [], [], [], []
    busy_max, settled_max = [], []
    for _ in range(repeats):
        seen = start_up()
        settled.append(seen.pop("settled_status"))
        ready_cpu.append(seen.pop("ready_cpu"))
        busy_max.append(seen.pop("busy_status_max"))
        settled_max.append(seen.pop("settled_status_max"))
        for name, seconds in seen.items():
            phases[name].append(seconds)
        for name, seconds in in_process_steps().items():
            steps[name].append(seconds)
        wall, cpu = interpreter()
        floor.append(wall)
        floor_cpu.append(cpu)
        imports.append(bare_import())
        helps.append(cli_help())
    baseline = "python -c pass"
    note = "ratio < 1: this phase costs that many times the bare interpreter"
    figures = [
        Figure(
            f"config/sim.yaml, spawn to {label}",
            "s",
            steps[name],
            baseline,
            floor,
            higher_is_better=False,
            note=note,
        )
        for name, label in STEPS.items()
        if steps[name]
    ]
    figures += [
        Figure(
            f"mdfd serve --simulate on config/sim.yaml: start to {label}",
            "s",
            phases[name],
            baseline,
            floor,
            higher_is_better=False,
            note=note + TARGETS.get(name, ""),
        )
        for name, label in PHASES.items()
        if phases[name]
    ]
    figures += [
        Figure(
            "mdfd serve --simulate: CPU seconds (all threads) until READY=1",
            "s",
            ready_cpu,
            "python -c pass, CPU seconds",
            floor_cpu,
            higher_is_better=False,
        ),
        Figure(
            "GET /status, slowest answer from READY=1 to every instrument connected",
            "s",
            busy_max,
            "slowest answer in 2 s on the settled daemon",
            settled_max,
            higher_is_better=False,
            note="polled every 20 ms: the loop answers while simulators and drivers load",
        ),
        Figure(
            "mdfctl status on the settled daemon (its own duration)",
            "s",
            settled,
            baseline,
            floor,
            higher_is_better=False,
        ),
        Figure(
            "import mdfd.daemons.cli.mdfd", "s", imports, baseline, floor, higher_is_better=False
        ),
        Figure(
            "mdfd --help (every subcommand registered)",
            "s",
            helps,
            baseline,
            floor,
            higher_is_better=False,
        ),
    ]
    return figures


def main() -> None:
    parser = arguments(__doc__)
    args = parser.parse_args()
    report(run(quick=args.quick), args.json)


if __name__ == "__main__":
    main()
