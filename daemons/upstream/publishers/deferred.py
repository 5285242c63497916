"""A publisher built when its drain starts it, so its library is imported then (ADR 0085).

aiomqtt (with paho) and aiohttp's client are tens of milliseconds of imports each; the daemon
builds its publishers before READY=1 but starts them after it. The import runs in a thread so
the event loop keeps answering `mdfctl` meanwhile.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

from mdfd.daemons.store.outbox import Entry

from .base import Publisher


class Deferred:
    """Stands for the publisher `build` returns; `start` builds it (once) and starts it."""

    def __init__(self, name: str, batch_size: int, build: Callable[[], Publisher]) -> None:
        self.name = name
        self.batch_size = batch_size
        self._build = build
        self._publisher: Publisher | None = None

    async def start(self) -> None:
        if self._publisher is None:
            self._publisher = await asyncio.to_thread(self._build)
        await self._publisher.start()

    async def deliver(self, batch: Sequence[Entry]) -> None:
        if self._publisher is None:
            raise RuntimeError(f"publisher {self.name!r} delivers before it was started")
        await self._publisher.deliver(batch)

    async def close(self) -> None:
        if self._publisher is not None:
            await self._publisher.close()
