"""The per-point summary as CSV, for the people who open results in a spreadsheet.

Columns: point_index, the swept parameters, then mean/std/min/max/n/invalid per channel, then the
point's start and end as ISO 8601 UTC and its status (completed / failed / skipped). Numbers
are written with full precision (they read back exactly); a statistic without a value (a
channel with no sample in that point) is left empty.
"""

from __future__ import annotations

import csv
import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .layout import POINT_END, POINT_INDEX, POINT_START, POINT_STATUS, STATS, stat_column
from .reader import Summary

TIME_COLUMNS = {POINT_START: "point_start", POINT_END: "point_end"}


def _numeric_columns(summary: Summary) -> list[str]:
    columns = [POINT_INDEX, *summary.parameters]
    return columns + [stat_column(c.name, stat) for c in summary.channels for stat in STATS]


def header(summary: Summary) -> list[str]:
    return [*_numeric_columns(summary), *TIME_COLUMNS.values(), "point_status"]


def _number(value: Any) -> str:
    number = value.item() if hasattr(value, "item") else value
    if isinstance(number, float):
        return "" if math.isnan(number) else repr(number)
    return str(number)


def _time(value: Any) -> str:
    seconds = float(value)
    if math.isnan(seconds):
        return ""
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="microseconds")


def write_csv(summary: Summary, out: Path) -> int:
    """Write the table; returns the number of data rows."""
    numeric = _numeric_columns(summary)
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header(summary))
        for row in range(summary.rows):
            cells = [_number(summary.columns[name][row]) for name in numeric]
            cells += [_time(summary.columns[name][row]) for name in TIME_COLUMNS]
            cells.append(str(summary.columns[POINT_STATUS][row]))
            writer.writerow(cells)
    return summary.rows
