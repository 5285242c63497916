"""`mdfd runs --config C [--json]`: the runs in this MDF's state database.

`mdfd runs --config C discard RUN`: end an unfinished run offline (aborted, "discarded"), so no
daemon started later can resume it. It takes the MDF's lock: while a daemon or `mdfd run`
holds the MDF it is refused (exit 2, naming the holder) — there, `mdfctl abort RUN` does it.
Nothing is deleted: the run's points and data file stay as they are.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import datetime as dt

from rich.table import Table

from mdfd.daemons.core import strictjson
from mdfd.daemons.core.config import LoadedConfig, load_config
from mdfd.daemons.core.console import output_console, run_id_column
from mdfd.daemons.engine.campaignview import CampaignSummary, load_summary
from mdfd.daemons.launch.oneshot import existing_state_db, run_blocking, state_db
from mdfd.daemons.store import RunRow, RunStatus
from mdfd.recipes.located import InputError, Problem

from . import add_command, add_config


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = add_command(
        sub,
        "runs",
        "list the runs in the MDF's state database (read-only), or discard an unfinished one",
        "mdfd runs --config config/sim.yaml\n  mdfd runs --config config/sim.yaml discard RUN_ID",
    )
    add_config(parser)
    parser.add_argument("--json", action="store_true", help="one JSON array on stdout")
    parser.add_argument(
        "action",
        nargs="?",
        choices=["list", "discard"],
        default="list",
        help="list (default), or discard: end an unfinished run offline (no daemon running)",
    )
    parser.add_argument("run", nargs="?", help="discard: the run to end")
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    if args.action == "discard":
        return discard(config, args.run)

    async def fetch() -> tuple[list[RunRow], dict[str, CampaignSummary]]:
        async with existing_state_db(config) as state:
            rows = await state.runs()
            campaigns = {}
            for row in rows:
                summary = await load_summary(state, row)
                if summary is not None:
                    campaigns[row.id] = summary
            return rows, campaigns

    runs, campaigns = asyncio.run(fetch())
    if args.json:
        listed = []
        for run in runs:
            entry = run.as_dict()
            if run.id in campaigns:
                entry["campaign"] = dataclasses.asdict(campaigns[run.id])
            listed.append(entry)
        print(strictjson.dumps(listed))
        return 0
    table = Table(title=f"runs on {config.model.mdf.id}")
    run_id_column(table, (run.id for run in runs))
    columns = ["recipe", "status", "by", "points", "started", "ended", "data"]
    if campaigns:
        columns.append("best so far (adaptive)")
    for column in columns:
        table.add_column(column, overflow="fold")
    for run in runs:
        table.add_row(
            run.id,
            f"{run.recipe_name} {run.recipe_version}",
            run.status.value,
            run.origin.value,
            f"{run.points_done}/{run.points_total}",
            _time(run.started_at),
            _time(run.ended_at),
            run.data_file,
            *([campaigns[run.id].best_text() if run.id in campaigns else ""] if campaigns else []),
        )
    output_console().print(table)
    return 0


def _time(stamp: float | None) -> str:
    if stamp is None:
        return "-"
    return dt.datetime.fromtimestamp(stamp, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


def discard(config: LoadedConfig, run_id: str | None) -> int:
    def refuse(message: str) -> InputError:
        return InputError([Problem(str(config.path), None, "run", message)])

    if not run_id:
        raise refuse("discard needs the run's id: mdfd runs --config C discard RUN")

    async def body() -> int:
        async with state_db(config) as state:
            run = await state.run(run_id)
            if run is None:
                raise refuse(f"no run {run_id!r} in this MDF's state database")
            if run.status.finished:
                raise refuse(f"run {run.id} is {run.status.value}; nothing to discard")
            # We hold the MDF's lock: a run marked running/paused was left by a dead process.
            await state.set_status(run.id, RunStatus.ABORTED, "discarded offline by operator")
        print(f"discarded {run.id} (was {run.status.value}); its data stay in {run.data_file}")
        return 0

    return run_blocking(config, body)
