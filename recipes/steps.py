"""The step kinds of a recipe: one class each, knowing what it writes, reads and takes.

A step is a one-key mapping (`set`, `ramp`, `wait_until_stable`, `dwell`, `acquire`) whose key
says its kind. Each kind declares its channel uses (checked against an MDF by validation), the
values that may name a parameter, and a duration estimate for planning; how it runs is its
executor, registered in the engine by the class (decision 0057).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, ClassVar, Literal, Union

from pydantic import Discriminator, Field, Tag, field_validator, model_validator

from . import sweeps
from .base import ChannelName, Strict
from .located import PathKey
from .values import (
    Duration,
    LiteralValue,
    SetValue,
    StepValue,
    Value,
    duration_for,
    rate_per_second,
    value_for,
)

if TYPE_CHECKING:
    from .model import Recipe


@dataclass(frozen=True, slots=True)
class Given:
    """A value a step gives for a channel, in that channel's unit: a setpoint (written: inside
    the limits at every point), a rate (channel units per time) or a target (a number)."""

    role: Literal["setpoint", "rate", "target"]
    value: StepValue
    at: PathKey


@dataclass(frozen=True, slots=True)
class ChannelUse:
    """A channel a step writes, reads or acquires (reads into the data file), where it is named
    inside the step, and the values the step gives for it."""

    channel: str
    at: PathKey
    access: Literal["write", "read", "acquire"]
    given: tuple[Given, ...] = ()


@dataclass
class Estimate:
    """What planning knows while it walks the steps of each point in order."""

    recipe: Recipe
    unit: Callable[[str], str]
    last_written: dict[str, float]


class StepModel(Strict, ABC):
    """A step kind: a one-key mapping (`kind`) that knows what it writes and reads, how it is
    checked (its channel uses, checked against an MDF by validation), which of its values may
    name a parameter, and how long it takes. How it runs is its executor, registered in the
    engine by this class."""

    kind: ClassVar[str]

    @abstractmethod
    def uses(self) -> list[ChannelUse]: ...

    @abstractmethod
    def values(self) -> list[tuple[PathKey, StepValue]]:
        """Each value that may name a parameter, with its path inside the step."""

    @abstractmethod
    def estimate(self, point: sweeps.Point, plan: Estimate) -> float:
        """Seconds at this point, as a lower bound (thermal lag is unknown)."""


class SetStep(StepModel):
    kind: ClassVar[str] = "set"
    set: dict[ChannelName, SetValue] = Field(min_length=1)

    def uses(self) -> list[ChannelUse]:
        return [
            ChannelUse(name, ("set", name), "write", (Given("setpoint", value, ("set", name)),))
            for name, value in self.set.items()
        ]

    def values(self) -> list[tuple[PathKey, StepValue]]:
        return [(("set", name), value) for name, value in self.set.items()]

    def estimate(self, point: sweeps.Point, plan: Estimate) -> float:
        for name, value in self.set.items():
            resolved = value_for(value, point, plan.recipe, plan.unit(name))
            if isinstance(resolved, int | float) and not isinstance(resolved, bool):
                plan.last_written[name] = float(resolved)
        return 0.0


class RampSpec(Strict):
    channel: ChannelName
    to: Value
    rate: Annotated[Value, Field(description="channel units per minute, e.g. 5 or '5 degC/min'")]
    increment: float | None = Field(default=None, gt=0, description="largest single write step")

    @field_validator("rate")
    @classmethod
    def _positive_rate(cls, rate: StepValue) -> StepValue:
        if isinstance(rate, LiteralValue) and rate.value <= 0:
            raise ValueError("rate must be positive")
        return rate


class RampStep(StepModel):
    kind: ClassVar[str] = "ramp"
    ramp: RampSpec

    def uses(self) -> list[ChannelUse]:
        given = (
            Given("setpoint", self.ramp.to, ("ramp", "to")),
            Given("rate", self.ramp.rate, ("ramp", "rate")),
        )
        return [ChannelUse(self.ramp.channel, ("ramp", "channel"), "write", given)]

    def values(self) -> list[tuple[PathKey, StepValue]]:
        return [(("ramp", "to"), self.ramp.to), (("ramp", "rate"), self.ramp.rate)]

    def estimate(self, point: sweeps.Point, plan: Estimate) -> float:
        """|target - previous target| / rate; the first ramp of a channel starts from the
        safe state's value, or takes no time when there is none."""
        unit = plan.unit(self.ramp.channel)
        target = float(value_for(self.ramp.to, point, plan.recipe, unit))
        rate = rate_per_second(self.ramp.rate, point, plan.recipe, unit)
        start = plan.last_written.get(self.ramp.channel, target)
        plan.last_written[self.ramp.channel] = target
        return abs(target - start) / rate


