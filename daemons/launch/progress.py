"""What an operator sees while `mdfd run` works: a progress bar on a TTY, log lines otherwise."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from mdfd.daemons.engine.events import Event, EventBus, PointEnded, PointStarted, Readings

EVENT_WAIT_SECONDS = 1.0


@contextlib.asynccontextmanager
async def progress_display(events: EventBus, total: int, done: int) -> AsyncIterator[None]:
    if not sys.stderr.isatty():
        yield
        return
    console = Console(stderr=True)
    progress = Progress(
        TextColumn("[bold]point"),
        MofNCompleteColumn(),
        BarColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[remaining]}"),
        TextColumn("{task.fields[detail]}"),
        console=console,
        transient=False,
    )
    task_id = progress.add_task("run", total=total, completed=done, remaining="", detail="")
    with events.watch() as queue, progress:
        updater = asyncio.create_task(_follow(queue, progress, task_id))
        try:
            yield
        finally:
            updater.cancel()
            await asyncio.gather(updater, return_exceptions=True)


async def _follow(queue: asyncio.Queue[Event], progress: Progress, task_id: Any) -> None:
    parameters = ""
    while True:
        match await queue.get():
            case PointStarted(parameters=values):
                parameters = " ".join(f"{k}={v:g}" for k, v in values.items())
                progress.update(task_id, detail=parameters)
            case PointEnded(points_done=done, remaining_wall=remaining_wall):
                remaining = "" if remaining_wall is None else f"~{_format(remaining_wall)} left"
                progress.update(task_id, completed=done, remaining=remaining)
            case Readings(values=values):
                shown = " ".join(f"{k}={_value(v)}" for k, v in list(values.items())[:4])
                progress.update(task_id, detail=f"{parameters} | {shown}")


def _value(value: float | None) -> str:
    return "n/a" if value is None else format(value, ".4g")


def _format(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes}m{secs:02d}s"
