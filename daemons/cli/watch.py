"""`mdfctl watch`: follow one run live until it ends — a rich progress bar on a terminal,
one line per point otherwise, NDJSON events with --json.

The event stream is opened *before* the run's state is read, so a run that ends between the
two is still seen ending. The exit code is the run's: 0 completed, 1 anything else.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from mdfd.daemons.core import strictjson
from mdfd.daemons.core.console import output_console
from mdfd.daemons.engine.events import (
    PointEnded,
    PointStarted,
    Readings,
    RunEnded,
    RunStarted,
    RunState,
    from_wire,
    to_wire,
)

from .client import EXIT_FAILED, EXIT_OK, EXIT_UNREACHABLE, Client, CtlError

FINISHED = {"completed", "completed_with_failures", "aborted", "failed"}


def _values(values: dict[str, float | None]) -> str:
    """None is an invalid sample (NaN or ±inf on the wire, null in JSON)."""
    return "  ".join(f"{k}={'n/a' if v is None else format(v, '.5g')}" for k, v in values.items())


def _parameters(parameters: dict[str, float]) -> str:
    return " ".join(f"{k}={v:g}" for k, v in parameters.items())


class _Display:
    """Progress bar and latest values on a TTY; plain lines elsewhere (logs, pipes, tests)."""

    def __init__(self, run: dict[str, Any], as_json: bool) -> None:
        self.as_json = as_json
        self.console = output_console()
        self.live = not as_json and self.console.is_terminal
        self.run_id = run["id"]
        self.total = run["points_total"]
        self.params = ""
        # Per point index: with group commits `point_end` for i arrives after `point_start`
        # for i+1, so "the latest parameters" would label point i with point i+1's (a daemon
        # from before group commits sent no parameters with `point_end`).
        self.point_params: dict[int, str] = {}
        self.progress = Progress(
            TextColumn("[bold]point"),
            MofNCompleteColumn(),
            BarColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.fields[state]}"),
            TextColumn("{task.fields[detail]}"),
            console=self.console,
        )
        self.task = self.progress.add_task(
            "run", total=self.total, completed=run["points_done"], state="", detail=""
        )

    @contextlib.contextmanager
    def shown(self) -> Iterator[None]:
        if self.live:
            with self.progress:
                yield
        else:
            yield

    def event(self, received: dict[str, Any]) -> None:
        """One event as it came: printed as is with --json (a newer daemon's fields and kinds
        pass through), else shown if this version knows its kind."""
        if self.as_json:
            print(strictjson.dumps(received), flush=True)
            return
        match from_wire(received):
            case PointStarted(point=index, parameters=parameters):
                self.params = _parameters(parameters)
                self.point_params[index] = self.params
                self._update(detail=self.params)
            case PointEnded(point=index, status=status, points_done=done, parameters=parameters):
                self._update(completed=done)
                params = self.point_params.pop(index, "")
                if parameters:
                    params = _parameters(parameters)
                if not self.live:
                    print(
                        f"point {index} {status} ({done}/{self.total} done) {params}".rstrip(),
                        flush=True,
                    )
            case Readings(point=int(), values=values):  # the run's, not a health probe's
                self._update(detail=f"{self.params} | {_values(values)}")
            case RunState(state=state):
                self._update(state=state)
                if not self.live:
                    print(f"run {self.run_id}: {state}", flush=True)
            case RunStarted() if not self.live:
                print(f"run {self.run_id}: started", flush=True)

    def _update(self, **fields: Any) -> None:
        if self.live:
            self.progress.update(self.task, **fields)

    def end(self, ended: RunEnded) -> int:
        """Say how the run ended; the exit code: 0 completed, 1 anything else."""
        if self.as_json:
            # The last NDJSON line says how the run ended, live or already finished.
            print(strictjson.dumps(to_wire(ended)), flush=True)
        else:
            note = f": {ended.message}" if ended.message else ""
            self.console.print(f"run {self.run_id} {ended.status}{note}", highlight=False)
        return EXIT_OK if ended.status == "completed" else EXIT_FAILED


def _ended(run: dict[str, Any]) -> RunEnded:
    """The end of a run that had already finished when the watch began, from its record."""
    return RunEnded(
        run_id=run["id"],
        status=run["status"],
        message=run.get("message") or "",
        points_total=run["points_total"],
        points_done=run["points_done"],
        data_file=run.get("data_file"),
    )


async def _default_run(client: Client) -> str:
    """The executing run, else the next one to execute: right after `submit` the run may still
    wait (for instruments, for the run before it) and watching it means waiting for it."""
    status = await client.request("GET", "/status")
    if status["current"] is not None:
        return str(status["current"]["id"])
    if status["queue"]:
        return str(status["queue"][0]["id"])
    raise CtlError(EXIT_FAILED, "no run is executing or queued: nothing to watch")


async def watch(client: Client, run_id: str | None, as_json: bool) -> int:
    if run_id is None:
        run_id = await _default_run(client)
    stream = client.stream(f"/events?run={quote(run_id)}")
    try:
        await anext(stream)  # "subscribed": from here on no event of the run is missed
        run = await client.request("GET", f"/runs/{quote(run_id)}")
        display = _Display(run, as_json)
        if run["status"] in FINISHED:
            return display.end(_ended(run))
        if run["status"] == "queued" and not as_json:
            display.console.print(f"run {run_id}: queued, waiting to start", highlight=False)
        ended: RunEnded | None = None
        with display.shown():
            async for received in stream:
                if isinstance(event := from_wire(received), RunEnded):
                    ended = event
                    break
                display.event(received)
        if ended is not None:
            return display.end(ended)
    except StopAsyncIteration:
        pass
    finally:
        await stream.aclose()
    raise CtlError(
        EXIT_UNREACHABLE,
        f"the daemon at {client.target.describe()} closed the event stream (stopping?)",
    )
