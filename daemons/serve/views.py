"""What the control API answers: one pydantic model per response, published as a JSON Schema
(`mdfd schema api`) and rendered into the docs' reference.

A run has one shape wherever it appears (`GET /runs`, `GET /runs/{id}`, `/status`'s queue
and held runs, the answer to a submit); the detail view only adds to it. Fields are only
ever added, never renamed (ADR 0054), so a client written against an older daemon goes on.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter
from pydantic.json_schema import models_json_schema

from mdfd.daemons.core.config import Identity


class View(BaseModel):
    """A response body. Reading one back (a client, a test) ignores fields it does not know."""

    model_config = ConfigDict(frozen=True, json_schema_serialization_defaults_required=True)


class Run(View):
    """A run as every endpoint shows it. `recipe` and `version` repeat `recipe_name` and
    `recipe_version` under the names the queue listings always used."""

    id: str
    recipe: str
    version: str
    recipe_name: str
    recipe_version: str
    recipe_sha256: str
    recipe_path: str
    status: str = Field(description="queued, running, paused, held, completed, failed, …")
    origin: str = Field(description="who executed it last: daemon or cli")
    points_total: int
    points_done: int
    queue_position: float | None
    created_at: float
    started_at: float | None
    ended_at: float | None
    data_file: str
    identities: dict[str, str] = Field(description="instrument name: identity seen at start")
    message: str


class Progress(View):
    """The executing run as the scheduler follows it from the event stream."""

    id: str
    recipe: str
    state: str = Field(description="running, paused or aborting")
    point: int | None = Field(description="the point executing now")
    parameters: dict[str, float]
    points_done: int
    points_total: int
    latest: dict[str, float | None] = Field(description="latest value per channel; null: NaN")
    remaining_wall_s: float | None
    data_file: str
    interlocks_unverified: list[UnverifiedInterlock] = Field(
        description="interlocked channels the monitor cannot read now: for how long, and why"
    )


class UnverifiedInterlock(View):
    channel: str
    seconds: float
    error: str


class Point(View):
    index: int
    status: str
    parameters: dict[str, float]
    started_at: float
    ended_at: float
    summary: dict[str, Any] = Field(description="per channel: the point's statistics")
    message: str


class FileInfo(View):
    kind: str
    path: str
    exists: bool
    bytes: int | None
    error: str | None = Field(default=None, description="why the file could not be looked at")


class RunDetail(Run):
    """`GET /runs/{id}`: the run, its live progress while it executes, its points, files."""

    recipe_text: str | None = Field(default=None, description="with ?recipe=1")
    config_text: str | None = Field(default=None, description="with ?recipe=1")
    progress: Progress | None
    points: list[Point]
    files: list[FileInfo]


class Submitted(Run):
    """`POST /runs` (201): the queued run, and why it may start far from the run before it."""

    warnings: list[str]


class DaemonInfo(View):
    pid: int
    version: str
    started_at: float
    state: str = Field(description="idle, running, waiting for instruments, stopping")
    status: str = Field(description="one line, as systemd's STATUS= shows it")
    simulate: bool
    config: str


class Instrument(View):
    name: str
    driver: str
    state: str = Field(description="ok, connecting, unavailable or in_run")
    identity: str
    error: str
    since: float
    errors: int = Field(description="failed connects and probes so far")


class Publisher(View):
    """One upstream publisher: its queue in the outbox and its drain's own state."""

    name: str
    type: str
    publisher: str
    pending: int
    oldest_age: float | None
    dead_letters: int
    requeued: int
    delivered: int
    last_delivery_at: float | None
    last_error: str | None = None
    last_error_at: float | None = None
    state: str
    failures: int
    blocked: bool


class Upstream(View):
    publishers: list[Publisher]


class Status(View):
    """`GET /status`."""

    mdf: Identity
    daemon: DaemonInfo
    instruments: dict[str, Instrument]
    current: Progress | None
    queue: list[Run]
    held: list[Run]
    upstream: Upstream


class DeadLetter(View):
    publisher: str
    seq: int
    record_id: str
    run_id: str
    reason: str
    failed_at: float
    attempts: int
    requeued: bool


class Outbox(View):
    """`GET /outbox`: what `mdfd outbox --json` prints."""

    mdf: str
    publishers: list[Publisher]
    dead_letters: list[DeadLetter]


class Requeued(View):
    requeued: int
    publisher: str | None


class Paused(View):
    paused: str


class Resumed(View):
    resumed: str


