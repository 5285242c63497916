"""What the store hands out: typed rows, each built from a `sqlite3.Row` by column name.

Rows are mapped by name so that a column added by a migration never shifts the others; the
SELECTs name their columns (no `SELECT *`), so a column a newer version added is never read.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from mdfd.daemons.core.logging import get_logger
from mdfd.daemons.core.stats import PointStats


class RunStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    PAUSED = "paused"
    COMPLETED = "completed"
    ABORTED = "aborted"
    FAILED = "failed"
    INTERRUPTED = "interrupted"
    HELD = "held"  # waiting for a person: set aside at daemon start, see serve.runqueue.recover
    COMPLETED_WITH_FAILURES = "completed_with_failures"  # every point ran, some failed

    @property
    def finished(self) -> bool:
        return self in (
            RunStatus.COMPLETED,
            RunStatus.COMPLETED_WITH_FAILURES,
            RunStatus.ABORTED,
            RunStatus.FAILED,
        )


class Origin(StrEnum):
    """Who executed a run last: a person at a terminal (`mdfd run`/`mdfd resume`) or the
    daemon. It decides whether a daemon starting later may resume the run unprompted."""

    CLI = "cli"
    DAEMON = "daemon"
    UNKNOWN = "unknown"  # recorded before origins were: treated like a person's run


class PointStatus(StrEnum):
    COMPLETED = "completed"
    FAILED = "failed"
    SKIPPED = "skipped"


@dataclass(frozen=True)
class RunRow:
    id: str
    recipe_name: str
    recipe_version: str
    recipe_sha256: str
    recipe_text: str
    recipe_path: str
    config_text: str
    status: RunStatus
    points_total: int
    points_done: int
    queue_position: float | None
    created_at: float
    started_at: float | None
    ended_at: float | None
    data_file: str
    identities: dict[str, str]
    message: str
    origin: Origin

    def as_dict(self, with_texts: bool = False) -> dict[str, Any]:
        data = {k: v for k, v in self.__dict__.items() if with_texts or not k.endswith("_text")}
        data["status"] = self.status.value
        data["origin"] = self.origin.value
        return data


@dataclass(frozen=True)
class PointRow:
    run_id: str
    point_index: int
    status: PointStatus
    parameters: dict[str, float]
    started_at: float
    ended_at: float
    rows: dict[str, int]
    summary: PointStats
    message: str


@dataclass(frozen=True)
class RecordedPoints:
    """A run's checkpointed points in brief, for its resume: which, and the row counts per
    channel of the last one (where its data file is cut back to)."""

    indices: frozenset[int]
    last_rows: dict[str, int] | None


@dataclass(frozen=True)
class PointCounts:
    """How many points of a run are checkpointed, how many did not complete, how many failed:
    counted by SQLite, so a run of a hundred thousand points costs no row in Python."""

    done: int
    not_completed: int
    failed: int


@dataclass(frozen=True)
class StatusCount:
    """How many rows of a table have one status (for `/metrics`)."""

    status: str
    count: int


def run_row(row: sqlite3.Row) -> RunRow | None:
    """One run, or None (with a warning) when it cannot be read: a row written by a newer
    version or damaged by hand must not hide every other run from `mdfd runs` and `GET /runs`."""
    try:
        return RunRow(
            id=row["id"],
            recipe_name=row["recipe_name"],
            recipe_version=row["recipe_version"],
            recipe_sha256=row["recipe_sha256"],
            recipe_text=row["recipe_text"],
            recipe_path=row["recipe_path"],
            config_text=row["config_text"],
            status=RunStatus(row["status"]),
            points_total=row["points_total"],
            points_done=row["points_done"],
            queue_position=row["queue_position"],
            created_at=row["created_at"],
            started_at=row["started_at"],
            ended_at=row["ended_at"],
            data_file=row["data_file"],
            identities=json.loads(row["identities"]),
            message=row["message"],
            origin=Origin(row["origin"]),
        )
    except (ValueError, TypeError) as exc:
        log = get_logger(component="state")
        log.warning("unreadable run row skipped", run=row["id"], error=str(exc))
        return None


def point_row(row: sqlite3.Row, summary: PointStats) -> PointRow:
    """A point; its statistics decoded by the caller (`points.unpack`, or JSON before schema
    version 2)."""
    return PointRow(
        run_id=row["run_id"],
        point_index=row["point_index"],
        status=PointStatus(row["status"]),
        parameters=json.loads(row["parameters"]),
        started_at=row["started_at"],
        ended_at=row["ended_at"],
        rows=json.loads(row["rows"]),
        summary=summary,
        message=row["message"],
    )
