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
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiohttp import web

from mdfd.recipes.loader import LoadedRecipe, load_recipe
from mdfd.recipes.located import InputError

from .. import strictjson
from ..config import LoadedConfig
from ..engine.events import (
    Alarm,
    Dropped,
    Event,
    Heartbeat,
    PointEnded,
    PointStarted,
    Queued,
    QueueOrder,
    RunEnded,
    RunStarted,
    RunState,
    Subscribed,
    to_wire,
)
from ..handover import far_setpoints
from ..logging import Throttle, get_logger
from ..oneshot import create_run
from ..state import Origin, RunRow
from . import runqueue
from .intake import Busy, RecipeIntake, parse_json, read_body
from .metrics import render
from .scheduler import Refused

if TYPE_CHECKING:
    from .daemon import Daemon

HEARTBEAT_SECONDS = 10.0
CLOSE_CHECK_SECONDS = 0.5
MAX_NAME_CHARS = 200
CURRENT = "current"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
DAEMON = web.AppKey("daemon", object)
INTAKE = web.AppKey("intake", RecipeIntake)


def _json(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, dumps=lambda d: strictjson.dumps(d, default=str))


def _error(status: int, message: str, **extra: Any) -> web.Response:
    return _json({"error": message, **extra}, status=status)


def _daemon(request: web.Request) -> Daemon:
    return request.app[DAEMON]  # type: ignore[return-value]


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


def build_app(daemon: Daemon, token: str | None = None) -> web.Application:
    """One app per listener: the TCP one checks the token before anything else runs."""
    middlewares = [_token_guard(token)] if token is not None else []
    app = web.Application(
        client_max_size=daemon.config.model.control.max_request_bytes,
        middlewares=[*middlewares, _errors],
    )
    app[DAEMON] = daemon
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
    daemon = _daemon(request)
    model = daemon.config.model
    scheduler = daemon.scheduler
    waiting = await runqueue.pending(daemon.state)
    return _json(
        {
            "mdf": model.mdf.model_dump(mode="json"),
            "daemon": {
                "pid": os.getpid(),
                "version": daemon.version,
                "started_at": daemon.started,
                "state": scheduler.phase,
                "status": scheduler.status_line(),
                "simulate": daemon.simulate,
                "config": str(daemon.config.path),
            },
            "instruments": {n: h.as_dict() for n, h in daemon.health.health.items()},
            "current": scheduler.active.as_dict() if scheduler.active else None,
            "queue": [_brief(r) for r in waiting],
            "held": [_brief(r) for r in await runqueue.held(daemon.state)],
            "upstream": await daemon.upstream.status(),
        }
    )


async def outbox(request: web.Request) -> web.Response:
    """Depth per publisher, oldest age, deliveries and dead letters: `mdfd outbox --json`."""
    return _json(await _daemon(request).upstream.report())


async def outbox_retry(request: web.Request) -> web.Response:
    publisher = request.query.get("publisher") or None
    count = await _daemon(request).upstream.retry_dead_letters(publisher)
    return _json({"requeued": count, "publisher": publisher})


def _brief(run: Any) -> dict[str, Any]:
    return {
        "id": run.id,
        "recipe": run.recipe_name,
        "version": run.recipe_version,
        "status": run.status.value,
        "origin": run.origin.value,
        "points_done": run.points_done,
        "points_total": run.points_total,
        "queue_position": run.queue_position,
        "created_at": run.created_at,
    }


async def list_runs(request: web.Request) -> web.Response:
    daemon = _daemon(request)
    runs = await daemon.state.runs()
    wanted = request.query.get("status")
    return _json([r.as_dict() for r in runs if wanted in (None, r.status.value)])


def _run_id(request: web.Request) -> str | None:
    """The run a request names; `current` means the executing run (None if there is none)."""
    run_id = request.match_info["id"]
    if run_id == CURRENT:
        active = _daemon(request).scheduler.active
        return active.run.id if active else None
    return run_id


async def show_run(request: web.Request) -> web.Response:
    daemon = _daemon(request)
    run_id = _run_id(request)
    run = await daemon.state.run(run_id) if run_id else None
    if run is None:
        return _error(404, f"no run {request.match_info['id']!r}")
    points = await daemon.state.points(run.id)
    data = run.as_dict(with_texts=request.query.get("recipe") == "1")
    active = daemon.scheduler.active
    data["progress"] = active.as_dict() if active and active.run.id == run.id else None
    data["points"] = [
        {
            "index": p.point_index,
            "status": p.status.value,
            "parameters": p.parameters,
            "started_at": p.started_at,
            "ended_at": p.ended_at,
            "summary": p.summary,
            "message": p.message,
        }
        for p in points
    ]
    data["files"] = [await asyncio.to_thread(_file_info, Path(run.data_file))]
    return _json(data)


def _file_info(path: Path) -> dict[str, Any]:
    """Off the event loop: a stat on a busy or network disk can take a while. A path the
    system cannot even look up (too long, a NUL) is shown as missing, with why."""
    info: dict[str, Any] = {"kind": "hdf5", "path": str(path), "exists": False, "bytes": None}
    try:
        info["path"] = str(path.resolve())
        info["bytes"] = path.stat().st_size
        info["exists"] = True
    except FileNotFoundError:
        pass
    except (OSError, ValueError) as exc:
        info["error"] = str(exc)
    return info


