"""OPC-UA: the opcua driver vs raw asyncua on the same 100 Double variables, same run.

1. Polled scans: `driver.read(100 channels)` and `driver.read_block(100 channels)` (numpy
   columns) vs `Client.read_values(100 nodes)`, reads/s. Target: >= 90 % of raw. The server
   counts its Read service calls, so the figure "Read calls per scan" shows that a scan of 100
   channels is one service call.
2. Subscriptions: data-change notifications per second delivered through `driver.stream()` vs
   a raw asyncua subscription iterated directly (same publishing interval, sampling interval 0,
   while the server rewrites all 100 values as fast as it can).

The server is a plain asyncua server in a child process, so neither client shares its event
loop or its GIL. Rounds alternate driver / raw so that load from other processes on a shared
machine falls on both alike.

    python -m bench.opcua [--quick] [--json PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

from asyncua import Client, ua

from bench.common import Figure, arguments, report
from mdfd.drivers import DriverContext
from mdfd.drivers.opcua import OpcUaDriver, OpcUaInstrument

TARGET = 0.90
VARIABLES = 100
NAMESPACE = "urn:mdfd:bench"
SLICE = 20
PUBLISHING_MS = 10.0


def _node_id(name: str, namespace: int) -> ua.NodeId:
    """A string node id in `namespace`, typed as asyncua's stubs want it."""
    return ua.NodeId(ua.String(name), ua.Int16(namespace))


def _serve(updates: bool) -> None:
    """Child process: a plain asyncua server with 100 Doubles (rewritten continuously when
    `updates`) and a ReadCalls counter, until stdin closes; stdout carries only its port."""
    from asyncua import Server
    from asyncua.common.callback import CallbackType

    logging.getLogger("asyncua").setLevel(logging.CRITICAL)

    async def main() -> None:
        server = Server()
        await server.init()
        server.set_endpoint("opc.tcp://127.0.0.1:0/bench")
        server.set_security_policy([ua.SecurityPolicyType.NoSecurity])
        idx = await server.register_namespace(NAMESPACE)
        folder = await server.nodes.objects.add_folder(_node_id("Bench", idx), "Bench")
        nodes = [
            await folder.add_variable(_node_id(f"Bench.V{i:03d}", idx), f"V{i:03d}", float(i))
            for i in range(VARIABLES)
        ]
        calls = [0]

        async def count(_event: object, _dispatcher: object) -> None:
            calls[0] += 1

        counter = await folder.add_variable(_node_id("Bench.ReadCalls", idx), "ReadCalls", 0)
        server.set_attribute_value_callback(
            counter.nodeid,
            lambda _node, _attr: ua.DataValue(ua.Variant(calls[0], ua.VariantType.Int64)),
        )
        server.subscribe_server_callback(CallbackType.PreRead, count)
        await server.start()
        assert server.bserver is not None
        print(server.bserver.port, flush=True)

        async def rewrite() -> None:
            step = 0
            while True:
                step += 1
                for i, node in enumerate(nodes):
                    value = ua.DataValue(ua.Variant(float(i + step), ua.VariantType.Double))
                    await server.write_attribute_value(node.nodeid, value)
                await asyncio.sleep(0.001)

        writer = asyncio.create_task(rewrite()) if updates else None
        try:
            await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
        finally:
            if writer is not None:
                writer.cancel()
            await server.stop()

    asyncio.run(main())


def _config(url: str, subscribe: bool) -> OpcUaInstrument:
    channels = {
        f"v{i:03d}": {"node": f"s=Bench.V{i:03d}", "subscribe": subscribe} for i in range(VARIABLES)
    }
    return OpcUaInstrument.model_validate(
        {
            "driver": "opcua",
            "endpoint": url,
            "namespace": NAMESPACE,
            "timeout": 10.0,
            "publishing_interval": PUBLISHING_MS,
            "sampling_interval": 0,
            "channels": channels,
        }
    )


async def _read_calls(client: Client, idx: int) -> int:
    return int(await client.get_node(_node_id("Bench.ReadCalls", idx)).read_value())


