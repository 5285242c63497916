"""One-shot execution for `mdfd run` and `mdfd resume`: one run, then exit with its status."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import secrets
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

from rich.console import Console

from mdfd.recipes.loader import LoadedRecipe

from .config import LoadedConfig
from .engine.control import RunControl
from .engine.events import EventBus
from .engine.runner import RunExecutor, RunOutcome
from .lock import StateLock
from .progress import progress_display
from .simulation import running_simulators
from .state import RunRow, RunStatus, StateDB

EXIT_CODES = {
    RunStatus.COMPLETED: 0,
    RunStatus.FAILED: 1,
    RunStatus.ABORTED: 1,
    RunStatus.INTERRUPTED: 3,
    RunStatus.COMPLETED_WITH_FAILURES: 4,
}


def state_db(config: LoadedConfig) -> StateDB:
    return StateDB(config.model.storage.state_dir / "state.sqlite3")


def new_run_id(recipe: LoadedRecipe) -> str:
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"{stamp}-{recipe.model.recipe.name}-{secrets.token_hex(2)}"


async def create_run(
    state: StateDB, config: LoadedConfig, recipe: LoadedRecipe, status: RunStatus = RunStatus.QUEUED
) -> RunRow:
    run_id = new_run_id(recipe)
    data_file = config.model.storage.data_dir / f"{run_id}.h5"
    await state.create_run(
        run_id=run_id,
        recipe_name=recipe.model.recipe.name,
        recipe_version=recipe.model.recipe.version,
        recipe_sha256=recipe.sha256,
        recipe_text=recipe.text,
        recipe_path=recipe.path,
        config_text=config.text,
        points_total=recipe.model.sweep.count(),
        status=status,
        data_file=str(data_file),
    )
    row = await state.run(run_id)
    assert row is not None
    return row


@contextlib.asynccontextmanager
async def _maybe_simulators(config: LoadedConfig, simulate: bool) -> AsyncIterator[None]:
    if simulate:
        async with running_simulators(config.model):
            yield
    else:
        yield


async def execute_once(
    config: LoadedConfig, state: StateDB, run: RunRow, simulate: bool
) -> RunOutcome:
    """Run (or resume) `run` with SIGTERM/SIGINT meaning: stop now, safe state, resumable."""
    # Imported here: the publishers pull in aiohttp, which every other `mdfd` command that
    # only needs `state_db` would otherwise pay for at start-up.
    from .upstream.service import UpstreamService

    control = RunControl()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(
            signum, control.interrupt, f"interrupted by {signal.Signals(signum).name}"
        )
    events = EventBus()
    try:
        async with _maybe_simulators(config, simulate), UpstreamService(config, state) as upstream:
            executor = RunExecutor(
                config, state, events=events, control=control, record_hook=upstream.record_hook
            )
            async with progress_display(events, run.points_total, run.points_done):
                outcome = await executor.execute(run)
            if not control.stop_requested.is_set():
                # Deliver what can be delivered now; the outbox keeps the rest for the next start.
                await upstream.drain_until_idle(config.model.upstream.exit_drain_timeout)
            return outcome
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)


def run_blocking(config: LoadedConfig, body) -> int:
    """Hold the MDF's lock around an asyncio body that returns an exit code."""
    config.model.storage.data_dir.mkdir(parents=True, exist_ok=True)
    with StateLock(config.model.storage.state_dir):
        return asyncio.run(body())


def print_summary(outcome: RunOutcome, as_json: bool) -> None:
    if as_json:
        print(json.dumps(outcome.as_dict()))
        return
    console = Console()
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
    console.print(f"  data: {Path(outcome.data_file).resolve()}")
    if outcome.message:
        console.print(f"  message: {outcome.message}")
    if outcome.status is RunStatus.INTERRUPTED:
        console.print(f"  resume with: mdfd resume --config CONFIG {outcome.run_id}", style="dim")
    sys.stdout.flush()
