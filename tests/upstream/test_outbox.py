"""The outbox and the file spool without a network: ids, pruning, torn lines, duplicates."""

from __future__ import annotations

import json
import sqlite3
import uuid
from pathlib import Path

from mdfd.daemons.core.config import FilePublisher
from mdfd.daemons.store import outbox
from mdfd.daemons.store.database import connect
from mdfd.daemons.store.outbox import Entry
from mdfd.daemons.upstream.publishers.file import FileSpool
from mdfd.daemons.upstream.record import record_id

from .conftest import MakeMdf, Receiver, expected_ids, http_publisher, until


def test_record_id_is_uuid5_of_mdf_run_and_point() -> None:
    first = record_id("sim-mdf-01", "20260101T000000Z-demo-abcd", 7)
    assert first == record_id("sim-mdf-01", "20260101T000000Z-demo-abcd", 7)
    assert first.version == 5
    # Pinned: a changed namespace would re-identify every record ever published.
    assert first == uuid.UUID("34555879-8f76-5078-b146-10e71fa34d14")
    assert len({record_id("m", "r", i) for i in range(100)}) == 100
    assert record_id("m", "r", 1) != record_id("m2", "r", 1) != record_id("m", "r2", 1)


def _outbox_rows(state: Path) -> int:
    with sqlite3.connect(state) as connection:
        return connection.execute("SELECT COUNT(*) FROM outbox").fetchone()[0]


async def test_records_stay_until_every_publisher_has_them(mdf: MakeMdf, tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    late = Receiver()  # its port bound now, listened on later
    service, points = await mdf(
        f'{{type: file, name: spool, directory: "{spool}"}}', http_publisher(late.port)
    )
    for index in range(20):
        await points.complete(index, service.record_hook)
    state = points.config.model.storage.state_dir / "state.sqlite3"
    await until(lambda: service.drains[0].idle.is_set())
    file_status, http_status = (await service.status())["publishers"]
    assert (file_status["pending"], http_status["pending"]) == (0, 20)
    assert _outbox_rows(state) == 20  # the spool is done, the platform is not

    await late.start()
    try:
        assert await service.drain_until_idle(30)
        assert set(late.ids) == expected_ids(points.run_id, 20)
    finally:
        await late.stop()
    assert _outbox_rows(state) == 0
    lines = (spool / "run-1.jsonl").read_text().splitlines()
    assert {json.loads(line)["id"] for line in lines} == expected_ids(points.run_id, 20)


async def test_spool_cuts_a_torn_line_and_never_writes_an_id_twice(tmp_path: Path) -> None:
    spool = FileSpool(FilePublisher(type="file", name="spool", directory=tmp_path))
    await spool.start()
    path = tmp_path / "run-9.jsonl"
    path.write_text('{"id": "a", "n": 1}\n{"id": "b", "n": 2}\n{"id": "c", "n"')

    entries = [
        Entry(seq, rid, "run-9", json.dumps({"id": rid}))
        for seq, rid in enumerate(["b", "c", "d"], start=1)
    ]
    await spool.deliver(entries)
    await spool.deliver(entries)  # the crash-between-fsync-and-commit replay
    await spool.close()
    await FileSpool(FilePublisher(type="file", name="spool", directory=tmp_path)).deliver(entries)

    ids = [json.loads(line)["id"] for line in path.read_text().splitlines()]
    assert ids == ["a", "b", "c", "d"]


def test_records_commit_with_the_points_transaction_and_a_resumed_point_adds_none(
    tmp_path: Path,
) -> None:
    connection = connect(tmp_path / "fresh.sqlite3")
    connection.execute("CREATE TABLE done (point_index INTEGER)")
    connection.execute("BEGIN IMMEDIATE")
    connection.execute("INSERT INTO done VALUES (0)")
    outbox.enqueue(connection, "rec-0", "run-1", 0, '{"id": "rec-0"}')
    connection.execute("INSERT INTO done VALUES (1)")
    outbox.enqueue(connection, "rec-1", "run-1", 1, '{"id": "rec-1"}')
    outbox.enqueue(connection, "rec-1", "run-1", 1, '{"id": "rec-1"}')  # a resumed point
    connection.execute("ROLLBACK")
    assert outbox.fetch(connection, "", 10, after=0) == []
    connection.execute("BEGIN IMMEDIATE")
    outbox.enqueue(connection, "rec-0", "run-1", 0, '{"id": "rec-0"}')
    outbox.enqueue(connection, "rec-1", "run-1", 1, '{"id": "rec-1"}')
    outbox.enqueue(connection, "rec-1", "run-1", 1, '{"id": "rec-1"}')
    connection.execute("COMMIT")
    outbox.register(connection, ["platform"])
    assert outbox.fetch(connection, "platform", 10) == [
        Entry(1, "rec-0", "run-1", '{"id": "rec-0"}'),
        Entry(2, "rec-1", "run-1", '{"id": "rec-1"}'),
    ]
    assert [e.record_id for e in outbox.fetch(connection, "platform", 10, after=1)] == ["rec-1"]
    outbox.note_error(connection, "platform", "POST …: HTTP 503")
    [depth] = outbox.depths(connection, ["platform"])
    assert (depth.pending, depth.delivered, depth.last_error) == (2, 0, "POST …: HTTP 503")
    connection.close()
