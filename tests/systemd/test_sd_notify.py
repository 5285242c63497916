"""sd_notify against a real UNIX datagram socket standing in for systemd's notify socket."""

from __future__ import annotations

import asyncio
import os
import socket
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

from mdfd.daemons.core.notify import Notifier, Watchdog, watchdog_interval

# 100 ms watchdog -> a ping every 50 ms: the tests see many pings within a fraction of a second.
WATCHDOG_USEC = "100000"
WAIT = 10.0  # upper bound for any single wait; never a pass/fail threshold


class Receiver:
    """The service manager's end: a bound datagram socket read without blocking the loop."""

    def __init__(self, sock: socket.socket, address: str) -> None:
        self.sock = sock
        self.address = address

    async def next(self) -> dict[str, str]:
        loop = asyncio.get_running_loop()
        data = await asyncio.wait_for(loop.sock_recv(self.sock, 4096), WAIT)
        return dict(line.split("=", 1) for line in data.decode().split("\n"))

    async def until(self, key: str) -> list[dict[str, str]]:
        """Every message up to and including the first one carrying `key`."""
        seen = [await self.next()]
        while key not in seen[-1]:
            seen.append(await self.next())
        return seen

    def drain(self) -> list[dict[str, str]]:
        out = []
        while True:
            try:
                data = self.sock.recv(4096)
            except BlockingIOError:
                return out
            out.append(dict(line.split("=", 1) for line in data.decode().split("\n")))


def _bind(address: str) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(address)
    sock.setblocking(False)
    return sock


@pytest.fixture(params=["path", "abstract"])
def receiver(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Receiver]:
    if request.param == "path":
        path = str(tmp_path / "notify.sock")
        sock, env_value = _bind(path), path
    else:
        name = f"mdfd-test-{uuid.uuid4().hex}"
        sock, env_value = _bind("\0" + name), "@" + name
    monkeypatch.setenv("NOTIFY_SOCKET", env_value)
    monkeypatch.setenv("WATCHDOG_USEC", WATCHDOG_USEC)
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    with sock:
        yield Receiver(sock, env_value)


@pytest.fixture
async def notifier(receiver: Receiver) -> AsyncIterator[Notifier]:
    with Notifier() as notifier:
        yield notifier


async def test_lifecycle_ready_status_pings_stopping_in_order(
    receiver: Receiver, notifier: Notifier
) -> None:
    assert notifier.enabled
    interval = watchdog_interval()
    assert interval == pytest.approx(0.05)
    stop = asyncio.Event()

    async def work_loop(watchdog: Watchdog) -> None:
        while not stop.is_set():
            watchdog.alive()
            await asyncio.sleep(interval / 5)

    async with Watchdog(notifier, interval) as watchdog:
        assert notifier.ready(status="serving, queue empty")
        worker = asyncio.create_task(work_loop(watchdog))
        try:
            notifier.status("run r1, point 3/12")
            messages = [await receiver.next(), await receiver.next()]
            while messages.count({"WATCHDOG": "1"}) < 3:
                messages.append(await receiver.next())
        finally:
            stop.set()
            await worker
    assert notifier.stopping(status="shutting down: safe state, flush")
    messages += await receiver.until("STOPPING")

    assert messages[0] == {"READY": "1", "STATUS": "serving, queue empty"}
    assert messages[1] == {"STATUS": "run r1, point 3/12"}
    pings = messages[2:-1]
    assert len(pings) == watchdog.pings >= 3
    assert all(m == {"WATCHDOG": "1"} for m in pings)
    assert messages[-1] == {"STOPPING": "1", "STATUS": "shutting down: safe state, flush"}
    assert watchdog.missed == 0


