"""OPC-UA against a server that never answers: one Read request per engine attempt, and the
read fails within the worst case every protocol shares (tests/worst_case.py, decision 0063).
The liveness probe is set far apart: it is no retry, and its requests would be counted too."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from opcua_support import CHANNELS, NAMESPACE

from mdfd.drivers.testing import WireProxy
from tests.worst_case import read_from_a_silent_peer


async def test_a_read_from_a_silent_opcua_server_fails_within_the_shared_bound(
    tmp_path: Path, reactor_url: str
) -> None:
    parts = urlsplit(reactor_url)
    async with WireProxy("127.0.0.1", parts.port or 4840) as proxy:
        instrument = {
            "driver": "opcua",
            "endpoint": urlunsplit(parts._replace(netloc=f"127.0.0.1:{proxy.port}")),
            "namespace": NAMESPACE,
            "watchdog_interval": 3600,
            "channels": {"pressure": CHANNELS["pressure"]},
        }
        await read_from_a_silent_peer(tmp_path, "reactor", instrument, "pressure", proxy)
