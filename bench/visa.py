"""Query round trips per second: the visa driver vs plain pyvisa, same resource, same run.

The meter simulator runs in a child process so neither client shares its event loop or its
GIL. Both clients use pyvisa-py on the same `TCPIP::...::SOCKET` resource (and on the pty);
rounds alternate driver / baseline so drift on a shared machine hits both alike. The driver
pays for its worker-thread hop, lock, parse and Reading per call; the target is >= 90 % of
plain pyvisa.

    python -m bench.visa [--quick] [--json PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyvisa

from bench.common import Figure, report
from mdfd.drivers import DriverContext
from mdfd.drivers.visa import VisaDriver, VisaInstrument

TARGET = 0.90
SLICE = 20
SCAN = ["capacitance", "loss", "resistivity", "hardness", "colour_strength"]
QUERIES = ["MEAS:CAP?", "MEAS:LOSS?", "MEAS:RES?", "MEAS:HARD?", "MEAS:KS?"]


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


def _config(resource: str) -> VisaInstrument:
    channels = {name: {"query": query} for name, query in zip(SCAN, QUERIES, strict=True)}
    return VisaInstrument.model_validate(
        {"driver": "visa", "resource": resource, "timeout": 5.0, "channels": channels}
    )


Plain = pyvisa.resources.MessageBasedResource


async def _driver_time(driver: VisaDriver, channels: list[str], count: int) -> float:
    started = time.perf_counter()
    for _ in range(count):
        await driver.read(channels)
    return time.perf_counter() - started


def _plain_time(instrument: Plain, queries: list[str], count: int) -> float:
    started = time.perf_counter()
    for _ in range(count):
        for query in queries:
            float(instrument.query(query))
    return time.perf_counter() - started


async def _plain_time_in_thread(instrument: Plain, queries: list[str], count: int) -> float:
    """Plain pyvisa as an asyncio program must call it: one `asyncio.to_thread` per query."""
    started = time.perf_counter()
    for _ in range(count):
        for query in queries:
            float(await asyncio.to_thread(instrument.query, query))
    return time.perf_counter() - started


async def _round(
    driver: VisaDriver, plain: Plain, channels: list[str], reads: int
) -> tuple[float, float, float]:
    """One sample of each contender, interleaved in slices of SLICE reads so that load from
    other processes on a shared machine falls on all of them alike."""
    queries = QUERIES[: len(channels)]
    spent = [0.0, 0.0, 0.0]
    for _ in range(max(reads // SLICE, 1)):
        spent[0] += await _driver_time(driver, channels, SLICE)
        spent[1] += _plain_time(plain, queries, SLICE)
        spent[2] += await _plain_time_in_thread(plain, queries, SLICE)
    done = max(reads // SLICE, 1) * SLICE * len(channels)
    return done / spent[0], done / spent[1], done / spent[2]


async def _compare(resource: str, label: str, rounds: int, reads: int) -> list[Figure]:
    driver = VisaDriver("meter", _config(resource), DriverContext())
    manager = pyvisa.ResourceManager("@py")
    plain = manager.open_resource(
        resource, read_termination="\n", write_termination="\n", timeout=5000
    )
    figures: list[Figure] = []
    await driver.connect()
    try:
        for channels in (SCAN, SCAN[:1]):
            await _round(driver, plain, channels, SLICE)  # warm-up
            samples = [await _round(driver, plain, channels, reads) for _ in range(rounds)]
            ours, blocking, threaded = (list(column) for column in zip(*samples, strict=True))
            what = "1 channel per read" if len(channels) == 1 else f"{len(channels)}-channel scan"
            name = f"visa driver, {label}, {what}"
            figures.append(
                Figure(
                    name=name,
                    unit="queries/s",
                    samples=ours,
                    baseline_name="plain pyvisa query() loop",
                    baseline_samples=blocking,
                    target_ratio=TARGET,
                )
            )
            figures.append(
                Figure(
                    name=name,
                    unit="queries/s",
                    samples=ours,
                    baseline_name="plain pyvisa query() per asyncio.to_thread",
                    baseline_samples=threaded,
                    target_ratio=TARGET,
                    note="the thread hop any asyncio caller pays",
                )
            )
    finally:
        await driver.close()
        plain.close()
        manager.close()
    return figures


def run(quick: bool = False) -> list[Figure]:
    rounds, reads = (3, 100) if quick else (7, 400)
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
            figures = asyncio.run(_compare(tcp, "TCP socket", rounds, reads))
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
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json")
    parser.add_argument("--serve", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve is not None:
        _serve(0, args.serve)
        return
    report(run(quick=args.quick), args.json)


if __name__ == "__main__":
    main()
