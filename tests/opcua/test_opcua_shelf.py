"""The reactor's standard address space from the disk cache (ADR 0053): written on a first
start, read by the next, and never a reason not to start — a cache that cannot be written or
read only costs time. Checked through asyncua's own client on the real wire."""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from asyncua import Client, ua
from opcua_support import NAMESPACE

from mdfd.simulators.clock import ScaledClock
from mdfd.simulators.opcua_shelf import CACHE_ENV, SHELF_NAME, shelf_directory
from mdfd.simulators.reactor import ReactorSettings, ReactorSimulator
from mdfd.simulators.world import World


async def _serves_like_a_plant(url: str) -> None:
    """Standard nodes (server status, type definitions) and ours answer as on a filled server."""
    async with Client(url, timeout=10) as client:
        state = await client.get_node(
            ua.NodeId(ua.ObjectIds.Server_ServerStatus_State)
        ).read_value()
        assert state == ua.ServerState.Running
        ns = await client.get_namespace_index(NAMESPACE)
        setpoint = await client.nodes.objects.get_child([f"{ns}:Reactor", f"{ns}:PressureSetpoint"])
        assert await setpoint.read_type_definition() == ua.NodeId(ua.ObjectIds.AnalogItemType)
        eu_range = await (await setpoint.get_child("0:EURange")).read_value()
        assert (eu_range.Low, eu_range.High) == (1.0, 50.0)
        analog = client.get_node(ua.NodeId(ua.ObjectIds.AnalogItemType))
        assert (await analog.read_browse_name()).Name == "AnalogItemType"


_index_reads: list[list[int]] = []
"""Where `_note_index_read` records the threads that open a shelf, while a test
watches (an audit hook cannot be removed, so it is installed once and mostly idle)."""


def _note_index_read(event: str, args: tuple[Any, ...]) -> None:
    """Opening the shelf: its `dbm.dumb` index (`.dir`, parsed whole), or the one file of
    another dbm. Not `.dat`: `dbm.dumb` opens it for each node asyncua reads later, lazily."""
    if not (_index_reads and event == "open" and isinstance(args[0], str | bytes)):
        return
    name = os.path.basename(os.fsdecode(args[0]))
    if name.startswith(SHELF_NAME) and not name.endswith(".dat"):
        _index_reads[-1].append(threading.get_ident())


sys.addaudithook(_note_index_read)


@contextmanager
def _threads_reading_the_index() -> Iterator[list[int]]:
    """The threads that opened the shelf inside the block, from Python's "open" audit event:
    no timing, no patching."""
    threads: list[int] = []
    _index_reads.append(threads)
    try:
        yield threads
    finally:
        _index_reads.remove(threads)


@pytest.fixture
async def started() -> AsyncIterator[list[ReactorSimulator]]:
    simulators: list[ReactorSimulator] = []
    try:
        yield simulators
    finally:
        for simulator in simulators:
            await simulator.stop()


async def _start(simulators: list[ReactorSimulator]) -> ReactorSimulator:
    simulator = ReactorSimulator("reactor", ReactorSettings(port=0), World(ScaledClock(600.0)))
    simulators.append(simulator)
    await simulator.start()
    return simulator


async def test_first_start_writes_the_cache_and_the_next_serves_from_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, started: list[ReactorSimulator]
) -> None:
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    first = await _start(started)
    directory = shelf_directory()
    assert (directory / SHELF_NAME).is_file()
    assert [p.name for p in directory.parent.iterdir()] == [directory.name]  # no staging left
    await _serves_like_a_plant(first.url)
    await first.stop()
    second = await _start(started)
    await _serves_like_a_plant(second.url)
    await second.restart(downtime=0)  # a restarted server reads the shelf again
    await _serves_like_a_plant(second.url)


async def test_an_unwritable_cache_only_costs_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, started: list[ReactorSimulator]
) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    monkeypatch.setenv(CACHE_ENV, str(blocker))
    simulator = await _start(started)
    await _serves_like_a_plant(simulator.url)
    assert blocker.is_file()


async def test_a_corrupt_cache_is_replaced_and_the_server_built_the_slow_way(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, started: list[ReactorSimulator]
) -> None:
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    directory = shelf_directory()
    directory.mkdir(parents=True)
    (directory / SHELF_NAME).write_text("")
    (directory / f"{SHELF_NAME}.dat").write_bytes(b"not a shelf")
    (directory / f"{SHELF_NAME}.dir").write_text("'i=84', (0, 11)\n")
    simulator = await _start(started)
    await _serves_like_a_plant(simulator.url)
    assert (directory / f"{SHELF_NAME}.dat").read_bytes() != b"not a shelf"  # rewritten whole


async def test_the_shelf_is_read_off_the_event_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, started: list[ReactorSimulator]
) -> None:
    """Opening the cached shelf parses its 6,174-key index: 0.1-0.4 s that stalled every task
    of the loop starting the simulator — the daemon's control API with `--simulate` (ADR 0086)."""
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    await (await _start(started)).stop()  # writes the cache
    with _threads_reading_the_index() as threads:
        simulator = await _start(started)
    assert threads, "the cache was not read"
    assert threading.get_ident() not in threads
    await _serves_like_a_plant(simulator.url)
