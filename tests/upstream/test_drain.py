"""The drain's pipeline against a real aiohttp receiver and the real state database: a batch's
cursor is committed while the next batch is on the wire, never before its own acknowledgement,
and no record is sent twice — nor under two idempotency keys when a stop forces a re-send."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from aiohttp import web

from mdfd.daemons.core.config import load_config
from mdfd.daemons.store import StateDB, outbox
from mdfd.daemons.upstream.service import UpstreamService
from mdfd.recipes.loader import load_recipe

from .conftest import (
    MakeMdf,
    Points,
    Receiver,
    expected_ids,
    http_publisher,
    until,
    write_config,
    write_recipe,
)


class Watching(Receiver):
    """A slow receiver that notes, as each POST arrives, how far the publisher's committed
    cursor is and how many records it has itself accepted so far."""

    def __init__(self, port: int = 0, *, delay: float) -> None:
        super().__init__(port)
        self.delay = delay
        self.state: Path | None = None
        self.seen: list[tuple[int, int]] = []
        self.batches: list[tuple[str, list[str]]] = []

    def _cursor(self) -> int:
        assert self.state is not None
        with sqlite3.connect(self.state) as connection:
            row = connection.execute(
                "SELECT position FROM outbox_cursors WHERE publisher = 'platform'"
            ).fetchone()
        return int(row[0]) if row else 0

    async def _handle(self, request: web.Request) -> web.Response:
        accepted = sum(self.ids.values())
        self.seen.append((await asyncio.to_thread(self._cursor), accepted))
        await asyncio.sleep(self.delay)
        before = len(self.keys)
        response = await super()._handle(request)
        if len(self.keys) > before:
            ids = [record["id"] for record in (await request.json())["records"]]
            self.batches.append((self.keys[-1], ids))
        return response


def _state(points: Points) -> Path:
    return points.config.model.storage.state_dir / "state.sqlite3"


async def test_cursor_follows_acknowledgements_and_no_record_is_sent_twice(
    mdf: MakeMdf,
) -> None:
    receiver = Watching(delay=0.01)
    await receiver.start()
    try:
        service, points = await mdf(http_publisher(receiver.port, batch_size=20))
        receiver.state = _state(points)
        for index in range(250):
            await points.complete(index, service.record_hook)
        assert await service.drain_until_idle(60)
    finally:
        await receiver.stop()

    assert set(receiver.ids) == expected_ids(points.run_id, 250)
    assert set(receiver.ids.values()) == {1}
    assert len(set(receiver.keys)) == len(receiver.keys)
    # Records are seq 1..250 in this database: a cursor past the records the receiver had
    # accepted when the next POST arrived would have been committed before its acknowledgement.
    assert all(cursor <= accepted for cursor, accepted in receiver.seen), receiver.seen
    [status] = (await service.status())["publishers"]
    assert (status["pending"], status["delivered"]) == (0, 250)
    left = await points.state.read(lambda c: outbox.fetch(c, "", 1000, after=0))
    assert left == []


async def test_dead_letters_requeued_during_a_backlog_are_delivered_once(
    mdf: MakeMdf,
) -> None:
    receiver = Watching(delay=0.005)
    await receiver.start()
    try:
        service, points = await mdf(http_publisher(receiver.port, batch_size=10))
        receiver.state = _state(points)
        bad = expected_ids(points.run_id, 4) - expected_ids(points.run_id, 3)
        receiver.reject = set(bad)
        for index in range(30):
            await points.complete(index, service.record_hook)
        assert await service.drain_until_idle(30)
        assert {d.record_id for d in await service.dead_letters()} == bad

        receiver.reject = set()
        for index in range(30, 150):
            await points.complete(index, service.record_hook)
            if index == 60:
                assert await service.retry_dead_letters() == 1
        assert await service.drain_until_idle(60)
    finally:
        await receiver.stop()

    assert set(receiver.ids) == expected_ids(points.run_id, 150)
    assert set(receiver.ids.values()) == {1}
    assert await service.dead_letters() == []
    [status] = (await service.status())["publishers"]
    assert (status["pending"], status["dead_letters"]) == (0, 0)


async def test_a_stop_with_batches_in_flight_resends_them_under_the_same_keys(
    tmp_path: Path,
) -> None:
    receiver = Watching(delay=0.05)
    await receiver.start()  # first: the config names the port it got
    try:
        config = load_config(write_config(tmp_path, [http_publisher(receiver.port, batch_size=10)]))
        async with StateDB(config.model.storage.state_dir / "state.sqlite3") as state:
            points = Points(config, load_recipe(write_recipe(tmp_path)), state)
            await points.create_run()
            receiver.state = _state(points)
            # Queued before any drain runs, so every batch is a full one and a re-send after
            # the restart is the very same batch.
            filler = UpstreamService(config, state)
            for index in range(100):
                await points.complete(index, filler.record_hook)
            first = UpstreamService(config, state)
            await first.start()
            try:
                await until(lambda: len(receiver.keys) >= 3, what="some batches delivered")
            finally:
                await first.stop()
            async with UpstreamService(config, state) as again:
                assert await again.drain_until_idle(60)
                [status] = (await again.status())["publishers"]
    finally:
        await receiver.stop()

    assert set(receiver.ids) == expected_ids(points.run_id, 100)
    first_key: dict[str, str] = {}
    for key, ids in receiver.batches:
        for record in ids:
            assert first_key.setdefault(record, key) == key, f"{record} re-sent under a new key"
    assert (status["pending"], status["delivered"]) == (0, 100)


async def test_a_service_stopped_while_it_starts_begins_no_drain(
    mdf: MakeMdf, tmp_path: Path
) -> None:
    """A reload held during the daemon's start-up replaces the first service while its start
    awaits the outbox: that one must not begin drains beside its replacement's (ADR 0085)."""
    service, _ = await mdf(f"{{type: file, name: spool, directory: {tmp_path / 'spool'}}}")
    await service.stop()
    starting = asyncio.create_task(service.start())
    await asyncio.sleep(0)  # the start now awaits its outbox transaction
    await service.stop()
    await starting
    [status] = (await service.status())["publishers"]
    assert status["state"] == "stopped"
    await service.start()  # a deliberate start after a stop still starts
    [status] = (await service.status())["publishers"]
    assert status["state"] != "stopped"
