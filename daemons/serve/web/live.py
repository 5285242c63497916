"""`GET /events`: the typed event stream as server-sent events, for the page's live parts.

Each event goes out under its own name (`event: readings`) with the same JSON as the API's
NDJSON stream. The first event, `hello`, carries the session's CSRF token: a page left open
over a daemon restart reconnects by itself (EventSource retries after `retry` ms) and picks up
the new token with it.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import time

from aiohttp import web

from mdfd.daemons.core import strictjson
from mdfd.daemons.engine.events import Event, Readings, to_wire

from .keys import PLANE, SESSION

RETRY_MS = 2000
PING_SECONDS = 15.0
CLOSE_CHECK_SECONDS = 0.5


async def events(request: web.Request) -> web.StreamResponse:
    plane = request.app[PLANE]
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-cache",
            "X-Accel-Buffering": "no",
        }
    )
    await response.prepare(request)
    hello = json.dumps({"csrf": request[SESSION].csrf, "role": request[SESSION].role})
    loop = asyncio.get_running_loop()
    with plane.subscribe() as watched:
        await response.write(f"retry: {RETRY_MS}\nevent: hello\ndata: {hello}\n\n".encode())
        quiet_since = loop.time()
        while not plane.closing.is_set():
            try:
                async with asyncio.timeout(CLOSE_CHECK_SECONDS):
                    event = await watched.get()
            except TimeoutError:
                if loop.time() - quiet_since < PING_SECONDS:
                    continue
                chunk = b": ping\n\n"
            else:
                chunk = _encoded.get(event)
            quiet_since = loop.time()
            try:
                await response.write(chunk)
            except (ConnectionError, RuntimeError):
                return response
    with contextlib.suppress(ConnectionError, RuntimeError):
        await response.write_eof()
    return response


class _Encoded:
    """The last few events' SSE bytes: every connected page is sent the same event objects,
    so each is encoded once, not once per page (a 1000-channel reading is ~25 KB of JSON)."""

    def __init__(self, size: int = 16) -> None:
        self._recent: collections.OrderedDict[int, tuple[Event, bytes]] = collections.OrderedDict()
        self._size = size

    def get(self, event: Event) -> bytes:
        cached = self._recent.get(id(event))
        if cached is not None and cached[0] is event:
            return cached[1]
        chunk = _message(event)
        self._recent[id(event)] = (event, chunk)
        if len(self._recent) > self._size:
            self._recent.popitem(last=False)
        return chunk


_encoded = _Encoded()


def _message(event: Event) -> bytes:
    wire = to_wire(event)
    if isinstance(event, Readings):
        wire["t"] = time.time()  # the plot's x: when the daemon saw the values
    data = strictjson.dumps(wire, default=str)
    return f"event: {wire['event']}\ndata: {data}\n\n".encode()