async def submit(request: web.Request) -> web.Response:
    daemon = _daemon(request)
    name = request.headers.get("X-Recipe-Name", "submitted.yaml")[:MAX_NAME_CHARS]
    control = daemon.config.model.control
    text = (await read_body(request, control.body_timeout)).decode("utf-8")
    if not text.strip():
        return _error(400, "empty body: send the recipe's YAML text")
    config = daemon.config
    try:
        recipe = await request.app[INTAKE].check(name, text, config, control.validation_timeout)
    except InputError as exc:
        return _error(422, "recipe rejected", problems=[str(p) for p in exc.problems])
    previous = await _run_before_next(daemon)
    run = await create_run(daemon.state, config, recipe, origin=Origin.DAEMON)
    log = get_logger(run=run.id)
    log.info("run queued", recipe=run.recipe_name, points=run.points_total, source=name)
    warnings: list[str] = []
    if previous is not None:
        warnings = await asyncio.to_thread(_handover, previous, recipe, config)
        for warning in warnings:
            log.warning("queued run starts far from the run before it", detail=warning)
    daemon.events.publish(Queued(run=run.id, recipe=run.recipe_name))
    daemon.scheduler.wake()
    return _json({**_brief(run), "warnings": warnings}, status=201)


async def _run_before_next(daemon: Daemon) -> RunRow | None:
    """The run a newly queued one will follow: the last waiting run, else the executing one."""
    waiting = await runqueue.pending(daemon.state)
    if waiting:
        return waiting[-1]
    active = daemon.scheduler.active
    return active.run if active is not None else None


def _handover(previous: RunRow, following: LoadedRecipe, config: LoadedConfig) -> list[str]:
    """In a thread: the stored recipe's YAML is parsed again."""
    try:
        earlier = load_recipe(
            previous.recipe_path or f"run {previous.id}", text=previous.recipe_text
        )
    except InputError:
        return []  # it no longer validates: the scheduler will fail it, not start from it
    return [f"after run {previous.id}: {w}" for w in far_setpoints(earlier, following, config)]


async def drop_run(request: web.Request) -> web.Response:
    daemon = _daemon(request)
    run_id = request.match_info["id"]
    if await runqueue.drop(daemon.state, run_id):
        get_logger(run=run_id).info("queued run dropped by operator")
        daemon.events.publish(Dropped(run=run_id))
        return _json({"dropped": run_id})
    if await daemon.state.run(run_id) is None:
        return _error(404, f"no run {run_id!r}")
    raise Refused(f"run {run_id} is not queued (only queued runs can be dropped; abort the others)")


async def pause(request: web.Request) -> web.Response:
    run = await _daemon(request).scheduler.pause(_explicit(request))
    return _json({"paused": run})


async def resume(request: web.Request) -> web.Response:
    run = await _daemon(request).scheduler.resume(_explicit(request))
    return _json({"resumed": run})


async def abort(request: web.Request) -> web.Response:
    reason = request.query.get("reason", "aborted by operator")[:MAX_NAME_CHARS]
    run = await _daemon(request).scheduler.abort(_explicit(request), reason)
    return _json({"aborted": run})


def _explicit(request: web.Request) -> str | None:
    run_id = request.match_info["id"]
    return None if run_id == CURRENT else run_id


async def queue(request: web.Request) -> web.Response:
    return _json([_brief(r) for r in await runqueue.pending(_daemon(request).state)])


async def reorder(request: web.Request) -> web.Response:
    daemon = _daemon(request)
    body = parse_json(await read_body(request, daemon.config.model.control.body_timeout))
    order = body.get("order") if isinstance(body, dict) else body
    if not isinstance(order, list) or not all(isinstance(i, str) for i in order):
        return _error(400, 'body must be {"order": ["run id", ...]}')
    try:
        new = await runqueue.reorder(daemon.state, order)
    except runqueue.ReorderError as exc:
        raise Refused(str(exc)) from None
    get_logger(component="api").info("queue reordered", order=new)
    daemon.events.publish(QueueOrder(order=new))
    daemon.scheduler.wake()
    return _json({"queue": new})


async def events(request: web.Request) -> web.StreamResponse:
    """NDJSON: one event per line until the client leaves or the daemon stops.

    `?run=ID` keeps that run's events (and the readings while it executes). A heartbeat line
    every few seconds lets a client tell a quiet daemon from a dead connection.
    """
    daemon = _daemon(request)
    only = request.query.get("run")
    response = web.StreamResponse(
        headers={"Content-Type": "application/x-ndjson", "Cache-Control": "no-cache"}
    )
    await response.prepare(request)
    loop = asyncio.get_running_loop()
    with daemon.events.watch() as watched:
        # Tells the client it is subscribed: it may now read state without missing events.
        await response.write(_line(Subscribed()))
        quiet_since = loop.time()
        while not daemon.closing.is_set():
            event: Event
            try:
                async with asyncio.timeout(CLOSE_CHECK_SECONDS):
                    event = await watched.get()
            except TimeoutError:
                if loop.time() - quiet_since < HEARTBEAT_SECONDS:
                    continue
                event = Heartbeat(state=daemon.scheduler.phase)
            if only is not None and not _concerns(event, only, daemon):
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


def _concerns(event: Event, run_id: str, daemon: Daemon) -> bool:
    """Whether a `?run=ID` stream shows the event: the run's own events, heartbeats, and the
    events of no run in particular (readings, instruments, the queue) while the run executes."""
    match event:
        case Heartbeat():
            return True
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
            active = daemon.scheduler.active
            return active is not None and active.run.id == run_id


async def metrics(request: web.Request) -> web.Response:
    daemon = _daemon(request)
    text = await render(
        daemon.state,
        daemon.scheduler,
        daemon.health,
        daemon.lag,
        daemon.started,
        daemon.upstream,
    )
    return web.Response(
        body=text.encode(), headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"}
    )
