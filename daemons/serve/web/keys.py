"""The web application's typed keys (one module, so handlers and the app share them)."""

from __future__ import annotations

import jinja2
from aiohttp import web

from mdfd.daemons.serve.controlplane import ControlPlane
from mdfd.daemons.serve.intake import RecipeIntake

from .access import Access, Session
from .tracker import Tracker

PLANE = web.AppKey("control plane", ControlPlane)
ACCESS = web.AppKey("access", Access)
TRACKER = web.AppKey("tracker", Tracker)
TEMPLATES = web.AppKey("templates", jinja2.Environment)
INTAKE = web.AppKey("intake", RecipeIntake)
SESSION = web.RequestKey("session", Session)
