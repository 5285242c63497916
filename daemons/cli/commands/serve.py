"""`mdfd serve --config C [--simulate]`: the daemon of one MDF (systemd `Type=notify`).

Exit codes: 0 stopped cleanly (SIGTERM/SIGINT; an executing run is left interrupted and resumes
on the next start), 1 the work loop failed, 2 bad input — an invalid config, another mdfd
process already holds this MDF's state directory, or another daemon serves its control socket
in the same runtime directory.
"""

from __future__ import annotations

import argparse
import asyncio
import faulthandler
import sys

from mdfd.daemons.core.config import load_config
from mdfd.daemons.core.logging import throttle_library_logs
from mdfd.daemons.launch.simulation import require_simulators
from mdfd.daemons.store.lock import RuntimeLock, StateLock

from . import add_command, add_config

GIL_SWITCH_SECONDS = 0.0005


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = add_command(
        sub,
        "serve",
        "run the MDF's daemon: queue, instruments, control API (systemd notify)",
        "mdfd serve --config config/sim.yaml --simulate",
    )
    add_config(parser)
    parser.add_argument(
        "--simulate",
        action="store_true",
        help="start the config's simulators for the daemon's lifetime",
    )
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    if args.simulate:
        require_simulators(config)
    config.model.storage.data_dir.mkdir(parents=True, exist_ok=True)
    # systemd's watchdog kills with SIGABRT: the journal then shows where every thread was stuck.
    # Imported here: the daemon pulls in aiohttp (control API, HTTP publisher), which
    # `mdfd --help` and every other subcommand would otherwise pay for at start-up.
    from mdfd.daemons.serve.daemon import serve

    faulthandler.enable()
    throttle_library_logs()
    # Worker threads (recipe checks, SQLite, HDF5) hold the GIL for up to this long before the
    # event loop gets it back; Python's default 5 ms made each of `/status`'s hand-offs cost
    # up to 5 ms while a hostile recipe was being refused (ADR 0016).
    sys.setswitchinterval(GIL_SWITCH_SECONDS)
    storage = config.model.storage
    with StateLock(storage.state_dir), RuntimeLock(storage.control_socket.parent):
        return asyncio.run(serve(config, args.simulate))
