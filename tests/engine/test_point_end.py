"""A point's end at ten thousand channels: its statistics go from the engine's arrays to the
file's summary row and the checkpoint without a Python object per channel (ADR 0087), and
nothing of them is lost on the way: every value comes back bit for bit, NaN and counts
included."""

from __future__ import annotations

import contextlib
import math
import sqlite3
from pathlib import Path

import h5py
import numpy as np

from mdfd.daemons.core.stats import ColumnStats, summarise
from mdfd.daemons.storage import ChannelSpec, RunFile
from mdfd.daemons.store import PointRow, PointStatus, StateDB
from tests.engine.conftest import create_running_run

RUN = "run-wide"
INSTRUMENTS, CHANNELS = 100, 100


def wide_point() -> ColumnStats:
    """10,000 channels' statistics over 10 scans: one channel all NaN, one with some NaN."""
    names = [f"i{i}.c{c}" for i in range(INSTRUMENTS) for c in range(CHANNELS)]
    stats = ColumnStats(names)
    block = np.random.default_rng(7).normal(20.0, 0.5, (len(names), 10))
    block[3, :] = math.nan
    block[4, ::3] = math.inf
    stats.merge(stats.positions(names), summarise(block))
    return stats


async def test_a_wide_point_reaches_the_file_and_the_checkpoint_exactly(tmp_path: Path) -> None:
    stats = wide_point()
    snapshot = stats.snapshot()
    run_file = RunFile(
        tmp_path / "run.h5",
        metadata={"run_id": RUN},
        channels=[ChannelSpec(name, "V") for name in stats.channels],
        parameters=["x"],
    )
    await run_file.open()
    rows = run_file.mark_point(0, {"x": 1.0}, snapshot, 0.0, 1.0)
    await run_file.commit()
    await run_file.close("completed")

    async with StateDB(tmp_path / "state.db") as state:
        await create_running_run(state, RUN, tmp_path / "run.h5", 1)
        row = PointRow(RUN, 0, PointStatus.COMPLETED, {"x": 1.0}, 0.0, 1.0, rows, snapshot, "")
        await state.complete_point(row)
        [back] = await state.points(RUN)

    fields = ("mean", "std", "min", "max", "n", "last", "invalid")
    expected = stats.results()
    assert back.summary.channels == tuple(stats.channels)
    for field in fields:
        column = [getattr(expected[name], field) for name in stats.channels]
        np.testing.assert_array_equal(getattr(back.summary, field), column)
    assert repr(back.summary.get("i0.c3")) == repr(expected["i0.c3"])  # n 0, NaN (not == NaN)
    assert (back.summary.n[3], back.summary.invalid[3], back.summary.invalid[4]) == (0, 10, 4)

    with h5py.File(tmp_path / "run.h5", "r") as handle:
        for field in ("mean", "std", "min", "max", "n", "invalid"):
            np.testing.assert_array_equal(
                handle[f"entry/summary/{field}"][0], getattr(snapshot, field)
            )

    # Stored as arrays, not as 10,000 JSON objects: 7 values of 8 bytes and the name per channel.
    with contextlib.closing(sqlite3.connect(tmp_path / "state.db")) as connection:
        (blob,) = connection.execute("SELECT stats FROM points").fetchone()
    names = sum(len(name) + 4 for name in stats.channels)  # quoted, comma and space
    assert len(blob) <= 7 * 8 * len(stats.channels) + names + 64
