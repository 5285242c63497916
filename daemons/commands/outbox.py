"""`mdfd outbox --config C [status|retry|drain] [--json]`: the upstream outbox without a daemon.

`status` (default) shows per publisher the records waiting, the oldest one's age, deliveries and
dead letters; `retry` re-queues dead letters (safe beside a running daemon: it only marks rows,
the daemon's drain picks them up); `drain` delivers now and exits 0 when every publisher is
idle, 1 when records remain (it holds the MDF's lock, so not while a daemon runs).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from mdfd.recipes.located import InputError, Problem

from ..config import LoadedConfig, load_config
from ..oneshot import run_blocking, state_db
from ..upstream.service import UpstreamService

DEAD_SHOWN = 20


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("outbox", help="upstream outbox: depth, dead letters, retry, drain")
    parser.add_argument("action", nargs="?", choices=["status", "retry", "drain"], default="status")
    parser.add_argument("--config", required=True, type=Path)
    parser.add_argument("--publisher", help="retry: only this publisher's dead letters")
    parser.add_argument(
        "--within", type=float, default=60.0, help="drain: seconds to try (default 60)"
    )
    parser.add_argument("--json", action="store_true")
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    names = [p.name for p in config.model.upstream.publishers]
    if args.publisher is not None and args.publisher not in names:
        raise InputError(
            [
                Problem(
                    str(args.config),
                    None,
                    "upstream.publishers",
                    f"no publisher named {args.publisher!r} (have: {', '.join(names) or 'none'})",
                )
            ]
        )
    if args.action == "drain":
        return run_blocking(config, lambda: _drain(config, args))
    if args.action == "retry":
        count = asyncio.run(_retry(config, args.publisher))
        if args.json:
            print(json.dumps({"requeued": count}))
        else:
            print(f"{count} dead letter(s) re-queued")
        return 0
    report = asyncio.run(_report(config))
    _print(report, args.json)
    return 0


async def _retry(config: LoadedConfig, publisher: str | None) -> int:
    async with state_db(config) as state:
        return await UpstreamService(config, state).retry_dead_letters(publisher)


async def _report(config: LoadedConfig) -> dict[str, Any]:
    async with state_db(config) as state:
        return await UpstreamService(config, state).report(DEAD_SHOWN)


async def _drain(config: LoadedConfig, args: argparse.Namespace) -> int:
    async with state_db(config) as state, UpstreamService(config, state) as service:
        idle = await service.drain_until_idle(args.within)
        report = await service.report(DEAD_SHOWN)
    _print(report, args.json)
    return 0 if idle else 1


def _print(report: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps(report))
        return
    console = Console()
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
