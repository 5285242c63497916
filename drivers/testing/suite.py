"""The conformance suite: what every mdfd driver promises, checked against a live peer.

A driver package subclasses `DriverConformance` in one of its test modules and provides the
`target` fixture (an async fixture yielding a `ConformanceTarget`): how to build the driver,
which channels to read, which channel to write and with what. When the target's peer is reached
through a `WireProxy`, the wire-fault checks (peer vanishing mid-read, lost write replies,
nothing sent for a refused write) run too; otherwise they are skipped with that reason.

The rules checked here are the ones written in `mdfd.drivers.base.Driver`'s docstring; a
driver that offers `read_block` is also held to `BlockReadable`'s (the checks in blocks.py), and
a `Buffered` one to `Buffered`'s (buffers.py): inherited by `DriverConformance`, skipped for
drivers without the capability.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time

import pytest

from ..base import DriverContext
from ..errors import (
    ChannelError,
    InstrumentDisconnected,
    InstrumentTimeout,
    WriteOutcomeUnknown,
)
from .blocks import BlockConformance
from .buffers import BufferConformance
from .proxy import WireProxy
from .target import FIXED_TIME, ConformanceTarget, connected

CONCURRENT_READS = 50
LEAK_GRACE = 3.0
QUIET_SECONDS = 1.0  # a lost link left alone this long must see no reconnect attempt
POOLED_THREADS = ("asyncio_", "AnyIO worker thread")


def _needs_proxy(target: ConformanceTarget) -> WireProxy:
    if target.proxy is None:
        pytest.skip("the target's peer is not reached through a WireProxy")
    return target.proxy


@pytest.mark.asyncio
class DriverConformance(BlockConformance, BufferConformance):
    """Subclass and provide a `target` fixture; every test below then runs against it."""

    async def test_connect_and_close_are_idempotent(self, target: ConformanceTarget) -> None:
        driver = target.make_driver(DriverContext())
        await driver.connect()
        await driver.connect()
        readings = await driver.read(target.channels)
        assert set(readings) == set(target.channels)
        await driver.close()
        await driver.close()

    async def test_identify_names_the_instrument(self, target: ConformanceTarget) -> None:
        async with connected(target) as driver:
            identity = await driver.identify()
        assert isinstance(identity, str)
        assert identity.strip()

    async def test_a_scan_returns_every_channel_with_its_unit(
        self, target: ConformanceTarget
    ) -> None:
        async with connected(target) as driver:
            readings = await driver.read(target.channels)
        assert list(readings) == list(target.channels) or set(readings) == set(target.channels)
        for name, reading in readings.items():
            assert reading.unit == target.units[name], name
            if isinstance(reading.value, float):
                assert not math.isinf(reading.value), name

    async def test_unknown_channel_is_a_channel_error(self, target: ConformanceTarget) -> None:
        async with connected(target) as driver:
            with pytest.raises(ChannelError):
                await driver.read([*target.channels, "no_such_channel"])
            with pytest.raises(ChannelError):
                await driver.write("no_such_channel", target.in_limits)
            # The instrument is still usable afterwards.
            assert set(await driver.read(target.channels)) == set(target.channels)

    async def test_read_after_close_is_disconnected(self, target: ConformanceTarget) -> None:
        driver = target.make_driver(DriverContext())
        await driver.connect()
        await driver.close()
        with pytest.raises(InstrumentDisconnected):
            await driver.read(target.channels)

    async def test_timestamps_come_from_the_injected_clock(self, target: ConformanceTarget) -> None:
        async with connected(target, DriverContext(clock=lambda: FIXED_TIME)) as driver:
            readings = await driver.read(target.channels)
        assert {name: r.timestamp for name, r in readings.items()} == dict.fromkeys(
            readings, FIXED_TIME
        )

    async def test_concurrent_reads_are_consistent(self, target: ConformanceTarget) -> None:
        """The interlock monitor reads while a step reads: calls from many tasks interleave."""
        async with connected(target) as driver:
            scans = await asyncio.wait_for(
                asyncio.gather(*(driver.read(target.channels) for _ in range(CONCURRENT_READS))),
                target.failure_bound * 5,
            )
        for scan in scans:
            assert set(scan) == set(target.channels)
            assert {n: r.unit for n, r in scan.items()} == {
                n: target.units[n] for n in target.channels
            }

    async def test_write_outside_limits_is_refused_before_the_wire(
        self, target: ConformanceTarget
    ) -> None:
        async with connected(target) as driver:
            before = await driver.read([target.writable])
            sent = target.proxy.bytes_to_peer if target.proxy else 0
            with pytest.raises(ChannelError):
                await driver.write(target.writable, target.out_of_limits)
            if target.proxy is not None:
                assert target.proxy.bytes_to_peer == sent, "the refused write reached the wire"
            after = await driver.read([target.writable])
        assert after[target.writable].value == before[target.writable].value

    async def test_write_inside_limits_lands(self, target: ConformanceTarget) -> None:
        async with connected(target) as driver:
            await driver.write(target.writable, target.in_limits)
            readings = await driver.read([target.writable])
        value = readings[target.writable].value
        if isinstance(value, float) and isinstance(target.in_limits, int | float):
            assert value == pytest.approx(float(target.in_limits), rel=1e-6)
        else:
            assert value == target.in_limits

    async def test_peer_vanishing_mid_read_is_a_typed_error_then_reconnects(
        self, target: ConformanceTarget
    ) -> None:
        proxy = _needs_proxy(target)
        async with connected(target) as driver:
            await driver.read(target.channels)
            proxy.cut()
            started = time.monotonic()
            with pytest.raises((InstrumentDisconnected, InstrumentTimeout)):
                await asyncio.wait_for(driver.read(target.channels), target.failure_bound)
            assert time.monotonic() - started <= target.failure_bound
            proxy.restore()
            deadline = time.monotonic() + target.recovery_bound
            while True:
                try:
                    readings = await asyncio.wait_for(
                        driver.read(target.channels), target.failure_bound
                    )
                    break
                except (InstrumentDisconnected, InstrumentTimeout):
                    if time.monotonic() > deadline:
                        raise
                    await asyncio.sleep(0.1)
        assert set(readings) == set(target.channels)

    async def test_a_lost_link_is_reopened_by_the_next_call_only(
        self, target: ConformanceTarget
    ) -> None:
        """Lazy reconnect: while nobody calls, nothing connects in the background; the next
        call reconnects (a secure OPC-UA session, for one, opens two connections to do so)."""
        proxy = _needs_proxy(target)
        async with connected(target) as driver:
            await driver.read(target.channels)
            proxy.cut()
            with pytest.raises((InstrumentDisconnected, InstrumentTimeout)):
                await asyncio.wait_for(driver.read(target.channels), target.failure_bound)
            proxy.restore()
            attempted = proxy.connections
            await asyncio.sleep(QUIET_SECONDS)  # nobody asks
            assert proxy.connections == attempted
            readings = await asyncio.wait_for(driver.read(target.channels), target.failure_bound)
            assert proxy.connections > attempted
        assert set(readings) == set(target.channels)

    async def test_stalled_peer_is_a_timeout_within_the_bound(
        self, target: ConformanceTarget
    ) -> None:
        proxy = _needs_proxy(target)
        async with connected(target) as driver:
            await driver.read(target.channels)
            proxy.stall()
            try:
                with pytest.raises((InstrumentTimeout, InstrumentDisconnected)):
                    await asyncio.wait_for(driver.read(target.channels), target.failure_bound)
            finally:
                proxy.restore()

    async def test_write_whose_reply_is_lost_is_outcome_unknown(
        self, target: ConformanceTarget
    ) -> None:
        proxy = _needs_proxy(target)
        async with connected(target) as driver:
            await driver.read([target.writable])
            proxy.drop_replies()
            try:
                with pytest.raises(WriteOutcomeUnknown):
                    await asyncio.wait_for(
                        driver.write(target.writable, target.in_limits), target.failure_bound
                    )
            finally:
                proxy.restore()

    async def test_close_leaves_no_task_or_thread_behind(self, target: ConformanceTarget) -> None:
        tasks_before = set(asyncio.all_tasks())
        threads_before = set(threading.enumerate())
        async with connected(target) as driver:
            await driver.read(target.channels)
            await driver.write(target.writable, target.in_limits)
        deadline = time.monotonic() + LEAK_GRACE
        while True:
            tasks = [t for t in asyncio.all_tasks() - tasks_before if not t.done()]
            threads = [t for t in set(threading.enumerate()) - threads_before if t.is_alive()]
            # Pooled workers of asyncio's default executor and of anyio (asyncua loads keys
            # through it) idle on after use by design; they are the loop's, not the driver's.
            threads = [t for t in threads if not t.name.startswith(POOLED_THREADS)]
            if (not tasks and not threads) or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.05)
        assert not tasks, [t.get_name() for t in tasks]
        assert not threads, [t.name for t in threads]
