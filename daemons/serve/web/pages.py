"""What the page shows: the whole page, each view, and each fragment htmx refreshes.

Each fragment asks the `ControlPlane` for what it shows, at the moment it is asked; a failed
call renders as an error in that fragment's place (`app._errors`).
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable
from typing import Any

from aiohttp import web

from mdfd.daemons.analysis.planning import format_duration
from mdfd.daemons.serve.controlplane import ControlPlane, NotFound

from .keys import ACCESS, PLANE, SESSION, TEMPLATES, TRACKER

VIEWS = ("current", "queue", "instruments", "history", "outbox")
HISTORY_ROWS = 50
FAILED_COUNTED = 20


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    return format_duration(max(0.0, seconds))


def _when(stamp: float | None) -> str:
    if stamp is None:
        return "—"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(stamp))


def _num(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:.6g}"


FILTERS: dict[str, Callable[..., str]] = {"age": _age, "when": _when, "num": _num}


def render(request: web.Request, template: str, code: int = 200, **context: Any) -> web.Response:
    env = request.app[TEMPLATES]
    session = request.get(SESSION)
    text = env.get_template(template).render(
        session=session, now=time.time(), login_required=request.app[ACCESS].login_required,
        **context,
    )  # fmt: skip
    return web.Response(text=text, status=code, content_type="text/html")


async def page(request: web.Request) -> web.Response:
    name = request.query.get("view", "current")
    if name not in VIEWS:
        name = "current"
    units = json.dumps(_units(request.app[PLANE]))
    return render(request, "page.html", view=name, views=VIEWS, units_json=units)


async def login_form(request: web.Request) -> web.Response:
    if not request.app[ACCESS].login_required:
        raise web.HTTPSeeOther("/")
    return render(request, "login.html", error="")


async def view(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    if name not in VIEWS:
        raise web.HTTPNotFound(text=f"no view {name}")
    return render(request, f"view_{name}.html")


async def fragment(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    gather = FRAGMENTS.get(name)
    if gather is None:
        raise web.HTTPNotFound(text=f"no fragment {name}")
    return render(request, f"fragment_{name}.html", **await gather(request))


async def _header(request: web.Request) -> dict[str, Any]:
    status = await request.app[PLANE].status()
    mdf = status.mdf
    domains = [str(d) for d in ([mdf.domain] if mdf.domain else mdf.domains)]
    return {"status": status, "domains": domains}


async def _current(request: web.Request) -> dict[str, Any]:
    plane = request.app[PLANE]
    status = await plane.status()
    current = status.current
    context: dict[str, Any] = {
        "current": current,
        "started_at": None,
        "units": {},
        "campaign": None,
    }
    if current is None:
        return context
    detail = await plane.run_detail(current.id)
    context["started_at"] = detail.started_at
    context["units"] = _units(plane)
    with contextlib.suppress(NotFound):  # not an adaptive run
        context["campaign"] = await plane.campaign(current.id)
    return context


async def _queue(request: web.Request) -> dict[str, Any]:
    status = await request.app[PLANE].status()
    return {"queue": status.queue, "held": status.held, "current": status.current}


async def _instruments(request: web.Request) -> dict[str, Any]:
    plane = request.app[PLANE]
    status = await plane.status()
    tracker = request.app[TRACKER]
    now = time.time()
    rows = []
    for name, inst in status.instruments.items():
        channels = (
            plane.config.model.instruments[name].channels
            if name in plane.config.model.instruments
            else {}
        )
        read = tracker.last_read(name)
        values = [
            (chan, tracker.values[f"{name}.{chan}"], spec.unit)
            for chan, spec in channels.items()
            if f"{name}.{chan}" in tracker.values
        ]
        rows.append({"inst": inst, "age": None if read is None else now - read, "values": values})
    interlocks = plane.config.model.safety.interlocks
    unverified = status.current.interlocks_unverified if status.current else []
    return {
        "rows": rows,
        "interlocks": interlocks,
        "alarms": list(reversed(tracker.alarms)),
        "unverified": unverified,
        "units": _units(plane),
    }


async def _history(request: web.Request) -> dict[str, Any]:
    plane = request.app[PLANE]
    runs = [r for r in await plane.runs() if r.status not in ("queued",)]
    runs.sort(key=lambda r: r.created_at, reverse=True)
    runs = runs[:HISTORY_ROWS]
    failed: dict[str, int] = {}
    for run in runs[:FAILED_COUNTED]:
        detail = await plane.run_detail(run.id)
        failed[run.id] = sum(1 for p in detail.points if p.status == "failed")
    outbox = await plane.outbox()
    dead: dict[str, int] = {}
    for letter in outbox.dead_letters:
        if not letter.requeued:
            dead[letter.run_id] = dead.get(letter.run_id, 0) + 1
    pending = sum(p.pending for p in outbox.publishers)
    return {
        "runs": runs,
        "failed": failed,
        "dead": dead,
        "publishers": outbox.publishers,
        "pending": pending,
    }


async def _outbox(request: web.Request) -> dict[str, Any]:
    outbox = await request.app[PLANE].outbox()
    return {"outbox": outbox}


def _units(plane: ControlPlane) -> dict[str, str]:
    """Each channel's unit by qualified name, from the config in force."""
    return {
        f"{inst}.{chan}": spec.unit
        for inst, cfg in plane.config.model.instruments.items()
        for chan, spec in cfg.channels.items()
    }


FRAGMENTS = {
    "header": _header,
    "current": _current,
    "queue": _queue,
    "instruments": _instruments,
    "history": _history,
    "outbox": _outbox,
}
