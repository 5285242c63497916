"""The per-point steps: set, ramp, wait-until-stable, dwell, acquire.

Each step kind's model (recipes.model) has exactly one executor here, registered by its class
with `@executes`; a kind without one fails this module's import, and a step of an unregistered
class is an `UnknownStep` when run, never a silent no-op. Each step reads the clock the recipe
is written in (EngineClock), so the same code runs a week on real hardware and a minute
against scaled simulators.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import structlog

from mdfd.daemons.core.clock import EngineClock
from mdfd.daemons.core.config import MdfConfig
from mdfd.drivers import ChannelConfig, InstrumentError, Value
from mdfd.recipes.model import ErrorPolicy, Recipe
from mdfd.recipes.steps import (
    STEP_MODELS,
    AcquireStep,
    DwellStep,
    RampStep,
    SetStep,
    StableStep,
    Step,
    StepModel,
)
from mdfd.recipes.sweeps import Point
from mdfd.recipes.values import duration_for, rate_per_second, value_for

from .acquisition import Acquisition
from .instruments import Instruments, as_number, split
from .retrying import RetryPolicy, with_retries

T = TypeVar("T")
S = TypeVar("S", bound=StepModel)

Executor = Callable[[Any, "StepContext"], Awaitable[None]]
Runs = Callable[[S, "StepContext"], Awaitable[None]]
EXECUTORS: dict[type[StepModel], Executor] = {}

MIN_POLL_WALL_SECONDS = 0.05
MIN_RAMP_WALL_SECONDS = 0.05


class UnknownStep(TypeError):
    """A step whose class has no executor: a programming error, never skipped quietly."""

    def __init__(self, step: object) -> None:
        kind = getattr(step, "kind", type(step).__name__)
        super().__init__(f"no executor for step kind {kind!r} ({type(step).__qualname__})")


class StabilityTimeout(Exception):
    def __init__(self, channel: str, target: float, last: float, skip: bool) -> None:
        self.skip = skip
        super().__init__(f"{channel} did not settle at {target:g} (last {last:g}) in time")


def _bound_logger() -> structlog.typing.FilteringBoundLogger:
    logger: structlog.typing.FilteringBoundLogger = structlog.get_logger().bind()
    return logger


@dataclass
class StepContext:
    recipe: Recipe
    config: MdfConfig
    instruments: Instruments
    clock: EngineClock
    point_index: int
    point: Point
    acquisition: Acquisition
    check_interlocks: Callable[[], None]
    log: structlog.typing.FilteringBoundLogger = field(default_factory=_bound_logger)
    """A bound logger: a lazy structlog proxy (`get_logger()`) builds a new logger on every
    call, even a filtered-out debug. The engine passes the run's, bound once per run."""

    def unit(self, qualified: str) -> str:
        instrument, channel = split(qualified)
        spec: ChannelConfig = self.config.instruments[instrument].channels[channel]
        return spec.unit

    def retry_policy(self) -> RetryPolicy:
        policy: ErrorPolicy = self.recipe.on_error
        return RetryPolicy(policy.retries, duration_for(policy.backoff, self.point, self.recipe))

    async def with_retries(self, what: str, operation: Callable[[], Awaitable[T]]) -> T:
        """The recipe's error policy around one instrument operation (`retrying`)."""
        try:
            return await operation()
        except InstrumentError as exc:
            error = exc
        return await self.retry(what, operation, error)

    async def retry(
        self, what: str, operation: Callable[[], Awaitable[T]], error: InstrumentError
    ) -> T:
        """The rest of `with_retries` once the first attempt has failed with `error`.

        Split out so a loop that runs an operation many times (an acquisition's scans) pays
        for the policy only when something fails.
        """
        return await with_retries(
            self.retry_policy(),
            what,
            operation,
            sleep=self.clock.sleep_wall,
            log=self.log,
            failed=error,
        )


def executes(kind: type[S]) -> Callable[[Runs[S]], Runs[S]]:
    """Register the executor of one step kind (exactly one per kind)."""

    def register(executor: Runs[S]) -> Runs[S]:
        if kind in EXECUTORS:
            raise TypeError(f"step kind {kind.kind!r} has two executors")
        EXECUTORS[kind] = executor
        return executor

    return register


