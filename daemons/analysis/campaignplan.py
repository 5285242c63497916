"""`mdfd plan` of an adaptive recipe: its space, its budget and how long it can take at worst.

A campaign's points are chosen as it runs, so there is no point list to show. What an
operator needs before booking the furnace is the space the optimiser may explore, the budget
that bounds it and the worst case: every point as long as the slowest the space allows,
reached from the farthest other corner (a ramp from one end of a range to the other), the
first from the safe state.
"""

from __future__ import annotations

from dataclasses import dataclass

from mdfd.daemons.core.config import LoadedConfig
from mdfd.recipes.adaptive import AdaptiveSweep
from mdfd.recipes.loader import LoadedRecipe
from mdfd.recipes.steps import Estimate
from mdfd.recipes.values import duration_for

from .planning import unit_of


@dataclass(frozen=True)
class CampaignPlan:
    recipe: str
    version: str
    sweep: AdaptiveSweep
    first_point_seconds: float  # from the safe state, the longest way to a corner
    worst_point_seconds: float
    precondition_seconds: float
    time_scale: float

    @property
    def worst_case_seconds(self) -> float:
        budget = self.sweep.budget
        points = self.first_point_seconds + (budget.max_points - 1) * self.worst_point_seconds
        limit = self.sweep.budget.max_time_seconds()
        if limit is not None:
            # The campaign stops after the point that crosses max_time.
            points = min(points, limit + max(self.first_point_seconds, self.worst_point_seconds))
        return points + self.precondition_seconds

    def as_dict(self) -> dict[str, object]:
        return {
            "recipe": self.recipe,
            "version": self.version,
            "kind": "adaptive",
            "parameters": {
                name: p.model_dump(exclude_none=True) for name, p in self.sweep.parameters.items()
            },
            "objectives": {name: o.model_dump() for name, o in self.sweep.objectives.items()},
            "budget": self.sweep.budget.model_dump(exclude_none=True, mode="json"),
            "batch_size": self.sweep.batch_size,
            "initial_design": self.sweep.initial_design.model_dump(),
            "seed": self.sweep.seed,
            "optimiser": self.sweep.optimiser,
            "first_point_seconds": self.first_point_seconds,
            "worst_point_seconds": self.worst_point_seconds,
            "precondition_seconds": self.precondition_seconds,
            "worst_case_seconds": self.worst_case_seconds,
            "time_scale": self.time_scale,
            "worst_case_wall_seconds": self.worst_case_seconds / self.time_scale,
        }


def make_campaign_plan(
    recipe: LoadedRecipe, config: LoadedConfig, sweep: AdaptiveSweep
) -> CampaignPlan:
    model = recipe.model
    corners = model.points()
    safe = {
        k: float(v)
        for k, v in config.model.safety.safe_state.items()
        if isinstance(v, int | float) and not isinstance(v, bool)
    }
    first = worst = 0.0
    for corner in corners:
        estimate = Estimate(model, lambda name: unit_of(config, name), dict(safe))
        first = max(first, sum(step.estimate(corner, estimate) for step in model.steps))
        for start in corners:
            estimate = Estimate(model, lambda name: unit_of(config, name), {})
            for step in model.steps:  # the first pass leaves `start`'s setpoints written
                step.estimate(start, estimate)
            worst = max(worst, sum(step.estimate(corner, estimate) for step in model.steps))
    waits = sum(duration_for(p.timeout, {}, model) for p in model.preconditions)
    return CampaignPlan(
        model.recipe.name,
        model.recipe.version,
        sweep,
        first,
        worst,
        waits,
        config.model.time_scale,
    )
