"""The operator page must not slow acquisition, and must load light.

A `mdfd serve` process (time scale 1) runs a sweep of 20 memory instruments x 50 channels,
every channel acquired at 10 Hz; meanwhile N "browsers" are connected to its operator page:
each holds the page's event stream (`GET /events`, reading every event, readings included)
and re-reads the fragments a page polls (header every 5 s, current run every 2 s). The figure
is the sweep's wall time per point (first point's start to last point's end, from the run's
points as the API reports them) with 10 browsers; the baseline the same run with none,
measured alternately in the same invocation. Target: within 2 % (ratio >= 0.98).

The browsers are Python clients, not chromium: ten real browsers would measure their own
rendering on the same two cores, not the daemon. The second figure is the page's first load:
the bytes of `/`, every file it references and its first fragments, against the 300 KB budget.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from bench.common import Figure, arguments, report
from bench.scale import write_mdf

WAIT = 120.0
INSTRUMENTS, CHANNELS, RATE, COUNT = 20, 50, 10.0, 30  # 3 s of sampling per point
FIRST_LOAD_BUDGET_KB = 300.0


class Served:
    """One daemon with its page on a free loopback port."""

    def __init__(self, root: Path, points: int) -> None:
        config, self.recipe = write_mdf(root, points, INSTRUMENTS, CHANNELS, RATE, COUNT)
        with config.open("a") as handle:
            handle.write("web: {host: 127.0.0.1, port: 0}\n")
        self.config = config
        self.socket = root / "run" / "control.sock"
        self.out = root / "serve.out"
        with self.out.open("w") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "mdfd.daemons.cli.mdfd", "serve", "--config", str(config)],
                stdout=out, stderr=subprocess.DEVNULL, env=dict(os.environ),
            )  # fmt: skip
        deadline = time.monotonic() + WAIT
        while not (match := re.search(r"operator page: http://[^:]+:(\d+)/", self.out.read_text())):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("mdfd serve did not print its page's URL")
            time.sleep(0.05)
        self.port = int(match.group(1))

    def api(self, method: str, path: str, body: bytes | None = None) -> object:
        sock = socket.socket(socket.AF_UNIX)
        sock.settimeout(WAIT)
        sock.connect(str(self.socket))
        connection = http.client.HTTPConnection("mdfd", timeout=WAIT)
        connection.sock = sock
        try:
            connection.request(method, path, body=body)
            return json.loads(connection.getresponse().read())
        finally:
            connection.close()

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)


class Browser(threading.Thread):
    """The page's traffic: the event stream read to the end, the fragments re-read."""

    def __init__(self, port: int, stop: threading.Event) -> None:
        super().__init__(daemon=True)
        self.port, self.stop, self.events = port, stop, 0

    def run(self) -> None:
        stream = http.client.HTTPConnection("127.0.0.1", self.port, timeout=WAIT)
        stream.request("GET", "/events")
        response = stream.getresponse()
        poller = threading.Thread(target=self._poll, daemon=True)
        poller.start()
        try:
            while not self.stop.is_set():
                line = response.readline()
                if not line:
                    return
                if line.startswith(b"event: "):
                    self.events += 1
        except OSError:
            return
        finally:
            stream.close()
            poller.join(timeout=WAIT)

    def _poll(self) -> None:
        tick = 0
        while not self.stop.wait(1.0):
            tick += 1
            paths = ["/fragment/current"] if tick % 2 == 0 else []
            paths += ["/fragment/header"] if tick % 5 == 0 else []
            for path in paths:
                get(self.port, path)


def get(port: int, path: str) -> bytes:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=WAIT)
    try:
        connection.request("GET", path, headers={"HX-Request": "true"})
        return connection.getresponse().read()
    finally:
        connection.close()


def sweep(points: int, browsers: int) -> tuple[float, int]:
    """Wall seconds per point of one run, and the events the browsers received."""
    with tempfile.TemporaryDirectory(prefix="mdfd-bench-web-") as tmp:
        served = Served(Path(tmp), points)
        stop = threading.Event()
        clients = [Browser(served.port, stop) for _ in range(browsers)]
        try:
            for client in clients:
                client.start()
            run = served.api("POST", "/runs", served.recipe.read_bytes())
            run_id = run["id"]  # type: ignore[index]
            deadline = time.monotonic() + WAIT * 3
            while True:
                detail = served.api("GET", f"/runs/{run_id}")
                if detail["status"] not in ("queued", "running"):  # type: ignore[index]
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError("the bench run did not end")
                time.sleep(0.5)
        finally:
            stop.set()
            served.stop()
            for client in clients:
                client.join(timeout=WAIT)
        if detail["status"] != "completed":  # type: ignore[index]
            raise RuntimeError(f"bench run ended {detail['status']}")  # type: ignore[index]
        rows = detail["points"]  # type: ignore[index]
        wall = rows[-1]["ended_at"] - rows[0]["started_at"]
        return wall / len(rows), sum(c.events for c in clients)


def first_load() -> float:
    """Kilobytes a first visit transfers (uncompressed): the page, its files, its fragments."""
    with tempfile.TemporaryDirectory(prefix="mdfd-bench-web-") as tmp:
        served = Served(Path(tmp), 1)
        try:
            page = get(served.port, "/")
            text = page.decode()
            files = re.findall(r'(?:src|href)="(/static/[^"]+)"', text)
            fragments = sorted(set(re.findall(r'hx-get="(/fragment/[^"]+)"', text)))
            total = len(page) + sum(len(get(served.port, p)) for p in files + fragments)
        finally:
            served.stop()
    return total / 1024


def run(quick: bool = False) -> list[Figure]:
    points = 3 if quick else 6
    repeats = 2 if quick else 3
    alone, watched, events = [], [], []
    for _ in range(repeats):
        alone.append(sweep(points, 0)[0])
        per_point, received = sweep(points, 10)
        watched.append(per_point)
        events.append(received)
    load = first_load()
    return [
        Figure(
            f"web: {points} points x {INSTRUMENTS}x{CHANNELS} channels @ {RATE:g} Hz "
            "with 10 browsers on the operator page: wall time per point",
            "s/point",
            watched,
            "the same run with no browser",
            alone,
            higher_is_better=False,
            target_ratio=0.98,
            note=f"schedule {COUNT / RATE:g} s of sampling per point; "
            f"events delivered per run: {int(sorted(events)[len(events) // 2])}",
        ),
        Figure(
            "web: operator page first load (page, scripts, styles, first fragments)",
            "KB",
            [load],
            "budget",
            [FIRST_LOAD_BUDGET_KB],
            higher_is_better=False,
            target_ratio=1.0,
        ),
    ]


def main() -> None:
    args = arguments(__doc__).parse_args()
    report(run(quick=args.quick), args.json)


if __name__ == "__main__":
    main()