def check_executors(
    models: tuple[type[StepModel], ...], executors: dict[type[StepModel], Executor]
) -> None:
    """Every step kind a recipe can hold can run: checked when the engine is imported."""
    missing = [model.kind for model in models if model not in executors]
    if missing:
        raise TypeError(f"step kinds without an executor: {', '.join(missing)}")


async def run_step(step: Step, ctx: StepContext) -> None:
    executor = EXECUTORS.get(type(step))
    if executor is None:
        raise UnknownStep(step)
    await executor(step, ctx)


async def write(ctx: StepContext, channel: str, value: Value) -> None:
    await ctx.with_retries(f"write {channel}", lambda: ctx.instruments.write(channel, value))


async def read_value(ctx: StepContext, channel: str) -> float:
    readings = await ctx.with_retries(f"read {channel}", ctx.instruments.reader([channel]).read)
    ctx.check_interlocks()
    return as_number(readings[0].value)


@executes(SetStep)
async def _set(step: SetStep, ctx: StepContext) -> None:
    for channel, raw in step.set.items():
        value = value_for(raw, ctx.point, ctx.recipe, ctx.unit(channel))
        await write(ctx, channel, value)
        ctx.log.debug("set", channel=channel, value=value)


@executes(RampStep)
async def _ramp(step: RampStep, ctx: StepContext) -> None:
    """Walk the channel from its current value to the target at the rate, drift-free.

    With `increment`, no single write moves further than it (the instrument's accepted step);
    without, the setpoint advances once a process second, or as often as the wall allows.
    """
    spec = step.ramp
    unit = ctx.unit(spec.channel)
    target = float(value_for(spec.to, ctx.point, ctx.recipe, unit))
    rate = rate_per_second(spec.rate, ctx.point, ctx.recipe, unit)
    start = await read_value(ctx, spec.channel)
    distance = target - start
    duration = abs(distance) / rate
    if spec.increment:
        period = spec.increment / rate
    else:
        period = max(1.0, ctx.clock.scale * MIN_RAMP_WALL_SECONDS)
    ctx.log.info(
        "ramp",
        channel=spec.channel,
        start=start,
        target=target,
        rate_per_min=rate * 60,
        seconds=round(duration, 1),
    )
    began = ctx.clock.now()
    while (elapsed := ctx.clock.now() - began) < duration:
        next_tick = began + (math.floor(elapsed / period) + 1) * period
        await ctx.clock.sleep_until(min(next_tick, began + duration))
        ctx.check_interlocks()
        fraction = min((ctx.clock.now() - began) / duration, 1.0)
        await write(ctx, spec.channel, start + distance * fraction)
    await write(ctx, spec.channel, target)


@executes(StableStep)
async def _wait_until_stable(step: StableStep, ctx: StepContext) -> None:
    spec = step.wait_until_stable
    target = float(value_for(spec.target, ctx.point, ctx.recipe, ctx.unit(spec.channel)))
    hold = duration_for(spec.hold, ctx.point, ctx.recipe)
    timeout = duration_for(spec.timeout, ctx.point, ctx.recipe)
    poll = max(min(hold / 10.0, 10.0), ctx.clock.scale * MIN_POLL_WALL_SECONDS)
    began = ctx.clock.now()
    inside_since: float | None = None
    value = await read_value(ctx, spec.channel)
    while True:
        now = ctx.clock.now()
        if abs(value - target) <= spec.tolerance:
            inside_since = now if inside_since is None else inside_since
            if now - inside_since >= hold:
                ctx.log.info(
                    "stable",
                    channel=spec.channel,
                    target=target,
                    value=value,
                    waited=round(now - began, 1),
                )
                return
        else:
            inside_since = None
        if now - began > timeout:
            raise StabilityTimeout(spec.channel, target, value, spec.on_timeout == "skip")
        await ctx.clock.sleep(poll)
        value = await read_value(ctx, spec.channel)


@executes(DwellStep)
async def _dwell(step: DwellStep, ctx: StepContext) -> None:
    seconds = duration_for(step.dwell, ctx.point, ctx.recipe)
    ctx.log.info("dwell", seconds=seconds)
    await asyncio.sleep(ctx.clock.wall_seconds(seconds))


@executes(AcquireStep)
async def _acquire(step: AcquireStep, ctx: StepContext) -> None:
    await ctx.acquisition.run(step.acquire, ctx)


check_executors(STEP_MODELS, EXECUTORS)
