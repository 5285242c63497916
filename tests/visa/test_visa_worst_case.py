"""A VISA socket against a peer that never answers: one message per engine attempt — reopening
a stale session is not retried when the peer accepts and stays silent — and the read fails
within the worst case every protocol shares (tests/worst_case.py, decision 0063)."""

from __future__ import annotations

from pathlib import Path

from visa_support import CHANNELS

from mdfd.drivers.testing import WireProxy
from mdfd.simulators.meter import MeterSimulator
from tests.worst_case import read_from_a_silent_peer


async def test_a_read_from_a_silent_visa_peer_fails_within_the_shared_bound(
    tmp_path: Path, meter: MeterSimulator
) -> None:
    port = int(meter.endpoints()["tcp"].rsplit(":", 1)[1])
    async with WireProxy("127.0.0.1", port) as proxy:
        instrument = {
            "driver": "visa",
            "resource": f"TCPIP::127.0.0.1::{proxy.port}::SOCKET",
            "channels": {"capacitance": CHANNELS["capacitance"]},
        }
        await read_from_a_silent_peer(tmp_path, "meter", instrument, "capacitance", proxy)
