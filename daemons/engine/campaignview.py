"""A campaign as operators see it: counts, the best point (or the Pareto front), and the
check of a person's point before it is told to the optimiser.

Shared by `mdfd runs` (offline, from the state database) and the control API (`mdfctl
campaign`), so both show the same best point the engine's stop condition uses (`front`).
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass, field

from mdfd.daemons.store import RunRow, StateDB
from mdfd.daemons.store import campaign as store
from mdfd.recipes.adaptive import AdaptiveSweep
from mdfd.recipes.loader import load_recipe

from .front import best_so_far, front
from .proposer import as_trial


@dataclass(frozen=True)
class BestPoint:
    trial: int
    point_index: int | None
    parameters: dict[str, float]
    objectives: dict[str, float]


@dataclass(frozen=True)
class MeasuredTrial(BestPoint):
    feasible: bool  # every outcome constraint met
    best_so_far: float  # the first objective's best feasible value up to here (`front.best_so_far`)


@dataclass(frozen=True)
class CampaignSummary:
    run: str
    objectives: dict[str, str]  # name -> maximize / minimize
    measured: int
    failed: int
    rejected: int
    pending: int
    budget: int  # the sweep's max_points
    best: list[BestPoint] = field(default_factory=list)
    trials: list[MeasuredTrial] = field(default_factory=list)  # measured, in trial order

    def best_text(self) -> str:
        """One line: the best point, or the size of the front."""
        if not self.best:
            return "no feasible point yet"
        if len(self.objectives) > 1:
            return f"front of {len(self.best)} points"
        point = self.best[0]
        values = " ".join(f"{k}={v:.5g}" for k, v in point.objectives.items())
        where = " ".join(f"{k}={v:g}" for k, v in point.parameters.items())
        return f"{values} at {where} (trial {point.trial})"


def summarize(
    run_id: str, sweep: AdaptiveSweep, records: list[store.TrialRecord]
) -> CampaignSummary:
    directions = [o.direction for o in sweep.objectives.values()]
    names = list(sweep.objectives)
    by_trial = {r.trial: r for r in records}
    best = [
        BestPoint(
            t.number,
            by_trial[t.number].point_index,
            t.parameters,
            dict(zip(names, t.values, strict=True)),
        )
        for t in front([as_trial(r) for r in records], directions)
    ]

    measured = sorted((r for r in records if r.status == "done"), key=lambda r: r.trial)
    told = [as_trial(r) for r in measured]
    trials = [
        MeasuredTrial(
            r.trial,
            r.point_index,
            r.parameters,
            dict(zip(names, r.objectives, strict=True)),
            t.feasible,
            line,
        )
        for r, t, line in zip(measured, told, best_so_far(told, directions), strict=True)
    ]

    def count(*statuses: str) -> int:
        return sum(1 for r in records if r.status in statuses)

    return CampaignSummary(
        run_id,
        dict(zip(names, directions, strict=True)),
        count("done"),
        count("failed"),
        count("rejected"),
        count("proposed", "running"),
        sweep.budget.max_points,
        best,
        trials,
    )


def adaptive_sweep(run: RunRow) -> AdaptiveSweep | None:
    """The run's adaptive sweep, parsed from the recipe text it was queued with (blocking)."""
    if "adaptive" not in run.recipe_text:
        return None
    return load_recipe(run.recipe_path or f"run {run.id}", text=run.recipe_text).model.adaptive


async def load_summary(state: StateDB, run: RunRow) -> CampaignSummary | None:
    """The campaign of an adaptive run (None for any other run)."""
    sweep = await asyncio.to_thread(adaptive_sweep, run)
    if sweep is None:
        return None
    records = await state.read(lambda c: store.trials(c, run.id))
    return summarize(run.id, sweep, records)


def point_problems(sweep: AdaptiveSweep, point: dict[str, object]) -> list[str]:
    """Why a person's point cannot join the campaign (empty when it can): every parameter,
    a finite number inside its bounds, on its step, one of its choices; the input
    constraints met. Checked before anything is recorded or moved."""
    problems = []
    unknown = sorted(set(point) - set(sweep.parameters))
    missing = sorted(set(sweep.parameters) - set(point))
    if unknown:
        problems.append(
            f"unknown parameter(s) {unknown}; the campaign's are {list(sweep.parameters)}"
        )
    if missing:
        problems.append(f"missing parameter(s) {missing}")
    for name, value in point.items():
        parameter = sweep.parameters.get(name)
        if parameter is None:
            continue
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
        ):
            problems.append(f"{name}: {value!r} is not a finite number")
            continue
        if parameter.choices is not None:
            if float(value) not in parameter.choices:
                problems.append(f"{name}: {value:g} is not one of {parameter.choices}")
            continue
        assert parameter.low is not None
        assert parameter.high is not None
        if not parameter.low <= value <= parameter.high:
            problems.append(f"{name}: {value:g} is outside {parameter.low:g} .. {parameter.high:g}")
            continue
        step = parameter.step or (1.0 if parameter.type == "int" else None)
        if step is not None:
            nearest = parameter.low + round((value - parameter.low) / step) * step
            # relative to the value: far from zero, a step is a few of its last bits
            if not math.isclose(value, nearest, rel_tol=1e-12, abs_tol=1e-9 * step):
                problems.append(
                    f"{name}: {value:g} is not on its step {step:g} from {parameter.low:g}"
                )
    if problems:
        return problems
    numbers = {name: float(v) for name, v in point.items() if isinstance(v, int | float)}
    for key, violation in sweep.input_violations(numbers).items():
        if violation > 0:
            problems.append(f"breaks the input constraint {key} (by {violation:g})")
    return problems
