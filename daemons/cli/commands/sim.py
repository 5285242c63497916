"""`mdfd sim --config C`: the simulators of a config, until SIGINT / SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
from pathlib import Path

from mdfd.daemons.core.config import LoadedConfig, load_config
from mdfd.daemons.core.notify import Notifier
from mdfd.daemons.launch.simulation import require_simulators, running_simulators

from . import add_command, add_config


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = add_command(
        sub,
        "sim",
        "run the simulators a config declares, until stopped",
        "mdfd sim --config config/sim.yaml",
    )
    add_config(parser)
    parser.add_argument(
        "--endpoints-file",
        type=Path,
        help="write {simulator: endpoints} as JSON here once all are listening",
    )
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    require_simulators(config)
    return asyncio.run(_serve(config, args.endpoints_file))


async def _serve(config: LoadedConfig, endpoints_file: Path | None) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    async with running_simulators(config) as simulators:
        endpoints = {name: sim.endpoints() for name, sim in simulators.items()}
        text = json.dumps(endpoints)
        if endpoints_file is not None:
            tmp = endpoints_file.with_suffix(".tmp")
            tmp.write_text(text)
            tmp.replace(endpoints_file)
        print(text, flush=True)
        with Notifier() as notifier:  # under systemd (mdfd-sim.service): ready = listening
            notifier.ready(status=f"simulating {', '.join(simulators)}")
            await stop.wait()
            notifier.stopping()
    return 0
