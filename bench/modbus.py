"""Scans per second of 50 neighbouring float32 channels over Modbus TCP on loopback: the modbus
driver vs raw pymodbus reading the same 100-register block in one request, same run.

The device is a plain pymodbus server in a child process, so neither client shares its event
loop or its GIL. Rounds alternate driver / raw in small slices so that load from other
processes on a shared machine falls on both alike. The raw baseline only reads the registers
(stock pymodbus, which decodes a reply register by register in Python); the driver also
decodes 50 floats and builds 50 Readings, and wins back part of that cost by decoding register
replies in one struct call (reply classes registered through pymodbus's `client.register`).
Target: >= 90 % of raw. The figure "requests per scan" is counted by the driver (the coalescer
should need exactly one).

    python -m bench.modbus [--quick] [--json PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import time

from pymodbus.client import AsyncModbusTcpClient

from bench.common import Figure, arguments, report
from mdfd.drivers import DriverContext
from mdfd.drivers.modbus import ModbusDriver, ModbusInstrument

TARGET = 0.90
CHANNELS = 50
SLICE = 50


def _serve() -> None:
    """Child process: a plain pymodbus server with 50 float32 values until stdin closes;
    stdout carries only its port."""
    import logging

    from pymodbus.server import ModbusTcpServer
    from pymodbus.simulator import DataType, SimData, SimDevice

    logging.getLogger("pymodbus").setLevel(logging.WARNING)

    async def main() -> None:
        values = [20.0 + 0.5 * i for i in range(CHANNELS)]
        device = SimDevice(1, simdata=[SimData(0, values=values, datatype=DataType.FLOAT32)])
        server = ModbusTcpServer(device, address=("127.0.0.1", 0))
        await server.serve_forever(background=True)
        print(server.transport.sockets[0].getsockname()[1], flush=True)  # type: ignore[attr-defined]
        try:
            await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
        finally:
            await server.shutdown()

    asyncio.run(main())


def _config(port: int) -> ModbusInstrument:
    channels = {f"t{i:02d}": {"address": 2 * i, "type": "float32"} for i in range(CHANNELS)}
    return ModbusInstrument.model_validate(
        {
            "driver": "modbus",
            "link": {"type": "tcp", "host": "127.0.0.1", "port": port},
            "timeout": 5.0,
            "channels": channels,
        }
    )


async def _driver_time(driver: ModbusDriver, names: list[str], count: int) -> float:
    started = time.perf_counter()
    for _ in range(count):
        await driver.read(names)
    return time.perf_counter() - started


async def _raw_time(client: AsyncModbusTcpClient, count: int) -> float:
    started = time.perf_counter()
    for _ in range(count):
        response = await client.read_holding_registers(0, count=2 * CHANNELS, device_id=1)
        if response.isError():
            raise RuntimeError(f"raw read failed: {response}")
    return time.perf_counter() - started


async def _measure(port: int, rounds: int, scans: int) -> list[Figure]:
    driver = ModbusDriver("bench", _config(port), DriverContext())
    names = list(driver.config.channels)
    raw = AsyncModbusTcpClient("127.0.0.1", port=port, timeout=5.0, retries=0)
    await driver.connect()
    await raw.connect()
    try:
        check = await driver.read(names)
        assert check["t49"].value == 20.0 + 0.5 * 49, check["t49"]
        await _driver_time(driver, names, SLICE)  # warm up both
        await _raw_time(raw, SLICE)
        driver_rates: list[float] = []
        raw_rates: list[float] = []
        requests_before, scans_done = driver.requests, 0
        for _ in range(rounds):
            spent = [0.0, 0.0]
            slices = max(scans // SLICE, 1)
            for _ in range(slices):
                spent[0] += await _driver_time(driver, names, SLICE)
                spent[1] += await _raw_time(raw, SLICE)
            scans_done += slices * SLICE
            driver_rates.append(slices * SLICE / spent[0])
            raw_rates.append(slices * SLICE / spent[1])
        per_scan = (driver.requests - requests_before) / scans_done
    finally:
        raw.close()
        await driver.close()
    return [
        Figure(
            name=f"modbus driver scan, {CHANNELS} float32 channels, TCP loopback",
            unit="scans/s",
            samples=driver_rates,
            baseline_name="raw pymodbus read_holding_registers(0, count=100)",
            baseline_samples=raw_rates,
            target_ratio=TARGET,
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


def run(quick: bool = False) -> list[Figure]:
    rounds, scans = (3, 200) if quick else (7, 1000)
    child = subprocess.Popen(
        [sys.executable, "-m", "bench.modbus", "--serve"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        port = int(child.stdout.readline())
        return asyncio.run(_measure(port, rounds, scans))
    finally:
        if child.stdin is not None:
            child.stdin.close()
        try:
            child.wait(timeout=10)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait(timeout=10)
        if child.stdout is not None:
            child.stdout.close()


def main() -> None:
    parser = arguments(__doc__)
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        _serve()
        return
    report(run(quick=args.quick), args.json)


if __name__ == "__main__":
    main()
