"""The instrument's own thread, on which every blocking pyvisa call runs.

A thread hop is the driver's main cost against a plain blocking pyvisa loop: a simulated
instrument answers a query in ~100 us, so every microsecond of hand-off shows. A
`ThreadPoolExecutor` hop goes through a concurrent future, `wrap_future` and a chained
callback; here a job is one `SimpleQueue.put` and the result comes back with one
`call_soon_threadsafe`, which cost about a third less per call (bench/visa.py, "thread hop").

One thread per instrument also makes it the connection owner: a VISA library never sees one
session from two threads.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

_Job = tuple[asyncio.AbstractEventLoop, "asyncio.Future[Any]", Callable[..., Any], tuple[Any, ...]]


class Worker:
    """Runs jobs one at a time, in order, on a thread of its own.

    A caller that is cancelled while its job runs leaves the job to finish (a blocking VISA
    call cannot be interrupted; it ends by its own I/O timeout) and the next job waits behind
    it. The thread is a daemon so that a driver nobody closed cannot hold up interpreter exit;
    `stop` is the orderly end, after the job in progress.
    """

    def __init__(self, name: str) -> None:
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    async def call(self, function: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._jobs.put((loop, future, function, args))
        return await future

    def stop(self) -> None:
        self._jobs.put(None)

    def _run(self) -> None:
        while (job := self._jobs.get()) is not None:
            _execute(*job)
            # Drop the finished job before waiting: an idle thread holds no result.
            job = None


def _execute(
    loop: asyncio.AbstractEventLoop,
    future: asyncio.Future[Any],
    function: Callable[..., Any],
    args: tuple[Any, ...],
) -> None:
    try:
        result = function(*args)
    except BaseException as exc:  # handed to the awaiting task, whatever it is
        _post(loop, _fail, future, exc)
    else:
        _post(loop, _succeed, future, result)


def _post(loop: asyncio.AbstractEventLoop, settle: Callable[..., None], *args: Any) -> None:
    # The loop may have closed while a job ran (its caller is gone); nobody awaits the result.
    with contextlib.suppress(RuntimeError):
        loop.call_soon_threadsafe(settle, *args)


def _succeed(future: asyncio.Future[Any], result: Any) -> None:
    if not future.done():
        future.set_result(result)


def _fail(future: asyncio.Future[Any], exc: BaseException) -> None:
    if not future.done():
        future.set_exception(exc)