class Aborted(View):
    aborted: str


class DroppedRun(View):
    dropped: str


class QueueOrder(View):
    queue: list[str] = Field(description="the waiting runs' ids, first to run first")


class CampaignPoint(View):
    trial: int
    point_index: int | None = Field(description="null: not measured yet")
    parameters: dict[str, float]
    objectives: dict[str, float]


class CampaignTrial(CampaignPoint):
    feasible: bool = Field(description="every outcome constraint met")
    best_so_far: float | None = Field(
        description="the first objective's best feasible value up to this trial (null before"
        " the first): the line `mdfd plot` draws"
    )


class Campaign(View):
    """An adaptive run's campaign: its counts and its best point (one objective) or its
    Pareto front (several)."""

    run: str
    objectives: dict[str, str] = Field(description="objective name: maximize or minimize")
    measured: int
    failed: int
    rejected: int = Field(description="proposals that broke an input constraint, never run")
    pending: int = Field(description="proposed (or running), not measured yet")
    budget: int = Field(description="the most points the campaign may measure (max_points)")
    best: list[CampaignPoint] = Field(description="the best feasible point, or the front")
    trials: list[CampaignTrial] = Field(
        description="every measured trial in trial order, with its objective values"
    )


class Injected(View):
    run: str
    parameters: dict[str, float] = Field(
        description="queued: recorded and run after the point executing now (and those"
        " already proposed ahead), told to the optimiser like any other"
    )


class CampaignStopped(View):
    stopped: str = Field(description="the run, which ends completed after its current point")


class Error(View):
    """Every 4xx and 5xx answer; `problems` may be absent (a refusal sent before any
    request is read, such as "too many control connections")."""

    model_config = ConfigDict(frozen=True, json_schema_serialization_defaults_required=False)

    error: str
    problems: list[str] | None = Field(
        default=None, description="with 422 only: one located message per problem in the recipe"
    )


ENDPOINTS: dict[str, Any] = {
    "GET /status": Status,
    "GET /runs": list[Run],
    "POST /runs": Submitted,
    "GET /runs/{id}": RunDetail,
    "DELETE /runs/{id}": DroppedRun,
    "POST /runs/{id}/pause": Paused,
    "POST /runs/{id}/resume": Resumed,
    "POST /runs/{id}/abort": Aborted,
    "GET /runs/{id}/campaign": Campaign,
    "POST /runs/{id}/campaign/points": Injected,
    "POST /runs/{id}/campaign/stop": CampaignStopped,
    "GET /queue": list[Run],
    "POST /queue": QueueOrder,
    "GET /outbox": Outbox,
    "POST /outbox/retry": Requeued,
    "4xx, 5xx": Error,
}
"""Each JSON endpoint and the shape of its answer (`/events` is NDJSON, see `mdfd schema
events`; `/metrics` is Prometheus text)."""


def json_schema() -> dict[str, Any]:
    """Every response's schema under `$defs`, and which endpoint answers with which."""
    models = sorted({m for m in _models()}, key=lambda m: m.__name__)
    _, top = models_json_schema([(m, "serialization") for m in models], title="ApiResponse")
    endpoints: dict[str, Any] = {}
    for route, shape in ENDPOINTS.items():
        if isinstance(shape, type) and issubclass(shape, BaseModel):
            endpoints[route] = {"$ref": f"#/$defs/{shape.__name__}"}
        else:
            item = shape.__args__[0]
            endpoints[route] = {"type": "array", "items": {"$ref": f"#/$defs/{item.__name__}"}}
    return {
        "title": "ApiResponse",
        "description": (
            "The control API's JSON answers. `x-endpoints` names the schema of each endpoint's "
            "answer. Clients must ignore fields they do not know: new ones are added, none "
            "renamed."
        ),
        "x-endpoints": endpoints,
        "anyOf": list(endpoints.values()),
        **top,
    }


def _models() -> list[type[BaseModel]]:
    out = []
    for shape in ENDPOINTS.values():
        out.append(shape if isinstance(shape, type) else shape.__args__[0])
    return out


def dump(view: BaseModel | list[Run]) -> Any:
    """The JSON-ready body of a response (an error without problems has no `problems`)."""
    if isinstance(view, list):
        return _RUNS.dump_python(view, mode="json")
    return view.model_dump(mode="json", exclude_none=isinstance(view, Error))


_RUNS: TypeAdapter[list[Run]] = TypeAdapter(list[Run])
