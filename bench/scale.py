"""Scale: one engine acquiring many instruments x channels at a rate while a sweep runs.

Each size runs a real sweep through `RunExecutor` (set, then acquire every channel of every
instrument at the rate for a fixed count per point, durable checkpoint per point) in real time
(time scale 1): with `memory` instruments the figures are the engine's own cost — scheduling,
batching per instrument, interlock checks, statistics, HDF5 and SQLite — without a wire; one
more size puts 20 Modbus TCP servers (pymodbus, in a child process) on the wire. Timed from the
first point's start to the last point's end (setup and teardown reported apart). Reported per
size: the achieved sample rate, the CPU share (process CPU time of all threads / wall), the
event loop's lag (a 10 ms ticker's overshoot, p50/p99), CPU per point and per sample. The
figure is wall time per point against the schedule's (count / rate): ratio ~1.0 means the
engine kept up, lower means each point's sampling and checkpoint took longer than that
(target 0.98: the engine keeps at least 98 % of its schedule).

The largest size, 100 memory instruments x 100 channels at 10 Hz (10,000 channels, 100,000
samples/s), runs in a child process pinned to one core (`os.sched_setaffinity`, as under
`taskset -c 0`): the modest industrial PC of issue 19, whatever this machine has. Its loop lag
p99 is a figure of its own against the 10 ms budget. The CPU per sample at 1,000 channels
(20 x 50 at 10 Hz) is set against the 10 us budget of the same issue.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import Figure, arguments, report
from mdfd.daemons.core.logging import configure
from mdfd.daemons.engine.events import Event, EventBus, PointEnded, PointStarted

CONFIG = """
mdf: {{id: bench, domain: metal, site: BENCH}}
vocabulary: {vocabulary}
storage: {{data_dir: {root}/data, state_dir: {root}/state, runtime_dir: {root}/run}}
instruments:
{instruments}
"""

RECIPE = """
recipe: {{name: scale, version: "1"}}
sweep: {{parameters: {{x: {{linspace: {{start: 0, stop: 1, num: {points}}}}}}}}}
steps:
  - set: {{i0.x: x}}
  - acquire: {{channels: [{acquired}], rate: {rate}, count: {count}}}