async def test_stuck_work_loop_stops_the_pings(receiver: Receiver, notifier: Notifier) -> None:
    interval = watchdog_interval()
    assert interval is not None
    stuck = asyncio.Event()
    release = asyncio.Event()
    stop = asyncio.Event()

    async def work_loop(watchdog: Watchdog) -> None:
        while not stop.is_set():
            if stuck.is_set():
                await release.wait()  # e.g. an instrument call that never returns
            watchdog.alive()
            await asyncio.sleep(interval / 5)

    async def wait_for(condition: Callable[[], bool]) -> None:
        async with asyncio.timeout(WAIT):
            while True:
                if condition():
                    return
                await asyncio.sleep(interval / 5)

    async with Watchdog(notifier, interval) as watchdog:
        worker = asyncio.create_task(work_loop(watchdog))
        try:
            await wait_for(lambda: watchdog.pings >= 2)
            stuck.set()
            notifier.status("marker: work loop stuck from here")
            await wait_for(lambda: watchdog.missed >= 3)
            during_stall = receiver.drain()
            release.set()
            pings_before_release = watchdog.pings
            await wait_for(lambda: watchdog.pings >= pings_before_release + 2)
        finally:
            stop.set()
            release.set()
            await worker

    marker = during_stall.index({"STATUS": "marker: work loop stuck from here"})
    # At most the one ping earned by the last iteration before the stall, then silence
    # while three ticks passed without progress.
    assert during_stall[marker + 1 :] in ([], [{"WATCHDOG": "1"}])
    assert all(m == {"WATCHDOG": "1"} for m in receiver.drain())


async def test_reloading_carries_the_monotonic_timestamp(
    receiver: Receiver, notifier: Notifier
) -> None:
    before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    assert notifier.reloading(status="reloading config")
    assert notifier.ready(status="config reloaded")
    reloading, ready = await receiver.next(), await receiver.next()
    assert reloading["RELOADING"] == "1"
    assert reloading["STATUS"] == "reloading config"
    assert int(reloading["MONOTONIC_USEC"]) >= before
    assert ready == {"READY": "1", "STATUS": "config reloaded"}


async def test_extend_timeout_is_in_microseconds(receiver: Receiver, notifier: Notifier) -> None:
    assert notifier.extend_timeout(90.5)
    assert await receiver.next() == {"EXTEND_TIMEOUT_USEC": "90500000"}


async def test_status_text_cannot_inject_assignments(
    receiver: Receiver, notifier: Notifier
) -> None:
    notifier.status("run r1\nREADY=1")
    assert await receiver.next() == {"STATUS": "run r1 READY=1"}


async def test_sends_never_block_when_the_manager_does_not_read(
    receiver: Receiver, notifier: Notifier
) -> None:
    # Nobody reads: the receiver's queue fills up. A blocking send would hang here forever.
    results = [notifier.status(f"message {i}") for i in range(5000)]
    assert results[0] is True
    assert False in results
    receiver.drain()
    assert notifier.status("after the outage")
    assert await receiver.next() == {"STATUS": "after the outage"}


def test_without_notify_socket_everything_is_a_no_op(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    with Notifier() as notifier:
        assert not notifier.enabled
        assert notifier.ready() is False
        assert notifier.watchdog() is False
        assert notifier.stopping() is False
    assert Notifier({"NOTIFY_SOCKET": "vsock:2:1234"}).enabled is False


async def test_watchdog_without_socket_or_interval_starts_no_task() -> None:
    for watchdog in (
        Watchdog(Notifier({}), 0.05),
        Watchdog(Notifier({"NOTIFY_SOCKET": "/nonexistent"}), None),
    ):
        async with watchdog:
            watchdog.alive()
            assert not watchdog.enabled
            assert [t for t in asyncio.all_tasks() if t.get_name() == "systemd-watchdog"] == []


def test_watchdog_interval_is_half_the_period_for_this_process_only() -> None:
    me = str(os.getpid())
    assert watchdog_interval({"WATCHDOG_USEC": "30000000"}) == 15.0
    assert watchdog_interval({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": me}) == 15.0
    assert watchdog_interval({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}) is None
    assert watchdog_interval({}) is None
    assert watchdog_interval({"WATCHDOG_USEC": "0"}) is None
    assert watchdog_interval({"WATCHDOG_USEC": "soon"}) is None


async def test_unreachable_manager_is_reported_not_raised(tmp_path: Path) -> None:
    with Notifier({"NOTIFY_SOCKET": str(tmp_path / "gone.sock")}) as notifier:
        assert notifier.enabled
        assert notifier.ready() is False
        assert notifier.status("still fine") is False
