"""Peak RSS of the engine against run length, in samples and in points (issue 9: memory flat).

Part of `python -m bench.engine` (not a suite module of its own). Every measurement is a fresh
child process, `python -m bench.engine_rss --child SAMPLES --points P`, so no earlier
benchmark's heap counts: it runs the engine on a `memory` instrument of 10 channels while a
thread reads VmHWM every 50 ms, and prints the peak at the end of the run and the peak when
half of the run's wall time had passed (VmHWM, not ru_maxrss: Linux carries ru_maxrss over
fork + exec, so a child would report at least its parent's size). Two kinds of length:

- samples: two points of N/2 samples each, so growth within a point shows as well as growth
  across points (whatever is in flight between the loop and the HDF5 writer thread, HDF5's
  chunk caches, malloc arenas);
- points: a sweep of P points of 5 samples per channel, so whatever is kept per point shows
  (checkpoint rows, summary rows in HDF5's chunk caches, the point rows read back at the end).

Each kind gives two figures: the long run's peak against the short run's (separate processes,
medians of interleaved repeats), and, inside the long run's own process, the peak at the end
against the peak at half time — a comparison no start-up noise blurs: a bounded engine adds
nothing in the second half of a run. Targets: 0.95 and 0.97 (in-flight blocks alone can move
the peak by ~6 MB from one process to the next).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from bench.common import Figure

CHANNELS = 10
SAMPLES_PER_SHORT_POINT = 5
SAMPLING_PERIOD = 0.05  # seconds between two VmHWM readings in the child
ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class ChildPeak:
    """What one child reports, in MB: peak at the end, peak at half time, resident at the end."""

    peak: float
    peak_half: float
    resident_end: float
    seconds: float


def status_mb(field: str) -> float:
    """A size line of /proc/self/status (VmHWM, VmRSS) in MB."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def child(samples: int, points: int) -> ChildPeak:
    """Run the engine over `samples` samples in `points` points, watching VmHWM meanwhile."""
    from bench.engine import run_engine, write_mdf

    count = max(1, samples // (points * CHANNELS))
    readings: list[tuple[float, float]] = []
    stop = threading.Event()

    def watch() -> None:
        began = time.monotonic()
        while not stop.wait(SAMPLING_PERIOD):
            readings.append((time.monotonic() - began, status_mb("VmHWM")))

    with tempfile.TemporaryDirectory(prefix="mdfd-bench-") as tmp:
        config, recipe = write_mdf(Path(tmp), points, CHANNELS, count, scale=100_000)
        watcher = threading.Thread(target=watch, name="rss-watch", daemon=True)
        began = time.monotonic()
        watcher.start()
        try:
            asyncio.run(run_engine(config, recipe))
        finally:
            stop.set()
            watcher.join(timeout=5.0)
        seconds = time.monotonic() - began
    # The kernel folds the current RSS into VmHWM lazily (at unmaps), so a reading can exceed
    # a later one when memory was given back by madvise: a peak is the largest reading so far.
    peak = max([status_mb("VmHWM"), *(reading for _, reading in readings)])
    before_half = [reading for at, reading in readings if at <= seconds / 2]
    return ChildPeak(
        peak=peak,
        peak_half=max(before_half, default=float("nan")),
        resident_end=status_mb("VmRSS"),
        seconds=seconds,
    )


def measure(samples: int, points: int) -> ChildPeak:
    """One fresh child process; its last stdout line is its `ChildPeak` as JSON."""
    command = ["-m", "bench.engine_rss", "--child", str(samples), "--points", str(points)]
    proc = subprocess.run(
        [sys.executable, *command],
        capture_output=True,
        text=True,
        timeout=900,
        check=True,
        cwd=ROOT,
    )
    return ChildPeak(**json.loads(proc.stdout.strip().splitlines()[-1]))


def length_figures(
    what: str, unit: str, short: tuple[int, int], long: tuple[int, int], repeats: int
) -> list[Figure]:
    """`short` and `long` are (samples, points); `unit` names the length that differs."""
    shorts: list[ChildPeak] = []
    longs: list[ChildPeak] = []
    for _ in range(repeats):  # interleaved: the machine's mood hits both alike
        shorts.append(measure(*short))
        longs.append(measure(*long))
    size = {"samples": 0, "points": 1}[unit]
    label = f"{long[size]:,} {unit}"
    seconds = statistics.median(c.seconds for c in longs)
    return [
        Figure(
            f"peak RSS, engine run of {label} ({what})",
            "MB",
            [c.peak for c in longs],
            f"peak RSS, {short[size]:,} {unit}",
            [c.peak for c in shorts],
            higher_is_better=False,
            target_ratio=0.95,
            note="fresh processes; ratio ~1.0: the peak does not grow with run length",
        ),
        Figure(
            f"peak RSS at the end of the {label} run",
            "MB",
            [c.peak for c in longs],
            "the same process's peak at half time",
            [c.peak_half for c in longs],
            higher_is_better=False,
            target_ratio=0.97,
            note=(
                f"same process, {seconds:.0f} s run; resident at the end"
                f" {statistics.median(c.resident_end for c in longs):.1f} MB"
            ),
        ),
    ]


def figures(quick: bool) -> list[Figure]:
    """The RSS figures of `bench.engine`: run length in samples, then in points."""
    repeats = 1 if quick else 2
    samples = (1_000_000, 3_000_000) if quick else (1_000_000, 10_000_000)
    sweeps = (500, 5_000) if quick else (2_000, 20_000)
    per_point = CHANNELS * SAMPLES_PER_SHORT_POINT
    return [
        *length_figures(
            "2 points, 10 channels", "samples", (samples[0], 2), (samples[1], 2), repeats
        ),
        *length_figures(
            f"{SAMPLES_PER_SHORT_POINT} samples x 10 channels per point",
            "points",
            (sweeps[0] * per_point, sweeps[0]),
            (sweeps[1] * per_point, sweeps[1]),
            repeats,
        ),
    ]


def main() -> None:
    from mdfd.daemons.core.logging import configure

    configure("warning")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", type=int, required=True, metavar="SAMPLES")
    parser.add_argument("--points", type=int, default=2)
    args = parser.parse_args()
    print(json.dumps(asdict(child(args.child, args.points))))


if __name__ == "__main__":
    main()
