"""`mdfctl campaign`: an adaptive run's best point or Pareto front; a person's point; an early
stop.

    mdfctl campaign [show] [--run RUN]             counts and the best point / the front
    mdfctl campaign inject --set temperature=1250 --set dwell=90
    mdfctl campaign stop [--reason TEXT]           ends after the current point, completed
"""

from __future__ import annotations

import argparse
import math
from typing import Any
from urllib.parse import quote

from rich.console import Console
from rich.table import Table

from .client import EXIT_BAD_INPUT, Client, CtlError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "action",
        nargs="?",
        choices=["show", "inject", "stop"],
        default="show",
        help="default: show",
    )
    parser.add_argument("--run", metavar="RUN_ID", help="default: the executing run")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="inject: one value per campaign parameter",
    )
    parser.add_argument(
        "--reason",
        default="campaign stopped early by operator",
        help="stop: why, in the log and the run's message",
    )


def parse_point(pairs: list[str]) -> dict[str, float]:
    point: dict[str, float] = {}
    for pair in pairs:
        name, sep, text = pair.partition("=")
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not sep or not name or not math.isfinite(value):
            raise CtlError(EXIT_BAD_INPUT, f"--set {pair!r}: expected NAME=NUMBER")
        point[name] = value
    if not point:
        raise CtlError(
            EXIT_BAD_INPUT, "inject needs the point: --set NAME=VALUE for each parameter"
        )
    return point


async def dispatch(args: argparse.Namespace, client: Client) -> Any:
    """The daemon's answer to the request the arguments ask for."""
    target = quote(args.run or "current")
    if args.action == "inject":
        body = {"parameters": parse_point(args.set)}
        return await client.request("POST", f"/runs/{target}/campaign/points", json_body=body)
    if args.action == "stop":
        query = f"?reason={quote(args.reason)}"
        return await client.request("POST", f"/runs/{target}/campaign/stop{query}")
    return await client.request("GET", f"/runs/{target}/campaign")


def show(action: str, reply: dict[str, Any], console: Console) -> None:
    if action == "inject":
        point = " ".join(f"{k}={v:g}" for k, v in reply["parameters"].items())
        console.print(f"queued in {reply['run']}: {point}", highlight=False)
        return
    if action == "stop":
        console.print(f"campaign {reply['stopped']} ends after its current point", highlight=False)
        return
    objectives = ", ".join(f"{name} ({d})" for name, d in reply["objectives"].items())
    console.print(
        f"[bold]{reply['run']}[/bold]: {objectives} — {reply['measured']} measured, "
        f"{reply['failed']} failed, {reply['rejected']} rejected, {reply['pending']} pending",
        highlight=False,
    )
    if not reply["best"]:
        console.print("no feasible point yet")
        return
    title = "best point" if len(reply["objectives"]) == 1 else "Pareto front"
    table = Table(title=title)
    for column in ("trial", "point", "parameters", *reply["objectives"]):
        table.add_column(column)
    for best in reply["best"]:
        table.add_row(
            str(best["trial"]),
            "-" if best["point_index"] is None else str(best["point_index"]),
            " ".join(f"{k}={v:g}" for k, v in best["parameters"].items()),
            *(f"{best['objectives'][name]:.5g}" for name in reply["objectives"]),
        )
    console.print(table)
