"""`mdfd validate RECIPE --config CONFIG`: the recipe and its fit to the MDF, offline."""

from __future__ import annotations

import argparse
from pathlib import Path

from mdfd.recipes.loader import load_recipe
from mdfd.recipes.located import InputError

from ..config import load_config
from ..validation import check


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("validate", help="check a recipe against an MDF config (offline)")
    parser.add_argument("recipe", type=Path)
    parser.add_argument("--config", required=True, type=Path)
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    recipe = load_recipe(args.recipe)
    problems = check(recipe, config)
    if problems:
        raise InputError(problems)
    points = recipe.model.sweep.count()
    print(
        f"{args.recipe}: ok — {recipe.model.recipe.name} {recipe.model.recipe.version}, "
        f"{points} points, fits {config.model.mdf.id}"
    )
    return 0
