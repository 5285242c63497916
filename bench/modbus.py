"""Modbus TCP on loopback: the modbus driver against raw pymodbus doing the same requests, same
run, with the pymodbus servers in a child process.

Throughput: scans per second of 50 neighbouring float32 channels, by `read` (a Reading per
channel) and by `read_block` (numpy columns), vs raw pymodbus reading the same 100-register
block in one request; slices of the three alternate in rotating order. This process's CPU per
scan is printed for `read_block` against `read` (and raw pymodbus).

The device is a plain pymodbus server in a child process, so neither client shares its event
loop or its GIL. Rounds alternate driver / raw in small slices so that load from other
processes on a shared machine falls on both alike. The raw baseline only reads the registers
(stock pymodbus, which decodes a reply register by register in Python); the driver also
decodes 50 floats and builds 50 Readings, and wins back part of that cost by decoding register
replies in one struct call (reply classes registered through pymodbus's `client.register`).
Target: >= 90 % of raw. The figure "requests per scan" is counted by the driver (the coalescer
should need exactly one).

Scale: 20 instruments x 50 channels and 100 x 100 at 10 Hz, one pymodbus server per instrument
(all in one child process, as a gateway or a rack of controllers would answer). Each instrument
is scanned on a fixed 100 ms schedule by its own task; a tick whose scan cannot start within its
period is missed, and the figure is the fraction of ticks kept: by `read_block`, and by raw
pymodbus clients making the same requests (the driver's plan: 100 channels are 200 registers,
two requests). Printed beside it, so that a limit of the server side or of the machine shows as
a number: the server process's and this process's CPU share (CPU seconds / wall, 100% = one
core busy), this event loop's lag p99, and how much of the wall time each process's event loop
thread spent runnable but waiting for a CPU (Linux schedstat: other processes' load).

    python -m bench.modbus [--quick] [--json PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from pymodbus.client import AsyncModbusTcpClient

from bench.common import Figure, arguments, report
from mdfd.drivers import DriverContext
from mdfd.drivers.modbus import ModbusDriver, ModbusInstrument
from mdfd.drivers.modbus.codec import Codec
from mdfd.drivers.modbus.plan import plan_reads

TARGET = 0.90
SCALE_TARGETS = {(20, 50): 0.98, (100, 100): 0.95}
"""Issue 19's targets for the fraction of the schedule kept; held here against raw pymodbus
keeping the same schedule on the same machine in the same run."""
CHANNELS = 50
SLICE = 50
RATE = 10.0


def _serve(count: int, channels: int) -> None:
    """Child process: `count` plain pymodbus servers (one port each) with `channels` float32
    values from holding register 0, until stdin closes; stdout carries only their ports."""
    import logging

    from pymodbus.server import ModbusTcpServer
    from pymodbus.simulator import DataType, SimData, SimDevice

    logging.getLogger("pymodbus").setLevel(logging.WARNING)

    async def main() -> None:
        values = [20.0 + 0.5 * i for i in range(channels)]
        servers = []
        for _ in range(count):
            device = SimDevice(1, simdata=[SimData(0, values=values, datatype=DataType.FLOAT32)])
            server = ModbusTcpServer(device, address=("127.0.0.1", 0))
            await server.serve_forever(background=True)
            servers.append(server)
        ports = [s.transport.sockets[0].getsockname()[1] for s in servers]  # type: ignore[attr-defined]
        print(" ".join(map(str, ports)), flush=True)
        try:
            await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
        finally:
            for server in servers:
                await server.shutdown()

    asyncio.run(main())


@dataclass
class Servers:
    """The child process serving the instruments: its ports, and its CPU time so far."""

    process: subprocess.Popen[str]
    ports: list[int]

    def waiting_seconds(self) -> float:
        return _waiting_seconds(str(self.process.pid))

    def cpu_seconds(self) -> float:
        """User + system CPU of the server process (Linux /proc), all its threads."""
        with open(f"/proc/{self.process.pid}/stat", encoding="ascii") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _waiting_seconds(pid: str) -> float:
    """Time the process's main thread (its event loop) spent runnable but waiting for a CPU:
    the share of the machine other processes took from it (Linux schedstat)."""
    with open(f"/proc/{pid}/schedstat", encoding="ascii") as handle:
        return int(handle.read().split()[1]) / 1e9


@contextmanager
def servers(count: int, channels: int) -> Iterator[Servers]:
    child = subprocess.Popen(
        [sys.executable, "-m", "bench.modbus", "--serve", str(count), str(channels)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        ports = [int(p) for p in child.stdout.readline().split()]
        if len(ports) != count:
            raise RuntimeError("the Modbus servers did not start")
        yield Servers(child, ports)
    finally:
        if child.stdin is not None:
            child.stdin.close()
        try:
            child.wait(timeout=20)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait(timeout=10)
        if child.stdout is not None:
            child.stdout.close()


def _config(port: int, channels: int = CHANNELS) -> ModbusInstrument:
    layout = {f"t{i:02d}": {"address": 2 * i, "type": "float32"} for i in range(channels)}
    return ModbusInstrument.model_validate(
        {
            "driver": "modbus",
            "link": {"type": "tcp", "host": "127.0.0.1", "port": port},
            "timeout": 5.0,
            "channels": layout,
        }
    )


Timed = tuple[float, float]
"""Wall seconds and this process's CPU seconds of a slice of scans."""


