"""An adaptive sweep: the space, the objectives and the budget of a closed-loop campaign.

A grid or a Latin hypercube is fixed before the run; here the next point depends on what the
points so far measured. The recipe only declares the campaign: the optimiser that chooses
points lives in the engine (`daemons/engine/proposer.py`). Everything below is checked at load,
located, before any instrument is touched: empty or inverted ranges, a categorical without
choices, a constraint naming nothing known or that no point inside the bounds can satisfy, a
budget of zero.
"""

from __future__ import annotations

import itertools
import math
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    field_validator,
    model_validator,
)

from . import sweeps
from .units import UnitText
from .values import NAME, Duration, ParameterRef, StepValue, literal_seconds

CHANNEL = r"^[A-Za-z][A-Za-z0-9_-]*\.[A-Za-z_][A-Za-z0-9_]*$"
MAX_CAMPAIGN_POINTS = 10_000
MAX_BATCH = 16
# Validation checks setpoint limits at the corners of the space: a set step writes a parameter
# as it is (or converted linearly), so its extremes are at the corners. Past this many
# parameters the corners are too many to list; a campaign that size is not a lab's anyway.
MAX_PARAMETERS = 8
Reducer = Literal["mean", "last", "min", "max", "std"]


# Tags in brackets: pydantic puts the tag in an error's location, and `located` drops such
# parts, so an error reads `sweep.budget.max_points`, as the operator wrote it.
FIXED, ADAPTIVE = "sweep[fixed]", "sweep[adaptive]"


def sweep_kind(value: object) -> str:
    """`kind: adaptive` marks a campaign; any other sweep is fixed before the run (`mode`)."""
    if isinstance(value, dict):
        return ADAPTIVE if value.get("kind") == "adaptive" else FIXED
    return ADAPTIVE if isinstance(value, AdaptiveSweep) else FIXED


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SearchParameter(_Strict):
    """One dimension of the space: float (low, high, optional step, log), int, or categorical
    (numeric choices: a point is a set of numbers the steps write)."""

    type: Literal["float", "int", "categorical"] = "float"
    unit: UnitText = ""
    low: float | None = Field(default=None, description="float/int: the lowest value")
    high: float | None = Field(default=None, description="float/int: the highest value")
    step: float | None = Field(default=None, gt=0, description="values on low + k * step")
    log: bool = Field(default=False, description="search log-uniformly (low > 0)")
    choices: list[float] | None = Field(default=None, description="categorical: the values")

    @model_validator(mode="after")
    def _bounds(self) -> SearchParameter:
        if self.type == "categorical":
            if not self.choices:
                raise ValueError("a categorical parameter needs at least one of `choices`")
            if self.low is not None or self.high is not None or self.step is not None:
                raise ValueError("a categorical parameter takes `choices`, not low/high/step")
            return self
        if self.choices is not None:
            raise ValueError(f"`choices` belongs to categorical parameters, not {self.type}")
        if self.low is None or self.high is None:
            raise ValueError(f"a {self.type} parameter needs `low` and `high`")
        if not self.low < self.high:
            raise ValueError(f"empty or inverted range: low {self.low:g} >= high {self.high:g}")
        if self.log and self.low <= 0:
            raise ValueError("a log parameter needs low > 0")
        if self.log and self.step is not None:
            raise ValueError("give `log` or `step`, not both")
        if self.type == "int" and (self.low != int(self.low) or self.high != int(self.high)):
            raise ValueError("an int parameter needs whole-number low and high")
        if self.step is not None and self.step > self.high - self.low:
            raise ValueError(f"step {self.step:g} is larger than the range")
        return self

    def extremes(self) -> list[float]:
        """The values at the edges of this dimension (every choice of a categorical)."""
        if self.choices is not None:
            return sorted(set(self.choices))
        assert self.low is not None
        assert self.high is not None
        return [self.low, self.high]

    def from_unit(self, u: float) -> float:
        """The value at fraction `u` in [0, 1) of this dimension: how an initial design made in
        the unit cube lands in the space (log-uniform for log, snapped to the step grid)."""
        if self.choices is not None:
            return float(self.choices[min(int(u * len(self.choices)), len(self.choices) - 1)])
        assert self.low is not None
        assert self.high is not None
        low, high = self.low, self.high
        if self.log:
            value = math.exp(math.log(low) + u * (math.log(high) - math.log(low)))
        else:
            value = low + u * (high - low)
        step = self.step if self.step is not None else (1.0 if self.type == "int" else None)
        if step is not None:
            value = low + round((value - low) / step) * step
            value = min(value, low + math.floor((high - low) / step + 1e-9) * step)
        return float(value)


class MeanOfLast(_Strict):
    """The mean of the samples taken in the last `mean_of_last` of the point, e.g. `{mean_of_last:
    30 s}`: the settled end of a transient rather than the whole of it."""

    mean_of_last: Duration

    @field_validator("mean_of_last")
    @classmethod
    def _a_literal_duration(cls, value: StepValue) -> StepValue:
        seconds = literal_seconds(value)
        if seconds is None or not seconds > 0:
            raise ValueError("a positive duration such as `30 s` (not a parameter)")
        return value

    @property
    def seconds(self) -> float:
        seconds = literal_seconds(self.mean_of_last)
        assert seconds is not None  # checked at load
        return seconds

    def __str__(self) -> str:
        return f"mean of the last {self.seconds:g} s"


