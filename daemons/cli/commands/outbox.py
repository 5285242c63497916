"""`mdfd outbox --config C [status|retry|drain] [--json]`: the upstream outbox without a daemon.

`status` (default) shows per publisher the records waiting, the oldest one's age, deliveries and
dead letters; `retry` re-queues dead letters (safe beside a running daemon: it only marks rows,
the daemon's drain picks them up); `drain` delivers now and exits 0 when every publisher is
idle, 1 when records remain (it holds the MDF's lock, so not while a daemon runs).
"""

from __future__ import annotations

import argparse
import asyncio
import json
from typing import Any

from mdfd.daemons.cli.outboxview import print_outbox
from mdfd.daemons.core.config import LoadedConfig, load_config
from mdfd.daemons.launch.oneshot import existing_state_db, run_blocking
from mdfd.recipes.located import InputError, Problem

from . import add_command, add_config

DEAD_SHOWN = 20


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = add_command(
        sub,
        "outbox",
        "upstream outbox without a daemon: depth, dead letters, retry, drain",
        "mdfd outbox --config config/sim.yaml retry --publisher spool",
        details=(__doc__ or "").split("\n\n", 1)[1].strip(),
    )
    parser.add_argument(
        "action",
        nargs="?",
        choices=["status", "retry", "drain"],
        default="status",
        help="default: status",
    )
    add_config(parser)
    parser.add_argument("--publisher", help="retry: only this publisher's dead letters")
    parser.add_argument(
        "--within", type=float, default=60.0, help="drain: seconds to try (default 60)"
    )
    parser.add_argument("--json", action="store_true", help="one JSON object on stdout")
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
    existing_state_db(config)  # read-mostly: refuse before the lock or a directory is created
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
    print_outbox(report, args.json)
    return 0


async def _retry(config: LoadedConfig, publisher: str | None) -> int:
    from mdfd.daemons.upstream.service import UpstreamService  # aiohttp: only when used

    async with existing_state_db(config) as state:
        return await UpstreamService(config, state).retry_dead_letters(publisher)


async def _report(config: LoadedConfig) -> dict[str, Any]:
    from mdfd.daemons.upstream.service import UpstreamService  # aiohttp: only when used

    async with existing_state_db(config) as state:
        return await UpstreamService(config, state).report(DEAD_SHOWN)


async def _drain(config: LoadedConfig, args: argparse.Namespace) -> int:
    from mdfd.daemons.upstream.service import UpstreamService  # aiohttp: only when used

    async with existing_state_db(config) as state, UpstreamService(config, state) as service:
        idle = await service.drain_until_idle(args.within)
        report = await service.report(DEAD_SHOWN)
    print_outbox(report, args.json)
    return 0 if idle else 1
