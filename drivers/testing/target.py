"""What the conformance kit checks a driver against: one instrument and how to reach it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from ..base import Driver, DriverContext, Value
from .proxy import WireProxy

FIXED_TIME = 1_900_000_000.25


@dataclass
class ConformanceTarget:
    """One instrument to check a driver against.

    `make_driver(context)` builds a new, unconnected driver for the instrument (the driver's
    factory, with its config). `channels` are read together as one scan; `units` are their
    configured units. `writable` is a channel with limits: `in_limits` is a harmless value
    inside them, `out_of_limits` one outside. `failure_bound` is the longest a read may take to
    fail once the peer is gone (s): a few operation timeouts plus the reconnect attempts.

    For a driver that offers `read_block`: `block_channels` are the number channels read as a
    block (default: `channels`), `steady_channels` those whose value does not change between two
    reads (compared exactly between `read` and `read_block`; the `writable` one always is),
    `bad_channel` one the peer answers with a bad quality, `text_channel` one that holds text
    (a block asking it is refused); the checks that need one skip without it.

    For a `Buffered` driver: `buffer_channels` are channels it acquires on its own clock at
    `buffer_rate` scans per second (its config must allow that); without them those checks skip.
    """

    make_driver: Callable[[DriverContext], Driver]
    channels: Sequence[str]
    units: dict[str, str]
    writable: str
    in_limits: Value
    out_of_limits: Value
    failure_bound: float = 10.0
    proxy: WireProxy | None = None
    recovery_bound: float = 30.0
    extra: dict[str, object] = field(default_factory=dict)
    block_channels: Sequence[str] = ()
    steady_channels: Sequence[str] = ()
    bad_channel: str | None = None
    text_channel: str | None = None
    buffer_channels: Sequence[str] = ()
    buffer_rate: float = 100.0


@asynccontextmanager
async def connected(
    target: ConformanceTarget, context: DriverContext | None = None
) -> AsyncIterator[Driver]:
    driver = target.make_driver(context or DriverContext())
    await driver.connect()
    try:
        yield driver
    finally:
        await driver.close()
