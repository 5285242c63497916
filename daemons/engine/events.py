"""Progress events for whoever watches a run: the CLI's progress bar, `mdfctl watch`.

Watchers get bounded queues; a slow watcher loses its oldest events rather than slowing the
run or growing memory.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from typing import Any

WATCHER_QUEUE = 256


class EventBus:
    def __init__(self) -> None:
        self._watchers: set[asyncio.Queue[dict[str, Any]]] = set()

    def publish(self, kind: str, **fields: Any) -> None:
        event = {"event": kind, **fields}
        for queue in self._watchers:
            if queue.full():
                queue.get_nowait()
            queue.put_nowait(event)

    @contextlib.contextmanager
    def watch(self) -> Iterator[asyncio.Queue[dict[str, Any]]]:
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(WATCHER_QUEUE)
        self._watchers.add(queue)
        try:
            yield queue
        finally:
            self._watchers.discard(queue)