async def _measure_reads(url: str, rounds: int, scans: int) -> list[Figure]:
    driver = OpcUaDriver("bench", _config(url, subscribe=False), DriverContext())
    names = list(driver.config.channels)
    raw = Client(url, timeout=10.0)
    await driver.connect()
    await raw.connect()
    try:
        idx = await raw.get_namespace_index(NAMESPACE)
        nodes = [raw.get_node(_node_id(f"Bench.V{i:03d}", idx)) for i in range(VARIABLES)]
        check = await driver.read(names)
        assert check["v099"].value == 99.0, check["v099"]
        assert (await raw.read_values(nodes))[99] == 99.0
        before = await _read_calls(raw, idx)
        for _ in range(SLICE):
            await driver.read(names)
        calls_per_scan = (await _read_calls(raw, idx) - before - 1) / SLICE
        block = await driver.read_block(names)
        assert block.values.tolist() == [float(i) for i in range(VARIABLES)], block
        rates: tuple[list[float], list[float], list[float]] = ([], [], [])
        scan = (
            lambda: driver.read(names),
            lambda: driver.read_block(names),
            lambda: raw.read_values(nodes),
        )
        for _ in range(rounds):
            spent = [0.0, 0.0, 0.0]
            slices = max(scans // SLICE, 1)
            for index in range(slices):
                # Who goes first rotates: no side always follows the same other's slice.
                for side in ((0, 1, 2), (1, 2, 0), (2, 0, 1))[index % 3]:
                    started = time.perf_counter()
                    for _ in range(SLICE):
                        await scan[side]()
                    spent[side] += time.perf_counter() - started
            for kept, took in zip(rates, spent, strict=True):
                kept.append(slices * SLICE / took)
        driver_rates, block_rates, raw_rates = rates
    finally:
        await raw.disconnect()
        await driver.close()
    return [
        Figure(
            name=f"opcua driver scan, {VARIABLES} Double channels, TCP loopback",
            unit="reads/s",
            samples=driver_rates,
            baseline_name=f"raw asyncua read_values({VARIABLES} nodes)",
            baseline_samples=raw_rates,
            target_ratio=TARGET,
        ),
        Figure(
            name=f"opcua driver read_block, {VARIABLES} Double channels, TCP loopback",
            unit="reads/s",
            samples=block_rates,
            baseline_name=f"raw asyncua read_values({VARIABLES} nodes)",
            baseline_samples=raw_rates,
            target_ratio=TARGET,
        ),
        Figure(
            name="opcua driver Read service calls per scan (counted by the server)",
            unit="calls/scan",
            samples=[calls_per_scan],
            baseline_name="raw asyncua read_values",
            baseline_samples=[1.0],
            higher_is_better=False,
        ),
    ]


async def _count_for(events: asyncio.Queue[None], seconds: float) -> float:
    """Notifications per second after the first one arrived."""
    await asyncio.wait_for(events.get(), 30)
    while not events.empty():
        events.get_nowait()
    count = 0
    started = time.perf_counter()
    deadline = started + seconds
    while (left := deadline - time.perf_counter()) > 0:
        try:
            await asyncio.wait_for(events.get(), left)
        except TimeoutError:
            break
        count += 1
    return count / (time.perf_counter() - started)


async def _pump(source: AsyncIterator[object], events: asyncio.Queue[None]) -> None:
    async for _ in source:
        events.put_nowait(None)


async def _driver_rate(url: str, seconds: float) -> float:
    driver = OpcUaDriver("bench", _config(url, subscribe=True), DriverContext())
    await driver.connect()
    events: asyncio.Queue[None] = asyncio.Queue()
    task = asyncio.create_task(_pump(driver.stream([]), events))
    try:
        return await _count_for(events, seconds)
    finally:
        await driver.close()
        await asyncio.wait_for(task, 10)


async def _raw_rate(url: str, seconds: float) -> float:
    async with Client(url, timeout=10.0) as client:
        idx = await client.get_namespace_index(NAMESPACE)
        nodes = [client.get_node(_node_id(f"Bench.V{i:03d}", idx)) for i in range(VARIABLES)]
        subscription = await client.create_subscription(
            PUBLISHING_MS, handler=None, queue_maxsize=100_000
        )
        await subscription.subscribe_data_change(nodes, sampling_interval=ua.Double(0))
        events: asyncio.Queue[None] = asyncio.Queue()
        task = asyncio.create_task(_pump(subscription, events))
        try:
            return await _count_for(events, seconds)
        finally:
            await subscription.delete()
            await asyncio.wait_for(task, 10)


async def _measure_notifications(url: str, rounds: int, seconds: float) -> list[Figure]:
    driver_rates: list[float] = []
    raw_rates: list[float] = []
    for _ in range(rounds):
        driver_rates.append(await _driver_rate(url, seconds))
        raw_rates.append(await _raw_rate(url, seconds))
    return [
        Figure(
            name=f"opcua driver subscription, {VARIABLES} items, publishing {PUBLISHING_MS:g} ms",
            unit="notifications/s",
            samples=driver_rates,
            baseline_name="raw asyncua subscription iterator",
            baseline_samples=raw_rates,
            target_ratio=TARGET,
        )
    ]


def _with_server(
    updates: bool, measure: Callable[[str], Coroutine[Any, Any, list[Figure]]]
) -> list[Figure]:
    command = [sys.executable, "-m", "bench.opcua", "--serve"] + (["--updates"] if updates else [])
    child = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        port = int(child.stdout.readline())
        return asyncio.run(measure(f"opc.tcp://127.0.0.1:{port}/bench"))
    finally:
        if child.stdin is not None:
            child.stdin.close()
        try:
            child.wait(timeout=15)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait(timeout=10)
        if child.stdout is not None:
            child.stdout.close()


def run(quick: bool = False) -> list[Figure]:
    rounds, scans, seconds = (3, 100, 1.0) if quick else (7, 400, 2.0)
    reads = 5 if quick else rounds
    figures = _with_server(False, lambda url: _measure_reads(url, reads, scans))
    figures += _with_server(True, lambda url: _measure_notifications(url, rounds, seconds))
    return figures


def main() -> None:
    parser = arguments(__doc__)
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--updates", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    logging.getLogger("asyncua").setLevel(logging.ERROR)
    if args.serve:
        _serve(args.updates)
        return
    report(run(quick=args.quick), args.json)


if __name__ == "__main__":
    main()
