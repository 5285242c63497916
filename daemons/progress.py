"""What an operator sees while `mdfd run` works: a progress bar on a TTY, log lines otherwise."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from .engine.events import EventBus

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


async def _follow(queue: asyncio.Queue[dict[str, Any]], progress: Progress, task_id: Any) -> None:
    parameters = ""
    while True:
        event = await queue.get()
        kind = event["event"]
        if kind == "point_start":
            parameters = " ".join(f"{k}={v:g}" for k, v in event["parameters"].items())
            progress.update(task_id, detail=parameters)
        elif kind == "point_end":
            remaining = _format(event["remaining_wall"])
            progress.update(task_id, completed=event["points_done"], remaining=f"~{remaining} left")
        elif kind == "readings":
            values = " ".join(f"{k}={v:.4g}" for k, v in list(event["values"].items())[:4])
            progress.update(task_id, detail=f"{parameters} | {values}")


def _format(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes}m{secs:02d}s"
