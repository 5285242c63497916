"""Fan-out of subscription notifications to the latest-value cache and to live streams.

Notifications arrive on the driver's pump task; consumers (the engine's acquisition loop, a
`watch` client) read at their own pace. Each stream has a bounded queue that drops its oldest
entries when a consumer stalls, so one slow reader can never grow the daemon's memory.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable

import structlog

from ..base import Reading

QUEUE_SIZE = 10_000


class _Stream:
    def __init__(self, channels: frozenset[str]) -> None:
        self.channels = channels
        self.queue: asyncio.Queue[tuple[str, Reading] | None] = asyncio.Queue(QUEUE_SIZE)
        self.dropped = 0


class Fanout:
    def __init__(self, instrument: str) -> None:
        self.latest: dict[str, Reading] = {}
        self._streams: set[_Stream] = set()
        self._log = structlog.get_logger().bind(instrument=instrument)

    def publish(self, channel: str, reading: Reading) -> None:
        self.latest[channel] = reading
        for stream in self._streams:
            if channel not in stream.channels:
                continue
            if stream.queue.full():
                stream.queue.get_nowait()
                stream.dropped += 1
                if stream.dropped == 1 or stream.dropped % 1000 == 0:
                    self._log.warning("stream consumer too slow, dropping", dropped=stream.dropped)
            stream.queue.put_nowait((channel, reading))

    def close(self) -> None:
        """End every stream: their consumers see the iterator finish."""
        for stream in self._streams:
            if stream.queue.full():
                stream.queue.get_nowait()
            stream.queue.put_nowait(None)

    async def stream(self, channels: Iterable[str]) -> AsyncIterator[tuple[str, Reading]]:
        stream = _Stream(frozenset(channels))
        self._streams.add(stream)
        try:
            while True:
                item = await stream.queue.get()
                if item is None:
                    return
                yield item
        finally:
            self._streams.discard(stream)
