"""Queued runs back to back: warn when a run starts far from where the run before it ends.

A 200 degC anneal queued after a 1300 degC sinter starts with the furnace still hot. At submit
the daemon compares, per writable channel with limits, the new run's first setpoint (its point
0) with the last setpoint of the run it will follow; "far" means more than FAR_FRACTION of the
channel's limits span (20 % of 0..1400 degC = 280 degC). Channels without both limits have no
span and are not compared. A recipe with a precondition on the same instrument already says
how to wait, so that instrument is not warned about (ADR 0039).
"""

from __future__ import annotations

from mdfd.daemons.core.config import LoadedConfig
from mdfd.recipes.loader import LoadedRecipe
from mdfd.recipes.sweeps import Point
from mdfd.recipes.values import value_for

FAR_FRACTION = 0.2


def _setpoints(recipe: LoadedRecipe, config: LoadedConfig, point: Point) -> dict[str, float]:
    """Each channel's value after the point's writes (the last set or ramp target wins)."""
    written: dict[str, float] = {}
    for step in recipe.model.steps:
        for use in step.uses():
            for given in use.given:
                if given.role != "setpoint":
                    continue
                instrument, _, name = use.channel.partition(".")
                unit = config.model.instruments[instrument].channels[name].unit
                value = value_for(given.value, point, recipe.model, unit)
                if isinstance(value, int | float) and not isinstance(value, bool):
                    written[use.channel] = float(value)
    return written


def far_setpoints(
    previous: LoadedRecipe, following: LoadedRecipe, config: LoadedConfig
) -> list[str]:
    """One sentence per channel where `following` starts far from where `previous` ends."""
    ends = _setpoints(previous, config, previous.model.points()[-1])
    starts = _setpoints(following, config, following.model.points()[0])
    waited = {p.channel.partition(".")[0] for p in following.model.preconditions}
    warnings = []
    for qualified, start in starts.items():
        instrument, _, name = qualified.partition(".")
        channel = config.model.instruments[instrument].channels[name]
        limits = channel.limits
        if qualified not in ends or instrument in waited:
            continue
        if limits is None or limits.min is None or limits.max is None:
            continue
        span = limits.max - limits.min
        end = ends[qualified]
        if abs(start - end) > FAR_FRACTION * span:
            unit = f" {channel.unit}" if channel.unit else ""
            warnings.append(
                f"{qualified}: this run starts at {start:g}{unit}, the run before it ends at "
                f"{end:g}{unit} (more than {FAR_FRACTION:.0%} of its limits span {span:g}{unit});"
                f" consider a recipe precondition so point 0 waits for {instrument}"
            )
    return warnings
