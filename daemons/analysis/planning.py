"""`mdfd plan`: the points in execution order and an honest estimate of how long they take.

The estimate follows the steps, each kind giving its own (`StepModel.estimate`): a ramp takes
|target - previous target| / rate, a wait-until-stable at least its hold time, a dwell its
duration, an acquisition its duration (or count / rate). It cannot know thermal lag, so it is a
lower bound; the plan says so.
The recipe's preconditions may hold at once or only after their timeouts: their sum is
reported apart, as the worst case added before the first point.
"""

from __future__ import annotations

from dataclasses import dataclass

from mdfd.daemons.core.config import LoadedConfig
from mdfd.recipes.loader import LoadedRecipe
from mdfd.recipes.steps import Estimate
from mdfd.recipes.sweeps import Point
from mdfd.recipes.values import duration_for


@dataclass(frozen=True)
class PlannedPoint:
    index: int
    parameters: Point
    estimated_seconds: float


@dataclass(frozen=True)
class Plan:
    recipe: str
    version: str
    points: list[PlannedPoint]
    time_scale: float
    precondition_seconds: float = 0.0

    @property
    def estimated_seconds(self) -> float:
        return sum(p.estimated_seconds for p in self.points)

    @property
    def worst_case_seconds(self) -> float:
        return self.estimated_seconds + self.precondition_seconds

    def as_dict(self) -> dict[str, object]:
        return {
            "recipe": self.recipe,
            "version": self.version,
            "count": len(self.points),
            "estimated_seconds": self.estimated_seconds,
            "time_scale": self.time_scale,
            "estimated_wall_seconds": self.estimated_seconds / self.time_scale,
            "precondition_seconds": self.precondition_seconds,
            "worst_case_seconds": self.worst_case_seconds,
            "points": [
                {
                    "index": p.index,
                    "parameters": p.parameters,
                    "estimated_seconds": p.estimated_seconds,
                }
                for p in self.points
            ],
        }


def make_plan(recipe: LoadedRecipe, config: LoadedConfig) -> Plan:
    model = recipe.model
    last_written: dict[str, float] = {
        k: float(v)
        for k, v in config.model.safety.safe_state.items()
        if isinstance(v, int | float) and not isinstance(v, bool)
    }
    estimate = Estimate(model, lambda name: unit_of(config, name), last_written)
    planned = []
    for index, point in enumerate(model.points()):
        total = 0.0
        for step in model.steps:
            total += step.estimate(point, estimate)
        planned.append(PlannedPoint(index, point, total))
    waits = sum(duration_for(p.timeout, {}, model) for p in model.preconditions)
    return Plan(model.recipe.name, model.recipe.version, planned, config.model.time_scale, waits)


def unit_of(config: LoadedConfig, qualified: str) -> str:
    instrument, _, channel = qualified.partition(".")
    return config.model.instruments[instrument].channels[channel].unit


def format_duration(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s"
