"""State databases written by every earlier shipped version open, migrate and resume; one
written by a newer version is refused untouched.

The fixtures are SQL dumps written by each old commit's own code (tests/store/make_fixtures.py):
one run `legacy-run` of 3 points, interrupted after point 0 (completed) and 1 (failed), with
an upstream record per point where that version had an outbox and the MDF a publisher.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from mdfd.daemons.core.config import Recovery
from mdfd.daemons.core.stats import PointStats, Stats
from mdfd.daemons.serve import runqueue
from mdfd.daemons.store import (
    SCHEMA_VERSION,
    Origin,
    PointCounts,
    PointRow,
    PointStatus,
    RunStatus,
    SchemaTooNew,
    StateDB,
    outbox,
    runs,
)
from mdfd.daemons.store.database import connect
from tests.support import mdf_config, mdfd

FIXTURES = Path(__file__).parent / "fixtures"
SHIPPED = sorted(path.stem for path in FIXTURES.glob("*.sql"))
# Before 01ba949 there was no outbox; after it, an MDF without publishers never created one.
WITH_OUTBOX = {
    name
    for name in SHIPPED
    if not name.startswith("v0-465d1df") and not name.endswith("-no-upstream")
}


def restore(name: str, database: Path) -> Path:
    database.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.closing(sqlite3.connect(database)) as connection:
        connection.executescript((FIXTURES / f"{name}.sql").read_text())
    return database


def last_point(stats: Stats) -> PointRow:
    """The fixtures' run's third point, completed now with these statistics."""
    return PointRow(
        run_id="legacy-run",
        point_index=2,
        status=PointStatus.COMPLETED,
        parameters={"temperature": 400.0},
        started_at=1002.0,
        ended_at=1002.5,
        rows={"furnace": 12},
        summary=PointStats.of({"furnace.temperature": stats}),
        message="",
    )


def user_version(database: Path) -> int:
    with contextlib.closing(sqlite3.connect(database)) as connection:
        return int(connection.execute("PRAGMA user_version").fetchone()[0])


def test_the_fixtures_cover_the_oldest_schema_with_runs_and_every_version() -> None:
    assert {
        "v0-465d1df-first-runs",
        "v0-573a7ed-main",
        "v0-573a7ed-main-no-upstream",
        "v1-e448483-main",
        "v2-932c3d5-main",
        "v3-1378166-main",
    } <= set(SHIPPED)
    assert SCHEMA_VERSION == 3


async def test_statistics_packed_field_by_field_read_as_they_were_written(tmp_path: Path) -> None:
    """Schema version 3 before decision 0093 packed each `Stats` field as an array; such a row
    reads to the same statistics, and a point checkpointed now beside it reads back as given."""
    database = restore("v3-1378166-main", tmp_path / "state.sqlite3")
    async with StateDB(database) as state:
        [first, second] = await state.points("legacy-run")
        assert first.summary.get("furnace.temperature") == Stats(
            300.0, 0.5, 299.0, 301.0, 4, 300.25, 1
        )
        assert second.summary.fields()["furnace.temperature"]["n"] == 0
        given = Stats(400.0, 2.0, 397.0, 403.0, 5, 401.0, 2)
        await state.complete_point(last_point(given))
        *_, third = await state.points("legacy-run")
        assert third.summary.get("furnace.temperature") == given


@pytest.mark.parametrize("name", SHIPPED)
async def test_a_database_of_an_earlier_version_opens_lists_and_resumes(
    tmp_path: Path, name: str
) -> None:
    database = restore(name, tmp_path / "state.sqlite3")
    async with StateDB(database) as state:
        [run] = await state.runs()
        assert (run.id, run.recipe_name, run.recipe_version) == (
            "legacy-run",
            "legacy-sweep",
            "1.2",
        )
        assert (run.status, run.origin, run.message) == (
            RunStatus.INTERRUPTED,
            Origin.UNKNOWN,
            "process died mid-run",
        )
        assert (run.points_total, run.points_done, run.queue_position) == (3, 2, 1.0)
        assert (run.data_file, run.recipe_path) == (
            "/srv/data/legacy-run.h5",
            "/srv/recipes/legacy-sweep.yaml",
        )
        assert run.recipe_text == "recipe:\n  name: legacy-sweep\n"
        assert run.identities == {}
        recorded = await state.recorded("legacy-run")
        assert recorded.indices == frozenset({0, 1})
        assert recorded.last_rows == {"furnace": 8}
        counts = await state.point_counts("legacy-run")
        assert (counts.done, counts.not_completed, counts.failed) == (2, 1, 1)
        assert (await state.point_counts("no-such-run")) == PointCounts(0, 0, 0)
        [first, second] = await state.points("legacy-run")
        assert (first.status, first.parameters, first.rows) == (
            PointStatus.COMPLETED,
            {"temperature": 300.0},
            {"furnace": 4},
        )
        assert (second.status, second.message) == (PointStatus.FAILED, "read timed out")
        # Version 1 kept the statistics as JSON; they read as the columnar form. That row has
        # a mean but no count: a mean of no sample is no statistic (`RunningStats.result`).
        assert second.summary.fields() == {
            "furnace.temperature": dict.fromkeys(Stats.__slots__, None) | {"n": 0, "invalid": 0}
        }

        # A daemon starting on it holds the person's run, an operator releases it, the daemon
        # claims it and checkpoints the last point with its upstream record.
        recovered = await runqueue.recover(state, Recovery())
        assert recovered.held == ["legacy-run"]
        assert await runqueue.release(state, "legacy-run")
        assert [r.id for r in await runqueue.pending(state)] == ["legacy-run"]
        assert await runqueue.claim(state, "legacy-run")
        await state.transaction(lambda c: outbox.register(c, ["spool"]))
        await state.complete_point(
            last_point(Stats(400.0, 0.5, 399.0, 401.0, 4, 400.5)),
            extra=lambda c: outbox.enqueue(c, "legacy-run/2", "legacy-run", 2, '{"n": 2}'),
        )
        await state.set_status("legacy-run", RunStatus.COMPLETED_WITH_FAILURES)
        done = await state.run("legacy-run")
        assert done is not None
        assert (done.status, done.origin, done.points_done) == (
            RunStatus.COMPLETED_WITH_FAILURES,
            Origin.DAEMON,
            3,
        )
        queued = await state.read(lambda c: outbox.fetch(c, "spool", 10))
        expected = ["legacy-run/0", "legacy-run/1"] if name in WITH_OUTBOX else []
        assert [e.record_id for e in queued] == [*expected, "legacy-run/2"]
        last = (await state.points("legacy-run"))[2].summary
        assert last.get("furnace.temperature") == Stats(400.0, 0.5, 399.0, 401.0, 4, 400.5)
    assert user_version(database) == SCHEMA_VERSION


@pytest.mark.parametrize("name", ["v0-465d1df-first-runs", "v0-573a7ed-main"])
def test_mdfd_runs_lists_a_run_of_an_earlier_version(tmp_path: Path, name: str) -> None:
    config = mdf_config(tmp_path)
    restore(name, tmp_path / "var" / "state" / "state.sqlite3")
    done = mdfd("runs", "--config", str(config), "--json")
    assert done.returncode == 0, done.stderr
    [run] = json.loads(done.stdout)
    assert (run["id"], run["status"], run["points_done"], run["origin"]) == (
        "legacy-run",
        "interrupted",
        2,
        "unknown",
    )


def test_opening_a_migrated_database_again_changes_nothing(tmp_path: Path) -> None:
    database = restore("v0-573a7ed-main", tmp_path / "state.sqlite3")
    connect(database).close()
    with contextlib.closing(sqlite3.connect(database)) as connection:
        before = list(connection.iterdump())
    connect(database).close()
    with contextlib.closing(sqlite3.connect(database)) as connection:
        assert list(connection.iterdump()) == before
    assert user_version(database) == SCHEMA_VERSION


def test_processes_opening_one_old_database_at_once_migrate_it_once(tmp_path: Path) -> None:
    """`mdfd runs` started while the upgraded daemon starts: every opener succeeds (busy ones
    wait for the write lock and find the version moved on), and the run is intact."""
    database = restore("v0-465d1df-first-runs", tmp_path / "state.sqlite3")
    script = (
        "import sys; from pathlib import Path;"
        " from mdfd.daemons.store.database import connect;"
        " connect(Path(sys.argv[1])).close()"
    )
    openers = [
        subprocess.Popen([sys.executable, "-c", script, str(database)], stderr=subprocess.PIPE)
        for _ in range(4)
    ]
    errors = [opener.communicate(timeout=60)[1] for opener in openers]
    assert [opener.returncode for opener in openers] == [0, 0, 0, 0], errors
    assert user_version(database) == SCHEMA_VERSION
    with contextlib.closing(connect(database)) as connection:
        [run] = runs.select(connection)
    assert (run.id, run.origin, run.points_done) == ("legacy-run", Origin.UNKNOWN, 2)


def test_a_migration_that_fails_leaves_the_database_as_it_was(tmp_path: Path) -> None:
    """The migration runs in one transaction: none of its tables stay, the version stays 0."""
    database = tmp_path / "state.sqlite3"
    with contextlib.closing(sqlite3.connect(database)) as connection:
        connection.execute("CREATE TABLE runs (id TEXT PRIMARY KEY)")  # no status: no index
        connection.commit()
    with pytest.raises(sqlite3.OperationalError, match="status"):
        connect(database)
    with contextlib.closing(sqlite3.connect(database)) as connection:
        tables = [row[0] for row in connection.execute("SELECT name FROM sqlite_master")]
    assert (tables, user_version(database)) == (["runs", "sqlite_autoindex_runs_1"], 0)


def _newer(database: Path) -> bytes:
    database.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.closing(sqlite3.connect(database)) as connection:
        connection.execute("CREATE TABLE runs (id TEXT PRIMARY KEY, shape TEXT)")
        connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
        connection.commit()
    return database.read_bytes()


async def test_a_database_of_a_newer_version_is_refused_and_left_untouched(
    tmp_path: Path,
) -> None:
    database = tmp_path / "state.sqlite3"
    written = _newer(database)
    with pytest.raises(SchemaTooNew) as refused:
        await StateDB(database).open()
    assert str(database) in str(refused.value)
    assert f"schema version {SCHEMA_VERSION + 1}" in str(refused.value)
    assert database.read_bytes() == written
    beside = await asyncio.to_thread(lambda: sorted(p.name for p in tmp_path.iterdir()))
    assert beside == ["state.sqlite3"]  # no WAL, no reserve


@pytest.mark.parametrize("command", ["runs", "outbox", "serve"])
def test_mdfd_refuses_a_database_of_a_newer_version_with_exit_2(
    tmp_path: Path, command: str
) -> None:
    config = mdf_config(tmp_path)
    database = tmp_path / "var" / "state" / "state.sqlite3"
    written = _newer(database)
    done = mdfd(command, "--config", str(config), timeout=60)
    assert done.returncode == 2, done.stderr
    assert str(database) in done.stderr
    assert "written by a newer mdfd" in done.stderr
    assert hashlib.sha256(database.read_bytes()).digest() == hashlib.sha256(written).digest()
