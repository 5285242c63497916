"""Schema versions: `PRAGMA user_version` says which layout a state database has, and an
ordered list of migrations brings it, one version at a time, to the layout of this code.

`MIGRATIONS[n]` turns version n into version n + 1, inside one transaction that also sets
`user_version`: a migration interrupted by a crash leaves the database at version n, and the
next open runs it again. A database at a version above `SCHEMA_VERSION` was written by a newer
mdfd; it is refused before anything is written to it (not even the WAL journal mode).

Version 0 is every database written before versions existed (none set `user_version`), and an
empty file. Those shipped with several layouts (the outbox tables were created by the first
upstream record; `outbox_cursors.last_error*` and `runs.origin` were added later), so
migration 1 creates what is missing and adds the later columns where absent; from version 1
on, a migration knows exactly the layout it starts from. To change the schema, append a
function to `MIGRATIONS` and a fixture of the previous version to tests/store/fixtures/
(docs/decisions/0060-state-store.md).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from pathlib import Path

from mdfd.recipes.located import InputError, Problem

Migration = Callable[[sqlite3.Connection], None]

# The layout of version 1: every table of the state database.
TABLES_V1 = (
    """CREATE TABLE IF NOT EXISTS runs (
        id TEXT PRIMARY KEY,
        recipe_name TEXT NOT NULL,
        recipe_version TEXT NOT NULL,
        recipe_sha256 TEXT NOT NULL,
        recipe_text TEXT NOT NULL,
        recipe_path TEXT NOT NULL DEFAULT '',
        config_text TEXT NOT NULL,
        status TEXT NOT NULL,
        points_total INTEGER NOT NULL,
        queue_position REAL,
        created_at REAL NOT NULL,
        started_at REAL,
        ended_at REAL,
        data_file TEXT NOT NULL DEFAULT '',
        identities TEXT NOT NULL DEFAULT '{}',
        message TEXT NOT NULL DEFAULT '',
        origin TEXT NOT NULL DEFAULT 'unknown'
    )""",
    """CREATE TABLE IF NOT EXISTS points (
        run_id TEXT NOT NULL REFERENCES runs(id),
        point_index INTEGER NOT NULL,
        status TEXT NOT NULL,
        parameters TEXT NOT NULL,
        started_at REAL NOT NULL,
        ended_at REAL NOT NULL,
        rows TEXT NOT NULL,
        summary TEXT NOT NULL,
        message TEXT NOT NULL DEFAULT '',
        PRIMARY KEY (run_id, point_index)
    )""",
    "CREATE INDEX IF NOT EXISTS runs_by_status ON runs(status, queue_position)",
    # The upstream outbox (store/outbox.py says how records move through it).
    """CREATE TABLE IF NOT EXISTS outbox (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        record_id TEXT NOT NULL UNIQUE,
        run_id TEXT NOT NULL,
        point_index INTEGER NOT NULL,
        created_at REAL NOT NULL,
        body TEXT NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS outbox_cursors (
        publisher TEXT PRIMARY KEY,
        position INTEGER NOT NULL DEFAULT 0,
        delivered INTEGER NOT NULL DEFAULT 0,
        last_delivery_at REAL,
        last_error TEXT,
        last_error_at REAL
    )""",
    """CREATE TABLE IF NOT EXISTS outbox_dead (
        publisher TEXT NOT NULL,
        seq INTEGER NOT NULL,
        record_id TEXT NOT NULL,
        reason TEXT NOT NULL,
        failed_at REAL NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 1,
        requeued INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (publisher, seq)
    )""",
)

# Columns shipped after their table, in unversioned databases: (table, column, declaration).
LATER_COLUMNS_V0 = (
    ("outbox_cursors", "last_error", "TEXT"),
    ("outbox_cursors", "last_error_at", "REAL"),
    ("runs", "origin", "TEXT NOT NULL DEFAULT 'unknown'"),
)


def _version_1(connection: sqlite3.Connection) -> None:
    """Any unversioned layout (or an empty file) → version 1."""
    for statement in TABLES_V1:
        connection.execute(statement)
    for table, column, declaration in LATER_COLUMNS_V0:
        try:
            connection.execute(f"ALTER TABLE {table} ADD COLUMN {column} {declaration}")
        except sqlite3.OperationalError as exc:
            if "duplicate column name" not in str(exc):
                raise  # present already: that version shipped with it


def _version_2(connection: sqlite3.Connection) -> None:
    """Version 1 → 2: the trials of adaptive campaigns (store/campaign.py, decision 0079)."""
    connection.execute(
        """CREATE TABLE campaign_trials (
            run_id TEXT NOT NULL REFERENCES runs(id),
            trial INTEGER NOT NULL,
            status TEXT NOT NULL,
            source TEXT NOT NULL,
            optimiser TEXT NOT NULL,
            optimiser_version TEXT NOT NULL,
            seed INTEGER NOT NULL,
            parameters TEXT NOT NULL,
            point_index INTEGER,
            objectives TEXT NOT NULL DEFAULT '[]',
            violations TEXT NOT NULL DEFAULT '{}',
            message TEXT NOT NULL DEFAULT '',
            retry_of INTEGER,
            PRIMARY KEY (run_id, trial)
        )"""
    )


def _version_3(connection: sqlite3.Connection) -> None:
    """Version 2 → 3: a point's statistics as one binary value (`points.pack`, ADR 0087).

    Rows already written keep their JSON `summary` and `stats` NULL: converting them would
    rewrite every point of every run at start-up, and they read as they are.
    """
    connection.execute("ALTER TABLE points ADD COLUMN stats BLOB")


MIGRATIONS: Sequence[Migration] = (_version_1, _version_2, _version_3)
SCHEMA_VERSION = len(MIGRATIONS)


class SchemaTooNew(InputError):
    """The database was written by a newer mdfd: this one cannot know what it holds."""

    def __init__(self, path: Path, found: int) -> None:
        self.path = path
        self.found = found
        super().__init__(
            [
                Problem(
                    str(path),
                    None,
                    "storage.state_dir",
                    f"state database schema version {found} was written by a newer mdfd (this"
                    f" one knows versions up to {SCHEMA_VERSION}); left unmodified: run the"
                    " newer mdfd, or point storage.state_dir elsewhere",
                )
            ]
        )


def version(connection: sqlite3.Connection) -> int:
    (found,) = connection.execute("PRAGMA user_version").fetchone()
    return int(found)


def refuse_newer(connection: sqlite3.Connection, path: Path) -> None:
    """Raise SchemaTooNew for a database from a newer mdfd; call before writing anything."""
    found = version(connection)
    if found > SCHEMA_VERSION:
        raise SchemaTooNew(path, found)


def migrate(connection: sqlite3.Connection, path: Path) -> int:
    """Bring the database to SCHEMA_VERSION, one migration per transaction; the version it had.

    A database at the current version is only read (a look at the runs on a read-only mount
    works). The version is read again inside each transaction (BEGIN IMMEDIATE holds the write
    lock), so two processes opening one database at once never run a migration twice.
    """
    started = current = version(connection)
    while current < SCHEMA_VERSION:
        connection.execute("BEGIN IMMEDIATE")
        try:
            current = version(connection)
            if current > SCHEMA_VERSION:
                raise SchemaTooNew(path, current)
            if current < SCHEMA_VERSION:
                MIGRATIONS[current](connection)
                current += 1
                connection.execute(f"PRAGMA user_version = {current}")
            connection.execute("COMMIT")
        except BaseException:
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            raise
    return started
