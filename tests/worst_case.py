"""The worst case before a read fails, proven on a real wire for each protocol (decision 0063).

One instrument, connected through a `WireProxy` to its simulator; then the proxy loses every
answer (a peer that never replies). The engine's retry owner reads one channel under a recipe
policy: the read must fail with `InstrumentTimeout` after at least the policy's backoff sum and
within the computed worst case, and the peer must have seen exactly `attempts` requests — one
per attempt, none added by a driver's retry or by reopening the link.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import structlog

from mdfd.daemons.core.clock import EngineClock
from mdfd.daemons.core.config import load_config
from mdfd.daemons.engine.instruments import Instruments
from mdfd.daemons.engine.retrying import RetryPolicy, with_retries
from mdfd.drivers import InstrumentTimeout
from mdfd.drivers.testing import WireProxy
from tests.support import mdf_config

POLICY = RetryPolicy(retries=2, backoff=0.2)
OPERATION = 1.5
"""`timeouts.operation` of the instrument, s: the bound of one attempt."""
REQUEST_TIMEOUT = 0.5
"""The drivers' own per-request `timeout`, s: shorter, so each attempt ends by the driver."""


async def read_from_a_silent_peer(
    tmp_path: Path, name: str, instrument: dict[str, Any], channel: str, proxy: WireProxy
) -> None:
    """Read `name.channel` once through the proxy, silence the peer, and check the failure."""
    spec = {**instrument, "timeout": REQUEST_TIMEOUT, "timeouts": {"operation": OPERATION}}
    config = load_config(mdf_config(tmp_path, instruments={name: spec}, safety=None)).model
    clock = EngineClock()
    instruments = Instruments(config, [name], clock.now)
    await instruments.connect()
    try:
        reader = instruments.reader([f"{name}.{channel}"])
        await reader.read()  # the wire works
        proxy.drop_replies()
        sent = proxy.messages_to_peer
        began = time.monotonic()
        with pytest.raises(InstrumentTimeout):
            await with_retries(
                POLICY,
                f"read {name}.{channel}",
                reader.read,
                sleep=clock.sleep_wall,
                log=structlog.get_logger(),
            )
        elapsed = time.monotonic() - began
        assert proxy.messages_to_peer - sent == POLICY.attempts
        assert POLICY.retries * POLICY.backoff <= elapsed < POLICY.worst_case(OPERATION)
    finally:
        proxy.restore()
        await instruments.close()
