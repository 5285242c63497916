"""`UpstreamService`: the outbox and its publishers, as one owner for `mdfd run` and `mdfd serve`.

    async with UpstreamService(config, state) as upstream:
        executor = RunExecutor(config, state, record_hook=upstream.record_hook)
        ...
        await upstream.drain_until_idle(timeout)

`record_hook` builds a point's record on the event loop and returns the insert that the engine
runs inside the point's checkpoint transaction. Each publisher has its own drain task and
cursor. Without entering the context (no drain tasks) the status and retry methods still work:
that is how `mdfd outbox` answers when no daemon runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import Callable
from typing import Any

from mdfd.daemons.core.config import (
    FilePublisher,
    HttpPublisher,
    Identity,
    LoadedConfig,
    MqttPublisher,
)
from mdfd.daemons.core.logging import get_logger
from mdfd.daemons.core.supervise import start_supervised
from mdfd.daemons.engine.results import PointResult
from mdfd.daemons.store import StateDB, outbox
from mdfd.daemons.store.outbox import DeadLetter, Depth
from mdfd.daemons.upstream.publishers.base import Publisher
from mdfd.daemons.upstream.publishers.deferred import Deferred
from mdfd.daemons.upstream.publishers.file import FileSpool

from .drain import Drain
from .record import RecordBuilder

POLL_INTERVAL = 5.0
"""Fallback look at the outbox when no wake-up came (e.g. `mdfd outbox retry` from outside)."""
STOP_TIMEOUT = 10.0
IDLE_POLL = 0.05


def make_publisher(
    config: FilePublisher | HttpPublisher | MqttPublisher, mdf: Identity
) -> Publisher:
    """The HTTP and MQTT publishers import their client libraries when started (ADR 0085)."""
    if isinstance(config, FilePublisher):
        return FileSpool(config)
    if isinstance(config, HttpPublisher):
        http = config

        def http_poster() -> Publisher:
            from mdfd.daemons.upstream.publishers.http import HttpPoster

            return HttpPoster(http)

        return Deferred(config.name, config.batch_size, http_poster)
    mqtt = config

    def mqtt_poster() -> Publisher:
        from mdfd.daemons.upstream.publishers.mqtt import MqttPoster

        return MqttPoster(mqtt, mdf)

    return Deferred(config.name, config.batch_size, mqtt_poster)


class UpstreamService:
    def __init__(
        self, config: LoadedConfig, state: StateDB, *, poll_interval: float = POLL_INTERVAL
    ) -> None:
        self.config = config
        self.state = state
        upstream = config.model.upstream
        names = [p.name for p in upstream.publishers]
        self.names = names
        self.kinds = {p.name: p.type for p in upstream.publishers}
        self.drains = [
            Drain(
                make_publisher(p, config.model.mdf),
                state,
                configured=names,
                retry_initial=p.retry_initial,
                retry_max=p.retry_max,
                poll_interval=poll_interval,
            )
            for p in upstream.publishers
        ]
        self._builder: RecordBuilder | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._stopped = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self.log = get_logger(component="upstream")

    # -- lifecycle ----------------------------------------------------------------------------

    async def __aenter__(self) -> UpstreamService:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopped = False
        await self.state.transaction(lambda c: outbox.register(c, self.names))
        if self._stopped:
            return  # replaced meanwhile (a reload held during start-up): its drains run instead
        for drain in self.drains:
            drain.reset()
        self._tasks = [
            start_supervised(f"upstream-{drain.name}", drain.run) for drain in self.drains
        ]

    async def stop(self) -> None:
        self._stopped = True
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            done, pending = await asyncio.wait(self._tasks, timeout=STOP_TIMEOUT)
            for task in done:
                if not task.cancelled() and task.exception() is not None:
                    self.log.error("publisher task failed", error=repr(task.exception()))
            if pending:
                self.log.error(
                    "publisher tasks did not stop", tasks=[t.get_name() for t in pending]
                )
        self._tasks = []

    # -- the engine's side ----------------------------------------------------------------------

    def record_hook(self, result: PointResult) -> Callable[[sqlite3.Connection], None] | None:
        """Build the record now; return the insert for the point's checkpoint transaction."""
        if not self.drains:
            return None
        if self._builder is None:
            self._builder = RecordBuilder(self.config.model.vocabulary)
        record = self._builder.build(result)
        body = record.to_json()
        record_id = str(record.id)
        run_id, point = result.run.run_id, result.point_index
        loop = self._loop

        def insert(connection: sqlite3.Connection) -> None:
            outbox.enqueue(connection, record_id, run_id, point, body)
            if loop is not None:
                # Runs before COMMIT, on the state thread; a drain woken now queues its read
                # behind this transaction on that same thread, so it sees the record.
                loop.call_soon_threadsafe(self.wake)

        return insert

    def wake(self) -> None:
        for drain in self.drains:
            drain.wake()

    # -- operations -----------------------------------------------------------------------------

    async def depth(self) -> list[Depth]:
        return await self.state.transaction(lambda c: outbox.depths(c, self.names))

    async def status(self) -> dict[str, Any]:
        """Per publisher: queue depth, oldest age, dead letters, and the drain's own state."""
        depths = {d.publisher: d for d in await self.depth()}
        publishers = []
        for drain in self.drains:
            publishers.append(
                {
                    "name": drain.name,
                    "type": self.kinds[drain.name],
                    **depths[drain.name].as_dict(),
                    **drain.status.as_dict(),
                }
            )
        return {"publishers": publishers}

    async def report(self, dead_limit: int = 20) -> dict[str, Any]:
        """What `mdfd outbox --json` prints (and what a control API should answer with)."""
        dead = await self.dead_letters(limit=dead_limit)
        return {
            "mdf": self.config.model.mdf.id,
            **await self.status(),
            "dead_letters": [d.as_dict() for d in dead if not d.requeued],
        }

    async def dead_letters(
        self, publisher: str | None = None, limit: int = 100
    ) -> list[DeadLetter]:
        return await self.state.transaction(lambda c: outbox.dead_letters(c, publisher, limit))

    async def retry_dead_letters(self, publisher: str | None = None) -> int:
        count = await self.state.transaction(lambda c: outbox.requeue(c, publisher))
        if count:
            self.log.info("dead letters re-queued", count=count, publisher=publisher)
        self.wake()
        return count

    async def drain_until_idle(self, within: float) -> bool:
        """Deliver what can be delivered within `within` seconds; True when all are idle.

        Gives up early when every publisher still busy is blocked (credentials): waiting out
        the deadline would only delay the exit of `mdfd run`; the records stay queued. A
        publisher with nothing pending is done even while it cannot connect (an MQTT broker
        down at start): it holds nothing back."""
        if not self._tasks:
            return not self.drains
        self.wake()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while True:
            busy = [d for d in self.drains if not d.idle.is_set()]
            if busy:
                pending = {d.publisher: d.pending for d in await self.depth()}
                busy = [d for d in busy if pending[d.name]]
            if not busy:
                return True
            if loop.time() >= deadline or all(d.status.blocked for d in busy):
                self.log.warning(
                    "records left queued for the next start", publishers=[d.name for d in busy]
                )
                return False
            # Woken the moment the first busy drain goes idle; the short cap is for the rest
            # (a drain turning blocked sets no event).
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout_at(min(loop.time() + IDLE_POLL, deadline)):
                    await busy[0].idle.wait()
