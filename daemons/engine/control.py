"""Operator control of a running run: pause between steps, resume, abort."""

from __future__ import annotations

import asyncio


class RunAborted(Exception):
    """The operator aborted the run."""


class RunControl:
    """Shared by the engine and whoever commands it (signal handlers, the control API).

    `stop_requested` fires for both abort (final) and interrupt (SIGTERM: resumable); the
    engine then stops the current step at once rather than at the next step boundary. A pause
    takes effect at the next step boundary: `parked` is set while the engine actually waits
    there, so "pause requested" and "nothing is moving" can be told apart.
    """

    def __init__(self) -> None:
        self._running = asyncio.Event()
        self._running.set()
        self.parked = asyncio.Event()
        self.stop_requested = asyncio.Event()
        self.abort_reason: str | None = None
        self.interrupt_reason: str | None = None
        # An adaptive campaign: a person's early end (after the current point, the run ends
        # completed) and the points a person chose, told to the optimiser like any other.
        self.finish_reason: str | None = None
        self.injected: list[dict[str, float]] = []

    def finish(self, reason: str = "campaign stopped early by operator") -> None:
        self.finish_reason = reason

    def inject(self, point: dict[str, float]) -> None:
        self.injected.append(dict(point))

    def interrupt(self, reason: str = "interrupted") -> None:
        self.interrupt_reason = reason
        self._running.set()
        self.stop_requested.set()

    @property
    def paused(self) -> bool:
        return not self._running.is_set()

    def pause(self) -> None:
        self._running.clear()

    def resume(self) -> None:
        self._running.set()

    def abort(self, reason: str = "aborted by operator") -> None:
        self.abort_reason = reason
        self._running.set()
        self.stop_requested.set()

    async def checkpoint(self) -> None:
        """Between steps: wait while paused, stop if aborted."""
        if self.abort_reason is not None:
            raise RunAborted(self.abort_reason)
        if not self._running.is_set():
            self.parked.set()
            try:
                await self._running.wait()
            finally:
                self.parked.clear()
        if self.abort_reason is not None:
            raise RunAborted(self.abort_reason)