class StableSpec(Strict):
    channel: ChannelName
    target: Value
    tolerance: float = Field(gt=0)
    hold: Duration
    timeout: Duration
    on_timeout: Literal["fail", "skip"] = "fail"


class StableStep(StepModel):
    kind: ClassVar[str] = "wait_until_stable"
    wait_until_stable: StableSpec

    def uses(self) -> list[ChannelUse]:
        spec = self.wait_until_stable
        where = ("wait_until_stable",)
        target = (Given("target", spec.target, (*where, "target")),)
        return [ChannelUse(spec.channel, (*where, "channel"), "read", target)]

    def values(self) -> list[tuple[PathKey, StepValue]]:
        spec = self.wait_until_stable
        keys = ("target", "hold", "timeout")
        return [(("wait_until_stable", key), getattr(spec, key)) for key in keys]

    def estimate(self, point: sweeps.Point, plan: Estimate) -> float:
        return duration_for(self.wait_until_stable.hold, point, plan.recipe)


class DwellStep(StepModel):
    kind: ClassVar[str] = "dwell"
    dwell: Duration

    def uses(self) -> list[ChannelUse]:
        return []

    def values(self) -> list[tuple[PathKey, StepValue]]:
        return [(("dwell",), self.dwell)]

    def estimate(self, point: sweeps.Point, plan: Estimate) -> float:
        return duration_for(self.dwell, point, plan.recipe)


class AcquireSpec(Strict):
    channels: list[ChannelName] = Field(min_length=1)
    rate: float = Field(gt=0, le=10_000, description="samples per second (simulated time)")
    duration: Duration | None = None
    count: int | None = Field(default=None, ge=1, le=10_000_000)

    @model_validator(mode="after")
    def _one_length(self) -> AcquireSpec:
        if (self.duration is None) == (self.count is None):
            raise ValueError("give exactly one of duration or count")
        if len(set(self.channels)) != len(self.channels):
            raise ValueError("a channel is listed twice")
        return self

    def samples(self, point: sweeps.Point, recipe: Recipe) -> int:
        """How many scans: `count`, or the duration at this point times the rate."""
        if self.duration is None:
            return self.count or 0
        return round(duration_for(self.duration, point, recipe) * self.rate)


class AcquireStep(StepModel):
    kind: ClassVar[str] = "acquire"
    acquire: AcquireSpec

    def uses(self) -> list[ChannelUse]:
        where = ("acquire", "channels")
        return [
            ChannelUse(name, (*where, position), "acquire")
            for position, name in enumerate(self.acquire.channels)
        ]

    def values(self) -> list[tuple[PathKey, StepValue]]:
        duration = self.acquire.duration
        return [] if duration is None else [(("acquire", "duration"), duration)]

    def estimate(self, point: sweeps.Point, plan: Estimate) -> float:
        spec = self.acquire
        if spec.duration is not None:
            return duration_for(spec.duration, point, plan.recipe)
        return (spec.count or 0) / spec.rate


# Every step kind, in the order the schema and messages list them. A new kind is one class
# above and one entry here (and one executor registered in the engine, checked at import).
STEP_MODELS: tuple[type[StepModel], ...] = (SetStep, RampStep, StableStep, DwellStep, AcquireStep)
STEP_KINDS = tuple(model.kind for model in STEP_MODELS)


def _step_kind(value: object) -> str | None:
    """A step is a one-key mapping; its key says its kind (so errors name one kind, not five)."""
    if isinstance(value, dict) and len(value) == 1:
        key = next(iter(value))
        return key if key in STEP_KINDS else None
    return value.kind if isinstance(value, StepModel) else None


if TYPE_CHECKING:
    Step = StepModel
else:
    Step = Annotated[
        Union[tuple(Annotated[model, Tag(model.kind)] for model in STEP_MODELS)],  # noqa: UP007
        Discriminator(
            _step_kind,
            custom_error_type="step_kind",
            custom_error_message=(
                f"a step is a mapping with exactly one of: {', '.join(STEP_KINDS)}"
            ),
        ),
    ]
