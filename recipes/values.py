"""A step value, parsed once at load: a parameter reference, a quantity, or a literal.

Recipes write `to: temperature`, `rate: 5 degC/min` or `dwell: 30`; the model turns each into
one of three types here, so the engine, planning and validation match on a type instead of
re-reading the text. Resolving a value for one point (in a channel's unit) needs the sweep's
parameter units and nothing of an MDF but the channel's unit, so it lives here too.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Annotated

from pydantic import Field, PlainSerializer, PlainValidator

from .sweeps import Point
from .units import UnitError, convert, parse_unit, seconds, split_quantity

if TYPE_CHECKING:
    from .model import Recipe

NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"
MAX_TEXT_CHARS = 128

Number = float | int


@dataclass(frozen=True, slots=True)
class ParameterRef:
    """The name of a sweep parameter: its value at the point, in the parameter's unit."""

    name: str

    def __str__(self) -> str:
        return self.name


@dataclass(frozen=True, slots=True)
class Quantity:
    """A number with a unit as written ('5 degC/min'); an empty unit means the context's unit
    (channel units, seconds, per minute for a rate). `text` is kept for messages."""

    number: float
    unit: str
    text: str

    def __str__(self) -> str:
        return self.text


@dataclass(frozen=True, slots=True)
class LiteralValue:
    """A YAML scalar written as is: a number, or a boolean for a `set`."""

    value: bool | int | float

    def __str__(self) -> str:
        return str(self.value)


StepValue = ParameterRef | Quantity | LiteralValue


def parse_value(raw: object, *, booleans: bool = False) -> StepValue:
    """The one place a step value's text is read; every later use matches on the type."""
    if isinstance(raw, ParameterRef | Quantity | LiteralValue):
        return raw
    if isinstance(raw, bool):
        if booleans:
            return LiteralValue(raw)
        raise ValueError("expected a number, a quantity ('5 degC/min') or a parameter name")
    if isinstance(raw, int | float):
        return LiteralValue(raw)
    if not isinstance(raw, str):
        raise ValueError("expected a number, a quantity ('5 degC/min') or a parameter name")
    if len(raw) > MAX_TEXT_CHARS:
        raise ValueError(f"at most {MAX_TEXT_CHARS} characters")
    if re.match(NAME, raw):
        return ParameterRef(raw)
    number, unit = split_quantity(raw)  # UnitError is a ValueError: pydantic locates it
    if unit:
        parse_unit(unit)
    return Quantity(number, unit, raw)


def _word_quantity(raw: str) -> bool:
    """'2 h', '250 degC': a number and a one-word unit (what durations and bounds accept);
    whether pint knows the unit is for `parse_value` to say."""
    try:
        _, unit = split_quantity(raw)
    except UnitError:
        return False
    return unit.isascii() and unit.isalpha()


def parse_duration(raw: object) -> StepValue:
    """A duration: non-negative seconds, a word-unit quantity ('30 min') or a parameter."""
    if isinstance(raw, bool):
        raise ValueError("a duration is seconds, a quantity ('30 min') or a parameter name")
    if isinstance(raw, str) and not re.match(NAME, raw) and not _word_quantity(raw):
        raise ValueError(f"{raw!r} is neither a duration (e.g. '30 min') nor a parameter name")
    value = parse_value(raw)
    seconds_given = literal_seconds(value)  # UnitError: 'cannot convert ... to second'
    if seconds_given is not None and seconds_given < 0:
        if isinstance(value, LiteralValue):
            raise ValueError("a duration cannot be negative")
        raise ValueError(f"{raw!r} is not a non-negative duration")
    return value


def parse_bound(raw: object) -> StepValue:
    """A literal bound (a precondition's): a number or a word-unit quantity, never a parameter,
    since it is checked before any point exists."""
    if isinstance(raw, int | float) and not isinstance(raw, bool):
        return LiteralValue(raw)
    if isinstance(raw, str) and _word_quantity(raw):
        return parse_value(raw)  # UnitError: 'unknown unit ...'
    raise ValueError(
        f"{raw!r} is not a value (e.g. 250 or '250 degC'); "
        "a precondition cannot use a sweep parameter"
    )


def _plain(value: StepValue) -> object:
    """Back to the form the recipe was written in (`model_dump`, JSON)."""
    if isinstance(value, LiteralValue):
        return value.value
    return str(value)


ShortText = Annotated[str, Field(max_length=MAX_TEXT_CHARS)]
_WRITTEN = PlainSerializer(_plain, return_type=bool | float | int | str)

# The recipe's own form is unchanged (what `mdfd schema recipe` publishes: the input types);
# the model holds the parsed union.
Value = Annotated[
    StepValue, PlainValidator(parse_value, json_schema_input_type=Number | ShortText), _WRITTEN
]
# bool first: a `set` may write `running: true`.
SetValue = Annotated[
    StepValue,
    PlainValidator(
        partial(parse_value, booleans=True), json_schema_input_type=bool | Number | ShortText
    ),
    _WRITTEN,
]
Duration = Annotated[
    StepValue,
    PlainValidator(parse_duration, json_schema_input_type=Number | ShortText),
    _WRITTEN,
    Field(description="seconds, '30 min', or a parameter"),
]
BoundValue = Annotated[
    StepValue, PlainValidator(parse_bound, json_schema_input_type=Number | str), _WRITTEN
]


def value_for(value: StepValue, point: Point, recipe: Recipe, unit: str = "") -> float | int | bool:
    """The value to write at `point`, in `unit` (a channel's)."""
    match value:
        case LiteralValue(literal):
            return literal
        case ParameterRef(name):
            source_unit = recipe.sweep.parameters[name].unit
            number = point[name]
            return convert(number, source_unit, unit) if source_unit and unit else number
        case Quantity(number, source_unit):
            return convert(number, source_unit, unit) if source_unit and unit else number


def literal_seconds(value: StepValue) -> float | None:
    """Seconds of a literal duration; None for a parameter reference."""
    match value:
        case LiteralValue(literal):
            return float(literal)
        case Quantity(number, unit):
            return seconds(number, unit or "s")
        case ParameterRef():
            return None


def duration_for(value: StepValue, point: Point, recipe: Recipe) -> float:
    """Seconds: a bare number is seconds, a parameter is in the parameter's unit."""
    if isinstance(value, ParameterRef):
        return seconds(point[value.name], recipe.sweep.parameters[value.name].unit or "s")
    return literal_seconds(value) or 0.0


def rate_per_second(value: StepValue, point: Point, recipe: Recipe, channel_unit: str) -> float:
    """A ramp rate given per minute (bare number) or as a quantity -> channel units per second."""
    per_second = f"({channel_unit})/s" if channel_unit else "1/s"
    match value:
        case LiteralValue(literal):
            return float(literal) / 60.0
        case ParameterRef(name):
            unit = recipe.sweep.parameters[name].unit
            number = point[name]
            return convert(number, unit, f"({channel_unit})/s") if unit else number / 60.0
        case Quantity(number, unit):
            return convert(number, unit, per_second) if unit else number / 60.0
