"""The page's buttons: each one the `ControlPlane` call `mdfctl` makes for the same request.

An answer is a small HTML message for the page's message area (htmx swaps it in, errors too)
and an `HX-Trigger: refresh` header, so every fragment on the page re-reads what changed.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from mdfd.daemons.analysis.planning import format_duration, make_plan
from mdfd.recipes.loader import LoadedRecipe
from mdfd.recipes.located import InputError, Problem

from .access import COOKIE
from .keys import ACCESS, INTAKE, PLANE
from .pages import render

MAX_NAME_CHARS = 200
REASON = "aborted from the operator page"


def _done(request: web.Request, message: str) -> web.Response:
    response = render(request, "message.html", message=message)
    response.headers["HX-Trigger"] = "refresh"
    return response


async def login(request: web.Request) -> web.StreamResponse:
    access = request.app[ACCESS]
    form = await request.post()
    cookie = access.login(str(form.get("token", "")))
    if cookie is None:
        return render(request, "login.html", code=401, error="wrong token")
    response = web.Response(status=303, headers={"Location": "/"})
    response.set_cookie(
        COOKIE,
        cookie,
        max_age=int(access.session_seconds),
        httponly=True,
        samesite="Strict",
        secure=request.secure,
    )
    return response


async def logout(request: web.Request) -> web.StreamResponse:
    response = web.Response(status=204, headers={"HX-Redirect": "/login"})
    response.del_cookie(COOKIE)
    return response


async def _recipe_form(request: web.Request) -> tuple[str, str]:
    """The recipe's name and text, pasted or uploaded (an upload wins)."""
    form = await request.post()
    upload = form.get("file")
    name = str(form.get("name") or "pasted.yaml")[:MAX_NAME_CHARS]
    text = str(form.get("recipe", ""))
    if isinstance(upload, web.FileField) and upload.filename:
        name = upload.filename[:MAX_NAME_CHARS]
        text = upload.file.read().decode("utf-8", errors="replace")
    return name, text


async def _validated(request: web.Request, name: str, text: str) -> LoadedRecipe:
    plane = request.app[PLANE]
    if not text.strip():
        raise InputError([Problem(name, None, "", "empty: paste or upload the recipe's YAML")])
    control = plane.control
    return await request.app[INTAKE].check(name, text, plane.config, control.validation_timeout)


def _problems(request: web.Request, name: str, text: str, exc: InputError) -> web.Response:
    """The recipe's lines, each located problem right under its line (as `mdfd validate`
    prints it), the unlocated ones above."""
    by_line: dict[int, list[str]] = {}
    loose: list[str] = []
    for problem in exc.problems:
        if problem.line is None:
            loose.append(str(problem))
        else:
            by_line.setdefault(problem.line, []).append(str(problem))
    lines = text.splitlines()
    shown = [(n, line, by_line.get(n, [])) for n, line in enumerate(lines, start=1)]
    beyond = [m for n, ms in by_line.items() if n > len(lines) for m in ms]
    return render(
        request, "problems.html", code=422, name=name, lines=shown,
        loose=loose + beyond, count=len(exc.problems),
    )  # fmt: skip


async def check(request: web.Request) -> web.Response:
    """Validate and plan without queuing: point count and duration before anyone commits."""
    name, text = await _recipe_form(request)
    try:
        recipe = await _validated(request, name, text)
    except InputError as exc:
        return _problems(request, name, text, exc)
    plane = request.app[PLANE]
    plan = await asyncio.to_thread(make_plan, recipe, plane.config)
    scale = plan.time_scale
    context: dict[str, Any] = {
        "name": name,
        "text": text,
        "plan": plan,
        "estimate": format_duration(plan.estimated_seconds),
        "wall": format_duration(plan.estimated_seconds / scale) if scale != 1 else "",
        "worst": format_duration(plan.worst_case_seconds),
    }
    return render(request, "preview.html", **context)


async def submit(request: web.Request) -> web.Response:
    name, text = await _recipe_form(request)
    try:
        recipe = await _validated(request, name, text)
    except InputError as exc:
        return _problems(request, name, text, exc)
    plane = request.app[PLANE]
    submitted = await plane.submit(recipe, plane.config, source=name)
    warnings = "; ".join(submitted.warnings)
    return _done(
        request,
        f"queued run {submitted.id} ({submitted.points_total} points)"
        + (f" — {warnings}" if warnings else ""),
    )


async def pause(request: web.Request) -> web.Response:
    paused = await request.app[PLANE].pause(None)
    return _done(request, f"run {paused.paused} pauses after its current point")


async def resume(request: web.Request) -> web.Response:
    form = await request.post()
    run_id = str(form.get("run", "")) or None
    resumed = await request.app[PLANE].resume(run_id)
    return _done(request, f"run {resumed.resumed} resumed")


async def abort(request: web.Request) -> web.Response:
    aborted = await request.app[PLANE].abort(None, REASON)
    return _done(request, f"run {aborted.aborted} aborting: safe state, data kept")


async def drop(request: web.Request) -> web.Response:
    dropped = await request.app[PLANE].drop(request.match_info["id"])
    return _done(request, f"run {dropped.dropped} dropped from the queue")


async def move(request: web.Request) -> web.Response:
    """One place up (`by=-1`) or down (`by=1`) in the queue, through the API's reorder."""
    plane = request.app[PLANE]
    run_id = request.match_info["id"]
    form = await request.post()
    by = -1 if str(form.get("by", "-1")) == "-1" else 1
    order = [run.id for run in await plane.queue()]
    if run_id not in order:
        return _done(request, f"run {run_id} is no longer queued")
    at = order.index(run_id)
    to = min(max(at + by, 0), len(order) - 1)
    order.insert(to, order.pop(at))
    await plane.reorder(order)
    return _done(request, f"run {run_id} moved to place {to + 1}")


async def retry(request: web.Request) -> web.Response:
    form = await request.post()
    publisher = str(form.get("publisher", "")) or None
    requeued = await request.app[PLANE].retry_outbox(publisher)
    return _done(request, f"{requeued.requeued} dead letters requeued")
