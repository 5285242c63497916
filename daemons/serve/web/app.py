"""The operator page's aiohttp application: routes, access guard, errors shown in place.

Like the control API it depends only on the `ControlPlane` protocol (an import contract
says so): every button is a call mdfctl also makes, through the same methods.
"""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import Awaitable, Callable
from pathlib import Path

import jinja2
from aiohttp import web

from mdfd.daemons.core.logging import Throttle, get_logger
from mdfd.daemons.serve.controlplane import ControlPlane, NotFound, Refused
from mdfd.daemons.serve.intake import Busy, RecipeIntake

from . import actions, files, live, pages
from .access import COOKIE, CSRF_HEADER, Access
from .keys import ACCESS, INTAKE, PLANE, SESSION, TEMPLATES, TRACKER
from .tracker import Tracker

HERE = Path(__file__).parent
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
PUBLIC = ("/login", "/static/")
ANSWER_SECONDS = 30.0
"""Longest a page request waits for the daemon (the event stream excepted): a busy daemon
gives an error in place, not a spinner forever."""
_failures = Throttle()


def templates() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    env.filters.update(pages.FILTERS)
    for name in env.list_templates():
        env.get_template(name)  # read and compiled now, not from disk on the event loop
    return env


def build_web_app(plane: ControlPlane, access: Access, tracker: Tracker) -> web.Application:
    app = web.Application(
        client_max_size=plane.control.max_request_bytes, middlewares=[_guard, _errors]
    )
    app[PLANE] = plane
    app[ACCESS] = access
    app[TRACKER] = tracker
    app[TEMPLATES] = templates()
    intake = RecipeIntake()
    app[INTAKE] = intake

    async def close_intake(_: web.Application) -> None:
        intake.close()

    app.on_cleanup.append(close_intake)
    app.on_response_prepare.append(_hardened)
    app.add_routes(
        [
            web.get("/", pages.page),
            web.get("/login", pages.login_form),
            web.post("/login", actions.login),
            web.post("/logout", actions.logout),
            web.get("/view/{name}", pages.view),
            web.get("/fragment/{name}", pages.fragment),
            web.get("/events", live.events),
            web.post("/act/check", actions.check),
            web.post("/act/submit", actions.submit),
            web.post("/act/pause", actions.pause),
            web.post("/act/resume", actions.resume),
            web.post("/act/abort", actions.abort),
            web.post("/act/drop/{id}", actions.drop),
            web.post("/act/move/{id}", actions.move),
            web.post("/act/retry", actions.retry),
            web.get("/files/{id}/{kind}", files.download),
            web.static("/static", HERE / "static", append_version=False),
        ]
    )
    return app


HARDENING = {
    # No other site may frame the page: a hidden frame could trick a click on Abort.
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "frame-ancestors 'none'; default-src 'self'; "
    "style-src 'self' 'unsafe-inline'; img-src 'self' data:",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",  # no-referrer would make a form send `Origin: null`
}


async def _hardened(_: web.Request, response: web.StreamResponse) -> None:
    response.headers.update(HARDENING)


def _refuse(status: int, message: str) -> web.Response:
    return web.Response(
        status=status,
        text=f'<div class="error" role="alert">{message}</div>',
        content_type="text/html",
    )


@web.middleware
async def _guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Login, role and CSRF, before any handler runs or any body is read."""
    unsafe = request.method not in ("GET", "HEAD")
    if unsafe and not _same_origin(request):
        return _refuse(403, "cross-site request refused")
    if request.path.startswith(PUBLIC):
        return await handler(request)
    access = request.app[ACCESS]
    session = access.session(request.cookies.get(COOKIE))
    if session is None:
        if request.method == "GET" and "HX-Request" not in request.headers:
            raise web.HTTPSeeOther("/login")
        response = _refuse(401, "not logged in (or the session expired): log in again")
        response.headers["HX-Redirect"] = "/login"
        return response
    if unsafe:
        given = request.headers.get(CSRF_HEADER, "").encode()
        if not hmac.compare_digest(given, session.csrf.encode()):
            return _refuse(403, "missing or stale CSRF token: reload the page")
        if session.role != "operator" and request.path != "/logout":
            return _refuse(403, "read-only session: you can watch, not change")
    request[SESSION] = session
    return await handler(request)


def _same_origin(request: web.Request) -> bool:
    origin = request.headers.get("Origin")
    return origin is None or origin == f"{request.scheme}://{request.host}"


@web.middleware
async def _errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """A failed call is an error shown where its answer would have gone, never a blank page."""
    try:
        if request.path == "/events":
            return await handler(request)
        async with asyncio.timeout(ANSWER_SECONDS):
            return await handler(request)
    except web.HTTPException:
        raise
    except TimeoutError:
        return _refuse(503, f"the daemon did not answer within {ANSWER_SECONDS:g} s: try again")
    except Refused as exc:
        return _refuse(409, f"refused: {exc}")
    except NotFound as exc:
        return _refuse(404, f"not found: {exc}")
    except Busy as exc:
        return _refuse(503, f"busy: {exc}")
    except Exception as exc:
        dropped = _failures.allow(request.path)
        if dropped is not None:
            get_logger(component="web").exception(
                "page request failed", path=request.path, suppressed=dropped
            )
        return _refuse(500, f"the daemon could not answer: {exc!r}")
