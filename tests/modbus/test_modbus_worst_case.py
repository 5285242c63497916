"""Modbus TCP against a peer that never answers: one request per engine attempt, and the read
fails within the worst case every protocol shares (tests/worst_case.py, decision 0063)."""

from __future__ import annotations

from pathlib import Path

from modbus_support import FURNACE_CHANNELS

from mdfd.drivers.testing import WireProxy
from mdfd.simulators.furnace import FurnaceSimulator
from tests.worst_case import read_from_a_silent_peer


async def test_a_read_from_a_silent_modbus_peer_fails_within_the_shared_bound(
    tmp_path: Path, furnace: FurnaceSimulator
) -> None:
    async with WireProxy("127.0.0.1", furnace.tcp_port) as proxy:
        instrument = {
            "driver": "modbus",
            "link": {"type": "tcp", "host": "127.0.0.1", "port": proxy.port},
            "channels": {"temperature": FURNACE_CHANNELS["temperature"]},
        }
        await read_from_a_silent_peer(tmp_path, "furnace", instrument, "temperature", proxy)
