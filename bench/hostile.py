"""`/status` latency while hostile bodies are refused, against `/status` with no hostile load.

One `mdfd serve --config config/sim.yaml --simulate` process (private state, free ports). First
`/status` is timed alone over the control socket (the baseline); then again while two client
threads post, back to back, what once froze the daemon for seconds: a 600-byte alias bomb, a
900 KB list, a 100,489-point sweep, a 20,000-character unit and JSON nested 100,000 deep. Every
hostile request must be refused (4xx); the figures are the median and the 99th percentile of
`/status` latency, and how long a refusal takes. Lower is better; the issue's bound is 100 ms.
"""

from __future__ import annotations

import http.client
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from bench.common import Figure, arguments, report

REPO = Path(__file__).resolve().parent.parent
TIMEOUT = 60.0


class UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: Path) -> None:
        super().__init__("mdfd", timeout=TIMEOUT)
        self._path = str(path)

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(TIMEOUT)
        self.sock.connect(self._path)


def request(path: Path, method: str, url: str, body: bytes | None = None) -> int:
    connection = UnixConnection(path)
    try:
        connection.request(method, url, body=body)
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()


def hostile_bodies() -> list[tuple[str, str, bytes]]:
    bomb = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for level in range(1, 9):
        bomb.append(f"a{level}: &a{level} [" + ", ".join([f"*a{level - 1}"] * 9) + "]")
    recipe = (REPO / "recipes" / "examples" / "metal-annealing.yaml").read_text()
    sweep = recipe.replace(
        "temperature: {unit: degC, range: {start: 200, stop: 400, step: 50}}",
        "temperature: {unit: degC, linspace: {start: 200, stop: 400, num: 317}}",
    ).replace(
        "time: {unit: min, values: [15, 60]}",
        "time: {unit: min, linspace: {start: 15, stop: 60, num: 317}}",
    )
    unit = recipe.replace("{unit: degC,", "{unit: '" + "m*" * 10_000 + "m',", 1)
    return [
        ("alias bomb", "/runs", "\n".join(bomb).encode()),
        ("900 KB list", "/runs", b"x: [" + b",".join([b"1"] * 450_000) + b"]"),
        ("100,489-point sweep", "/runs", sweep.encode()),
        ("20,000-char unit", "/runs", unit.encode()),
        ("deep JSON", "/queue", b"[" * 100_000 + b"]" * 100_000),
    ]


def status_latencies(socket_path: Path, count: int) -> list[float]:
    out = []
    for _ in range(count):
        began = time.perf_counter()
        assert request(socket_path, "GET", "/status") == 200
        out.append((time.perf_counter() - began) * 1000)
        time.sleep(0.01)
    return out


def attack(socket_path: Path, stop: threading.Event, refusals: list[float]) -> None:
    bodies = hostile_bodies()
    while not stop.is_set():
        for name, url, body in bodies:
            began = time.perf_counter()
            status = request(socket_path, "POST", url, body)
            if not 400 <= status < 500:
                raise RuntimeError(f"{name}: answered {status}, not 4xx")
            refusals.append((time.perf_counter() - began) * 1000)


def p99(samples: list[float]) -> float:
    return statistics.quantiles(samples, n=100)[98] if len(samples) > 1 else samples[0]


def run(quick: bool = False) -> list[Figure]:
    count = 100 if quick else 400
    with tempfile.TemporaryDirectory(prefix="mdfd-bench-") as tmp:
        env = dict(os.environ, MDFD_VAR=str(Path(tmp) / "var"))
        for name in ("FURNACE", "REACTOR", "METER"):
            with socket.socket() as sock:
                sock.bind(("127.0.0.1", 0))
                env[f"MDFD_{name}_PORT"] = str(sock.getsockname()[1])
        socket_path = Path(tmp) / "var" / "sim-mdf-01" / "run" / "control.sock"
        command = [sys.executable, "-m", "mdfd.daemons.cli.mdfd", "serve", "--simulate"]
        command += ["--config", str(REPO / "config" / "sim.yaml")]
        log = Path(tmp) / "serve.log"
        with log.open("w") as out:
            proc = subprocess.Popen(command, env=env, cwd=tmp, stdout=out, stderr=out)
        try:
            deadline = time.monotonic() + TIMEOUT
            while True:
                try:
                    if request(socket_path, "GET", "/status") == 200:
                        break
                except OSError:
                    pass
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError(f"mdfd serve did not start:\n{log.read_text()[-2000:]}")
                time.sleep(0.1)
            quiet = status_latencies(socket_path, count)
            stop = threading.Event()
            refusals: list[float] = []
            attackers = [
                threading.Thread(target=attack, args=(socket_path, stop, refusals))
                for _ in range(2)
            ]
            for thread in attackers:
                thread.start()
            try:
                loaded = status_latencies(socket_path, count)
            finally:
                stop.set()
                for thread in attackers:
                    thread.join(TIMEOUT)
            log_bytes = log.stat().st_size
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
    note = f"{len(refusals)} hostile requests refused meanwhile; daemon log {log_bytes} bytes"
    return [
        Figure(
            "GET /status while hostile bodies are refused: median",
            "ms",
            loaded,
            "GET /status, no hostile load",
            quiet,
            higher_is_better=False,
            note=note,
        ),
        Figure(
            "GET /status while hostile bodies are refused: p99",
            "ms",
            [p99(loaded)],
            "GET /status, no hostile load: p99",
            [p99(quiet)],
            higher_is_better=False,
            note="the issue's bound: 100 ms",
        ),
        Figure("hostile request refused (4xx): median", "ms", refusals, higher_is_better=False),
    ]


def main() -> None:
    parser = arguments(__doc__)
    args = parser.parse_args()
    report(run(quick=args.quick), args.json)


if __name__ == "__main__":
    main()
