"""The summary `mdfd run` and `mdfd resume` print at the end: what happened, where it went.

Everything in it must be usable as printed: the data path whole (never wrapped), the resume
command with the config and `--simulate` it needs, and where the records went — including
"nowhere" when the config has no `upstream:` publishers (ADR 0037).
"""

from __future__ import annotations

import shlex
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from mdfd.daemons.core import strictjson
from mdfd.daemons.core.config import FilePublisher, HttpPublisher, LoadedConfig, Publisher
from mdfd.daemons.core.console import output_console
from mdfd.daemons.core.redact import redact_url
from mdfd.daemons.engine.runner import RunOutcome
from mdfd.daemons.store import RunStatus

NO_UPSTREAM = (
    "no upstream publishers configured (config has no `upstream:` section): "
    "records are not sent anywhere; the data stays in the HDF5 file"
)


@dataclass(frozen=True)
class Delivery:
    """One publisher after the exit drain: where it sends, and what is still queued for it."""

    publisher: str
    destination: str
    undelivered: int
    dead_letters: int


@dataclass(frozen=True)
class Finished:
    outcome: RunOutcome
    deliveries: list[Delivery]


def destination(publisher: Publisher) -> str:
    if isinstance(publisher, FilePublisher):
        return f"file spool {publisher.directory.resolve()}"
    if isinstance(publisher, HttpPublisher):
        return f"HTTP {redact_url(publisher.url)}"  # secrets stay in the process
    return f"MQTT {publisher.host}:{publisher.port}"


def resume_command(config: LoadedConfig, run_id: str, simulate: bool) -> str:
    """The command that continues the run, from any directory (absolute config path)."""
    words = ["mdfd", "resume", "--config", str(config.path.resolve()), run_id]
    if simulate:
        words.append("--simulate")
    return shlex.join(words)


def print_summary(finished: Finished, config: LoadedConfig, simulate: bool, as_json: bool) -> None:
    outcome = finished.outcome
    resume = (
        resume_command(config, outcome.run_id, simulate)
        if outcome.status is RunStatus.INTERRUPTED
        else None
    )
    if as_json:
        data: dict[str, Any] = {
            **outcome.as_dict(),
            "upstream": [asdict(d) for d in finished.deliveries],
            "resume_command": resume,
        }
        print(strictjson.dumps(data))
        return
    console = output_console()
    colour = {
        "completed": "green",
        "interrupted": "yellow",
        "completed_with_failures": "yellow",
    }.get(outcome.status.value, "red")
    console.print(f"run [bold]{outcome.run_id}[/bold]: [{colour}]{outcome.status.value}[/{colour}]")
    console.print(
        f"  points: {outcome.points_done} of {outcome.points_total} done"
        + (f", {outcome.points_failed} failed or skipped" if outcome.points_failed else "")
    )
    console.print(f"  duration: {outcome.wall_seconds:.1f} s")
    console.print(f"  data: {Path(outcome.data_file).resolve()}", highlight=False, markup=False)
    if not finished.deliveries:
        console.print(f"  records: {NO_UPSTREAM}", style="yellow", highlight=False)
    for d in finished.deliveries:
        dead = f", {d.dead_letters} dead letter(s)" if d.dead_letters else ""
        console.print(
            f"  records [{d.publisher}]: {d.destination}, {d.undelivered} undelivered{dead}",
            highlight=False,
            markup=False,
        )
    if outcome.message:
        console.print(f"  message: {outcome.message}", highlight=False, markup=False)
    if resume is not None:
        console.print(f"  resume with: {resume}", style="dim", highlight=False, markup=False)
    sys.stdout.flush()
