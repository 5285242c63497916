"""The trials of adaptive campaigns (table `campaign_trials`, created by schema version 2).

A trial is recorded `proposed` before anything moves, `running` (with its point index) just
before its point starts, and `done` / `failed` in the same transaction as its point's
checkpoint, together with the proposals made from its result. So after a `kill -9` the table
says exactly which points were chosen, which ran and what each measured, and the optimiser is
rebuilt from it (decision 0079). Every function takes an open connection and runs inside the
caller's transaction (`StateDB.transaction`, or the checkpoint's `extra`) or read.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from typing import Literal

from mdfd.daemons.core import strictjson

Status = Literal["proposed", "running", "done", "failed", "rejected", "dropped"]
Source = Literal["initial", "optimiser", "person"]


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


def drop_proposed(connection: sqlite3.Connection, run_id: str) -> None:
    """The campaign ended (budget, stop condition, a person) with proposals never run."""
    connection.execute(
        "UPDATE campaign_trials SET status = 'dropped' WHERE run_id = ? AND status = 'proposed'",
        (run_id,),
    )


def trials(connection: sqlite3.Connection, run_id: str) -> list[TrialRecord]:
    """Every trial of a run in order: what a resume rebuilds the optimiser from."""
    rows = connection.execute(
        "SELECT run_id, trial, status, source, optimiser, optimiser_version, seed, parameters,"
        " point_index, objectives, violations, message, retry_of FROM campaign_trials"
        " WHERE run_id = ? ORDER BY trial",
        (run_id,),
    ).fetchall()
    return [
        TrialRecord(
            r["run_id"],
            r["trial"],
            r["status"],
            r["source"],
            r["optimiser"],
            r["optimiser_version"],
            r["seed"],
            json.loads(r["parameters"]),
            r["point_index"],
            tuple(_float(v) for v in json.loads(r["objectives"])),
            {k: _float(v) for k, v in json.loads(r["violations"]).items()},
            r["message"],
            r["retry_of"],
        )
        for r in rows
    ]


def _float(value: float | None) -> float:
    return float("nan") if value is None else float(value)
