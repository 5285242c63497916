"""One drain task per publisher: read past its cursor, deliver, then commit the new cursor.

Delivery is at-least-once by construction (deliver, then commit), and harmless to repeat:
record ids are deterministic and the file spool skips ids it already holds. Transient failures
are retried with tenacity — exponential backoff with jitter, capped — for as long as it takes:
no record is dropped while it is retryable. A permanent rejection of a batch is narrowed down
by halving until the records at fault are found; only those become dead letters.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    wait_exponential,
    wait_random,
)

from mdfd.daemons.core.logging import get_logger
from mdfd.daemons.store import StateDB, StateFull, outbox
from mdfd.daemons.store.outbox import Entry
from mdfd.daemons.upstream.publishers.base import Blocked, Publisher, Rejected, Retryable


@dataclass(frozen=True, slots=True)
class Outcome:
    """A batch the receiver has answered for, waiting for its cursor to be committed."""

    delivered: list[Entry]
    rejected: list[tuple[Entry, str]]
    from_dead: bool


@dataclass
class DrainStatus:
    """What an operator needs to see about one publisher beyond its queue depth."""

    state: str = "stopped"
    last_error: str | None = None
    last_error_at: float | None = None
    failures: int = 0
    blocked: bool = False

    def as_dict(self) -> dict[str, Any]:
        """Fields left unset do not hide what the outbox remembers from an earlier process."""
        return {k: v for k, v in self.__dict__.items() if v is not None}


class Drain:
    def __init__(
        self,
        publisher: Publisher,
        state: StateDB,
        *,
        configured: Sequence[str],
        retry_initial: float,
        retry_max: float,
        poll_interval: float,
    ) -> None:
        self.publisher = publisher
        self.name = publisher.name
        self.state = state
        self.configured = tuple(configured)
        self.retry_initial = retry_initial
        self.retry_max = max(retry_max, retry_initial)
        self.poll_interval = poll_interval
        self.status = DrainStatus()
        self._persisted_error: str | None = None
        self.idle = asyncio.Event()
        self._wake = asyncio.Event()
        self.log = get_logger(component="upstream", publisher=self.name)

    def reset(self) -> None:
        """Before (re)starting: a fresh status, and no claim of idleness from a past life."""
        self.status = DrainStatus(state="starting")
        self.idle.clear()

    def wake(self) -> None:
        """New work may exist: look now, and do not claim idleness until looked."""
        self.idle.clear()
        self._wake.set()

    async def run(self) -> None:
        """Until cancelled. An unexpected error (a bug, a broken disk) is logged and the
        publisher restarted after the backoff cap: deliveries must not stop silently for months."""
        try:
            while True:
                try:
                    await self._serve()
                except StateFull as exc:  # operational, like the engine's: no traceback
                    self.log.warning("state database full; deliveries wait", error=str(exc))
                    self._note(exc, state="error")
                    self.idle.clear()
                    await self.publisher.close()
                    await asyncio.sleep(self.retry_max)
                except Exception as exc:
                    self.log.exception("publisher failed; restarting", error=repr(exc))
                    self._note(exc, state="error")
                    self.idle.clear()
                    await self.publisher.close()
                    await asyncio.sleep(self.retry_max)
        finally:
            self.status.state = "stopped"
            await self.publisher.close()

    async def _serve(self) -> None:
        self.status.state = "starting"
        await self._retrying(self.publisher.start)
        while True:
            self._wake.clear()
            await self._drain_available()
            if not self._wake.is_set():
                self.status.state = "idle"
                self.idle.set()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.poll_interval):
                    await self._wake.wait()

    async def _drain_available(self) -> None:
        """Deliver until nothing is left past the cursor.

        While a batch is on the wire, the previous batch's outcome is committed and the next
        batch read, in one transaction on the state thread: its fsync overlaps the round trip
        instead of adding to it. A cursor still moves only past a batch the receiver has
        acknowledged. Re-queued dead letters stay listed until they are settled, so a batch of
        them is settled before anything else is read."""
        size = self.publisher.batch_size
        batch, from_dead = await self.state.transaction(
            lambda c: outbox.next_batch(c, self.name, size)
        )
        pending: list[Outcome] = []
        while batch:
            self.idle.clear()
            self.status.state = "delivering"
            if from_dead:
                pending.append(Outcome(*await self._attempt(batch), from_dead=True))
                batch, from_dead = await self._commit(pending, fetch=True)
                pending = []
                continue
            async with asyncio.TaskGroup() as group:
                delivery = group.create_task(self._attempt(batch))
                following = group.create_task(
                    self._commit(pending, fetch=True, after=batch[-1].seq)
                )
            pending = [Outcome(*delivery.result(), from_dead=False)]
            batch, from_dead = following.result()
        if pending:
            await self._commit(pending, fetch=False)

    async def _commit(
        self, outcomes: Sequence[Outcome], *, fetch: bool, after: int | None = None
    ) -> tuple[list[Entry], bool]:
        """Settle answered batches (cursor, dead letters, pruning), then read the next batch
        (past `after` when given), in one transaction."""
        size = self.publisher.batch_size

        def settle_then_next(connection: sqlite3.Connection) -> tuple[list[Entry], bool]:
            for outcome in outcomes:
                outbox.settle(
                    connection,
                    self.name,
                    outcome.delivered,
                    outcome.rejected,
                    from_dead=outcome.from_dead,
                    configured=self.configured,
                )
            return outbox.next_batch(connection, self.name, size, after) if fetch else ([], False)

        following = await self.state.transaction(settle_then_next)
        for outcome in outcomes:
            for entry, reason in outcome.rejected:
                self.log.error("record dead-lettered", record=entry.record_id, reason=reason)
            self.log.debug(
                "batch settled", delivered=len(outcome.delivered), rejected=len(outcome.rejected)
            )
        return following

    async def _attempt(self, batch: Sequence[Entry]) -> tuple[list[Entry], list[tuple[Entry, str]]]:
        try:
            await self._retrying(self.publisher.deliver, batch)
        except Rejected as exc:
            if len(batch) == 1:
                return [], [(batch[0], str(exc))]
            half = len(batch) // 2
            first, first_rejected = await self._attempt(batch[:half])
            second, second_rejected = await self._attempt(batch[half:])
            return first + second, first_rejected + second_rejected
        return list(batch), []

    async def _retrying(self, action: Any, *args: Any) -> None:
        retrying = AsyncRetrying(
            retry=retry_if_exception_type(Retryable),
            wait=wait_exponential(multiplier=self.retry_initial, max=self.retry_max)
            + wait_random(0, self.retry_initial),
            before_sleep=self._failed,
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                await action(*args)
            outcome = attempt.retry_state.outcome
            failure = outcome.exception() if outcome is not None and outcome.failed else None
            if isinstance(failure, Retryable) and str(failure) != self._persisted_error:
                await self._persist_error(str(failure))
        if self.status.failures:
            self.log.info("upstream reachable again", after_failures=self.status.failures)
        self.status.failures = 0
        self.status.blocked = False

    async def _persist_error(self, error: str) -> None:
        """The last failure outlives this process: `mdfd outbox` shows it after a one-shot run."""
        await self.state.transaction(lambda c: outbox.note_error(c, self.name, error))
        self._persisted_error = error

    def _note(self, exc: BaseException | None, state: str) -> None:
        self.status.failures += 1
        self.status.blocked = state == "blocked"
        self.status.state = state
        self.status.last_error = str(exc)
        self.status.last_error_at = time.time()

    def _failed(self, retry_state: RetryCallState) -> None:
        outcome = retry_state.outcome
        exc = outcome.exception() if outcome is not None else None
        blocked = isinstance(exc, Blocked)
        self._note(exc, "blocked" if blocked else "retrying")
        wait = round(retry_state.upcoming_sleep, 2)
        if blocked:
            self.log.error(
                "upstream refuses us; records stay queued", error=str(exc), retry_in=wait
            )
        elif self.status.failures == 1 or self.status.failures % 10 == 0:
            self.log.warning(
                "delivery failed; will retry",
                error=str(exc),
                failures=self.status.failures,
                retry_in=wait,
            )
