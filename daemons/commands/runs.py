"""`mdfd runs --config C [--json]`: the runs in this MDF's state database."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
from pathlib import Path

from rich.console import Console
from rich.table import Table

from .. import strictjson
from ..config import load_config
from ..oneshot import state_db


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("runs", help="list runs from the state database")
    parser.add_argument("--config", required=True, type=Path)
    parser.add_argument("--json", action="store_true")
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    config = load_config(args.config)

    async def fetch() -> list:
        async with state_db(config) as state:
            return await state.runs()

    runs = asyncio.run(fetch())
    if args.json:
        print(strictjson.dumps([r.as_dict() for r in runs]))
        return 0
    table = Table(title=f"runs on {config.model.mdf.id}")
    for column in ("run", "recipe", "status", "points", "started", "ended", "data"):
        table.add_column(column)
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
    Console().print(table)
    return 0


def _time(stamp: float | None) -> str:
    if stamp is None:
        return "-"
    return dt.datetime.fromtimestamp(stamp, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
