"""One-shot execution for `mdfd run` and `mdfd resume`: one run, then exit with its status."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import secrets
import signal
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from mdfd.daemons.core.config import LoadedConfig
from mdfd.daemons.core.logging import get_logger
from mdfd.daemons.engine.control import RunControl
from mdfd.daemons.engine.events import EventBus
from mdfd.daemons.engine.runner import RunExecutor, RunOutcome
from mdfd.daemons.store import Origin, RunRow, RunStatus, StateDB
from mdfd.daemons.store.lock import StateLock
from mdfd.recipes.loader import LoadedRecipe
from mdfd.recipes.located import InputError, Problem

from .progress import progress_display
from .simulation import running_simulators
from .summary import NO_UPSTREAM, Delivery, Finished, destination

if TYPE_CHECKING:
    from mdfd.daemons.upstream.service import UpstreamService

log = get_logger()

EXIT_CODES = {
    RunStatus.COMPLETED: 0,
    RunStatus.FAILED: 1,
    RunStatus.ABORTED: 1,
    RunStatus.INTERRUPTED: 3,
    RunStatus.COMPLETED_WITH_FAILURES: 4,
}


def state_db(config: LoadedConfig) -> StateDB:
    return StateDB(config.model.storage.state_dir / "state.sqlite3")


def existing_state_db(config: LoadedConfig) -> StateDB:
    """The state database for a command that only reads it (`runs`, `outbox`): never created.

    A relative `storage.state_dir` resolves against the working directory, so from another
    directory opening it would silently create an empty database there and report no runs.
    """
    db = state_db(config)
    if not db.path.is_file():
        message = (
            f"no state database at {db.path.resolve()}: no run was made with this config "
            "from here (a relative storage.state_dir is relative to the working directory)"
        )
        raise InputError([Problem(str(config.path), None, "storage.state_dir", message)])
    return db


def new_run_id(recipe: LoadedRecipe) -> str:
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"{stamp}-{recipe.model.recipe.name}-{secrets.token_hex(2)}"


async def create_run(
    state: StateDB,
    config: LoadedConfig,
    recipe: LoadedRecipe,
    status: RunStatus = RunStatus.QUEUED,
    origin: Origin = Origin.CLI,
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
        origin=origin,
    )
    row = await state.run(run_id)
    assert row is not None
    return row


@contextlib.asynccontextmanager
async def _maybe_simulators(config: LoadedConfig, simulate: bool) -> AsyncIterator[None]:
    if simulate:
        async with running_simulators(config):
            yield
    else:
        yield


async def execute_once(
    config: LoadedConfig, state: StateDB, run: RunRow, simulate: bool
) -> Finished:
    """Run (or resume) `run` with SIGTERM/SIGINT meaning: stop now, safe state, resumable.

    A person executes it: a daemon started later holds it unless its policy says otherwise.
    What fails before the executor runs (a simulator's port in use, the outbox) ends the run
    `failed` with the cause — left waiting, a daemon would have run it unprompted.
    """
    # Imported here: the publishers pull in aiohttp, which every other `mdfd` command that
    # only needs `state_db` would otherwise pay for at start-up.
    from mdfd.daemons.upstream.service import UpstreamService

    control = RunControl()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(
            signum, control.interrupt, f"interrupted by {signal.Signals(signum).name}"
        )
    events = EventBus()
    await state.set_origin(run.id, Origin.CLI)
    if not config.model.upstream.publishers:
        log.warning(NO_UPSTREAM)
    try:
        async with contextlib.AsyncExitStack() as stack:
            try:
                await stack.enter_async_context(_maybe_simulators(config, simulate))
                upstream = await stack.enter_async_context(UpstreamService(config, state))
            except Exception as exc:
                return await _not_started(state, run, f"cannot start: {exc}")
            executor = RunExecutor(
                config, state, events=events, control=control, record_hook=upstream.record_hook
            )
            async with progress_display(events, run.points_total, run.points_done):
                outcome = await executor.execute(run)
            if not control.stop_requested.is_set():
                # Deliver what can be delivered now; the outbox keeps the rest for the next start.
                await upstream.drain_until_idle(config.model.upstream.exit_drain_timeout)
            return Finished(outcome, await _deliveries(config, upstream))
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)


async def _not_started(state: StateDB, run: RunRow, message: str) -> Finished:
    """A run that never began has failed; one being resumed stays resumable (interrupted)."""
    began = run.started_at is not None or run.points_done > 0
    status = RunStatus.INTERRUPTED if began else RunStatus.FAILED
    log.error("run cannot start", run=run.id, error=message)
    await state.set_status(run.id, status, message)
    outcome = RunOutcome(
        run.id, status, run.points_total, run.points_done, 0, 0.0, run.data_file, message
    )
    return Finished(outcome, [])


async def _deliveries(config: LoadedConfig, upstream: UpstreamService) -> list[Delivery]:
    depths = {d.publisher: d for d in await upstream.depth()}
    return [
        Delivery(
            publisher=p.name,
            destination=destination(p),
            undelivered=depths[p.name].pending,
            dead_letters=depths[p.name].dead_letters,
        )
        for p in config.model.upstream.publishers
    ]


def run_blocking(config: LoadedConfig, body) -> int:
    """Hold the MDF's lock around an asyncio body that returns an exit code."""
    config.model.storage.data_dir.mkdir(parents=True, exist_ok=True)
    with StateLock(config.model.storage.state_dir):
        return asyncio.run(body())