def _reduce_kind(value: object) -> str:
    return "[window]" if isinstance(value, dict | MeanOfLast) else "[named]"


# A named statistic, or a window: told apart before validation so an error names only the
# form written (the tags in brackets leave the located path, as the sweeps' do).
ReduceSpec = Annotated[
    Annotated[Reducer, Tag("[named]")] | Annotated[MeanOfLast, Tag("[window]")],
    Discriminator(_reduce_kind),
]


class Measure(_Strict):
    """A number from one point's samples of an acquired channel."""

    channel: Annotated[str, Field(pattern=CHANNEL)]
    reduce: ReduceSpec = Field(
        default="mean",
        description="mean, last, min, max, std of the point's samples, or {mean_of_last: 30 s}",
    )


class Objective(Measure):
    """What the campaign optimises: a reducer of an acquired channel's samples at each point."""

    direction: Literal["maximize", "minimize"]


class InputConstraint(_Strict):
    """A linear bound on the inputs, e.g. `{inputs: {temperature: 1, dwell: 2}, below: 1500}`:
    a proposal outside it is rejected before any hardware moves and told to the optimiser."""

    inputs: dict[Annotated[str, Field(pattern=NAME)], float] = Field(min_length=1)
    below: float | None = None
    above: float | None = None

    @model_validator(mode="after")
    def _a_bound(self) -> InputConstraint:
        if self.below is None and self.above is None:
            raise ValueError("give `below`, `above` or both")
        return self

    def violation(self, point: sweeps.Point) -> float:
        """How far `point` is outside (0 inside): what the optimiser is told."""
        total = sum(weight * point[name] for name, weight in self.inputs.items())
        return _violation(total, self.below, self.above)


class OutcomeConstraint(Measure):
    """A bound on a measured value: a point outside it is infeasible (and told so)."""

    below: float | None = None
    above: float | None = None

    @model_validator(mode="after")
    def _a_bound(self) -> OutcomeConstraint:
        if self.below is None and self.above is None:
            raise ValueError("give `below`, `above` or both")
        return self

    def violation(self, value: float) -> float:
        if math.isnan(value):
            return math.inf
        return _violation(value, self.below, self.above)


def _violation(value: float, below: float | None, above: float | None) -> float:
    over = max(0.0, value - below) if below is not None else 0.0
    under = max(0.0, above - value) if above is not None else 0.0
    return over + under


class StopCondition(_Strict):
    """End the campaign once an objective's best reaches a value."""

    objective: Annotated[str, Field(pattern=NAME)]
    above: float | None = None
    below: float | None = None

    @model_validator(mode="after")
    def _one_bound(self) -> StopCondition:
        if (self.above is None) == (self.below is None):
            raise ValueError("give exactly one of `above` or `below`")
        return self

    def reached(self, value: float) -> bool:
        if self.above is not None:
            return value >= self.above
        return self.below is not None and value <= self.below


class Budget(_Strict):
    """When the campaign ends: whichever limit comes first."""

    max_points: int = Field(ge=1, le=MAX_CAMPAIGN_POINTS, description="points measured")
    max_time: Duration | None = Field(
        default=None,
        description="process time spent measuring (engine clock: simulated time on a sim MDF)",
    )
    max_wall_time: Duration | None = Field(
        default=None,
        description="wall time since the run first started (pauses and downtime included)",
    )
    stop_when: StopCondition | None = Field(
        default=None, description="the best feasible value of an objective reaching a bound"
    )

    @field_validator("max_time", "max_wall_time")
    @classmethod
    def _literal_time(cls, value: StepValue | None) -> StepValue | None:
        if value is None:
            return None
        if isinstance(value, ParameterRef):
            raise ValueError("a time budget is a duration ('12 h'), not a parameter")
        if not literal_seconds(value):
            raise ValueError("a time budget must be longer than zero")
        return value

    def max_time_seconds(self) -> float | None:
        return None if self.max_time is None else literal_seconds(self.max_time)

    def max_wall_seconds(self) -> float | None:
        return None if self.max_wall_time is None else literal_seconds(self.max_wall_time)


class InitialDesign(_Strict):
    kind: Literal["latin_hypercube", "random"] = "latin_hypercube"
    samples: int = Field(default=4, ge=0, le=MAX_CAMPAIGN_POINTS)


