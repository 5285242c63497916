"""Group commit: points that end while a commit is on disk share the next one, and a point is
announced (`point_end`) only once its data and its checkpoint row are durable."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import h5py
import numpy as np
import pytest

from mdfd.daemons.core.stats import PointStats, RunningStats
from mdfd.daemons.engine.checkpoint import (
    BYTES_PER_CHANNEL,
    MAX_PENDING_POINTS,
    PENDING_BYTES,
    Checkpointer,
    CheckpointFailed,
    EndedPoint,
    pending_limit,
)
from mdfd.daemons.engine.events import EventBus, PointEnded
from mdfd.daemons.storage import ChannelSpec, RunFile, read_channel, read_summary
from mdfd.daemons.store import PointRow, PointStatus, StateDB
from tests.engine.conftest import create_running_run

RUN = "run-ckpt"
CHANNEL = "meter.value"


async def open_run(tmp_path: Path) -> tuple[StateDB, RunFile]:
    state = StateDB(tmp_path / "state.db")
    await state.open()
    await create_running_run(state, RUN, tmp_path / "run.h5", 100)
    run_file = RunFile(
        tmp_path / "run.h5",
        metadata={"run_id": RUN},
        channels=[ChannelSpec(CHANNEL, "V")],
        parameters=["x"],
        block_size=16,
    )
    await run_file.open()
    return state, run_file


def end_point(run_file: RunFile, index: int, records=None) -> EndedPoint:
    """Three samples of value `index`, then the point's summary row queued in the file."""
    stats = RunningStats()
    for i in range(3):
        value = np.array([float(index)])
        run_file.add_scan(
            CHANNEL.partition(".")[0], [CHANNEL], 1000.0 + index + i / 10, value, index
        )
        stats.add(float(index))
    parameters = {"x": float(index)}
    summary = PointStats.of({CHANNEL: stats.result()})
    rows = run_file.mark_point(index, parameters, summary, 0.0, 1.0)
    row = PointRow(RUN, index, PointStatus.COMPLETED, parameters, 0.0, 1.0, rows, summary, "")
    ended = PointEnded(
        run=RUN,
        point=index,
        status="completed",
        parameters=parameters,
        points_total=20,
        points_done=index + 1,
        elapsed=1.0,
        remaining=0.0,
        remaining_wall=0.0,
    )
    return EndedPoint(row, records, ended)


async def test_points_ended_together_share_one_commit(tmp_path: Path) -> None:
    state, run_file = await open_run(tmp_path)
    events = EventBus()
    checkpointer = Checkpointer(run_file, state, events)
    checkpointer.start()
    seen: list[tuple[int, int]] = []  # (point announced, points durable in SQLite then)

    async def watch(queue: asyncio.Queue) -> None:
        while len(seen) < 20:
            event = await queue.get()
            seen.append((event.point, len(await state.points(RUN))))

    with events.watch() as queue:
        watcher = asyncio.create_task(watch(queue))
        for index in range(20):
            await checkpointer.wait_for_room()
            checkpointer.submit(end_point(run_file, index))
        await checkpointer.flush()
        await asyncio.wait_for(watcher, 10)
    await checkpointer.close()
    await run_file.close("completed")
    points = await state.points(RUN)
    await state.close()

    assert (checkpointer.committed, checkpointer.commits) == (20, 1)
    assert [p.point_index for p in points] == list(range(20))
    assert [p.rows[CHANNEL] for p in points] == [3 * (i + 1) for i in range(20)]
    assert [point for point, _ in seen] == list(range(20))
    assert all(durable == 20 for _, durable in seen)
    with h5py.File(tmp_path / "run.h5", "r") as handle:
        assert list(handle["entry/summary/point_index"][()]) == list(range(20))
        assert list(handle["entry/summary/x"][()]) == [float(i) for i in range(20)]
    assert list(read_summary(tmp_path / "run.h5").columns["meter.value_n"]) == [3] * 20
    values = read_channel(tmp_path / "run.h5", "meter.value").value
    assert list(values) == [float(i) for i in range(20) for _ in range(3)]


async def test_each_point_commits_alone_when_points_are_slower_than_the_disk(
    tmp_path: Path,
) -> None:
    state, run_file = await open_run(tmp_path)
    checkpointer = Checkpointer(run_file, state, EventBus())
    checkpointer.start()
    for index in range(3):
        await checkpointer.wait_for_room()
        checkpointer.submit(end_point(run_file, index))
        await checkpointer.flush()
        assert [p.point_index for p in await state.points(RUN)] == list(range(index + 1))
    await checkpointer.close()
    await run_file.close("completed")
    await state.close()
    assert (checkpointer.committed, checkpointer.commits) == (3, 3)


async def test_close_commits_the_points_already_ended(tmp_path: Path) -> None:
    state, run_file = await open_run(tmp_path)
    checkpointer = Checkpointer(run_file, state, EventBus())
    checkpointer.start()
    for index in range(5):
        checkpointer.submit(end_point(run_file, index))
    await checkpointer.close()
    await run_file.close("interrupted")
    assert [p.point_index for p in await state.points(RUN)] == list(range(5))
    await state.close()


