"""Query round trips per second: the visa driver vs plain pyvisa, same resource, same run.

The meter simulator runs in a child process so neither client shares its event loop or its
GIL. Both clients use pyvisa-py on the same `TCPIP::...::SOCKET` resource (and on the pty);
within a case, slices of driver and baseline reads alternate so drift on a shared machine
hits all alike. The driver pays for its worker-thread hop, lock, parse and Reading per read;
the target is >= 90 % of plain pyvisa doing the same work.

Cases, per transport:
- a 5-channel scan, one query per message (`queries_per_message: 1`), and one channel per
  read, against a blocking `query()` loop and against `query()` per `asyncio.to_thread`;
- the 5-channel scan as one compound message (`queries_per_message: 5`) against the per-query
  loop (what the option buys) and against plain pyvisa sending the same compound message
  (same work: the honest ratio);
- (TCP) one channel per read from an instrument that takes 1 ms to answer, as real ones do;
- the bare thread hop (no I/O) of the driver's worker vs a one-thread executor and to_thread.

    python -m bench.visa [--quick] [--json PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pyvisa

from bench.common import Figure, arguments, report
from mdfd.drivers import DriverContext
from mdfd.drivers.visa import VisaDriver, VisaInstrument
from mdfd.drivers.visa.worker import Worker

TARGET = 0.90
SLICE = 20
SCAN = ["capacitance", "loss", "resistivity", "hardness", "colour_strength"]
QUERIES = ["MEAS:CAP?", "MEAS:LOSS?", "MEAS:RES?", "MEAS:HARD?", "MEAS:KS?"]
COMPOUND = ";:".join(QUERIES)
LATENCY = 0.001
HOP = "the thread hop any asyncio caller pays"

Plain = pyvisa.resources.MessageBasedResource
Contender = Callable[[int], Awaitable[float]]


def _serve(port: int, link: Path) -> None:
    """Child process: one meter simulator until stdin closes; stdout carries only its port."""
    import logging

    import structlog

    from mdfd.simulators.clock import ScaledClock
    from mdfd.simulators.meter import MeterSettings, MeterSimulator
    from mdfd.simulators.world import World

    structlog.configure(
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING),
    )

    async def main() -> None:
        settings = MeterSettings(kind="meter", port=port, link=link)
        simulator = MeterSimulator("meter", settings, World(ScaledClock(60.0), seed=1))
        await simulator.start()
        print(simulator.endpoints()["tcp"].rsplit(":", 1)[1], flush=True)
        try:
            await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
        finally:
            await simulator.stop()

    asyncio.run(main())


def _config(resource: str, per_message: int = 1) -> VisaInstrument:
    channels = {name: {"query": query} for name, query in zip(SCAN, QUERIES, strict=True)}
    return VisaInstrument.model_validate(
        {
            "driver": "visa",
            "resource": resource,
            "timeout": 5.0,
            "queries_per_message": per_message,
            "channels": channels,
        }
    )


def _driver(driver: VisaDriver, channels: list[str]) -> Contender:
    async def measure(reads: int) -> float:
        started = time.perf_counter()
        for _ in range(reads):
            await driver.read(channels)
        return time.perf_counter() - started

    return measure


def _plain(instrument: Plain, queries: list[str]) -> Contender:
    async def measure(reads: int) -> float:
        started = time.perf_counter()
        for _ in range(reads):
            for query in queries:
                float(instrument.query(query))
        return time.perf_counter() - started

    return measure


def _plain_in_thread(instrument: Plain, queries: list[str]) -> Contender:
    """Plain pyvisa as an asyncio program must call it: one `asyncio.to_thread` per query."""

    async def measure(reads: int) -> float:
        started = time.perf_counter()
        for _ in range(reads):
            for query in queries:
                float(await asyncio.to_thread(instrument.query, query))
        return time.perf_counter() - started

    return measure


def _plain_compound(instrument: Plain) -> Contender:
    async def measure(reads: int) -> float:
        started = time.perf_counter()
        for _ in range(reads):
            for unit in instrument.query(COMPOUND).split(";"):
                float(unit)
        return time.perf_counter() - started

    return measure


@dataclass
class Case:
    what: str
    channels: list[str]
    per_message: int
    baselines: dict[str, Callable[[Plain], Contender]]
    latency: float = 0.0
    note: str = ""  # printed with the last baseline


def _cases(serial: bool) -> list[Case]:
    loop = "plain pyvisa query() loop"
    threaded = "plain pyvisa query() per asyncio.to_thread"
    one = SCAN[:1]
    cases = [
        Case(
            "5-channel scan, a query per message",
            SCAN,
            1,
            {loop: lambda p: _plain(p, QUERIES), threaded: lambda p: _plain_in_thread(p, QUERIES)},
            note=HOP,
        ),
        Case(
            "5-channel scan, one compound message",
            SCAN,
            5,
            {
                loop: lambda p: _plain(p, QUERIES),
                "plain pyvisa compound query() loop": _plain_compound,
            },
            note="against the compound loop: same work, the honest ratio",
        ),
        Case(
            "1 channel per read",
            one,
            1,
            {
                loop: lambda p: _plain(p, QUERIES[:1]),
                threaded: lambda p: _plain_in_thread(p, QUERIES[:1]),
            },
            note=HOP,
        ),
    ]
    if not serial:
        cases.append(
            Case(
                f"1 channel per read, instrument answering in {LATENCY * 1000:g} ms",
                one,
                1,
                {loop: lambda p: _plain(p, QUERIES[:1])},
                latency=LATENCY,
                note="the hop's share when the instrument, not loopback, sets the pace",
            )
        )
    return cases


async def _case(
    resource: str, label: str, case: Case, plain: Plain, rounds: int, reads: int
) -> list[Figure]:
    driver = VisaDriver("meter", _config(resource, case.per_message), DriverContext())
    contenders = [_driver(driver, case.channels)]
    contenders += [make(plain) for make in case.baselines.values()]
    if case.latency:
        plain.write(f"SIM:FAULT:DEL {case.latency}")
        reads = max(reads // 10, SLICE)
    await driver.connect()
    try:
        slices = max(reads // SLICE, 1)
        for contender in contenders:  # warm-up
            await contender(SLICE)
        samples: list[list[float]] = [[] for _ in contenders]
        for _ in range(rounds):
            spent = [0.0] * len(contenders)
            for _ in range(slices):
                for index, contender in enumerate(contenders):
                    spent[index] += await contender(SLICE)
            done = slices * SLICE * len(case.channels)
            for index, seconds in enumerate(spent):
                samples[index].append(done / seconds)
    finally:
        await driver.close()
        if case.latency:
            plain.write("SIM:FAULT:CLE")
    return [
        Figure(
            name=f"visa driver, {label}, {case.what}",
            unit="queries/s",
            samples=samples[0],
            baseline_name=name,
            baseline_samples=baseline,
            target_ratio=TARGET,
            note=case.note if index == len(case.baselines) - 1 else "",
        )
        for index, (name, baseline) in enumerate(zip(case.baselines, samples[1:], strict=True))
    ]


async def _compare(resource: str, label: str, rounds: int, reads: int) -> list[Figure]:
    manager = pyvisa.ResourceManager("@py")
    plain = manager.open_resource(
        resource, read_termination="\n", write_termination="\n", timeout=5000
    )
    assert isinstance(plain, Plain)
    figures: list[Figure] = []
    try:
        for case in _cases(serial=label.startswith("pty")):
            figures += await _case(resource, label, case, plain, rounds, reads)
    finally:
        plain.close()
        manager.close()
    return figures


def _noop() -> None:
    return None


async def _hops(rounds: int, calls: int) -> list[Figure]:
    """The bare cost of handing a call to a thread and getting its result back."""
    loop = asyncio.get_running_loop()
    worker = Worker("bench-hop")
    executor = ThreadPoolExecutor(max_workers=1)

    async def ours() -> None:
        await worker.call(_noop)

    async def pool() -> None:
        await loop.run_in_executor(executor, _noop)

    async def to_thread() -> None:
        await asyncio.to_thread(_noop)

    kinds = [ours, pool, to_thread]
    samples: list[list[float]] = [[] for _ in kinds]
    try:
        for _ in range(rounds):
            for index, kind in enumerate(kinds):
                started = time.perf_counter()
                for _ in range(calls):
                    await kind()
                samples[index].append(calls / (time.perf_counter() - started))
    finally:
        worker.stop()
        executor.shutdown(wait=True)
    return [
        Figure(
            name="visa worker thread hop (no I/O)",
            unit="calls/s",
            samples=samples[0],
            baseline_name=name,
            baseline_samples=baseline,
        )
        for name, baseline in (
            ("loop.run_in_executor, one-thread pool", samples[1]),
            ("asyncio.to_thread", samples[2]),
        )
    ]


def run(quick: bool = False) -> list[Figure]:
    rounds, reads = (3, 100) if quick else (7, 400)
    figures = asyncio.run(_hops(rounds, 20 * reads))
    with tempfile.TemporaryDirectory() as scratch:
        link = Path(scratch) / "meter.pty"
        child = subprocess.Popen(
            [sys.executable, "-m", "bench.visa", "--serve", str(link)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert child.stdout is not None
            port = child.stdout.readline().strip()
            if not port:
                raise RuntimeError("the meter simulator did not start")
            tcp = f"TCPIP::127.0.0.1::{port}::SOCKET"
            serial = f"ASRL{link}::INSTR"
            figures += asyncio.run(_compare(tcp, "TCP socket", rounds, reads))
            figures += asyncio.run(_compare(serial, "pty serial", rounds, reads // 2))
        finally:
            assert child.stdin is not None
            child.stdin.close()
            try:
                child.wait(timeout=15)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait(timeout=15)
            if child.stdout is not None:
                child.stdout.close()
    return figures


def main() -> None:
    parser = arguments(__doc__)
    parser.add_argument("--serve", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve is not None:
        _serve(0, args.serve)
        return
    report(run(quick=args.quick), args.json)


if __name__ == "__main__":
    main()
