"""The daemon's health checks keep each instrument's configured `timeouts` (decision 0063): a
Modbus peer that accepts connections and never answers is reported unavailable once its
`operation` bound runs out, not after a module constant or the driver's own long timeout."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from mdfd.daemons.core.config import load_config
from mdfd.daemons.engine.events import EventBus
from mdfd.daemons.serve.health import UNAVAILABLE, HealthMonitor
from tests.support import mdf_config

WITHIN = 10.0  # s: an upper bound on the wait, well above the 0.5 s configured


@pytest.fixture
async def silent_peer() -> AsyncIterator[int]:
    """A TCP server that takes connections and whatever is sent, and never answers."""
    held: list[asyncio.StreamWriter] = []

    async def swallow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)
        while await reader.read(4096):
            pass

    server = await asyncio.start_server(swallow, "127.0.0.1", 0)
    try:
        yield int(server.sockets[0].getsockname()[1])
    finally:
        server.close()
        for writer in held:
            writer.close()
        await asyncio.wait_for(server.wait_closed(), 5)


async def test_a_silent_instrument_is_unavailable_after_its_operation_timeout(
    tmp_path: Path, silent_peer: int
) -> None:
    furnace = {
        "driver": "modbus",
        "link": {"type": "tcp", "host": "127.0.0.1", "port": silent_peer},
        "timeout": 60,  # the driver's own bound: longer than the configured one
        "identity": "furnace,silent",
        "timeouts": {"connect": "1 s", "operation": "500 ms"},
        "channels": {"temperature": {"table": "input_register", "address": 0, "unit": "degC"}},
    }
    path = mdf_config(tmp_path, instruments={"furnace": furnace}, safety=None)
    config = load_config(path).model
    began = time.monotonic()
    async with HealthMonitor(config, time.time, EventBus()) as monitor:
        while monitor.health["furnace"].state != UNAVAILABLE:
            assert time.monotonic() - began < WITHIN, monitor.health["furnace"]
            await monitor.changed(within=WITHIN)
        assert monitor.health["furnace"].errors >= 1
