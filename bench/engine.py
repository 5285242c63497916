"""The run engine: overhead per point vs Bluesky, streaming into HDF5 vs raw h5py, memory.

Per point: a sweep of 10,000 points on the `memory` driver, each point "set one channel,
acquire one sample", run by `RunExecutor` in this process — including everything a point
costs: the HDF5 summary row, flush and fsync, and the SQLite checkpoint transaction
(WAL, synchronous=FULL), group-committed (points that end while a commit is on disk share the
next one; the figure's note gives the points per commit). The MDF runs at time scale 1,000 so
that the recipe's own acquisition window (one sample at 10 kHz = 100 µs of process time) shrinks
to 0.1 µs of wall time: Bluesky's detector has no window, and what is left to compare is
overhead. Baseline: Bluesky's RunEngine running `scan([det], motor, ...)` on
ophyd's simulated motor and detector with no callbacks and no persistence at all, in the same
process, interleaved. Target: ours <= 1/10 of Bluesky's time per point. The components of the
durable checkpoint (an fsync, an SQLite commit at FULL and NORMAL, an HDF5 flush) are measured
on the same disk in the same run, because on a VM they alone can exceed that budget.

Per point over the wire: the same sweep against the Modbus TCP furnace simulator (`mdfd sim` in a
child process, port 0, endpoints file): each point writes the setpoint (one FC16 request) and
acquires the temperature (one FC4 request). The engine's overhead there is its time per point
minus a raw pymodbus loop making the same two requests per point to the same server, measured
right before and right after the engine's run (the mean of both); the baseline is again
Bluesky's RunEngine per point, in the same run. Target: overhead <= 1/10 of Bluesky's.

Streaming: one memory instrument of 4 and of 100 channels acquired back to back through the
engine into HDF5 (time scale 100,000, so the drift-free schedule never waits), 100,000 samples a
point (a flush + fsync each), two ways: polled (a `read_block` per scan) and buffered (the
instrument samples on its own clock, `buffer: true`, and the engine fetches blocks of up to
4096 scans, decision 0089). Each against `bench.hdf5.through_raw_h5py_scans`, raw h5py writing
the same scans in the same blocks (4096 values, gzip, flush + fsync per point), fed the same
way: a scan at a time for polled, blocks of 4096 scans for buffered. Target (buffered):
>= 0.8. Polled has no target: it is bounded by one driver call per scan.

Memory: peak RSS (VmHWM) of fresh child processes running the engine over 1M and 10M samples
in two points, and over sweeps of 2,000 and 20,000 short points; for each, also the long run's
peak at the end against its own peak at half time (see `bench.engine_rss`). A bounded engine
gives ratios ~1.0.
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np

from bench import engine_rss
from bench.common import Figure, arguments, report
from mdfd.daemons.core.logging import configure

CONFIG = """
mdf: {{id: bench, domain: metal, site: BENCH}}
vocabulary: {vocabulary}
storage: {{data_dir: {root}/data, state_dir: {root}/state, runtime_dir: {root}/run}}
simulation: {{time_scale: {scale}}}
instruments:
  dev:
    driver: memory
    buffer: {buffer}
    channels:
      x: {{writable: true, limits: {{min: -1.0e9, max: 1.0e9}}}}
{channels}
"""

RECIPE = """
recipe: {{name: bench, version: "1"}}
sweep: {{parameters: {{x: {{linspace: {{start: 0, stop: 1, num: {points}}}}}}}}}
steps:
  - set: {{dev.x: x}}
  - acquire: {{channels: [{acquired}], rate: 10000, count: {count}}}
"""

MODBUS_CONFIG = """
mdf: {{id: bench, domain: metal, site: BENCH}}
vocabulary: {vocabulary}
storage: {{data_dir: {root}/data, state_dir: {root}/state, runtime_dir: {root}/run}}
simulation: {{time_scale: {scale}}}
instruments:
  furnace:
    driver: modbus
    link: {{type: tcp, host: 127.0.0.1, port: {port}}}
    timeout: 5.0
    channels:
      temperature: {{unit: degC, table: input_register, address: 10, type: float32}}
      setpoint:
        unit: degC
        address: 10
        type: float32
        writable: true
        limits: {{min: 0, max: 1400}}
{simulators}
"""

MODBUS_RECIPE = """
recipe: {{name: bench-modbus, version: "1"}}
sweep: {{parameters: {{x: {{linspace: {{start: 20, stop: 1000, num: {points}}}}}}}}}
steps:
  - set: {{furnace.setpoint: x}}
  - acquire: {{channels: [furnace.temperature], rate: 10000, count: 1}}
