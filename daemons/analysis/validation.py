"""A recipe's fit to one MDF: channels, writability, limits at every point, vocabulary, units.

Everything here runs offline and before any instrument is touched; each problem is located in
the recipe file so the operator can go straight to the line.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from mdfd.daemons.core.config import LoadedConfig
from mdfd.daemons.core.vocabulary import Item, load_vocabulary
from mdfd.drivers import ChannelConfig
from mdfd.recipes.loader import LoadedRecipe
from mdfd.recipes.located import InputError, LocatedDocument, Problem
from mdfd.recipes.model import MaterialItem, RecordItem
from mdfd.recipes.steps import ChannelUse
from mdfd.recipes.sweeps import Point
from mdfd.recipes.units import UnitError, compatible, convert
from mdfd.recipes.values import ParameterRef, StepValue, rate_per_second, value_for

MAX_PROBLEMS_PER_STEP = 3


def validate(recipe: LoadedRecipe, config: LoadedConfig) -> None:
    """Raise InputError listing every problem; return quietly when the recipe fits."""
    problems = check(recipe, config)
    if problems:
        raise InputError(problems)


def check(recipe: LoadedRecipe, config: LoadedConfig) -> list[Problem]:
    doc = recipe.document
    model = recipe.model
    problems: list[Problem] = _check_size(recipe, config)
    if problems:
        return problems  # nothing below may generate the points of a sweep this large
    points = model.points()

    def channel(name: str, where: tuple[str | int, ...]) -> ChannelConfig | None:
        instrument, _, channel_name = name.partition(".")
        instrument_config = config.model.instruments.get(instrument)
        if instrument_config is None:
            problems.append(doc.problem(where, f"unknown instrument {instrument!r} in {name!r}"))
            return None
        found = instrument_config.channels.get(channel_name)
        if found is None:
            problems.append(
                doc.problem(where, f"instrument {instrument!r} has no channel {channel_name!r}")
            )
        return found

    def check_use(use: ChannelUse, base: tuple[str | int, ...]) -> None:
        """The channel exists (and is writable when written); then each value the step gives
        for it, in its unit: a setpoint inside the limits at every point, a rate positive, a
        target a number. The channel and its values are on different lines: each problem is
        reported once, where it is."""
        config_channel = channel(use.channel, (*base, *use.at))
        if config_channel is None:
            return
        if use.access == "write" and not config_channel.writable:
            message = f"channel {use.channel!r} is not writable"
            problems.append(doc.problem((*base, *use.at), message))
            return
        kind = config_channel.value_kind()
        if use.access == "acquire" and kind in ("text", "array"):
            message = (
                f"channel {use.channel!r} gives {kind} values; acquired samples are stored"
                " as numbers, so they would be lost: read it with `mdfd probe`, or acquire a"
                " numeric channel (e.g. one field of the reply)"
            )
            problems.append(doc.problem((*base, *use.at), message))
            return
        for given in use.given:
            check = GIVEN_CHECKS[given.role]
            where = (*base, *given.at)
            check(doc, where, use.channel, given.value, config_channel, recipe, points, problems)

    served = config.model.mdf.served
    if model.recipe.domain is not None and model.recipe.domain not in served:
        problems.append(
            doc.problem(
                ("recipe", "domain"),
                f"a {model.recipe.domain} recipe; MDF {config.model.mdf.id!r} serves"
                f" {', '.join(served)} (its config's mdf.domains)",
            )
        )
    for index, step in enumerate(model.steps):
        for use in step.uses():
            check_use(use, ("steps", index))
    for index, precondition in enumerate(model.preconditions):
        where = ("preconditions", index)
        watched = channel(precondition.channel, (*where, "channel"))
        if watched is not None:
            for key in ("below", "above"):
                if getattr(precondition, key) is not None:
                    _check_numeric(
                        doc,
                        (*where, key),
                        precondition.channel,
                        getattr(precondition, key),
                        watched,
                        recipe,
                        points,
                        problems,
                    )
    problems.extend(_check_vocabulary(recipe, config))
    return problems


def _check_size(recipe: LoadedRecipe, config: LoadedConfig) -> list[Problem]:
    """The point count from the sweep's definition, against this MDF's limit."""
    count = recipe.model.sweep.count()
    limit = config.model.limits.max_points
    if count <= limit:
        return []
    message = f"the sweep has {count} points; this MDF allows {limit} (limits.max_points)"
    return [recipe.document.problem(("sweep",), message)]


def _check_limits(
    doc: LocatedDocument,
    where: tuple[str | int, ...],
    name: str,
    value: StepValue,
    config_channel: ChannelConfig,
    recipe: LoadedRecipe,
    points: list[Point],
    problems: list[Problem],
) -> None:
    limits = config_channel.limits
    found = 0
    for point_index, point in enumerate(_points_to_check(value, points)):
        try:
            resolved = value_for(value, point, recipe.model, config_channel.unit)
        except UnitError as exc:
            problems.append(doc.problem(where, str(exc)))
            return
        if limits is None or isinstance(resolved, bool) or not isinstance(resolved, int | float):
            continue
        if not limits.contains(float(resolved)):
            shown = ", ".join(f"{k}={v:g}" for k, v in point.items())
            problems.append(
                doc.problem(
                    where,
                    f"point {point_index} ({shown}) writes {resolved:g} to {name!r}, outside its "
                    f"limits [{limits.min}, {limits.max}] {config_channel.unit}".rstrip(),
                )
            )
            found += 1
            if found >= MAX_PROBLEMS_PER_STEP:
                return


def _check_rate(
    doc: LocatedDocument,
    where: tuple[str | int, ...],
    name: str,
    value: StepValue,
    config_channel: ChannelConfig,
    recipe: LoadedRecipe,
    points: list[Point],
    problems: list[Problem],
) -> None:
    for point in _points_to_check(value, points):
        try:
            rate = rate_per_second(value, point, recipe.model, config_channel.unit)
        except UnitError as exc:
            problems.append(doc.problem(where, f"{exc} (a ramp rate is channel units per time)"))
            return
        if not rate > 0 or math.isinf(rate):
            problems.append(
                doc.problem(where, f"ramp rate must be positive, got {rate * 60:g}/min")
            )
            return


def _check_numeric(
    doc: LocatedDocument,
    where: tuple[str | int, ...],
    name: str,
    value: StepValue,
    config_channel: ChannelConfig,
    recipe: LoadedRecipe,
    points: list[Point],
    problems: list[Problem],
) -> None:
    for point in points[:1]:
        try:
            resolved = value_for(value, point, recipe.model, config_channel.unit)
        except UnitError as exc:
            problems.append(doc.problem(where, str(exc)))
            return
        if isinstance(resolved, bool) or not isinstance(resolved, int | float):
            problems.append(doc.problem(where, f"target must be a number, got {resolved!r}"))


def _points_to_check(value: StepValue, points: list[Point]) -> list[Point]:
    """A parameter is checked at every point; a literal is the same at each: once."""
    return points if isinstance(value, ParameterRef) else points[:1]


# How each value a step gives for a channel is checked against that channel (ChannelUse).
GIVEN_CHECKS: dict[str, Callable[..., None]] = {
    "setpoint": _check_limits,
    "rate": _check_rate,
    "target": _check_numeric,
}


def _check_vocabulary(recipe: LoadedRecipe, config: LoadedConfig) -> list[Problem]:
    doc = recipe.document
    items = load_vocabulary(config.model.vocabulary).by_code()
    problems: list[Problem] = []
    model = recipe.model
    for section in ("raw_materials", "composition"):
        for index, material in enumerate(getattr(model.materials, section)):
            where = ("materials", section, index)
            problems.extend(_check_material(doc, where, section, material, items))
    for section in ("process", "properties"):
        for index, mapped in enumerate(getattr(model.record, section)):
            where = ("record", section, index)
            problems.extend(_check_mapped(doc, where, section, mapped, items, recipe, config))
    return problems


def _lookup(
    doc: LocatedDocument,
    where: tuple[str | int, ...],
    code: str,
    section: str,
    items: dict[str, Item],
) -> tuple[Item | None, list[Problem]]:
    item = items.get(code)
    if item is None:
        return None, [doc.problem((*where, "code"), f"{code!r} is not in the vocabulary")]
    if item.category.value != section:
        return None, [
            doc.problem((*where, "code"), f"{code} belongs to {item.category.value}, not {section}")
        ]
    return item, []


def _unit_problem(
    doc: LocatedDocument, where: tuple[str | int, ...], code: str, unit: str, item: Item
) -> list[Problem]:
    try:
        ok = compatible(unit, item.unit)
    except UnitError as exc:
        return [doc.problem(where, str(exc))]
    if ok:
        return []
    return [
        doc.problem(
            where,
            f"unit {unit or 'dimensionless'!r} is not compatible with "
            f"{code}'s unit {item.unit or 'dimensionless'!r}",
        )
    ]


def _check_material(
    doc: LocatedDocument,
    where: tuple[str | int, ...],
    section: str,
    material: MaterialItem,
    items: dict[str, Item],
) -> list[Problem]:
    item, problems = _lookup(doc, where, material.code, section, items)
    if item is None:
        return problems
    if item.type == "string":
        if not isinstance(material.value, str):
            return [doc.problem((*where, "value"), f"{material.code} takes text")]
        return []
    if isinstance(material.value, str):
        return [doc.problem((*where, "value"), f"{material.code} takes a number")]
    if not material.unit and item.unit not in ("", "dimensionless"):
        # A bare 1.5 for a percent item would silently mean 150 %: the unit must be said.
        return [
            doc.problem(where, f"{material.code} needs a unit (the vocabulary's is {item.unit!r})")
        ]
    problems = _unit_problem(doc, (*where, "unit"), material.code, material.unit, item)
    if not problems and item.range is not None:
        value = (
            convert(float(material.value), material.unit, item.unit)
            if item.unit
            else float(material.value)
        )
        if not item.range[0] <= value <= item.range[1]:
            problems.append(
                doc.problem(
                    (*where, "value"),
                    f"{value:g} {item.unit} outside {material.code}'s range "
                    f"[{item.range[0]:g}, {item.range[1]:g}]",
                )
            )
    return problems


def _check_mapped(
    doc: LocatedDocument,
    where: tuple[str | int, ...],
    section: str,
    mapped: RecordItem,
    items: dict[str, Item],
    recipe: LoadedRecipe,
    config: LoadedConfig,
) -> list[Problem]:
    item, problems = _lookup(doc, where, mapped.code, section, items)
    if item is None:
        return problems
    parameters = recipe.model.sweep.parameters
    if mapped.source in parameters:
        unit = parameters[mapped.source].unit
    else:
        located = config.channel(mapped.source)
        if located is None:
            return []  # reported once, at the acquire step that names it
        instrument, channel_name = located
        unit = config.model.instruments[instrument].channels[channel_name].unit
    return _unit_problem(doc, (*where, "from"), mapped.code, unit, item)
