"""The store: every SQLite table of an MDF's state database, every statement on it, and the
locks that make one process the MDF's only writer.

How to use it
-------------
- `StateDB(path)` (database.py) owns the one connection of a process part — the daemon, a
  one-shot `mdfd run`, a `mdfd runs` listing — on one worker thread of its own. Open it with
  `async with StateDB(path) as state:`; opening migrates the file to `SCHEMA_VERSION` and
  refuses one from a newer mdfd (`SchemaTooNew`, an `InputError`: exit 2, file named).
- From the event loop, everything goes through that thread: `await state.transaction(fn)`
  runs `fn(connection)` inside BEGIN IMMEDIATE … COMMIT (writes, and reads that must agree
  with them), `await state.read(fn)` runs it without a transaction (SELECTs). Never call a
  statement function on the loop, never keep the connection past `fn`.
- Statement functions are plain, blocking, and take the connection first, one module per
  table group: runs.py (`runs`), points.py (`points`), queue.py (the run queue's conditional
  updates), outbox.py (`outbox*`). The common ones have async shortcuts on `StateDB`
  (`create_run`, `set_status`, `complete_points`, `recorded`, `points`, `run`, `runs`).
- What comes back is a frozen dataclass (rows.py: `RunRow`, `PointRow`, `RecordedPoints`,
  outbox's `Entry`, `Depth`, `DeadLetter`), built from `sqlite3.Row` by column name.

Adding a table: its CREATE statement goes into a new migration appended to
`schema.MIGRATIONS` (never into an earlier one: databases in the field have run those), its
statements and row dataclass into a new module here taking the connection, e.g.::

    def pending(connection: sqlite3.Connection, run_id: str) -> list[Proposal]:
        rows = connection.execute("SELECT … FROM proposals WHERE run_id = ?", (run_id,))
        return [proposal_row(row) for row in rows]

    proposals = await state.read(lambda c: store.proposals.pending(c, run_id))

and a fixture of the previous version to tests/store/fixtures/ (see
docs/decisions/0060-state-store.md).
"""

from .database import Extra, StateDB, StateFull
from .rows import Origin, PointCounts, PointRow, PointStatus, RecordedPoints, RunRow, RunStatus
from .schema import SCHEMA_VERSION, SchemaTooNew

__all__ = [
    "SCHEMA_VERSION",
    "Extra",
    "Origin",
    "PointCounts",
    "PointRow",
    "PointStatus",
    "RecordedPoints",
    "RunRow",
    "RunStatus",
    "SchemaTooNew",
    "StateDB",
    "StateFull",
]
