"""Query round trips per second: the visa driver vs plain clients, same resource, same run.

The meter simulator runs in a child process so neither client shares its event loop or its
GIL. Within a case, slices of driver and baseline reads alternate so drift on a shared machine
hits all alike. The target is >= 90 % of the plain client doing the same work.

The driver serves `TCPIP::...::SOCKET` over its own asyncio streams (no thread, no pyvisa) and
the pty (`ASRL...::INSTR`) through pyvisa-py on a worker thread. So on TCP the same-work
baseline is a plain asyncio streams loop (write, then `readuntil` under a timeout, as any
asyncio program must), with plain blocking pyvisa-py `query()` alongside as what a lab script
does; on the pty it is plain pyvisa-py, blocking and per `asyncio.to_thread`.

Cases, per transport:
- a 5-channel scan, one query per message (`queries_per_message: 1`), and one channel per read;
- the 5-channel scan as one compound message (`queries_per_message: 5`) against the per-query
  pyvisa loop (what the option buys) and against the same compound message sent plainly
  (same work: the honest ratio);
- (TCP) one channel per read from an instrument that takes 1 ms to answer, as real ones do;
- the bare thread hop (no I/O) of the pyvisa path's worker vs a one-thread executor and to_thread.

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

REPLY_TIMEOUT = 5.0
Plain = pyvisa.resources.MessageBasedResource
Contender = Callable[[int], Awaitable[float]]


@dataclass
class Peers:
    """The baselines' own clients of the instrument: pyvisa-py on the resource and, on TCP, a
    plain asyncio stream connection to the same port."""

    plain: Plain
    stream: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None


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


def _plain(peers: Peers, queries: list[str]) -> Contender:
    instrument = peers.plain

    async def measure(reads: int) -> float:
        started = time.perf_counter()
        for _ in range(reads):
            for query in queries:
                float(instrument.query(query))
        return time.perf_counter() - started

    return measure


def _plain_in_thread(peers: Peers, queries: list[str]) -> Contender:
    """Plain pyvisa as an asyncio program must call it: one `asyncio.to_thread` per query."""
    instrument = peers.plain

    async def measure(reads: int) -> float:
        started = time.perf_counter()
        for _ in range(reads):
            for query in queries:
                float(await asyncio.to_thread(instrument.query, query))
        return time.perf_counter() - started

    return measure


def _plain_compound(peers: Peers) -> Contender:
    instrument = peers.plain

    async def measure(reads: int) -> float:
        started = time.perf_counter()
        for _ in range(reads):
            for unit in instrument.query(COMPOUND).split(";"):
                float(unit)
        return time.perf_counter() - started

    return measure


def _streams(peers: Peers, messages: list[str], units: int = 1) -> Contender:
    """Plain asyncio streams: write a message, `readuntil` its reply under a timeout."""
    assert peers.stream is not None
    reader, writer = peers.stream
    encoded = [message.encode() + b"\n" for message in messages]

    async def measure(reads: int) -> float:
        started = time.perf_counter()
        for _ in range(reads):
            for message in encoded:
                writer.write(message)
                async with asyncio.timeout(REPLY_TIMEOUT):
                    reply = await reader.readuntil(b"\n")
                fields = reply[:-1].split(b";")
                assert len(fields) == units
                for field in fields:
                    float(field)
        return time.perf_counter() - started

    return measure


@dataclass
class Case:
    what: str
    channels: list[str]
    per_message: int
    baselines: dict[str, Callable[[Peers], Contender]]
    latency: float = 0.0
    note: str = ""  # printed with the last baseline


def _cases(serial: bool) -> list[Case]:
    loop = "plain pyvisa query() loop"
    one = SCAN[:1]
    if serial:
        # The pyvisa path: its worker thread against pyvisa blocking and per to_thread.
        threaded = "plain pyvisa query() per asyncio.to_thread"
        same_work: dict[str, Callable[[Peers], Contender]] = {
            loop: lambda p: _plain(p, QUERIES),
            threaded: lambda p: _plain_in_thread(p, QUERIES),
        }
        single: dict[str, Callable[[Peers], Contender]] = {
            loop: lambda p: _plain(p, QUERIES[:1]),
            threaded: lambda p: _plain_in_thread(p, QUERIES[:1]),
        }
        compound: tuple[str, Callable[[Peers], Contender]] = (
            "plain pyvisa compound query() loop",
            _plain_compound,
        )
        note = HOP
    else:
        # The own socket transport: against plain asyncio streams (same work) and pyvisa.
        streams = "plain asyncio streams loop"
        same_work = {loop: lambda p: _plain(p, QUERIES), streams: lambda p: _streams(p, QUERIES)}
        single = {
            loop: lambda p: _plain(p, QUERIES[:1]),
            streams: lambda p: _streams(p, QUERIES[:1]),
        }
        compound = ("plain asyncio streams compound loop", lambda p: _streams(p, [COMPOUND], 5))
        note = "against the streams loop: same work, no thread on either side"
    cases = [
        Case("5-channel scan, a query per message", SCAN, 1, same_work, note=note),
        Case(
            "5-channel scan, one compound message",
            SCAN,
            5,
            {loop: lambda p: _plain(p, QUERIES), compound[0]: compound[1]},
            note="against the compound loop: same work, the honest ratio",
        ),
        Case("1 channel per read", one, 1, single, note=note),
    ]
    if not serial:
        cases.append(
            Case(
                f"1 channel per read, instrument answering in {LATENCY * 1000:g} ms",
                one,
                1,
                single,
                latency=LATENCY,
                note="when the instrument, not loopback, sets the pace",
            )
        )
    return cases


async def _case(
    resource: str, label: str, case: Case, peers: Peers, rounds: int, reads: int
) -> list[Figure]:
    plain = peers.plain
    driver = VisaDriver("meter", _config(resource, case.per_message), DriverContext())
    contenders = [_driver(driver, case.channels)]
    contenders += [make(peers) for make in case.baselines.values()]
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
    peers = Peers(plain)
    parsed = pyvisa.rname.parse_resource_name(resource)
    if isinstance(parsed, pyvisa.rname.TCPIPSocket):
        peers.stream = await asyncio.open_connection(parsed.host_address, int(parsed.port))
    figures: list[Figure] = []
    try:
        for case in _cases(serial=peers.stream is None):
            figures += await _case(resource, label, case, peers, rounds, reads)
    finally:
        if peers.stream is not None:
            peers.stream[1].close()
            await peers.stream[1].wait_closed()
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
