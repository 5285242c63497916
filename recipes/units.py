"""Units and quantities, through pint.

Recipes speak in the lab's units ("5 degC/min", "2 h", "30 min"); records speak in the
vocabulary's. One registry, with the few units of materials testing that pint lacks, decides
compatibility and converts.
"""

from __future__ import annotations

import os
import re
from functools import cache, lru_cache
from pathlib import Path
from typing import Annotated

import pint
from pydantic import AfterValidator, Field

NUMBER = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?"
QUANTITY_PATTERN = re.compile(rf"^\s*({NUMBER})\s*(.*?)\s*$")
# pint's parser takes seconds on a 20,000-character unit; real units are a few characters.
MAX_UNIT_CHARS = 64


@cache
def registry() -> pint.UnitRegistry[float]:
    """pint parses its definition files on every process start (0.15-0.4 s here, the largest
    single cost of validating a config); its public `cache_folder` keeps the parsed result.
    A cache that cannot be created, or is caught half-written by another process, costs only
    that time: the registry is then built without it."""
    try:
        units: pint.UnitRegistry[float] = pint.UnitRegistry(
            autoconvert_offset_to_baseunit=True, cache_folder=_cache()
        )
    except Exception:
        units = pint.UnitRegistry(autoconvert_offset_to_baseunit=True)
    units.define("vickers_hardness = [hardness] = HV")
    units.define("colour_strength_unit = [] = KS")
    units.define("ppm_mass = 1e-6 = ppmw")
    return units


def _cache() -> Path:
    """`$MDFD_CACHE_DIR/pint`, else under `$XDG_CACHE_HOME` or `~/.cache`: the same root as the
    simulators' caches (recipes import nothing of ours, hence the few repeated lines)."""
    root = os.environ.get("MDFD_CACHE_DIR")
    if root:
        return Path(root) / "pint"
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "mdfd" / "pint"


class UnitError(ValueError):
    pass


@lru_cache(maxsize=1024)
def parse_unit(text: str) -> pint.Unit:
    """Cached: validating a sweep converts the same few units at every point."""
    if text in ("", "1", "dimensionless"):
        return registry().dimensionless
    if len(text) > MAX_UNIT_CHARS:
        raise UnitError(f"unit longer than {MAX_UNIT_CHARS} characters")
    try:
        return registry().Unit(text)
    except Exception as exc:
        # pint parses with Python's tokenizer: text like "{" or "1/" raises whatever that
        # raises (TokenError, SyntaxError, …), not only pint's own errors.
        raise UnitError(f"unknown unit {text!r}") from exc


def compatible(a: str, b: str) -> bool:
    return parse_unit(a).dimensionality == parse_unit(b).dimensionality


def convert(value: float, source: str, target: str) -> float:
    if source == target:
        return value
    quantity = registry().Quantity(value, parse_unit(source))
    try:
        return float(quantity.to(parse_unit(target)).magnitude)
    except pint.DimensionalityError as exc:
        raise UnitError(f"cannot convert {source!r} to {target!r}") from exc


def split_quantity(text: str) -> tuple[float, str]:
    """'2 h' -> (2.0, 'h'); a bare number has the unit ''. The unit is not checked here.

    Number and unit are split before pint sees them: pint would turn '5 degC/min' into
    278.15 K/min, reading the offset unit as an absolute temperature.
    """
    match = QUANTITY_PATTERN.match(text)
    if match is None:
        raise UnitError(f"cannot read {text!r} as a quantity")
    return float(match.group(1)), match.group(2).strip()


def duration_seconds(value: object) -> object:
    """A duration as a config writes it: a number of seconds, or a quantity string such as
    `10 s` (anything else is left for the field's own validation to refuse)."""
    if isinstance(value, str):
        try:
            number, unit = split_quantity(value)
            return seconds(number, unit)
        except (UnitError, ValueError) as exc:
            raise ValueError(f"expected a duration such as '10 s': {exc}") from None
    return value


def seconds(value: float, unit: str) -> float:
    if unit in ("", "s", "second"):
        return value
    return convert(value, unit, "second")


def checked_unit(text: str) -> str:
    """A pydantic validator: the unit must be one pint (with our additions) knows."""
    try:
        parse_unit(text)
    except UnitError as exc:
        raise ValueError(str(exc)) from exc
    return text


UnitText = Annotated[str, Field(max_length=MAX_UNIT_CHARS), AfterValidator(checked_unit)]
