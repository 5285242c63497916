"""A recipe's preconditions: before the first point, wait until each holds, or fail the run.

Queued runs follow each other at once; the furnace of a 1300 degC sinter is still hot when a
200 degC anneal starts. A precondition (`furnace.temperature below 250 degC, timeout 2 h`)
makes the run wait, polling the channel, and fail without writing anything if it does not
hold in time. The wait runs inside the run's supervision, so interlocks, abort and stop apply.
"""

from __future__ import annotations

import structlog

from mdfd.daemons.core.clock import EngineClock
from mdfd.daemons.core.config import MdfConfig
from mdfd.drivers import InstrumentError
from mdfd.recipes.model import Precondition, Recipe
from mdfd.recipes.values import StepValue, duration_for, value_for

from .events import EventBus, RunState
from .instruments import Instruments, as_number, split

MIN_POLL_WALL_SECONDS = 0.05
MAX_POLL_SECONDS = 10.0  # simulated seconds between reads: a temperature changes slowly


class PreconditionTimeout(Exception):
    """A precondition did not hold within its timeout; no point was started."""


def _bounds(
    precondition: Precondition, recipe: Recipe, config: MdfConfig
) -> tuple[float | None, float | None]:
    instrument, channel = split(precondition.channel)
    unit = config.instruments[instrument].channels[channel].unit

    def resolve(value: StepValue | None) -> float | None:
        return None if value is None else float(value_for(value, {}, recipe, unit))

    return resolve(precondition.below), resolve(precondition.above)


def holds(value: float, below: float | None, above: float | None) -> bool:
    return (below is None or value < below) and (above is None or value > above)


async def await_preconditions(
    recipe: Recipe,
    config: MdfConfig,
    instruments: Instruments,
    clock: EngineClock,
    events: EventBus,
    run_id: str,
) -> None:
    """Return once every precondition holds (in order); raise PreconditionTimeout otherwise."""
    log = structlog.get_logger()
    for precondition in recipe.preconditions:
        below, above = _bounds(precondition, recipe, config)
        timeout = duration_for(precondition.timeout, {}, recipe)
        poll = max(min(timeout / 100.0, MAX_POLL_SECONDS), clock.scale * MIN_POLL_WALL_SECONDS)
        reader = instruments.reader([precondition.channel])
        began = clock.now()
        waiting_said = False
        last: float | None = None
        while True:
            try:
                last = as_number((await reader.read())[0].value)
            except InstrumentError as exc:
                # Not a reason to give up before the timeout: the next poll may read.
                log.warning("precondition unreadable", channel=precondition.channel, error=str(exc))
            if last is not None and holds(last, below, above):
                if waiting_said:
                    log.info("precondition holds", condition=precondition.describe(), value=last)
                break
            if clock.now() - began >= timeout:
                shown = "unreadable" if last is None else f"last {last:g}"
                raise PreconditionTimeout(
                    f"precondition {precondition.describe()} did not hold within "
                    f"{precondition.timeout} ({shown}); no point was started"
                )
            if not waiting_said:
                waiting_said = True
                state = f"waiting until {precondition.describe()}"
                log.warning(
                    "run waits for a precondition",
                    condition=precondition.describe(),
                    value=last,
                    timeout_s=timeout,
                )
                events.publish(RunState(run=run_id, state=state))
            await clock.sleep(poll)
