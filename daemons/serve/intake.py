"""What the control API takes in from clients: bodies read within a time, recipes checked off
the event loop within a time, JSON parsed without letting depth become a 500.

Parsing and validating a submitted recipe is bounded work (see `mdfd.recipes.yamlbounds` and
`limits.max_points`) but still up to a fraction of a second of CPU: it runs in one worker
thread, one submission at a time, so a client sending hostile bodies in a loop delays other
submissions, never `/status`, the work loop or the instruments.
"""

from __future__ import annotations

import asyncio
import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from aiohttp import web

from mdfd.daemons.analysis.validation import validate
from mdfd.daemons.core.config import LoadedConfig
from mdfd.recipes.loader import LoadedRecipe, load_recipe


class Busy(Exception):
    """The submission could not be checked within the time allowed (HTTP 503)."""


class RecipeIntake:
    """One worker thread and one submission at a time; owned by the app that serves it."""

    def __init__(self) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mdfd-intake")
        self._free = asyncio.Semaphore(1)

    async def check(
        self, name: str, text: str, config: LoadedConfig, seconds: float
    ) -> LoadedRecipe:
        """Parse and validate; InputError for a bad recipe, Busy when it takes too long.

        A check that runs out of time keeps its thread until it ends (a thread cannot be
        stopped), and keeps the slot: the next submission waits for it, not beside it.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        try:
            async with asyncio.timeout_at(deadline):
                await self._free.acquire()
        except TimeoutError:
            raise Busy(f"another submission is still being checked after {seconds:g} s") from None
        try:
            future = loop.run_in_executor(self._executor, load_and_validate, name, text, config)
        except BaseException:
            self._free.release()
            raise
        future.add_done_callback(lambda _: self._free.release())
        try:
            async with asyncio.timeout_at(deadline):
                return await asyncio.shield(future)
        except TimeoutError:
            raise Busy(
                f"checking the recipe took longer than {seconds:g} s (control.validation_timeout)"
            ) from None

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


def load_and_validate(name: str, text: str, config: LoadedConfig) -> LoadedRecipe:
    """Blocking (seconds of CPU at the bounds): call it in a thread."""
    recipe = load_recipe(name, text=text)
    validate(recipe, config)
    return recipe


async def read_body(request: web.Request, seconds: float) -> bytes:
    """The whole body, or 408 when the client sends it slower than `seconds` allows (the size
    is bounded by the app's client_max_size: 413)."""
    try:
        async with asyncio.timeout(seconds):
            return await request.read()
    except TimeoutError:
        raise web.HTTPRequestTimeout(
            text=json.dumps({"error": f"request body not received within {seconds:g} s"}),
            content_type="application/json",
        ) from None


def parse_json(body: bytes) -> Any:
    """JSON or 400: nesting deep enough to exhaust the parser's stack is bad input too."""
    try:
        return json.loads(body or b"null")
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise _bad_request(f"malformed request body: {exc}") from None
    except RecursionError:
        raise _bad_request("malformed request body: nested too deeply") from None


def _bad_request(message: str) -> web.HTTPBadRequest:
    return web.HTTPBadRequest(text=json.dumps({"error": message}), content_type="application/json")
