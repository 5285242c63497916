"""What the engine does when instruments misbehave: wait for them to answer again before the
next point, and drive the safe state, retrying writes that fail, when a run stops.

Both wait in wall time: faults and reconnects take real seconds, whatever a simulation's time
scale (decision 0022).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import structlog

from mdfd.drivers import InstrumentError, Value
from mdfd.recipes.loader import LoadedRecipe
from mdfd.recipes.values import duration_for

from ..config import LoadedConfig
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
    delay, waited = PROBE_FIRST_DELAY, False
    while True:
        try:
            async with asyncio.timeout(max(deadline - loop.time(), PROBE_FIRST_DELAY)):
                await instruments.read(probe)
        except (InstrumentError, TimeoutError) as exc:
            if loop.time() >= deadline:
                log.warning(
                    "instruments still not answering; the next point goes ahead",
                    waited_s=limit,
                    error=str(exc),
                )
                return
            if not waited:
                log.warning("waiting for instruments before the next point", error=str(exc))
            waited = True
            await asyncio.sleep(min(delay, max(deadline - loop.time(), 0.0)))
            delay = min(delay * 2, PROBE_MAX_DELAY)
            continue
        if waited:
            log.info("instruments answer again")
        return


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
    delay = PROBE_FIRST_DELAY
    while pending:
        for channel, value in list(pending.items()):
            try:
                async with asyncio.timeout(max(deadline - loop.time(), PROBE_FIRST_DELAY)):
                    await instruments.write(channel, value)
            except (InstrumentError, OSError, TimeoutError) as exc:
                log.error("safe state write failed", channel=channel, value=value, error=str(exc))
                continue
            del pending[channel]
            log.info("safe state applied", channel=channel, value=value)
        if not pending or loop.time() + delay > deadline:
            break
        await asyncio.sleep(delay)
        delay = min(delay * 2, PROBE_MAX_DELAY)
    if pending:
        log.critical("safe state NOT applied", channels=sorted(pending))
