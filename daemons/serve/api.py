"""The control API: HTTP+JSON for `mdfctl`, dashboards and Prometheus.

Served on the daemon's UNIX socket (access = the socket's group) and, when configured, on TCP
where every request must carry `Authorization: Bearer <token>`. A recipe is submitted as its
TEXT in the request body: the daemon validates it exactly like `mdfd validate` (422 with the
same located messages) and never opens a path a client names. Bodies are limited in size
(413); malformed requests get a 4xx; no request can stop the daemon serving.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from pydantic import BaseModel

from mdfd.daemons.core import strictjson
from mdfd.daemons.core.logging import Throttle, get_logger
from mdfd.daemons.engine.events import (
    Alarm,
    Dropped,
    Event,
    Heartbeat,
    PointEnded,
    PointStarted,
    Queued,
    Readings,
    RunEnded,
    RunStarted,
    RunState,
    Subscribed,
    to_wire,
)
from mdfd.recipes.located import InputError

from . import views
from .controlplane import CURRENT, BadPoint, ControlPlane, NotFound, Refused
from .intake import Busy, RecipeIntake, parse_json, read_body

HEARTBEAT_SECONDS = 10.0
CLOSE_CHECK_SECONDS = 0.5
MAX_NAME_CHARS = 200

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
PLANE = web.AppKey("control plane", ControlPlane)
INTAKE = web.AppKey("intake", RecipeIntake)


def _json(view: BaseModel | list[views.Run], status: int = 200) -> web.Response:
    return web.json_response(
        views.dump(view), status=status, dumps=lambda d: strictjson.dumps(d, default=str)
    )


def _error(status: int, message: str, problems: list[str] | None = None) -> web.Response:
    return _json(views.Error(error=message, problems=problems), status=status)


def _plane(request: web.Request) -> ControlPlane:
    return request.app[PLANE]


_failures = Throttle()


@web.middleware
async def _errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Map refusals and bad input to 4xx; an unexpected error is a 500, never a dead daemon
    (logged with its traceback, a few per minute for each path: a client repeating the
    request must not fill the disk)."""
    try:
        return await handler(request)
    except Refused as exc:
        return _error(409, str(exc))
    except NotFound as exc:
        return _error(404, str(exc))
    except BadPoint as exc:
        return _error(422, "point rejected", exc.problems)
    except Busy as exc:
        return _error(503, str(exc))
    except web.HTTPException:
        raise
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        return _error(400, f"malformed request body: {exc}")
    except Exception as exc:
        dropped = _failures.allow(request.path)
        if dropped is not None:
            get_logger(component="api").exception(
                "request failed", path=request.path, suppressed=dropped
            )
        return _error(500, f"internal error: {exc!r}")


def _token_guard(token: str) -> Any:
    expected = f"Bearer {token}".encode()

    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        given = request.headers.get("Authorization", "").encode()
        if not hmac.compare_digest(given, expected):
            # Refused from the headers alone: the body is never read and the connection is
            # closed, so an unauthenticated client costs one response and holds nothing.
            response = _error(401, "missing or wrong bearer token")
            response.headers["WWW-Authenticate"] = 'Bearer realm="mdfd"'
            response.force_close()
            return response
        return await handler(request)

    return guard


def build_app(plane: ControlPlane, token: str | None = None) -> web.Application:
    """One app per listener: the TCP one checks the token before anything else runs."""
    middlewares = [_token_guard(token)] if token is not None else []
    app = web.Application(
        client_max_size=plane.control.max_request_bytes,
        middlewares=[*middlewares, _errors],
    )
    app[PLANE] = plane
    intake = RecipeIntake()
    app[INTAKE] = intake

    async def close_intake(_: web.Application) -> None:
        intake.close()

    app.on_cleanup.append(close_intake)
    app.add_routes(
        [
            web.get("/status", status),
            web.get("/runs", list_runs),
            web.post("/runs", submit),
            web.get("/runs/{id}", show_run),
            web.delete("/runs/{id}", drop_run),
            web.post("/runs/{id}/pause", pause),
            web.post("/runs/{id}/resume", resume),
            web.post("/runs/{id}/abort", abort),
            web.get("/runs/{id}/campaign", campaign),
            web.post("/runs/{id}/campaign/points", inject),
            web.post("/runs/{id}/campaign/stop", stop_campaign),
            web.get("/queue", queue),
            web.post("/queue", reorder),
            web.get("/events", events),
            web.get("/metrics", metrics),
            web.get("/outbox", outbox),
            web.post("/outbox/retry", outbox_retry),
        ]
    )
    return app


async def status(request: web.Request) -> web.Response:
    return _json(await _plane(request).status())


async def outbox(request: web.Request) -> web.Response:
    """Depth per publisher, oldest age, deliveries and dead letters: `mdfd outbox --json`."""
    return _json(await _plane(request).outbox())


async def outbox_retry(request: web.Request) -> web.Response:
    publisher = request.query.get("publisher") or None
    return _json(await _plane(request).retry_outbox(publisher))


async def list_runs(request: web.Request) -> web.Response:
    return _json(await _plane(request).runs(request.query.get("status")))


async def show_run(request: web.Request) -> web.Response:
    with_texts = request.query.get("recipe") == "1"
    return _json(await _plane(request).run_detail(request.match_info["id"], with_texts))


