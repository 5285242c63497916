"""`mdfd validate RECIPE --config CONFIG`: the recipe and its fit to the MDF, offline."""

from __future__ import annotations

import argparse
from pathlib import Path

from mdfd.daemons.analysis.validation import check
from mdfd.daemons.core.config import load_config
from mdfd.recipes.loader import load_recipe
from mdfd.recipes.located import InputError

from . import add_command, add_config


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = add_command(
        sub,
        "validate",
        "check a recipe and its fit to an MDF config, offline (exit 2 with located errors)",
        "mdfd validate recipes/examples/metal-annealing.yaml --config config/sim.yaml",
    )
    parser.add_argument("recipe", type=Path, help="the recipe file (YAML)")
    add_config(parser)
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    recipe = load_recipe(args.recipe)
    problems = check(recipe, config)
    if problems:
        raise InputError(problems)
    points = f"{recipe.model.sweep.count()} points"
    if recipe.model.adaptive is not None:
        points = f"adaptive, at most {points}"
    print(
        f"{args.recipe}: ok — {recipe.model.recipe.name} {recipe.model.recipe.version}, "
        f"{points}, fits {config.model.mdf.id}"
    )
    return 0
