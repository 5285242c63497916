"""Background tasks of the daemon that cannot be lost to an unexpected exception.

A task created with `asyncio.create_task` that raises dies silently until someone awaits it,
and in a long-lived daemon nobody may: an instrument then stays "connecting" forever, a drain
stops delivering, the watchdog stops pinging. Every background task is therefore started
through `supervised`: an exception it did not expect is logged at error level with its
traceback and the work is started again after an exponential backoff; a task that ran for
a while before failing starts again from the shortest wait. Work that returns is finished;
cancellation stops it as usual.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from .logging import get_logger

BACKOFF_FIRST = 0.5
BACKOFF_MAX = 30.0
STABLE_SECONDS = 60.0
"""A task that ran this long before failing is restarted from `BACKOFF_FIRST` again."""


async def supervised(
    name: str,
    work: Callable[[], Awaitable[None]],
    *,
    first: float = BACKOFF_FIRST,
    most: float = BACKOFF_MAX,
) -> None:
    """Run `work()` until it returns, restarting it with backoff whenever it raises."""
    log = get_logger(task=name)
    loop = asyncio.get_running_loop()
    backoff = first
    restarts = 0
    while True:
        began = loop.time()
        try:
            await work()
            return
        except Exception:
            if loop.time() - began >= STABLE_SECONDS:
                backoff = first
            restarts += 1
            log.exception(
                "background task failed unexpectedly; restarting",
                restarts=restarts,
                restart_in_s=backoff,
            )
        await asyncio.sleep(backoff)
        backoff = min(backoff * 2, most)


def start_supervised(
    name: str, work: Callable[[], Awaitable[None]], **backoff: float
) -> asyncio.Task[None]:
    """`asyncio.create_task` for a background task that must not be lost; see the module."""
    return asyncio.create_task(supervised(name, work, **backoff), name=name)
