"""`mdfd runs --config C [--json]`: the runs in this MDF's state database."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json

from rich.table import Table

from ..config import load_config
from ..console import output_console, run_id_column
from ..oneshot import existing_state_db
from . import add_command, add_config


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = add_command(
        sub,
        "runs",
        "list the runs in the MDF's state database (read-only)",
        "mdfd runs --config config/sim.yaml",
    )
    add_config(parser)
    parser.add_argument("--json", action="store_true", help="one JSON array on stdout")
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    config = load_config(args.config)

    async def fetch() -> list:
        async with existing_state_db(config) as state:
            return await state.runs()

    runs = asyncio.run(fetch())
    if args.json:
        print(json.dumps([r.as_dict() for r in runs]))
        return 0
    table = Table(title=f"runs on {config.model.mdf.id}")
    run_id_column(table, (run.id for run in runs))
    for column in ("recipe", "status", "points", "started", "ended", "data"):
        table.add_column(column, overflow="fold")
    for run in runs:
        table.add_row(
            run.id,
            f"{run.recipe_name} {run.recipe_version}",
            run.status.value,
            f"{run.points_done}/{run.points_total}",
            _time(run.started_at),
            _time(run.ended_at),
            run.data_file,
        )
    output_console().print(table)
    return 0


def _time(stamp: float | None) -> str:
    if stamp is None:
        return "-"
    return dt.datetime.fromtimestamp(stamp, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
