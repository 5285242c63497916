"""The daemon's events, one frozen dataclass per kind, and the bus that carries them.

Every producer (engine, scheduler, health monitors, control API) publishes these types and
every consumer (scheduler, progress bar, `mdfctl watch`, the `/events` stream) matches on
them, so a field is named once. On the wire an event is its fields as one NDJSON object whose
`event` member names the kind; the names are the ones clients have read since the stream
existed, and new fields are only ever added (`mdfd schema events` publishes the schema, see
ADR 0054). Watchers get bounded queues; a slow watcher loses its oldest events rather than
slowing the run or growing memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, TypeAdapter, ValidationError

WATCHER_QUEUE = 256


@dataclass(frozen=True, slots=True, kw_only=True)
class Subscribed:
    """First line of a stream: from here on the subscriber misses no event."""

    event: Literal["subscribed"] = "subscribed"


@dataclass(frozen=True, slots=True, kw_only=True)
class Heartbeat:
    """Sent when the stream was quiet for a while: the daemon lives; `state` is its phase."""

    event: Literal["heartbeat"] = "heartbeat"
    state: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Queued:
    """A run was submitted and waits in the queue."""

    event: Literal["queued"] = "queued"
    run: str
    recipe: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Dropped:
    """A queued run was removed from the queue by an operator."""

    event: Literal["dropped"] = "dropped"
    run: str


@dataclass(frozen=True, slots=True, kw_only=True)
class QueueOrder:
    """The operator reordered the queue: the waiting runs' ids, first to run first."""

    event: Literal["queue"] = "queue"
    order: list[str]


@dataclass(frozen=True, slots=True, kw_only=True)
class RunStarted:
    """A run began executing (or resumed executing after a restart, at `points_done`)."""

    event: Literal["run_start"] = "run_start"
    run: str
    recipe: str
    points_total: int
    points_done: int


@dataclass(frozen=True, slots=True, kw_only=True)
class RunState:
    """An executing or held run changed state: paused, running, aborting, released, waiting…"""

    event: Literal["run_state"] = "run_state"
    run: str
    state: str


# Defaults mark what a reader must do without: fields an older daemon did not send. This
# daemon always sends every field (the published schema says so).


@dataclass(frozen=True, slots=True, kw_only=True)
class PointStarted:
    event: Literal["point_start"] = "point_start"
    run: str = ""
    point: int
    parameters: dict[str, float]
    points_total: int
    points_done: int


@dataclass(frozen=True, slots=True, kw_only=True)
class PointEnded:
    """Announced once the point is durable (its checkpoint committed), not when measured."""

    event: Literal["point_end"] = "point_end"
    run: str = ""
    point: int
    status: str
    parameters: dict[str, float] = dataclasses.field(default_factory=dict)
    points_total: int
    points_done: int
    elapsed: float | None = None
    remaining: float | None = None
    remaining_wall: float | None = None
    message: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class Readings:
    """The latest value per channel, a few times a second while a point acquires; null is an
    invalid sample (NaN or ±inf). `point` null: an idle instrument's health probe (one
    channel every few seconds, while no run holds the instrument)."""

    event: Literal["readings"] = "readings"
    point: int | None
    values: dict[str, float | None]


@dataclass(frozen=True, slots=True, kw_only=True)
class RunEnded:
    """A run ended (completed, failed, aborted, interrupted). `run_id` is the name this event
    always had; `run` is the same id under the name every other event uses. The counts are
    null when the run ended before the engine executed it (refused at start, aborted while
    waiting)."""

    event: Literal["run_end"] = "run_end"
    run_id: str
    run: str = ""
    status: str
    message: str = ""
    points_total: int | None = None
    points_done: int | None = None
    points_failed: int | None = None
    wall_seconds: float | None = None
    data_file: str | None = None

    def __post_init__(self) -> None:
        if not self.run:
            object.__setattr__(self, "run", self.run_id)


@dataclass(frozen=True, slots=True, kw_only=True)
class Alarm:
    """A run failed: something a person should look at."""

    event: Literal["alarm"] = "alarm"
    run: str
    message: str


@dataclass(frozen=True, slots=True, kw_only=True)
class UnverifiedInterlock:
    """One interlocked channel the monitor could not read: for how long, and why."""

    channel: str
    seconds: float
    error: str


@dataclass(frozen=True, slots=True, kw_only=True)
class InterlocksUnverified:
    """The interlocked channels that cannot be checked changed (empty: all checked again).
    Past `safety.unverifiable_after` the run stops in its safe state."""

    event: Literal["interlocks"] = "interlocks"
    run: str
    unverified: list[UnverifiedInterlock]


@dataclass(frozen=True, slots=True, kw_only=True)
class InstrumentChanged:
    """An instrument's health changed (as `/status` shows it under `instruments`)."""

    event: Literal["instrument"] = "instrument"
    name: str
    driver: str
    state: str
    identity: str
    error: str
    since: float
    errors: int


Event = (
    Subscribed
    | Heartbeat
    | Queued
    | Dropped
    | QueueOrder
    | RunStarted
    | RunState
    | PointStarted
    | PointEnded
    | Readings
    | RunEnded
    | Alarm
    | InterlocksUnverified
    | InstrumentChanged
)

# What is sent always has every field, defaults included: the schema says so.
_WIRE: TypeAdapter[Any] = TypeAdapter(
    Annotated[Event, Field(discriminator="event")],
    config=ConfigDict(json_schema_serialization_defaults_required=True),
)


def to_wire(event: Event) -> dict[str, Any]:
    """The NDJSON object of one event (encode it with `strictjson.dumps`)."""
    return dataclasses.asdict(event)


def from_wire(data: Any) -> Event | None:
    """A received event, or None for a kind (or shape) this version does not know: a newer
    daemon may send more, and a watcher must go on. Unknown fields are ignored."""
    try:
        event: Event = _WIRE.validate_python(data)
    except ValidationError:
        return None
    return event


def json_schema() -> dict[str, Any]:
    """The stream's JSON Schema: one object per line, one of the kinds above."""
    schema: dict[str, Any] = _WIRE.json_schema(mode="serialization")
    schema["title"] = "Event"
    schema["description"] = (
        "One line of the `/events` NDJSON stream (and of `mdfctl watch --json`). Clients must "
        "ignore kinds and fields they do not know: new ones are added, none renamed."
    )
    return schema


class EventBus:
    def __init__(self) -> None:
        self._watchers: set[asyncio.Queue[Event]] = set()

    def publish(self, event: Event) -> None:
        for queue in self._watchers:
            if queue.full():
                queue.get_nowait()
            queue.put_nowait(event)

    @contextlib.contextmanager
    def watch(self) -> Iterator[asyncio.Queue[Event]]:
        queue: asyncio.Queue[Event] = asyncio.Queue(WATCHER_QUEUE)
        self._watchers.add(queue)
        try:
            yield queue
        finally:
            self._watchers.discard(queue)
