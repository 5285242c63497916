"""`mdfd resume --config C RUN_ID [--simulate]`: continue an interrupted run where it stopped."""

from __future__ import annotations

import argparse

from mdfd.daemons.core.config import load_config
from mdfd.daemons.core.logging import quiet_for_progress
from mdfd.daemons.launch.oneshot import EXIT_CODES, execute_once, run_blocking, state_db
from mdfd.daemons.launch.simulation import require_simulators
from mdfd.daemons.launch.summary import print_summary
from mdfd.daemons.store import RunStatus
from mdfd.recipes.located import InputError, Problem

from . import add_command, add_config


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = add_command(
        sub,
        "resume",
        "continue an interrupted run at its first open point",
        "mdfd resume --config config/sim.yaml RUN_ID --simulate",
    )
    parser.add_argument("run_id", metavar="RUN_ID", help="the interrupted run's id")
    add_config(parser)
    parser.add_argument(
        "--simulate", action="store_true", help="start the config's simulators for the run"
    )
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    quiet_for_progress()
    config = load_config(args.config)
    if args.simulate:
        require_simulators(config)

    async def body() -> int:
        async with state_db(config) as state:
            run = await state.run(args.run_id)
            if run is None:
                raise InputError(
                    [
                        Problem(
                            str(args.config),
                            None,
                            "run",
                            f"no run {args.run_id!r} in this MDF's state database",
                        )
                    ]
                )
            if run.status.finished:
                raise InputError(
                    [
                        Problem(
                            str(args.config),
                            None,
                            "run",
                            f"run {run.id} is {run.status.value}; nothing to resume",
                        )
                    ]
                )
            if run.status is RunStatus.RUNNING:
                # Left running by a process that died (kill -9, power loss): we hold the lock now.
                await state.set_status(run.id, RunStatus.INTERRUPTED, "process died mid-run")
            finished = await execute_once(config, state, run, args.simulate)
        print_summary(finished, config, args.simulate, args.json)
        return EXIT_CODES[finished.outcome.status]

    return run_blocking(config, body)
