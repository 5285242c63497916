"""What the HTTP layer may ask of the daemon: the `ControlPlane` protocol (ADR 0054).

The API speaks HTTP and nothing else: it parses a request, calls one of these methods and
serialises the typed answer (`views`). It never reaches into the daemon's parts (scheduler,
executor, health monitors), so those can change without the API noticing, and the API can be
tested against any implementation. `Daemon` implements it (through `operations.Operations`).
"""

from __future__ import annotations

import asyncio
from contextlib import AbstractContextManager
from typing import Protocol

from mdfd.daemons.core.config import Control, LoadedConfig
from mdfd.daemons.engine.events import Event, Heartbeat, RunStarted
from mdfd.recipes.loader import LoadedRecipe

from . import views

CURRENT = "current"
"""The run id that names the executing run."""


class Refused(Exception):
    """An operator request that does not apply now (HTTP 409, mdfctl exit 1)."""


class NotFound(Exception):
    """No such run (HTTP 404)."""


class BadPoint(Exception):
    """A person's point that does not fit the campaign (HTTP 422, one message per problem)."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("; ".join(problems))


class ControlPlane(Protocol):
    """Operator requests raise `Refused` when they do not apply now (HTTP 409)."""

    @property
    def closing(self) -> asyncio.Event:
        """Set when the daemon stops: event streams end."""
        ...

    @property
    def control(self) -> Control:
        """The control API's own settings (body size and timeouts), as configured now."""
        ...

    @property
    def config(self) -> LoadedConfig:
        """The config a submitted recipe is validated against (the one in force now)."""
        ...

    async def status(self) -> views.Status: ...

    async def runs(self, status: str | None = None) -> list[views.Run]: ...

    async def run_detail(self, run_id: str, with_texts: bool = False) -> views.RunDetail:
        """One run; `current` names the executing run. Raises NotFound."""
        ...

    async def submit(
        self, recipe: LoadedRecipe, config: LoadedConfig, source: str
    ) -> views.Submitted:
        """Queue a validated recipe (validated against `config`)."""
        ...

    async def pause(self, run_id: str | None) -> views.Paused: ...

    async def resume(self, run_id: str | None) -> views.Resumed: ...

    async def abort(self, run_id: str | None, reason: str) -> views.Aborted: ...

    async def campaign(self, run_id: str) -> views.Campaign:
        """An adaptive run's campaign; `current` names the executing run. Raises NotFound
        (no such run, or not adaptive)."""
        ...

    async def inject(self, run_id: str | None, parameters: dict[str, object]) -> views.Injected:
        """Queue a person's point in the executing campaign. Raises Refused when no adaptive
        run executes, BadPoint (HTTP 422) when the point does not fit the campaign."""
        ...

    async def stop_campaign(self, run_id: str | None, reason: str) -> views.CampaignStopped:
        """End the executing campaign after its current point (completed, not aborted)."""
        ...

    async def queue(self) -> list[views.Run]: ...

    async def reorder(self, order: list[str]) -> views.QueueOrder: ...

    async def drop(self, run_id: str) -> views.DroppedRun:
        """Remove a queued run. Raises NotFound, or Refused when it is not queued."""
        ...

    async def outbox(self) -> views.Outbox: ...

    async def retry_outbox(self, publisher: str | None) -> views.Requeued: ...

    async def metrics(self) -> str:
        """Prometheus text exposition."""
        ...

    def subscribe(self) -> AbstractContextManager[asyncio.Queue[Event]]:
        """Every event published from now on, until the context ends."""
        ...

    def heartbeat(self) -> Heartbeat: ...

    def executing(self) -> str | None:
        """The id of the executing run, if any."""
        ...

    def run_started(self, run_id: str) -> RunStarted | None:
        """The `run_start` event run `run_id` published, while it executes (None otherwise):
        a stream of that run opened after it started begins with it."""
        ...
