"""What the engine does when instruments misbehave: wait for them to answer again before the
next point, and drive the safe state, retrying writes that fail, when a run stops.

Both wait in wall time: faults and reconnects take real seconds, whatever a simulation's time
scale (decision 0022). Both are tenacity loops; neither repeats a failed step's operation,
which is the recipe's `on_error` alone (`retrying`, decision 0063).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from typing import Any

import structlog
from tenacity import AsyncRetrying, RetryCallState, RetryError, retry_if_exception_type

from mdfd.daemons.core.config import LoadedConfig
from mdfd.drivers import InstrumentError, Value
from mdfd.recipes.loader import LoadedRecipe
from mdfd.recipes.values import duration_for

from .instruments import Instruments

SAFE_STATE_TIMEOUT = 30.0
PROBE_FIRST_DELAY = 0.1  # wall s between probes of instruments after a failed point, doubling
PROBE_MAX_DELAY = 2.0


async def await_instruments(
    instruments: Instruments,
    config: LoadedConfig,
    recipe: LoadedRecipe,
    point: dict[str, float],
    log: Any,
) -> None:
    """After a point failed on an instrument error, start the next one only once every
    instrument answers again — or after `on_error.wait_for_instruments` (wall time), when
    the point goes ahead and its own retries decide.

    Without this a short fault fails the whole sweep: the next points start while the
    driver is still reconnecting and burn their retries in the meantime.
    """
    loop = asyncio.get_running_loop()
    limit = duration_for(recipe.model.on_error.wait_for_instruments, point, recipe.model)
    deadline = loop.time() + limit
    probe = probe_channels(instruments, config, recipe)
    waited = False

    async def answer() -> None:
        async with asyncio.timeout(max(deadline - loop.time(), PROBE_FIRST_DELAY)):
            await instruments.read(probe)

    def waiting(state: RetryCallState) -> None:
        nonlocal waited
        if not waited:
            log.warning("waiting for instruments before the next point", error=_error(state))
        waited = True

    retrying = AsyncRetrying(
        stop=lambda _: loop.time() >= deadline,
        wait=lambda state: min(_probe_delay(state), max(deadline - loop.time(), 0.0)),
        retry=retry_if_exception_type((InstrumentError, TimeoutError)),
        before_sleep=waiting,
        reraise=True,
    )
    try:
        await retrying(answer)
    except (InstrumentError, TimeoutError) as exc:
        log.warning(
            "instruments still not answering; the next point goes ahead",
            waited_s=limit,
            error=str(exc),
        )
        return
    if waited:
        log.info("instruments answer again")


def _probe_delay(state: RetryCallState) -> float:
    """The pause after the n-th failed probe or round: 0.1 s doubling up to 2 s."""
    return float(min(PROBE_FIRST_DELAY * 2 ** (state.attempt_number - 1), PROBE_MAX_DELAY))


def _error(state: RetryCallState) -> str:
    error = state.outcome.exception() if state.outcome is not None else None
    return str(error) or type(error).__name__


def probe_channels(
    instruments: Instruments, config: LoadedConfig, recipe: LoadedRecipe
) -> list[str]:
    """One channel per instrument in use, preferably one the recipe reads anyway."""
    safety = config.model.safety
    read = [
        *recipe.model.acquired_channels(),
        *(interlock.channel for interlock in safety.interlocks),
        *safety.safe_state,
    ]
    probe = []
    for name in instruments.drivers:
        ours = [c for c in read if c.partition(".")[0] == name]
        channels = config.model.instruments[name].channels
        probe.append(ours[0] if ours else f"{name}.{next(iter(channels))}")
    return probe


async def apply_safe_state(instruments: Instruments, safe_state: Mapping[str, Value]) -> None:
    """Every channel, and again for those that failed, for up to SAFE_STATE_TIMEOUT.

    One failing write must not skip the others; and a fault that stopped the run (a busy
    or reconnecting instrument) is often over seconds later, so a failed write is retried
    rather than leaving the instrument where the run left it.
    """
    log = structlog.get_logger()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + SAFE_STATE_TIMEOUT
    pending = {
        channel: value
        for channel, value in safe_state.items()
        if channel.partition(".")[0] in instruments.drivers
    }

    async def write_pending() -> None:
        for channel, value in list(pending.items()):
            try:
                async with asyncio.timeout(max(deadline - loop.time(), PROBE_FIRST_DELAY)):
                    await instruments.write(channel, value)
            except (InstrumentError, OSError, TimeoutError) as exc:
                log.error("safe state write failed", channel=channel, value=value, error=str(exc))
                continue
            del pending[channel]
            log.info("safe state applied", channel=channel, value=value)
        if pending:
            raise _Pending

    retrying = AsyncRetrying(
        # no round that would start past the deadline
        stop=lambda state: loop.time() + _probe_delay(state) > deadline,
        wait=_probe_delay,
        retry=retry_if_exception_type(_Pending),
    )
    with contextlib.suppress(RetryError):
        await retrying(write_pending)
    if pending:
        log.critical("safe state NOT applied", channels=sorted(pending))


class _Pending(Exception):
    """A round of safe-state writes left some channels unwritten."""
