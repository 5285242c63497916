"""Readings for a whole block at C speed.

A 50-channel scan builds 50 Readings; through the frozen dataclass's `__init__` (a Python
frame and four `object.__setattr__` calls each) that is the driver's largest cost after the
round trip. Here the instances are created and their slots filled by `map` over the slot
descriptors — the same operations, without a Python frame per value. Should `Reading` ever
change shape, this falls back to calling the class.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import fields
from itertools import repeat
from math import isfinite

from ..base import Quality, Reading, Value, judged

_SHAPE = ("value", "unit", "timestamp", "quality")
_FAST = tuple(f.name for f in fields(Reading)) == _SHAPE and Reading.__slots__ == _SHAPE
_new = object.__new__


def build_readings(
    values: Sequence[Value], units: Sequence[str], timestamp: float
) -> list[Reading]:
    """Readings, one per value, all stamped `timestamp`: good, but bad for NaN or ±inf."""
    count = len(values)
    if not _FAST:
        readings = list(map(Reading, values, units, repeat(timestamp, count)))
        return _judge(readings, values)
    readings = list(map(_new, repeat(Reading, count)))
    deque(map(Reading.value.__set__, readings, values), 0)  # type: ignore[attr-defined]
    deque(map(Reading.unit.__set__, readings, units), 0)  # type: ignore[attr-defined]
    deque(map(Reading.timestamp.__set__, readings, repeat(timestamp, count)), 0)  # type: ignore[attr-defined]
    deque(map(Reading.quality.__set__, readings, repeat(Quality.GOOD, count)), 0)  # type: ignore[attr-defined]
    return _judge(readings, values)


def _judge(readings: list[Reading], values: Sequence[Value]) -> list[Reading]:
    """One C-speed pass when every value is a finite number (the common scan); only a scan
    holding a non-finite float or a non-number (a string, an array) is judged one by one."""
    try:
        if all(map(isfinite, values)):  # type: ignore[arg-type]
            return readings
    except TypeError:
        pass
    for reading in readings:
        reading.quality = judged(reading.value)
    return readings