"""

VOCABULARY = Path(__file__).resolve().parent.parent / "config" / "vocabulary.yaml"
SIMULATOR_START_SECONDS = 60.0


def write_mdf(
    root: Path, points: int, channels: int, count: int, scale: float, buffer: bool = False
) -> tuple[Path, Path]:
    """A memory instrument of `channels` channels, polled (one read per scan) or, with
    `buffer`, sampling on its own clock (blocks of scans per fetch, `drivers.Buffered`)."""
    names = [f"y{i}" for i in range(channels)]
    lines = "\n".join(f"      {n}: {{initial: {i + 1}.5}}" for i, n in enumerate(names))
    config = root / "mdf.yaml"
    text = CONFIG.format(
        root=root, vocabulary=VOCABULARY, scale=scale, channels=lines, buffer=str(buffer).lower()
    )
    config.write_text(text)
    recipe = root / "recipe.yaml"
    acquired = ", ".join(f"dev.{n}" for n in names)
    recipe.write_text(RECIPE.format(points=points, acquired=acquired, count=count))
    return config, recipe


async def run_engine(config_path: Path, recipe_path: Path) -> tuple[float, int, int]:
    """Seconds spent in `RunExecutor.execute`, the samples it wrote, the commits it took."""
    from mdfd.daemons.core.config import load_config
    from mdfd.daemons.engine.runner import RunExecutor
    from mdfd.daemons.launch.oneshot import create_run, state_db
    from mdfd.daemons.store import RunStatus
    from mdfd.recipes.loader import load_recipe

    config = load_config(config_path)
    recipe = load_recipe(recipe_path)
    config.model.storage.data_dir.mkdir(parents=True, exist_ok=True)
    async with state_db(config) as state:
        run = await create_run(state, config, recipe)
        executor = RunExecutor(config, state)
        began = time.perf_counter()
        outcome = await executor.execute(run)
        elapsed = time.perf_counter() - began
    if outcome.status is not RunStatus.COMPLETED:
        raise RuntimeError(f"bench run ended {outcome.status}: {outcome.message}")
    assert executor.acquisition is not None
    assert executor.checkpointer is not None
    return elapsed, executor.acquisition.samples_written, executor.checkpointer.commits


def engine_us_per_point(points: int) -> tuple[float, float]:
    """Microseconds per point, and points per group commit."""
    with tempfile.TemporaryDirectory(prefix="mdfd-bench-") as tmp:
        config, recipe = write_mdf(Path(tmp), points, channels=1, count=1, scale=1000.0)
        elapsed, _, commits = asyncio.run(run_engine(config, recipe))
    return elapsed / points * 1e6, points / commits


def bluesky_us_per_point(points: int) -> float:
    from bluesky import RunEngine
    from bluesky.plans import scan
    from ophyd.sim import det, motor

    engine = RunEngine({})
    began = time.perf_counter()
    engine(scan([det], motor, 0, 1, points))
    return (time.perf_counter() - began) / points * 1e6


class FurnaceSimulator:
    """`mdfd sim` serving the furnace on a free port, in a child process (its output to a file)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.port = 0
        self._child: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> FurnaceSimulator:
        config = self.root / "sim.yaml"
        simulators = "simulators:\n  furnace: {kind: furnace, port: 0}"
        config.write_text(
            MODBUS_CONFIG.format(
                root=self.root, vocabulary=VOCABULARY, scale=1, port=1, simulators=simulators
            )
        )
        endpoints = self.root / "endpoints.json"
        command = [sys.executable, "-m", "mdfd.daemons.cli.mdfd", "sim", "--config", str(config)]
        with open(self.root / "sim.log", "wb") as log:
            self._child = subprocess.Popen(
                [*command, "--endpoints-file", str(endpoints)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + SIMULATOR_START_SECONDS
        while not endpoints.exists():
            if self._child.poll() is not None or time.monotonic() > deadline:
                self.__exit__()
                log_text = (self.root / "sim.log").read_text(errors="replace")
                raise RuntimeError(f"furnace simulator did not start:\n{log_text}")
            time.sleep(0.05)
        address = json.loads(endpoints.read_text())["furnace"]["tcp"]
        self.port = int(address.rsplit(":", 1)[1])
        return self

    def __exit__(self, *_: object) -> None:
        if self._child is not None and self._child.poll() is None:
            self._child.terminate()
            try:
                self._child.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self._child.kill()
                self._child.wait(timeout=15)


def modbus_engine_us_per_point(root: Path, port: int, points: int) -> float:
    """Microseconds per point of the engine against the furnace."""
    with tempfile.TemporaryDirectory(prefix="mdfd-bench-", dir=root) as tmp:
        config = Path(tmp) / "mdf.yaml"
        text = MODBUS_CONFIG.format(
            root=tmp, vocabulary=VOCABULARY, scale=1000.0, port=port, simulators=""
        )
        config.write_text(text)
        recipe = Path(tmp) / "recipe.yaml"
        recipe.write_text(MODBUS_RECIPE.format(points=points))
        elapsed, written, _ = asyncio.run(run_engine(config, recipe))
    if written != points:
        raise RuntimeError(f"bench run wrote {written} samples for {points} points")
    return elapsed / points * 1e6


async def _raw_modbus(port: int, points: int) -> float:
    """A plain pymodbus loop making each point's two requests: write the setpoint, read the
    temperature."""
    from pymodbus.client import AsyncModbusTcpClient

    client = AsyncModbusTcpClient("127.0.0.1", port=port, timeout=5.0, retries=0)
    await client.connect()
    try:
        began = time.perf_counter()
        for index in range(points):
            value = 20.0 + 980.0 * index / max(points - 1, 1)
            words = list(struct.unpack(">HH", struct.pack(">f", value)))
            written = await client.write_registers(10, words, device_id=1)
            read = await client.read_input_registers(10, count=2, device_id=1)
            if written.isError() or read.isError():
                raise RuntimeError(f"raw modbus request failed: {written} {read}")
        return (time.perf_counter() - began) / points * 1e6
    finally:
        client.close()


def raw_modbus_us_per_point(port: int, points: int) -> float:
    return asyncio.run(_raw_modbus(port, points))


def modbus_figure(points: int, repeats: int) -> Figure:
    """The engine's overhead per point over Modbus TCP (engine minus raw pymodbus), vs Bluesky."""
    overheads: list[float] = []
    engine: list[float] = []
    raw: list[float] = []
    theirs: list[float] = []
    with (
        tempfile.TemporaryDirectory(prefix="mdfd-bench-") as tmp,
        FurnaceSimulator(Path(tmp)) as simulator,
    ):
        raw_modbus_us_per_point(simulator.port, 50)  # warm up the server
        modbus_engine_us_per_point(Path(tmp), simulator.port, 50)  # and the first run's imports
        for _ in range(repeats):  # interleaved, as above; the raw loop brackets the engine run
            before = raw_modbus_us_per_point(simulator.port, points)
            ours = modbus_engine_us_per_point(Path(tmp), simulator.port, points)
            baseline = (before + raw_modbus_us_per_point(simulator.port, points)) / 2
            engine.append(ours)
            raw.append(baseline)
            overheads.append(ours - baseline)
            theirs.append(bluesky_us_per_point(points))
    return Figure(
        f"engine overhead per point over Modbus TCP ({points} points, durable checkpoint)",
        "us/point",
        overheads,
        "Bluesky RunEngine scan, ophyd sim, no persistence",
        theirs,
        higher_is_better=False,
        target_ratio=10.0,
        note=(
            f"engine {statistics.median(engine):.0f} us/point minus raw pymodbus "
            f"{statistics.median(raw):.0f} us/point (write + read per point, furnace simulator)"
        ),
    )


def durability_components(count: int) -> dict[str, float]:
    """Microseconds per operation of what one durable checkpoint is made of, on this disk."""
    out: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="mdfd-bench-") as tmp:
        for sync in ("FULL", "NORMAL"):
            db = sqlite3.connect(Path(tmp) / f"{sync}.db", isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute(f"PRAGMA synchronous={sync}")
            db.execute("CREATE TABLE t (a INTEGER, b TEXT)")
            began = time.perf_counter()
            for i in range(count):
                db.execute("BEGIN")
                db.execute("INSERT INTO t VALUES (?, ?)", (i, "x" * 300))
                db.execute("COMMIT")
            out[f"sqlite commit synchronous={sync}"] = (time.perf_counter() - began) / count * 1e6
            db.close()
        fd = os.open(Path(tmp) / "f", os.O_WRONLY | os.O_CREAT)
        began = time.perf_counter()
        for _ in range(count):
            os.write(fd, b"x")
            os.fsync(fd)
        out["os.fsync of a small append"] = (time.perf_counter() - began) / count * 1e6
        os.close(fd)
        with h5py.File(Path(tmp) / "f.h5", "w", libver=("v110", "v110")) as handle:
            data = handle.create_dataset("v", (0,), maxshape=(None,), chunks=(1024,), dtype="f8")
            handle.swmr_mode = True
            began = time.perf_counter()
            for i in range(count):
                data.resize((i + 1,))
                data[i] = float(i)
                handle.flush()
            out["h5py append one row + flush (SWMR)"] = (time.perf_counter() - began) / count * 1e6
    return out


STREAM_CHANNELS = 100  # one instrument's scan, as a columnar driver returns it
STREAM_SAMPLES_PER_POINT = 100_000  # each point ends with a flush + fsync


def engine_samples_per_second(samples: int, channels: int, buffer: bool) -> float:
    """One memory instrument of `channels` channels acquired back to back through the engine,
    100,000 samples a point: polled (a read per scan) or buffered (fetched blocks of scans)."""
    scans = STREAM_SAMPLES_PER_POINT // channels
    points = max(1, samples // STREAM_SAMPLES_PER_POINT)
    with tempfile.TemporaryDirectory(prefix="mdfd-bench-") as tmp:
        config, recipe = write_mdf(Path(tmp), points, channels, scans, 100_000, buffer)
        elapsed, written, _ = asyncio.run(run_engine(config, recipe))
    return written / elapsed


def raw_samples_per_second(samples: int, channels: int, arriving: int) -> float:
    """Raw h5py writing the same scans (the memory instrument's values) in the same blocks,
    the scans arriving `arriving` at a time (1: as polled; the engine's fetch size: as
    buffered)."""
    from bench.hdf5 import through_raw_h5py_scans

    per_point = STREAM_SAMPLES_PER_POINT // channels
    count = max(1, samples // STREAM_SAMPLES_PER_POINT) * per_point
    row = np.arange(channels) + 1.5  # the `initial` values of write_mdf's channels
    scans = np.ascontiguousarray(np.broadcast_to(row, (count, channels)))
    with tempfile.TemporaryDirectory(prefix="mdfd-bench-") as tmp:
        return through_raw_h5py_scans(Path(tmp) / "raw.h5", scans, per_point, arriving)


def streaming_figures(samples: int) -> list[Figure]:
    """Polled and buffered streaming at 4 and 100 channels, each against raw h5py fed the same
    way, interleaved."""
    from mdfd.daemons.engine.acquisition import STATS_BLOCK_SCANS

    figures = []
    for channels in (4, STREAM_CHANNELS):
        for buffer in (False, True):
            arriving = STATS_BLOCK_SCANS if buffer else 1
            ours, theirs = [], []
            for _ in range(3):
                ours.append(engine_samples_per_second(samples, channels, buffer))
                theirs.append(raw_samples_per_second(samples, channels, arriving))
            how = "buffered: blocks of scans per fetch" if buffer else "polled: a read per scan"
            figures.append(
                Figure(
                    f"streaming memory driver -> engine -> HDF5 ({channels} channels, {how})",
                    "samples/s",
                    ours,
                    f"raw h5py, same scans and blocks, arriving {arriving} scan(s) at a time",
                    theirs,
                    target_ratio=0.8 if buffer else None,
                    note=f"{STREAM_SAMPLES_PER_POINT:,} samples a point, flush + fsync per point"
                    + ("" if buffer else "; bounded by the cost of one read per scan"),
                )
            )
    return figures


def run(quick: bool = False) -> list[Figure]:
    configure("warning")
    points = 1_000 if quick else 10_000
    repeats = 3 if quick else 2
    ours: list[float] = []
    theirs: list[float] = []
    per_commit: list[float] = []
    # One short run of each first: a process's first run imports h5py and the driver classes
    # (kept off the daemon's start-up, decision 0085), a one-time cost, not a per-point one.
    engine_us_per_point(50)
    bluesky_us_per_point(50)
    for _ in range(repeats):  # interleaved: the machine's mood hits both alike
        us, batch = engine_us_per_point(points)
        ours.append(us)
        per_commit.append(batch)
        theirs.append(bluesky_us_per_point(points))
    figures = [
        Figure(
            f"engine overhead per point ({points} points, durable checkpoint)",
            "us/point",
            ours,
            "Bluesky RunEngine scan, ophyd sim, no persistence",
            theirs,
            higher_is_better=False,
            target_ratio=10.0,
            note=f"{statistics.median(per_commit):.1f} points per group commit",
        )
    ]
    # A wire point costs ~1 ms. Five repeats, not three: a run's overhead spreads by ±30 µs on a
    # 2-core VM (the simulator, the loop and the durability threads share it), and the figure
    # is the median of the repeats.
    figures.append(modbus_figure(1_000 if quick else 3_000, 5))
    components = [durability_components(300 if quick else 1000) for _ in range(3)]
    for name in components[0]:
        figures.append(
            Figure(
                f"checkpoint component: {name}",
                "us/op",
                [c[name] for c in components],
                higher_is_better=False,
                note="one per point; not a comparison",
            )
        )
    figures.extend(streaming_figures(400_000 if quick else 2_000_000))
    figures.extend(engine_rss.figures(quick))
    return figures


def main() -> None:
    configure("warning")
    parser = arguments(__doc__)
    args = parser.parse_args()
    report(run(quick=args.quick), args.json)


if __name__ == "__main__":
    main()
