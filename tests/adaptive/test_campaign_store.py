"""Schema version 2 adds the campaign trials: a version-1 database (the store's first) opens
with its run intact and takes a campaign's trials."""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path

from mdfd.daemons.store import SCHEMA_VERSION, StateDB
from mdfd.daemons.store import campaign as store

FIXTURE = Path(__file__).parents[1] / "store" / "fixtures" / "v1-80ad042-store.sql"


async def test_a_version_1_database_gains_the_trials_table(tmp_path: Path) -> None:
    database = tmp_path / "state.sqlite3"
    with contextlib.closing(sqlite3.connect(database)) as connection:
        connection.executescript(FIXTURE.read_text())
        assert connection.execute("PRAGMA user_version").fetchone() == (1,)
    async with StateDB(database) as state:
        [run] = await state.runs()
        assert run.id == "legacy-run"
        assert await state.read(lambda c: store.trials(c, "legacy-run")) == []
        record = store.TrialRecord(
            "legacy-run", 0, "proposed", "person", "optuna-tpe", "5.1.0", 1, {"t": 1.5}
        )
        await state.transaction(lambda c: store.record_proposal(c, record))
        await state.transaction(
            lambda c: store.mark_running(c, run_id="legacy-run", trial=0, point=3)
        )
        await state.transaction(
            lambda c: store.mark_done(c, "legacy-run", 0, (2.5, float("nan")), {"c": 0.0})
        )
        [read] = await state.read(lambda c: store.trials(c, "legacy-run"))
    assert (read.status, read.point_index, read.parameters, read.violations) == (
        "done",
        3,
        {"t": 1.5},
        {"c": 0.0},
    )
    assert read.objectives[0] == 2.5
    assert read.objectives[1] != read.objectives[1]  # a NaN objective is kept as NaN
    with contextlib.closing(sqlite3.connect(database)) as connection:
        assert connection.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
