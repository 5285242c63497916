"""What the page shows that no API call answers: when each instrument was last read, its
latest values, and which interlock alarms fired when. Follows the event stream for the web
server's lifetime (its owner, `WebServer`, starts and stops it)."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from ...engine.events import Alarm, Readings
from ..controlplane import ControlPlane

MAX_ALARMS = 50


@dataclass
class Seen:
    at: float
    value: float | None


@dataclass
class Tracker:
    values: dict[str, Seen] = field(default_factory=dict)
    alarms: list[tuple[float, str, str]] = field(default_factory=list)

    async def follow(self, plane: ControlPlane) -> None:
        """Until cancelled or the daemon closes: every wait bounded, so a close is seen."""
        with plane.subscribe() as events:
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
                for channel, value in values.items():
                    self.values[channel] = Seen(now, value)
            case Alarm(run=run, message=message):
                self.alarms.append((now, run, message))
                del self.alarms[:-MAX_ALARMS]

    def last_read(self, instrument: str) -> float | None:
        prefix = f"{instrument}."
        times = [s.at for name, s in self.values.items() if name.startswith(prefix)]
        return max(times) if times else None
