"""Readings for a whole block: one per value, stamped once, judged for NaN and ±inf."""

from __future__ import annotations

from collections.abc import Sequence

from ..base import Reading, Value, judged


def build_readings(
    values: Sequence[Value], units: Sequence[str], timestamp: float
) -> list[Reading]:
    """Readings, one per value, all stamped `timestamp`: good, but bad for NaN or ±inf."""
    return [
        Reading(value, unit, timestamp, judged(value))
        for value, unit in zip(values, units, strict=True)
    ]
