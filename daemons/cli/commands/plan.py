"""`mdfd plan RECIPE --config CONFIG [--json]`: points in order, count, estimated duration."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from rich.markup import escape
from rich.table import Table

from mdfd.daemons.analysis.campaignplan import CampaignPlan, make_campaign_plan
from mdfd.daemons.analysis.planning import format_duration, make_plan
from mdfd.daemons.analysis.validation import validate
from mdfd.daemons.core.config import load_config
from mdfd.daemons.core.console import output_console
from mdfd.recipes.loader import load_recipe

from . import add_command, add_config


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = add_command(
        sub,
        "plan",
        "list a recipe's points in order and estimate its duration (nothing is touched)",
        "mdfd plan recipes/examples/metal-annealing.yaml --config config/sim.yaml",
    )
    parser.add_argument("recipe", type=Path, help="the recipe file (YAML)")
    add_config(parser)
    parser.add_argument("--json", action="store_true", help="one JSON object on stdout")
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    recipe = load_recipe(args.recipe)
    validate(recipe, config)
    if recipe.model.adaptive is not None:
        return _campaign(make_campaign_plan(recipe, config, recipe.model.adaptive), args.json)
    plan = make_plan(recipe, config)
    if args.json:
        print(json.dumps(plan.as_dict()))
        return 0
    console = output_console()
    table = Table(title=f"{plan.recipe} {plan.version} on {config.model.mdf.id}")
    table.add_column("#", justify="right")
    names = list(recipe.model.sweep.parameters)
    for name in names:
        unit = recipe.model.sweep.parameters[name].unit
        table.add_column(escape(f"{name} [{unit}]") if unit else name, justify="right")
    table.add_column("estimate", justify="right")
    for point in plan.points:
        table.add_row(
            str(point.index),
            *(f"{point.parameters[n]:g}" for n in names),
            format_duration(point.estimated_seconds),
        )
    console.print(table)
    total = plan.estimated_seconds
    line = f"{len(plan.points)} points, at least {format_duration(total)}"
    if plan.time_scale != 1.0:
        line += f" (≈ {format_duration(total / plan.time_scale)} at time scale {plan.time_scale:g})"
    if plan.precondition_seconds:
        line += (
            f", up to {format_duration(plan.precondition_seconds)} more waiting for the "
            f"preconditions (worst case {format_duration(plan.worst_case_seconds)})"
        )
    console.print(line + "; thermal lag and stabilisation may add to it.")
    return 0


def _campaign(plan: CampaignPlan, as_json: bool) -> int:
    """An adaptive recipe: the space, the budget and the worst case instead of a point list."""
    if as_json:
        print(json.dumps(plan.as_dict()))
        return 0
    console = output_console()
    sweep = plan.sweep
    table = Table(title=f"{plan.recipe} {plan.version}: adaptive campaign ({sweep.optimiser})")
    for column in ("parameter", "type", "space", "unit"):
        table.add_column(column)
    for name, parameter in sweep.parameters.items():
        if parameter.choices is not None:
            space = ", ".join(f"{c:g}" for c in parameter.choices)
        else:
            space = f"{parameter.low:g} .. {parameter.high:g}"
            space += f" step {parameter.step:g}" if parameter.step else ""
            space += " (log)" if parameter.log else ""
        table.add_row(escape(name), parameter.type, space, escape(parameter.unit))
    console.print(table)
    for name, objective in sweep.objectives.items():
        console.print(
            f"objective {escape(name)}: {objective.direction} {objective.reduce} of "
            f"{objective.channel}"
        )
    budget = sweep.budget
    line = f"budget: at most {budget.max_points} points"
    if budget.max_time is not None:
        line += f", {format_duration(budget.max_time_seconds() or 0.0)} of process time"
    if budget.max_wall_time is not None:
        line += f", {format_duration(budget.max_wall_seconds() or 0.0)} of wall time"
    if budget.stop_when is not None:
        stop = budget.stop_when
        bound = f">= {stop.above:g}" if stop.above is not None else f"<= {stop.below:g}"
        line += f", or once {stop.objective} {bound}"
    console.print(escape(line))
    design = sweep.initial_design
    console.print(
        f"first {design.samples} points: {design.kind.replace('_', ' ')} (seed {sweep.seed}),"
        f" then {sweep.optimiser}, {sweep.batch_size} proposed ahead"
    )
    worst = plan.worst_case_seconds
    line = f"worst case {format_duration(worst)}"
    if plan.time_scale != 1.0:
        line += f" (≈ {format_duration(worst / plan.time_scale)} at time scale {plan.time_scale:g})"
    console.print(
        line + f": each point up to {format_duration(plan.worst_point_seconds)} "
        "(from the farthest corner of the space), plus preconditions; thermal lag may add to it."
    )
    return 0
