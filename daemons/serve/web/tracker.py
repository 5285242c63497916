"""What the page shows that no API call answers: when each instrument was last read, its
latest values, and which interlock alarms fired when. Follows the event stream for the web
server's lifetime (its owner, `WebServer`, starts and stops it)."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

import structlog

from mdfd.daemons.engine.events import Alarm, Readings
from mdfd.daemons.serve.controlplane import ControlPlane

MAX_ALARMS = 50


@dataclass
class Tracker:
    """`values` and `read_at` are keyed by qualified channel (`furnace.temperature`); both
    are updated with dict operations only, so a 1000-channel reading at 10 Hz stays cheap."""

    values: dict[str, float | None] = field(default_factory=dict)
    read_at: dict[str, float] = field(default_factory=dict)
    alarms: list[tuple[float, str, str]] = field(default_factory=list)

    async def follow(self, plane: ControlPlane) -> None:
        """Until cancelled or the daemon closes: every wait bounded, so a close is seen.

        Alarms begin with the failed runs the store holds, so a restart (or a crash) does not
        empty the list an operator looks at; subscribed first, so none falls in between."""
        with plane.subscribe() as events:
            await self._earlier_alarms(plane)
            while not plane.closing.is_set():
                try:
                    async with asyncio.timeout(0.5):
                        event = await events.get()
                except TimeoutError:
                    continue
                self.note(event)

    def note(self, event: object) -> None:
        now = time.time()
        match event:
            case Readings(values=values):
                self.values.update(values)
                self.read_at.update(dict.fromkeys(values, now))
            case Alarm(run=run, message=message) if all(r != run for _, r, _ in self.alarms):
                self.alarms.append((now, run, message))
                del self.alarms[:-MAX_ALARMS]

    async def _earlier_alarms(self, plane: ControlPlane) -> None:
        try:
            failed = await plane.runs("failed")
        except Exception as exc:  # the page still follows what happens from now on
            structlog.get_logger().warning("earlier alarms unavailable", error=str(exc))
            return
        failed.sort(key=lambda run: run.ended_at or run.created_at)
        for run in failed[-MAX_ALARMS:]:
            self.alarms.append((run.ended_at or run.created_at, run.id, run.message))

    def last_read(self, instrument: str) -> float | None:
        prefix = f"{instrument}."
        times = [at for name, at in self.read_at.items() if name.startswith(prefix)]
        return max(times) if times else None
