"""How an outbox report looks to a person: `mdfd outbox` and `mdfctl outbox` print the same."""

from __future__ import annotations

import datetime as dt
from typing import Any

from rich.table import Table

from mdfd.daemons.core import strictjson
from mdfd.daemons.core.console import output_console


def print_outbox(report: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(strictjson.dumps(report))
        return
    console = output_console()
    table = Table(title=f"outbox of {report['mdf']}")
    for column in ("publisher", "pending", "oldest", "delivered", "last delivery", "dead", "error"):
        table.add_column(column)
    for p in report["publishers"]:
        table.add_row(
            p["name"],
            str(p["pending"]),
            _age(p["oldest_age"]),
            str(p["delivered"]),
            _time(p["last_delivery_at"]),
            str(p["dead_letters"]),
            p["last_error"] or "",
        )
    console.print(table)
    if not report["publishers"]:
        console.print("no publishers configured (upstream.publishers)")
    for dead in report["dead_letters"]:
        console.print(
            f"dead letter [{dead['publisher']}] {dead['record_id']} run {dead['run_id']}: "
            f"{dead['reason']} ({dead['attempts']} attempt(s), {_time(dead['failed_at'])})"
        )
    if report["dead_letters"]:
        console.print("re-queue with: mdfd outbox --config CONFIG retry", style="dim")


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _time(stamp: float | None) -> str:
    if stamp is None:
        return "-"
    return dt.datetime.fromtimestamp(stamp, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
