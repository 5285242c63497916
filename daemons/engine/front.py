"""The best point of a campaign so far, or its Pareto front when it has several objectives.

Pure functions over recorded trials, shared by the engine (stop condition), the HDF5 campaign
group, `mdfd runs`, the control API and the benchmark, so all of them agree on what "best" is.
Only feasible trials count: a point that broke a constraint is no candidate, however good.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from .proposer import Trial


def _better(value: float, than: float, direction: str) -> bool:
    return value > than if direction == "maximize" else value < than


def best_so_far(trials: Sequence[Trial], directions: Sequence[str]) -> list[float]:
    """Per trial, in order, the best feasible value of the first objective up to it (NaN before
    the first feasible one): the line `mdfd plot` draws."""
    best = math.nan
    out = []
    for trial in trials:
        value = trial.values[0] if trial.feasible and trial.values else math.nan
        if math.isfinite(value) and (math.isnan(best) or _better(value, best, directions[0])):
            best = value
        out.append(best)
    return out


def dominates(a: Sequence[float], b: Sequence[float], directions: Sequence[str]) -> bool:
    """`a` is at least as good as `b` in every objective and better in one."""
    signs = [1.0 if d == "maximize" else -1.0 for d in directions]
    pairs = [(s * x, s * y) for s, x, y in zip(signs, a, b, strict=True)]
    return all(x >= y for x, y in pairs) and any(x > y for x, y in pairs)


def front(trials: Sequence[Trial], directions: Sequence[str]) -> list[Trial]:
    """The non-dominated feasible trials (one objective: the single best), in trial order."""
    candidates = [
        t for t in trials if t.feasible and t.values and all(math.isfinite(v) for v in t.values)
    ]
    return [
        t
        for t in candidates
        if not any(dominates(o.values, t.values, directions) for o in candidates if o is not t)
        and not any(o.values == t.values and o.number < t.number for o in candidates)
    ]
