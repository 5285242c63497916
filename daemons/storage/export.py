"""The per-point summary as CSV, for the people who open results in a spreadsheet.

First a block of `# key: value` comment lines that say what the numbers are about: the run,
the recipe, the material domain, the clock of the times, and the recipe's materials as
`# sample.<raw_materials|composition>.<CODE>: value [unit]` (ADR 0041). pandas
(`read_csv(..., comment="#")`), R (`comment.char="#"`) and numpy skip them; a spreadsheet shows
them as the first rows. Then one header row whose names carry units, `name [unit]`
(`furnace.temperature_mean [degC]`; counts and dimensionless columns have none), and the rows:
point_index, the swept parameters, mean/std/min/max/n/invalid per channel, the point's start
and end as ISO 8601 UTC on the clock the header names (`[UTC, wall clock]` or
`[UTC, simulated clock]`), and its status (completed / failed / skipped). Numbers are written
with full precision (they read back exactly); a statistic without a value (no sample in that
point) is left empty.
"""

from __future__ import annotations

import contextlib
import csv
import json
import math
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from .layout import COUNTS, POINT_END, POINT_INDEX, POINT_START, POINT_STATUS, STATS, stat_column
from .reader import Summary

TIME_COLUMNS = {POINT_START: "point_start", POINT_END: "point_end"}
STDOUT = Path("-")


@contextlib.contextmanager
def _opened(out: Path) -> Iterator[TextIO]:
    """`-` is standard output, as for every Unix tool; anything else a file (parents made)."""
    if out == STDOUT:
        yield sys.stdout
        sys.stdout.flush()
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", newline="", encoding="utf-8") as handle:
        yield handle


def _numeric_columns(summary: Summary) -> list[str]:
    columns = [POINT_INDEX, *summary.parameters]
    return columns + [stat_column(c.name, stat) for c in summary.channels for stat in STATS]


def _with_unit(name: str, unit: str) -> str:
    return f"{name} [{unit}]" if unit and unit != "dimensionless" else name


def header(summary: Summary) -> list[str]:
    """Column names with their units, e.g. `furnace.temperature_mean [degC]`."""
    names = [POINT_INDEX]
    names += [_with_unit(p, summary.parameter_units.get(p, "")) for p in summary.parameters]
    for channel in summary.channels:
        for stat in STATS:
            unit = "" if stat in COUNTS else channel.unit
            names.append(_with_unit(stat_column(channel.name, stat), unit))
    clock = f"UTC, {summary.clock} clock"
    names += [f"{name} [{clock}]" for name in TIME_COLUMNS.values()]
    return [*names, "point_status"]


def _one_line(value: object) -> str:
    return " ".join(str(value).split())


def comment_lines(summary: Summary) -> list[str]:
    """The `# key: value` block above the header: what the table is about."""
    meta = summary.metadata
    lines = [f"run_id: {meta.get('run_id', '')}"]
    if meta.get("recipe_name"):
        lines.append(f"recipe: {meta['recipe_name']} {meta.get('recipe_version', '')}".rstrip())
    if meta.get("material_domain"):
        lines.append(f"material_domain: {meta['material_domain']}")
    if meta.get("mdf_id"):
        lines.append(f"mdf: {meta['mdf_id']}")
    if meta.get("mdf_domains"):
        lines.append(f"mdf_domains: {', '.join(json.loads(meta['mdf_domains']))}")
    scale = float(meta.get("time_scale", 1.0))
    if summary.clock == "simulated":
        lines.append(
            f"clock: simulated (point times are simulated process time, {scale:g} times"
            " faster than the wall clock)"
        )
    else:
        lines.append("clock: wall")
    for material in summary.materials:
        unit = f" [{material.unit}]" if material.unit else ""
        lines.append(
            f"sample.{material.category}.{material.code}: {_one_line(material.value)}{unit}"
        )
    return [f"# {_one_line(line)}" for line in lines]


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
    """Write the table (to stdout when `out` is `-`); returns the number of data rows."""
    numeric = _numeric_columns(summary)
    with _opened(out) as handle:
        handle.writelines(f"{line}\r\n" for line in comment_lines(summary))  # as csv rows
        writer = csv.writer(handle)
        writer.writerow(header(summary))
        for row in range(summary.rows):
            cells = [_number(summary.columns[name][row]) for name in numeric]
            cells += [_time(summary.columns[name][row]) for name in TIME_COLUMNS]
            cells.append(str(summary.columns[POINT_STATUS][row]))
            writer.writerow(cells)
    return summary.rows