"""

VOCABULARY = Path(__file__).resolve().parent.parent / "config" / "vocabulary.yaml"
TICK = 0.01


def modbus_instruments(ports: list[int], channels: int) -> tuple[str, list[str]]:
    """One Modbus TCP instrument per server: `channels` neighbouring float32 registers."""
    blocks, acquired = [], []
    for i, port in enumerate(ports):
        lines = [f"  m{i}:", "    driver: modbus", "    timeout: 2.0"]
        lines.append(f"    link: {{type: tcp, host: 127.0.0.1, port: {port}}}")
        lines.append("    channels:")
        if i == 0:
            lines.append("      x: {address: 1000, type: float32, writable: true}")
        for c in range(channels):
            lines.append(f"      c{c}: {{address: {2 * c}, type: float32}}")
            acquired.append(f"m{i}.c{c}")
        blocks.append("\n".join(lines))
    return "\n".join(blocks), acquired


def _serve(count: int, channels: int) -> None:
    """Child process: `count` pymodbus servers (one per instrument, each its own port) with
    `channels` float32 values from holding register 0 and a writable one at 1000; prints the
    ports on one line, serves until stdin closes."""
    import logging

    from pymodbus.server import ModbusTcpServer
    from pymodbus.simulator import DataType, SimData, SimDevice

    logging.getLogger("pymodbus").setLevel(logging.WARNING)

    async def serve() -> None:
        servers = []
        for _ in range(count):
            values = [20.0 + 0.5 * i for i in range(channels)]
            data = [
                SimData(0, values=values, datatype=DataType.FLOAT32),
                SimData(1000, values=[0.0], datatype=DataType.FLOAT32),
            ]
            server = ModbusTcpServer(SimDevice(1, simdata=data), address=("127.0.0.1", 0))
            await server.serve_forever(background=True)
            servers.append(server)
        ports = [s.transport.sockets[0].getsockname()[1] for s in servers]  # type: ignore[attr-defined]
        print(" ".join(map(str, ports)), flush=True)
        try:
            await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
        finally:
            for server in servers:
                await server.shutdown()

    asyncio.run(serve())


def measure_modbus(points: int, instruments: int, channels: int, rate: float, count: int) -> dict:
    """The same sweep against `instruments` Modbus TCP servers in a child process."""
    serve = f"from bench.scale import _serve; _serve({instruments}, {channels})"
    child = subprocess.Popen(
        [sys.executable, "-c", serve],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parent.parent,
    )
    try:
        assert child.stdout is not None
        ports = [int(p) for p in child.stdout.readline().split()]
        if len(ports) != instruments:
            raise RuntimeError("the Modbus servers did not start")
        block, acquired = modbus_instruments(ports, channels)
        with tempfile.TemporaryDirectory(prefix="mdfd-bench-") as tmp:
            root = Path(tmp)
            config = root / "mdf.yaml"
            config.write_text(CONFIG.format(root=root, vocabulary=VOCABULARY, instruments=block))
            recipe = root / "recipe.yaml"
            names = ", ".join(acquired)
            text = RECIPE.format(points=points, acquired=names, rate=rate, count=count)
            recipe.write_text(text.replace("i0.x", "m0.x"))
            return asyncio.run(_measure(config, recipe))
    finally:
        if child.stdin is not None:
            child.stdin.close()
        try:
            child.wait(timeout=20)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait(timeout=10)


def write_mdf(root: Path, points: int, instruments: int, channels: int, rate: float, count: int):
    blocks, acquired = [], []
    for i in range(instruments):
        lines = [f"  i{i}:", "    driver: memory", "    channels:"]
        lines.append("      x: {writable: true, limits: {min: -1.0e9, max: 1.0e9}}")
        for c in range(channels):
            lines.append(f"      c{c}: {{initial: {c}.5}}")
            acquired.append(f"i{i}.c{c}")
        blocks.append("\n".join(lines))
    config = root / "mdf.yaml"
    config.write_text(
        CONFIG.format(root=root, vocabulary=VOCABULARY, instruments="\n".join(blocks))
    )
    recipe = root / "recipe.yaml"
    recipe.write_text(
        RECIPE.format(points=points, acquired=", ".join(acquired), rate=rate, count=count)
    )
    return config, recipe


async def _lag_monitor(lags: list[float]) -> None:
    loop = asyncio.get_running_loop()
    while True:
        due = loop.time() + TICK
        await asyncio.sleep(TICK)
        lags.append(max(0.0, loop.time() - due))


class _PointClock(EventBus):
    """Wall and CPU clocks at the first point's start and the last point's end: the sweep
    itself, without the run's setup (connect, file creation) and teardown."""

    def __init__(self) -> None:
        super().__init__()
        self.first: tuple[float, float] | None = None
        self.last: tuple[float, float] = (0.0, 0.0)

    def publish(self, event: Event) -> None:
        match event:
            case PointStarted() if self.first is None:
                self.first = (time.perf_counter(), time.process_time())
            case PointEnded():
                self.last = (time.perf_counter(), time.process_time())
        super().publish(event)


async def _measure(config_path: Path, recipe_path: Path) -> dict[str, float]:
    from mdfd.daemons.core.config import load_config
    from mdfd.daemons.engine.runner import RunExecutor
    from mdfd.daemons.launch.oneshot import create_run, state_db
    from mdfd.daemons.store import RunStatus
    from mdfd.recipes.loader import load_recipe

    config = load_config(config_path)
    recipe = load_recipe(recipe_path)
    config.model.storage.data_dir.mkdir(parents=True, exist_ok=True)
    lags: list[float] = []
    async with state_db(config) as state:
        run = await create_run(state, config, recipe)
        clock = _PointClock()
        executor = RunExecutor(config, state, events=clock)
        monitor = asyncio.create_task(_lag_monitor(lags))
        wall, cpu = time.perf_counter(), time.process_time()
        try:
            outcome = await executor.execute(run)
        finally:
            monitor.cancel()
            await asyncio.gather(monitor, return_exceptions=True)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    if outcome.status is not RunStatus.COMPLETED:
        raise RuntimeError(f"scale run ended {outcome.status}: {outcome.message}")
    assert executor.acquisition is not None
    assert clock.first is not None
    lags.sort()
    sweep_wall = clock.last[0] - clock.first[0]
    return {
        "wall": sweep_wall,
        "cpu": clock.last[1] - clock.first[1],
        "setup": wall - sweep_wall,
        "samples": executor.acquisition.samples_written,
        "lag_p50": lags[len(lags) // 2] if lags else 0.0,
        "lag_p99": lags[min(len(lags) - 1, int(len(lags) * 0.99))] if lags else 0.0,
    }


def measure(points: int, instruments: int, channels: int, rate: float, count: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="mdfd-bench-") as tmp:
        config, recipe = write_mdf(Path(tmp), points, instruments, channels, rate, count)
        return asyncio.run(_measure(config, recipe))


def _one_core() -> None:
    configure("warning")
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})