class AdaptiveSweep(_Strict):
    """`sweep: {kind: adaptive, ...}`: a campaign the engine steers point by point."""

    kind: Literal["adaptive"]
    parameters: dict[Annotated[str, Field(pattern=NAME)], SearchParameter] = Field(
        min_length=1, max_length=MAX_PARAMETERS
    )
    objectives: dict[Annotated[str, Field(pattern=NAME)], Objective] = Field(
        min_length=1, max_length=4
    )
    constraints: list[InputConstraint | OutcomeConstraint] = Field(
        default=[],
        description="on the inputs (a proposal outside is never run) or on a measured value"
        " (a point outside is infeasible); the optimiser is told either way",
    )
    budget: Budget
    batch_size: int = Field(
        default=1, ge=1, le=MAX_BATCH, description="points proposed ahead of the measurements"
    )
    initial_design: InitialDesign = Field(
        default=InitialDesign(), description="the first points, before the optimiser's"
    )
    seed: int = Field(
        default=0, ge=0, le=2**31 - 1, description="same seed, same results: same proposals"
    )
    optimiser: Literal["tpe"] = Field(default="tpe", description="Optuna's TPE sampler")
    on_failure: Literal["tell_failed", "retry_once", "stop"] = Field(
        default="tell_failed", description="a failed point: told failed, run once more, or stop"
    )

    @model_validator(mode="after")
    def _consistent(self) -> AdaptiveSweep:
        if self.initial_design.samples > self.budget.max_points:
            raise ValueError(
                f"initial_design.samples ({self.initial_design.samples}) is more than "
                f"budget.max_points ({self.budget.max_points})"
            )
        stop = self.budget.stop_when
        if stop is not None and stop.objective not in self.objectives:
            raise ValueError(
                f"budget.stop_when names objective {stop.objective!r}; objectives are "
                f"{sorted(self.objectives)}"
            )
        return self

    def count(self) -> int:
        """The most points the campaign may measure."""
        return self.budget.max_points

    def generate(self) -> list[sweeps.Point]:
        """The corners of the space (every choice of a categorical), not the run's points:
        those are chosen as the campaign goes. Validation checks every setpoint at these
        extremes, so no point the optimiser may propose can leave a channel's limits."""
        names = list(self.parameters)
        axes = [self.parameters[name].extremes() for name in names]
        return [dict(zip(names, combo, strict=True)) for combo in itertools.product(*axes)]

    def problems(self, acquired: set[str]) -> list[tuple[tuple[str | int, ...], str]]:
        """An objective or outcome constraint on a channel the steps do not acquire; a
        constraint that names nothing known or that no point in the bounds satisfies."""
        found: list[tuple[tuple[str | int, ...], str]] = []
        measured = [
            (("sweep", "objectives", name, "channel"), objective.channel)
            for name, objective in self.objectives.items()
        ] + [
            (("sweep", "constraints", index, "channel"), constraint.channel)
            for index, constraint in self.outcome_constraints()
        ]
        for at, channel in measured:
            if channel not in acquired:
                found.append(
                    (at, f"{channel!r} is not acquired by any step; objectives need its samples")
                )
        for index, constraint in enumerate(self.constraints):
            where: tuple[str | int, ...] = ("sweep", "constraints", index)
            if not isinstance(constraint, InputConstraint):
                continue
            unknown = [name for name in constraint.inputs if name not in self.parameters]
            if unknown:
                found.append(((*where, "inputs", unknown[0]), f"unknown parameter {unknown[0]!r}"))
                continue
            low, high = self._linear_range(constraint)
            if constraint.below is not None and low > constraint.below:
                found.append(
                    (where, f"no point within the bounds satisfies it (the least is {low:g})")
                )
            elif constraint.above is not None and high < constraint.above:
                found.append(
                    (where, f"no point within the bounds satisfies it (the most is {high:g})")
                )
        return found

    def _linear_range(self, constraint: InputConstraint) -> tuple[float, float]:
        low = high = 0.0
        for name, weight in constraint.inputs.items():
            values = [weight * v for v in self.parameters[name].extremes()]
            low += min(values)
            high += max(values)
        return low, high

    def input_violations(self, point: sweeps.Point) -> dict[str, float]:
        return {
            f"inputs[{index}]": constraint.violation(point)
            for index, constraint in enumerate(self.constraints)
            if isinstance(constraint, InputConstraint)
        }

    def outcome_constraints(self) -> list[tuple[int, OutcomeConstraint]]:
        return [
            (index, constraint)
            for index, constraint in enumerate(self.constraints)
            if isinstance(constraint, OutcomeConstraint)
        ]

    def measures(self) -> list[Measure]:
        """Every number taken from a point's samples: the objectives, then the outcome
        constraints."""
        return [*self.objectives.values(), *(c for _, c in self.outcome_constraints())]

    def initial_points(self) -> list[sweeps.Point]:
        """The initial design, a pure function of the seed: reusing the sweep generators."""
        count = self.initial_design.samples
        names = list(self.parameters)
        unit_box = dict.fromkeys(names, (0.0, 1.0))
        if self.initial_design.kind == "latin_hypercube":
            cube = sweeps.latin_hypercube(unit_box, count, self.seed)
        else:
            cube = sweeps.uniform_random(unit_box, count, self.seed)
        return [{n: self.parameters[n].from_unit(u[n]) for n in names} for u in cube]