async def _driver_time(driver: ModbusDriver, names: list[str], count: int) -> Timed:
    started, cpu = time.perf_counter(), time.process_time()
    for _ in range(count):
        await driver.read(names)
    return time.perf_counter() - started, time.process_time() - cpu


async def _block_time(driver: ModbusDriver, names: list[str], count: int) -> Timed:
    started, cpu = time.perf_counter(), time.process_time()
    for _ in range(count):
        await driver.read_block(names)
    return time.perf_counter() - started, time.process_time() - cpu


async def _raw_time(client: AsyncModbusTcpClient, count: int) -> Timed:
    started, cpu = time.perf_counter(), time.process_time()
    for _ in range(count):
        response = await client.read_holding_registers(0, count=2 * CHANNELS, device_id=1)
        if response.isError():
            raise RuntimeError(f"raw read failed: {response}")
    return time.perf_counter() - started, time.process_time() - cpu


async def _measure(port: int, rounds: int, scans: int) -> list[Figure]:
    driver = ModbusDriver("bench", _config(port), DriverContext())
    names = list(driver.config.channels)
    raw = AsyncModbusTcpClient("127.0.0.1", port=port, timeout=5.0, retries=0)
    await driver.connect()
    await raw.connect()
    try:
        check = await driver.read(names)
        assert check["t49"].value == 20.0 + 0.5 * 49, check["t49"]
        block = await driver.read_block(names)
        assert block.values.tolist() == [20.0 + 0.5 * i for i in range(CHANNELS)], block
        await _driver_time(driver, names, SLICE)  # warm up all three
        await _block_time(driver, names, SLICE)
        await _raw_time(raw, SLICE)
        rates: tuple[list[float], list[float], list[float]] = ([], [], [])
        cpus: tuple[list[float], list[float], list[float]] = ([], [], [])
        contenders = (
            lambda: _driver_time(driver, names, SLICE),
            lambda: _block_time(driver, names, SLICE),
            lambda: _raw_time(raw, SLICE),
        )
        requests_before, scans_done = driver.requests, 0
        for _ in range(rounds):
            spent, used = [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]
            slices = max(scans // SLICE, 1)
            for index in range(slices):
                # Who goes first rotates: no side always follows the same other's slice.
                for side in ((0, 1, 2), (1, 2, 0), (2, 0, 1))[index % 3]:
                    wall, cpu = await contenders[side]()
                    spent[side] += wall
                    used[side] += cpu
            scans_done += 2 * slices * SLICE
            for kept, took in zip(rates, spent, strict=True):
                kept.append(slices * SLICE / took)
            for kept, took in zip(cpus, used, strict=True):
                kept.append(took / (slices * SLICE) * 1e6)
        per_scan = (driver.requests - requests_before) / scans_done
    finally:
        raw.close()
        await driver.close()
    raw_name = "raw pymodbus read_holding_registers(0, count=100)"
    return [
        Figure(
            name=f"modbus driver scan (read), {CHANNELS} float32 channels, TCP loopback",
            unit="scans/s",
            samples=rates[0],
            baseline_name=raw_name,
            baseline_samples=rates[2],
            target_ratio=TARGET,
        ),
        Figure(
            name=f"modbus driver scan (read_block), {CHANNELS} float32 channels, TCP loopback",
            unit="scans/s",
            samples=rates[1],
            baseline_name=raw_name,
            baseline_samples=rates[2],
            target_ratio=TARGET,
        ),
        Figure(
            name=f"modbus client CPU per scan, read_block, {CHANNELS} float32 channels",
            unit="us/scan",
            samples=cpus[1],
            baseline_name="read (a Reading per channel)",
            baseline_samples=cpus[0],
            higher_is_better=False,
            note=f"raw pymodbus (decodes nothing): {statistics.median(cpus[2]):.0f} us/scan",
        ),
        Figure(
            name="modbus driver requests per scan",
            unit="requests/scan",
            samples=[per_scan],
            baseline_name="raw pymodbus (one block read)",
            baseline_samples=[1.0],
            higher_is_better=False,
        ),
    ]


async def _keep_schedule(scan: Callable[[], Awaitable[object]], ticks: int, start: float) -> int:
    """Scan once per period from `start`; a tick whose scan cannot start before the next tick
    is due is missed. Returns the scans made."""
    loop = asyncio.get_running_loop()
    period, done = 1.0 / RATE, 0
    for tick in range(ticks):
        due = start + tick * period
        now = loop.time()
        if now >= due + period:
            continue
        if now < due:
            await asyncio.sleep(due - now)
        await scan()
        done += 1
    return done


@dataclass
class Kept:
    fraction: float
    server_cpu: float
    client_cpu: float
    lag_p99: float
    server_waiting: float
    client_waiting: float


async def _lag_monitor(lags: list[float]) -> None:
    """A 10 ms ticker's overshoot: how late this process's event loop gets its turns."""
    loop = asyncio.get_running_loop()
    while True:
        due = loop.time() + 0.01
        await asyncio.sleep(0.01)
        lags.append(max(0.0, loop.time() - due))


async def _phase(
    scans: Sequence[Callable[[], Awaitable[object]]], ticks: int, served: Servers
) -> Kept:
    """Every instrument on its schedule at once; the fraction of ticks kept, and the CPU
    shares of the server process and of this one over the phase."""
    loop = asyncio.get_running_loop()
    wall, cpu, server = time.perf_counter(), time.process_time(), served.cpu_seconds()
    waited = (served.waiting_seconds(), _waiting_seconds("self"))
    start = loop.time() + 0.05
    lags: list[float] = []
    monitor = asyncio.create_task(_lag_monitor(lags))
    try:
        done = await asyncio.gather(*(_keep_schedule(scan, ticks, start) for scan in scans))
    finally:
        monitor.cancel()
        await asyncio.gather(monitor, return_exceptions=True)
    wall = time.perf_counter() - wall
    lags.sort()
    return Kept(
        sum(done) / (ticks * len(scans)),
        (served.cpu_seconds() - server) / wall,
        (time.process_time() - cpu) / wall,
        lags[int(len(lags) * 0.99)] if lags else 0.0,
        (served.waiting_seconds() - waited[0]) / wall,
        (_waiting_seconds("self") - waited[1]) / wall,
    )


def _raw_scan(
    client: AsyncModbusTcpClient, requests: list[tuple[int, int]]
) -> Callable[[], Awaitable[object]]:
    async def scan() -> None:
        for address, count in requests:
            response = await client.read_holding_registers(address, count=count, device_id=1)
            if response.isError():
                raise RuntimeError(f"raw read failed: {response}")

    return scan


async def _measure_scale(
    served: Servers, channels: int, rounds: int, ticks: int
) -> tuple[list[Kept], list[Kept], int]:
    drivers = [
        ModbusDriver(f"m{i}", _config(port, channels), DriverContext())
        for i, port in enumerate(served.ports)
    ]
    names = [f"t{i:02d}" for i in range(channels)]
    raws = [AsyncModbusTcpClient("127.0.0.1", port=p, timeout=5.0, retries=0) for p in served.ports]
    await asyncio.gather(*(d.connect() for d in drivers), *(r.connect() for r in raws))
    try:
        block = await drivers[-1].read_block(names)
        assert block.values.tolist() == [20.0 + 0.5 * i for i in range(channels)], block
        before = drivers[0].requests
        await drivers[0].read_block(names)
        per_scan = drivers[0].requests - before
        # the raw clients make the requests the driver's plan makes: same addresses, same counts
        config = drivers[0].config
        entries = [(n, config.channels[n], Codec(config.channels[n])) for n in names]
        plan = plan_reads(
            entries,
            max_gap=config.max_gap,
            max_registers=config.max_registers,
            max_bits=config.max_bits,
        )
        requests = [(r.address, r.count) for r in plan]
        assert len(requests) == per_scan, (requests, per_scan)
        block_scans = [functools.partial(d.read_block, names) for d in drivers]
        raw_scans = [_raw_scan(r, requests) for r in raws]
        mine, theirs = [], []
        for _ in range(rounds):
            mine.append(await _phase(block_scans, ticks, served))
            theirs.append(await _phase(raw_scans, ticks, served))
    finally:
        for raw in raws:
            raw.close()
        await asyncio.gather(*(d.close() for d in drivers))
    return mine, theirs, per_scan


def _scale_figure(
    instruments: int, channels: int, mine: list[Kept], theirs: list[Kept], per_scan: int
) -> Figure:
    def median(phases: list[Kept], what: str) -> float:
        values = sorted(getattr(p, what) for p in phases)
        return float(values[len(values) // 2])

    def share(phases: list[Kept], what: str) -> str:
        return f"{median(phases, what):.0%}"

    size = f"{instruments}x{channels} @ {RATE:g} Hz"
    return Figure(
        name=f"modbus scale {size}, driver read_block: schedule kept",
        unit="of ticks",
        samples=[k.fraction for k in mine],
        baseline_name="raw pymodbus, same requests",
        baseline_samples=[k.fraction for k in theirs],
        target_ratio=SCALE_TARGETS.get((instruments, channels)),
        note=(
            f"{per_scan} request(s) per scan; server process CPU {share(mine, 'server_cpu')} "
            f"(raw phase {share(theirs, 'server_cpu')}), client CPU {share(mine, 'client_cpu')} "
            f"(raw {share(theirs, 'client_cpu')}); 100% = one core; client loop lag p99 "
            f"{median(mine, 'lag_p99') * 1e3:.0f} ms "
            f"(raw {median(theirs, 'lag_p99') * 1e3:.0f} ms); "
            f"runnable but waiting for a CPU: server {share(mine, 'server_waiting')}, "
            f"client {share(mine, 'client_waiting')} of the wall time"
        ),
    )


def run(quick: bool = False) -> list[Figure]:
    rounds, scans = (3, 200) if quick else (7, 1000)
    with servers(1, CHANNELS) as served:
        figures = asyncio.run(_measure(served.ports[0], rounds, scans))
    ticks, scale_rounds = (30, 2) if quick else (100, 3)
    for instruments, channels in ((20, 50), (100, 100)):
        with servers(instruments, channels) as served:
            mine, theirs, per_scan = asyncio.run(
                _measure_scale(served, channels, scale_rounds, ticks)
            )
        figures.append(_scale_figure(instruments, channels, mine, theirs, per_scan))
    return figures


def main() -> None:
    parser = arguments(__doc__)
    parser.add_argument("--serve", nargs=2, type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        _serve(*args.serve)
        return
    report(run(quick=args.quick), args.json)


if __name__ == "__main__":
    main()
