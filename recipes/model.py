"""The recipe: data, validated before any instrument is touched.

Parameters are referenced by name, never by code: a step value is a number, a quantity string
("2 h", "5 degC/min") or the name of a sweep parameter, parsed at load into `values.StepValue`.
Nothing is evaluated. Each step kind is one class that knows what it writes, reads and takes.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import (
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    field_validator,
    model_validator,
)

from . import sweeps
from .adaptive import ADAPTIVE, FIXED, AdaptiveSweep, sweep_kind
from .base import ChannelName, Strict
from .steps import Step
from .units import UnitText
from .values import (
    MAX_TEXT_CHARS,
    NAME,
    BoundValue,
    Duration,
    Number,
    ParameterRef,
    ShortText,
    StepValue,
    literal_seconds,
)

# The recipe's own ceiling, whatever the MDF allows; each MDF's `limits.max_points` (default
# 100,000) is checked in validation, from the sweep's definition, before any point is generated.
MAX_POINTS = 1_000_000
# Names and versions end up in file names, HDF5 attributes and log lines; texts that are parsed
# (quantities, units) are short by nature and cost time in proportion to their length.
MAX_NAME_CHARS = 64


class Category(StrEnum):
    RAW_MATERIALS = "raw_materials"
    COMPOSITION = "composition"
    PROCESS = "process"
    PROPERTIES = "properties"


class Metadata(Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", max_length=MAX_NAME_CHARS)
    version: str = Field(min_length=1, max_length=MAX_NAME_CHARS)
    description: str = ""
    domain: Literal["chemistry", "metal", "ceramic", "textile"] | None = None
    author: str = ""


class MaterialItem(Strict):
    code: ShortText
    value: Number | ShortText
    unit: UnitText = ""


class Materials(Strict):
    raw_materials: list[MaterialItem] = Field(default_factory=list)
    composition: list[MaterialItem] = Field(default_factory=list)


class Linspace(Strict):
    start: float
    stop: float
    num: int = Field(ge=1, le=MAX_POINTS)


class Logspace(Strict):
    start: float = Field(gt=0)
    stop: float = Field(gt=0)
    num: int = Field(ge=1, le=MAX_POINTS)


class Range(Strict):
    start: float
    stop: float
    step: float

    @model_validator(mode="after")
    def _direction(self) -> Range:
        if self.step == 0 or (self.stop - self.start) / self.step < 0:
            raise ValueError("step must be non-zero and point from start towards stop")
        if (self.stop - self.start) / self.step > MAX_POINTS:
            raise ValueError(f"range gives more than {MAX_POINTS} values")
        return self


class Parameter(Strict):
    """One swept parameter: at most one generator (for Latin hypercube: `between`; in list
    mode none, since the values come from the sweep's `points`)."""

    unit: UnitText = ""
    values: list[float] | None = Field(default=None, min_length=1, max_length=MAX_POINTS)
    linspace: Linspace | None = None
    logspace: Logspace | None = None
    range: Range | None = None
    between: tuple[float, float] | None = None

    @model_validator(mode="after")
    def _one_generator(self) -> Parameter:
        given = self.generators()
        if len(given) > 1:
            raise ValueError(
                "give only one of values, linspace, logspace, range, between"
                f" (got {', '.join(given)})"
            )
        if self.between is not None and self.between[0] >= self.between[1]:
            raise ValueError("between needs [low, high] with low < high")
        return self

    def generators(self) -> list[str]:
        keys = ("values", "linspace", "logspace", "range", "between")
        return [k for k in keys if getattr(self, k) is not None]

    def length(self) -> int:
        """How many values `axis()` gives, without generating them."""
        if self.values is not None:
            return len(self.values)
        if self.linspace is not None:
            return self.linspace.num
        if self.logspace is not None:
            return self.logspace.num
        if self.range is not None:
            return sweeps.arange_count(self.range.start, self.range.stop, self.range.step)
        return 0

    def axis(self) -> list[float]:
        if self.values is not None:
            return list(self.values)
        if self.linspace is not None:
            return sweeps.linspace(self.linspace.start, self.linspace.stop, self.linspace.num)
        if self.logspace is not None:
            return sweeps.logspace(self.logspace.start, self.logspace.stop, self.logspace.num)
        if self.range is not None:
            return sweeps.arange(self.range.start, self.range.stop, self.range.step)
        raise ValueError("a `between` parameter has no axis; it belongs to a Latin hypercube")


class SweepMode(StrEnum):
    GRID = "grid"
    ZIP = "zip"
    LIST = "list"
    LHS = "latin_hypercube"


class Sweep(Strict):
    mode: SweepMode = SweepMode.GRID
    order: Literal["natural", "serpentine"] = "natural"
    parameters: dict[Annotated[str, Field(pattern=NAME)], Parameter] = Field(min_length=1)
    points: list[dict[str, float]] | None = None
    samples: int | None = Field(default=None, ge=1, le=MAX_POINTS)
    seed: int | None = None

    @model_validator(mode="after")
    def _consistent(self) -> Sweep:
        lhs = self.mode is SweepMode.LHS
        for name, parameter in self.parameters.items():
            given = parameter.generators()
            if self.mode is SweepMode.LIST:
                if given:
                    raise ValueError(
                        f"parameter {name!r}: in list mode the values come from `points`, "
                        f"drop its {given[0]}"
                    )
            elif lhs != (given == ["between"]) or not given:
                need = "`between`" if lhs else "one of values/linspace/logspace/range"
                raise ValueError(f"parameter {name!r}: mode {self.mode.value} needs {need}")
        if lhs and (self.samples is None or self.seed is None):
            raise ValueError("latin_hypercube needs `samples` and `seed`")
        if self.mode is SweepMode.LIST:
            if not self.points:
                raise ValueError("list mode needs `points`")
            for index, point in enumerate(self.points):
                if set(point) != set(self.parameters):
                    raise ValueError(
                        f"points[{index}] sets {sorted(point)}, parameters are "
                        f"{sorted(self.parameters)}"
                    )
        elif self.points is not None:
            raise ValueError("`points` belongs to list mode")
        if self.mode is SweepMode.ZIP:
            lengths = {name: p.length() for name, p in self.parameters.items()}
            if len(set(lengths.values())) > 1:
                shown = ", ".join(f"{name} has {length}" for name, length in lengths.items())
                raise ValueError(f"zip needs parameters with equally many values ({shown})")
        if self.order == "serpentine" and self.mode is not SweepMode.GRID:
            raise ValueError("serpentine order applies to grid sweeps")
        count = self.count()
        if count == 0:
            raise ValueError("the sweep is empty")
        if count > MAX_POINTS:
            raise ValueError(f"the sweep has {count} points; at most {MAX_POINTS} are allowed")
        return self

    def count(self) -> int:
        """The number of points, from the definition alone: cheap for any sweep."""
        if self.mode is SweepMode.LIST:
            return len(self.points or [])
        if self.mode is SweepMode.LHS:
            return self.samples or 0
        lengths = [p.length() for p in self.parameters.values()]
        if self.mode is SweepMode.ZIP:
            return lengths[0] if len(set(lengths)) == 1 else 0
        total = 1
        for length in lengths:
            total *= length
        return total

    def generate(self) -> list[sweeps.Point]:
        return list(self.each())

    def each(self) -> Iterator[sweeps.Point]:
        """The points in order, made one at a time as a run reaches them (`generate` is the
        list): a sweep's points are never all held by the engine."""
        if self.mode is SweepMode.LIST:
            return ({k: float(v) for k, v in p.items()} for p in self.points or [])
        if self.mode is SweepMode.LHS:
            bounds = {n: p.between for n, p in self.parameters.items() if p.between is not None}
            return iter(sweeps.latin_hypercube(bounds, self.samples or 0, self.seed or 0))
        axes = {n: p.axis() for n, p in self.parameters.items()}
        if self.mode is SweepMode.ZIP:
            return sweeps.zipped(axes)
        return sweeps.grid(axes, serpentine=self.order == "serpentine")


class RecordItem(Strict):
    """One vocabulary item of the record: from a parameter, or a statistic of a channel."""

    code: ShortText
    source: str = Field(alias="from", max_length=MAX_TEXT_CHARS)
    stat: Literal["mean", "std", "min", "max", "last"] = "mean"

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class RecordMapping(Strict):
    process: list[RecordItem] = Field(default_factory=list)
    properties: list[RecordItem] = Field(default_factory=list)


class ErrorPolicy(Strict):
    """Retries of a failing instrument operation, and what a point that still fails does.

    `backoff` and `wait_for_instruments` are wall time on every clock: faults and reconnects
    take real seconds whatever a simulation's time scale.
    """

    retries: int = Field(default=2, ge=0, le=100)
    backoff: Duration = Field(default=5, validate_default=True)  # parsed like a written one
    then: Literal["fail_point", "stop_run"] = "stop_run"
    wait_for_instruments: Duration = Field(default=60, validate_default=True)


class Precondition(Strict):
    """Wait, before the first point, until a channel is below and/or above a bound.

    Back-to-back runs: a 200 degC anneal queued after a 1300 degC sinter must not start while
    the furnace is still hot. Checked before any point, so bounds and the timeout are literals
    (a number in the channel's unit or a quantity like '250 degC'), never sweep parameters.
    """

    channel: ChannelName
    below: BoundValue | None = None
    above: BoundValue | None = None
    timeout: Duration

    @field_validator("timeout")
    @classmethod
    def _literal_timeout(cls, value: StepValue) -> StepValue:
        if isinstance(value, ParameterRef):
            raise ValueError("a precondition's timeout is a duration ('2 h'), not a parameter")
        if literal_seconds(value) == 0:
            raise ValueError("a precondition's timeout must be longer than zero")
        return value

    @model_validator(mode="after")
    def _a_bound(self) -> Precondition:
        if self.below is None and self.above is None:
            raise ValueError("give `below`, `above` or both")
        return self

    def describe(self) -> str:
        bounds = [
            f"{word} {value}" for word, value in (("below", self.below), ("above", self.above))
        ]
        return f"{self.channel} " + " and ".join(b for b in bounds if "None" not in b)


AnySweep = Annotated[
    Annotated[Sweep, Tag(FIXED)] | Annotated[AdaptiveSweep, Tag(ADAPTIVE)],
    Discriminator(sweep_kind),
]


class Recipe(Strict):
    recipe: Metadata
    materials: Materials = Materials()
    preconditions: list[Precondition] = Field(default_factory=list)
    sweep: AnySweep
    steps: list[Step] = Field(min_length=1)
    record: RecordMapping = RecordMapping()
    on_error: ErrorPolicy = ErrorPolicy()

    def points(self) -> list[sweeps.Point]:
        """A fixed sweep's points in order; an adaptive sweep's corners (see its `generate`)."""
        return self.sweep.generate()

    @property
    def adaptive(self) -> AdaptiveSweep | None:
        return self.sweep if isinstance(self.sweep, AdaptiveSweep) else None

    def acquired_channels(self) -> list[str]:
        return list(self._acquired_where())

    def reference_problems(self) -> list[tuple[tuple[str | int, ...], str]]:
        """Every parameter reference names a sweep parameter; every recorded channel is acquired."""
        names = set(self.sweep.parameters)
        problems: list[tuple[tuple[str | int, ...], str]] = []
        for index, step in enumerate(self.steps):
            for field, value in step.values():
                if isinstance(value, ParameterRef) and value.name not in names:
                    problems.append((("steps", index, *field), f"unknown parameter {value.name!r}"))
        acquired = self._acquired_where()
        if isinstance(self.sweep, AdaptiveSweep):
            problems.extend(self.sweep.problems(set(acquired)))
        for section in ("process", "properties"):
            for index, item in enumerate(getattr(self.record, section)):
                if item.source in names or item.source in acquired:
                    continue
                near = difflib.get_close_matches(item.source, list(acquired), n=1, cutoff=0.8)
                if near:
                    # A near miss: the typo is most often in the acquire list, which the record
                    # was written against; point there, naming the record that did not match.
                    problems.append(
                        (
                            acquired[near[0]],
                            f"acquired channel {near[0]!r} is not the {item.source!r} that "
                            f"record.{section}[{index}].from uses: one of them is misspelt",
                        )
                    )
                    continue
                problems.append(
                    (
                        ("record", section, index, "from"),
                        f"{item.source!r} is neither a sweep parameter nor an acquired channel",
                    )
                )
        return problems

    def _acquired_where(self) -> dict[str, tuple[str | int, ...]]:
        """Each acquired channel with where it is first named (steps[i].acquire.channels[j])."""
        where: dict[str, tuple[str | int, ...]] = {}
        for index, step in enumerate(self.steps):
            for use in step.uses():
                if use.access == "acquire":
                    where.setdefault(use.channel, ("steps", index, *use.at))
        return where
