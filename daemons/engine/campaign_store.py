"""The trials of adaptive campaigns, in the state database: their own table, their own SQL.

A trial is recorded `proposed` before anything moves, `running` (with its point index) just
before its point starts, and `done` / `failed` in the same transaction as its point's
checkpoint, together with the proposals made from its result. So after a `kill -9` the table
says exactly which points were chosen, which ran and what each measured, and the optimiser is
rebuilt from it (decision 0078). Every function takes an open connection and runs inside the
caller's transaction (`StateDB.transaction`, or the checkpoint's `extra`).
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from typing import Literal

from .. import strictjson
from .proposer import Source, Trial, TrialState

Status = Literal["proposed", "running", "done", "failed", "rejected"]

SCHEMA = """
CREATE TABLE IF NOT EXISTS campaign_trials (
    run_id TEXT NOT NULL,
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
);
"""


@dataclass(frozen=True, slots=True)
class TrialRecord:
    """One row: how the point was chosen, where it ran and what it gave."""

    run_id: str
    trial: int
    status: Status
    source: Source
    optimiser: str
    optimiser_version: str
    seed: int
    parameters: dict[str, float]
    point_index: int | None = None
    objectives: tuple[float, ...] = ()
    violations: dict[str, float] | None = None
    message: str = ""
    retry_of: int | None = None  # `on_failure: retry_once`: the failed trial this repeats

    def as_trial(self) -> Trial:
        """What the optimiser is told of it."""
        states: dict[Status, TrialState] = {
            "proposed": "pending",
            "running": "pending",
            "done": "done",
            "failed": "failed",
            "rejected": "rejected",
        }
        return Trial(
            self.trial,
            self.parameters,
            states[self.status],
            self.objectives,
            dict(self.violations or {}),
        )


def ensure_schema(connection: sqlite3.Connection) -> None:
    connection.execute(SCHEMA)


def record_proposal(connection: sqlite3.Connection, record: TrialRecord) -> None:
    """A new trial: `proposed`, or `rejected` (an input constraint) with its violations."""
    connection.execute(
        "INSERT INTO campaign_trials (run_id, trial, status, source, optimiser,"
        " optimiser_version, seed, parameters, violations, message, retry_of)"
        " VALUES (?,?,?,?,?,?,?,?,?,?,?)",
        (
            record.run_id,
            record.trial,
            record.status,
            record.source,
            record.optimiser,
            record.optimiser_version,
            record.seed,
            strictjson.dumps(record.parameters),
            strictjson.dumps(record.violations or {}),
            record.message,
            record.retry_of,
        ),
    )


def mark_running(connection: sqlite3.Connection, *, run_id: str, trial: int, point: int) -> None:
    connection.execute(
        "UPDATE campaign_trials SET status = 'running', point_index = ? WHERE run_id = ?"
        " AND trial = ?",
        (point, run_id, trial),
    )


def mark_done(
    connection: sqlite3.Connection,
    run_id: str,
    trial: int,
    objectives: tuple[float, ...],
    violations: dict[str, float],
) -> None:
    connection.execute(
        "UPDATE campaign_trials SET status = 'done', objectives = ?, violations = ?"
        " WHERE run_id = ? AND trial = ?",
        (strictjson.dumps(list(objectives)), strictjson.dumps(violations), run_id, trial),
    )


def mark_failed(connection: sqlite3.Connection, run_id: str, trial: int, message: str) -> None:
    connection.execute(
        "UPDATE campaign_trials SET status = 'failed', message = ? WHERE run_id = ? AND trial = ?",
        (message, run_id, trial),
    )


def trials(connection: sqlite3.Connection, run_id: str) -> list[TrialRecord]:
    """Every trial of a run in order: what a resume rebuilds the optimiser from. Reads only
    (`mdfd runs` opens the database read-only): no table yet, no trials."""
    exists = connection.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'campaign_trials'"
    ).fetchone()
    if exists is None:
        return []
    rows = connection.execute(
        "SELECT run_id, trial, status, source, optimiser, optimiser_version, seed, parameters,"
        " point_index, objectives, violations, message, retry_of FROM campaign_trials"
        " WHERE run_id = ? ORDER BY trial",
        (run_id,),
    ).fetchall()
    return [
        TrialRecord(
            r[0],
            r[1],
            r[2],
            r[3],
            r[4],
            r[5],
            r[6],
            json.loads(r[7]),
            r[8],
            tuple(_float(v) for v in json.loads(r[9])),
            {k: _float(v) for k, v in json.loads(r[10]).items()},
            r[11],
            r[12],
        )
        for r in rows
    ]


def _float(value: float | None) -> float:
    return float("nan") if value is None else float(value)