async def test_records_commit_in_the_points_transaction(tmp_path: Path) -> None:
    state, run_file = await open_run(tmp_path)
    await state.transaction(lambda c: c.execute("CREATE TABLE records (point INTEGER)"))

    def record(index: int):
        return lambda connection: connection.execute("INSERT INTO records VALUES (?)", (index,))

    checkpointer = Checkpointer(run_file, state, EventBus())
    checkpointer.start()
    for index in range(4):
        checkpointer.submit(end_point(run_file, index, record(index)))
    await checkpointer.close()
    await run_file.close("completed")
    rows = await state.read(
        lambda c: c.execute("SELECT point FROM records ORDER BY point").fetchall()
    )
    assert [row["point"] for row in rows] == [0, 1, 2, 3]
    await state.close()


async def test_a_failed_commit_stops_the_run_with_its_cause(tmp_path: Path) -> None:
    state, run_file = await open_run(tmp_path)
    await state.transaction(
        lambda c: c.execute(
            "CREATE TRIGGER refuse BEFORE INSERT ON points"
            " BEGIN SELECT RAISE(ABORT, 'the state disk says no'); END"
        )
    )
    checkpointer = Checkpointer(run_file, state, EventBus())
    commits = checkpointer.start()
    checkpointer.submit(end_point(run_file, 0))
    with pytest.raises(CheckpointFailed, match="the state disk says no") as failure:
        await checkpointer.flush()
    assert isinstance(failure.value.__cause__, sqlite3.IntegrityError)
    assert commits.done()
    assert isinstance(commits.exception(), sqlite3.IntegrityError)
    with pytest.raises(CheckpointFailed):
        await checkpointer.wait_for_room()
    with pytest.raises(CheckpointFailed):
        checkpointer.submit(end_point(run_file, 1))
    await checkpointer.close()
    await run_file.close("failed")
    assert await state.points(RUN) == []
    await state.close()


async def test_points_ending_between_wire_waits_share_commits(tmp_path: Path) -> None:
    """Points of a millisecond on a wire yield to the loop between them; each commit used to
    begin as soon as the last one ended, so a sweep over Modbus committed every third point
    and spent more time committing than measuring. Within the interval they wait together."""
    state, run_file = await open_run(tmp_path)
    checkpointer = Checkpointer(run_file, state, EventBus(), interval=10.0)
    checkpointer.start()
    for index in range(30):
        await checkpointer.wait_for_room()
        checkpointer.submit(end_point(run_file, index))
        await asyncio.sleep(0.002)  # the next point's requests on the wire
    await checkpointer.flush()
    await checkpointer.close()
    await run_file.close("completed")
    assert [p.point_index for p in await state.points(RUN)] == list(range(30))
    await state.close()
    assert (checkpointer.committed, checkpointer.commits) == (30, 2)  # the first, then the rest


async def test_a_point_long_after_the_last_commit_is_durable_without_a_flush(
    tmp_path: Path,
) -> None:
    state, run_file = await open_run(tmp_path)
    events = EventBus()
    checkpointer = Checkpointer(run_file, state, events, interval=0.05)
    checkpointer.start()
    with events.watch() as queue:
        for index in range(2):
            await asyncio.sleep(0.1)  # longer than the interval: nothing to wait for
            checkpointer.submit(end_point(run_file, index))
            announced = await asyncio.wait_for(queue.get(), 10)
            assert announced.point == index
            assert len(await state.points(RUN)) == index + 1
    await checkpointer.close()
    await run_file.close("completed")
    await state.close()


async def test_half_the_room_used_starts_a_commit_before_the_interval(tmp_path: Path) -> None:
    state, run_file = await open_run(tmp_path)
    events = EventBus()
    checkpointer = Checkpointer(run_file, state, events, max_pending=8, interval=3600.0)
    checkpointer.start()
    with events.watch() as queue:
        checkpointer.submit(end_point(run_file, 0))
        assert (await asyncio.wait_for(queue.get(), 10)).point == 0  # the first: at once
        for index in range(1, 5):
            checkpointer.submit(end_point(run_file, index))
            await asyncio.sleep(0)
        announced = [(await asyncio.wait_for(queue.get(), 10)).point for _ in range(4)]
    assert announced == [1, 2, 3, 4]
    assert checkpointer.commits == 2
    await checkpointer.close()
    await run_file.close("completed")
    await state.close()


@pytest.mark.parametrize("channels", [1, 10, 100, 1_000, 10_000, 100_000])
def test_the_points_waiting_are_bounded_by_memory_not_by_count(channels: int) -> None:
    limit = pending_limit(channels)
    assert 2 <= limit <= MAX_PENDING_POINTS
    assert limit == 2 or limit * channels * BYTES_PER_CHANNEL <= PENDING_BYTES
    if channels <= 100:
        assert limit == MAX_PENDING_POINTS  # narrow points: the count bounds
    else:
        assert limit < pending_limit(channels // 10)  # wide ones: the bytes
