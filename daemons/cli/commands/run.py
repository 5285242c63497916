"""`mdfd run --config C RECIPE [--simulate] [--json]`: run one recipe and exit with its status.

Exit codes: 0 completed; 1 failed or aborted; 2 bad input (nothing touched); 3 interrupted
(resumable with `mdfd resume`).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from mdfd.daemons.analysis.validation import validate
from mdfd.daemons.core.config import load_config
from mdfd.daemons.core.logging import quiet_for_progress
from mdfd.daemons.launch.oneshot import (
    EXIT_CODES,
    create_run,
    execute_once,
    run_blocking,
    state_db,
)
from mdfd.daemons.launch.simulation import require_simulators
from mdfd.daemons.launch.summary import print_summary
from mdfd.recipes.loader import load_recipe

from . import add_command, add_config


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = add_command(
        sub,
        "run",
        "run one recipe now and exit with its status (0 completed, 1 failed, 3 interrupted)",
        "mdfd run recipes/examples/metal-annealing.yaml --config config/sim.yaml --simulate",
    )
    parser.add_argument("recipe", type=Path, help="the recipe file (YAML)")
    add_config(parser)
    parser.add_argument(
        "--simulate",
        action="store_true",
        help="start the config's simulators for the length of the run",
    )
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    quiet_for_progress()
    config = load_config(args.config)
    recipe = load_recipe(args.recipe)
    validate(recipe, config)
    if args.simulate:
        require_simulators(config)

    async def body() -> int:
        async with state_db(config) as state:
            run = await create_run(state, config, recipe)
            finished = await execute_once(config, state, run, args.simulate)
        print_summary(finished, config, args.simulate, args.json)
        return EXIT_CODES[finished.outcome.status]

    return run_blocking(config, body)