async def submit(request: web.Request) -> web.Response:
    plane = _plane(request)
    name = request.headers.get("X-Recipe-Name", "submitted.yaml")[:MAX_NAME_CHARS]
    control = plane.control
    text = (await read_body(request, control.body_timeout)).decode("utf-8")
    if not text.strip():
        return _error(400, "empty body: send the recipe's YAML text")
    config = plane.config
    try:
        recipe = await request.app[INTAKE].check(name, text, config, control.validation_timeout)
    except InputError as exc:
        return _error(422, "recipe rejected", [str(p) for p in exc.problems])
    return _json(await plane.submit(recipe, config, source=name), status=201)


async def drop_run(request: web.Request) -> web.Response:
    return _json(await _plane(request).drop(request.match_info["id"]))


async def pause(request: web.Request) -> web.Response:
    return _json(await _plane(request).pause(_explicit(request)))


async def resume(request: web.Request) -> web.Response:
    return _json(await _plane(request).resume(_explicit(request)))


async def abort(request: web.Request) -> web.Response:
    reason = request.query.get("reason", "aborted by operator")[:MAX_NAME_CHARS]
    return _json(await _plane(request).abort(_explicit(request), reason))


async def campaign(request: web.Request) -> web.Response:
    return _json(await _plane(request).campaign(request.match_info["id"]))


async def inject(request: web.Request) -> web.Response:
    """A person's point: `{"parameters": {"temperature": 1250, ...}}`."""
    plane = _plane(request)
    body = parse_json(await read_body(request, plane.control.body_timeout))
    parameters = body.get("parameters") if isinstance(body, dict) else None
    if not isinstance(parameters, dict):
        return _error(400, 'body must be {"parameters": {"name": number, ...}}')
    return _json(await plane.inject(_explicit(request), parameters), status=201)


async def stop_campaign(request: web.Request) -> web.Response:
    reason = request.query.get("reason", "campaign stopped early by operator")[:MAX_NAME_CHARS]
    return _json(await _plane(request).stop_campaign(_explicit(request), reason))


def _explicit(request: web.Request) -> str | None:
    run_id = request.match_info["id"]
    return None if run_id == CURRENT else run_id


async def queue(request: web.Request) -> web.Response:
    return _json(await _plane(request).queue())


async def reorder(request: web.Request) -> web.Response:
    plane = _plane(request)
    body = parse_json(await read_body(request, plane.control.body_timeout))
    order = body.get("order") if isinstance(body, dict) else body
    if not isinstance(order, list) or not all(isinstance(i, str) for i in order):
        return _error(400, 'body must be {"order": ["run id", ...]}')
    return _json(await plane.reorder(order))


async def events(request: web.Request) -> web.StreamResponse:
    """NDJSON: one event per line until the client leaves or the daemon stops.

    `?run=ID` keeps that run's events (and the readings while it executes); when the run had
    started before the stream opened, its `run_start` comes first (once: the event published,
    not a new one), so `submit --watch` never misses it for having subscribed a moment late. A
    heartbeat line every few seconds lets a client tell a quiet daemon from a dead connection.
    """
    plane = _plane(request)
    only = request.query.get("run")
    response = web.StreamResponse(
        headers={"Content-Type": "application/x-ndjson", "Cache-Control": "no-cache"}
    )
    await response.prepare(request)
    loop = asyncio.get_running_loop()
    with plane.subscribe() as watched:
        # Tells the client it is subscribed: it may now read state without missing events.
        await response.write(_line(Subscribed()))
        replayed = plane.run_started(only) if only is not None else None
        if replayed is not None:
            await response.write(_line(replayed))
        quiet_since = loop.time()
        while not plane.closing.is_set():
            event: Event
            try:
                async with asyncio.timeout(CLOSE_CHECK_SECONDS):
                    event = await watched.get()
            except TimeoutError:
                if loop.time() - quiet_since < HEARTBEAT_SECONDS:
                    continue
                event = plane.heartbeat()
            if event is replayed or (only is not None and not _concerns(event, only, plane)):
                continue
            quiet_since = loop.time()
            try:
                await response.write(_line(event))
            except (ConnectionError, RuntimeError):
                return response
    with contextlib.suppress(ConnectionError, RuntimeError):
        await response.write_eof()
    return response


def _line(event: Event) -> bytes:
    return strictjson.dumps(to_wire(event), default=str).encode() + b"\n"


def _concerns(event: Event, run_id: str, plane: ControlPlane) -> bool:
    """Whether a `?run=ID` stream shows the event: the run's own events, heartbeats, and the
    events of no run in particular (readings, instruments, the queue) while the run executes —
    but not the health probes' readings of idle instruments (`point` null)."""
    match event:
        case Heartbeat():
            return True
        case Readings(point=None):
            return False
        case (
            Queued(run=owner)
            | Dropped(run=owner)
            | RunStarted(run=owner)
            | RunState(run=owner)
            | PointStarted(run=owner)
            | PointEnded(run=owner)
            | RunEnded(run=owner)
            | Alarm(run=owner)
        ):
            return owner == run_id
        case _:
            return plane.executing() == run_id


async def metrics(request: web.Request) -> web.Response:
    text = await _plane(request).metrics()
    return web.Response(
        body=text.encode(), headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"}
    )
