"""Turn a recipe's step values into numbers for one point, in the channel's units.

`mdfd validate` and the engine both call this, so what validation proved to be inside the
limits is exactly what the engine writes.
"""

from __future__ import annotations

from mdfd.recipes.model import Recipe, StepValue, is_parameter_ref
from mdfd.recipes.sweeps import Point
from mdfd.recipes.units import convert, parse_quantity, seconds


def value_for(
    value: StepValue, point: Point, recipe: Recipe, unit: str = ""
) -> float | int | bool | str:
    """A literal, a quantity string or a parameter name -> the value to write, in `unit`."""
    if isinstance(value, bool | int | float):
        return value
    if is_parameter_ref(value):
        source_unit = recipe.sweep.parameters[value].unit
        number = point[value]
        return convert(number, source_unit, unit) if source_unit and unit else number
    number, source_unit = parse_quantity(value, unit)
    return convert(number, source_unit, unit) if source_unit and unit else number


def duration_for(value: StepValue, point: Point, recipe: Recipe) -> float:
    """Seconds for a literal, a quantity string, or a parameter (in the parameter's unit)."""
    if isinstance(value, int | float):
        return float(value)
    if is_parameter_ref(value):
        return seconds(point[value], recipe.sweep.parameters[value].unit or "s")
    number, unit = parse_quantity(value, "s")
    return seconds(number, unit)


def rate_per_second(value: StepValue, point: Point, recipe: Recipe, channel_unit: str) -> float:
    """A ramp rate given per minute (bare number) or as a quantity -> channel units per second."""
    if isinstance(value, int | float):
        return float(value) / 60.0
    if is_parameter_ref(value):
        unit = recipe.sweep.parameters[value].unit
        number = point[value]
        return convert(number, unit, f"({channel_unit})/s") if unit else number / 60.0
    number, unit = parse_quantity(value, "")
    if not unit:
        return number / 60.0
    return convert(number, unit, f"({channel_unit})/s" if channel_unit else "1/s")