def measure_on_one_core(
    points: int, instruments: int, channels: int, rate: float, count: int
) -> dict:
    """`measure` in a fresh child process pinned to one core."""
    spawn = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(1, spawn, initializer=_one_core) as pool:
        return pool.submit(measure, points, instruments, channels, rate, count).result()


def run(quick: bool = False) -> list[Figure]:
    configure("warning")
    points = 3 if quick else 5
    count = 10  # samples per channel per point: one second per point at 10 Hz
    sizes = [(1, 10, 10.0), (5, 50, 10.0), (20, 50, 10.0), (20, 50, 50.0)]
    if quick:
        sizes = sizes[:3]
    runs = [("memory", measure, size) for size in sizes]
    runs.append(("memory, one core,", measure_on_one_core, (100, 100, 10.0)))
    runs.append(("modbus", measure_modbus, (20, 50, 10.0)))
    figures: list[Figure] = []
    for kind, how, size in runs:
        results = [how(points, *size, count) for _ in range(2)]
        figures.append(_figure(kind, results, points, size, count))
        if size == (20, 50, 10.0) and kind == "memory":
            figures.append(_cpu_figure(results, "1,000 channels (memory 20 x 50 @ 10 Hz)"))
        if size == (100, 100, 10.0):
            figures.append(_lag_figure(results, "10,000 channels on one core"))
    return figures


def _cpu_figure(results: list[dict], label: str) -> Figure:
    return Figure(
        f"scale CPU per sample, {label}",
        "us/sample",
        [r["cpu"] / r["samples"] * 1e6 for r in results],
        "issue 19's budget",
        [10.0 for _ in results],
        higher_is_better=False,
        target_ratio=1.0,
        note="process CPU (all threads) over the sweep, checkpoints included, / samples",
    )


def _lag_figure(results: list[dict], label: str) -> Figure:
    return Figure(
        f"scale event-loop lag p99, {label}",
        "ms",
        [r["lag_p99"] * 1e3 for r in results],
        "issue 19's budget",
        [10.0 for _ in results],
        higher_is_better=False,
        target_ratio=1.0,
        note="overshoot of a 10 ms ticker on the engine's loop during the sweep",
    )


def _figure(
    kind: str, results: list[dict], points: int, size: tuple[int, int, float], count: int
) -> Figure:
    instruments, channels, rate = size
    label = f"{kind} {points} points x {instruments}x{channels} channels @ {rate:g} Hz"
    median = statistics.median
    return Figure(
        f"scale {label}: wall time per point",
        "s/point",
        [r["wall"] / points for r in results],
        f"schedule ({count} samples per channel at the rate)",
        [count / rate for _ in results],
        higher_is_better=False,
        target_ratio=0.98,
        note=(
            f"{median(r['samples'] / r['wall'] for r in results):.0f} samples/s, "
            f"CPU share {median(r['cpu'] / r['wall'] for r in results):.0%}, "
            f"loop lag p50 {median(r['lag_p50'] for r in results) * 1e3:.1f} ms"
            f" p99 {median(r['lag_p99'] for r in results) * 1e3:.1f} ms, "
            f"CPU {median(r['cpu'] / points for r in results) * 1e3:.1f} ms/point, "
            f"{median(r['cpu'] / r['samples'] for r in results) * 1e6:.1f} us/sample; "
            f"run setup + teardown {median(r['setup'] for r in results):.1f} s"
        ),
    )


def main() -> None:
    configure("warning")
    parser = arguments(__doc__)
    args = parser.parse_args()
    report(run(quick=args.quick), args.json)


if __name__ == "__main__":
    main()
