"""The engine's one owner of retries: the recipe's `on_error` policy around an instrument call.

Drivers make single attempts — a lost link is reopened lazily inside the next call, with the
driver's `reconnect` backoff only while the link cannot be opened at all — and raise typed
errors. `Instruments` bounds each attempt by the instrument's `timeouts.operation`, that lazy
reconnect included. Only here is a failed attempt repeated: `retries` more times after the
first, `backoff` apart, with tenacity. So the worst case before a read fails is the same for
every protocol (decision 0063):

    worst = attempts × operation + (attempts − 1) × backoff,   attempts = on_error.retries + 1

where `operation` is the largest `timeouts.operation` of the instruments the read touches (they
are read concurrently). A driver's own request timeout can only end an attempt sooner. The
backoff is wall time on every clock (decision 0022): faults and reconnects take real seconds.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_attempt,
    wait_fixed,
)

from mdfd.drivers import InstrumentError, WriteOutcomeUnknown

T = TypeVar("T")
Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """`retries` further attempts after a failed one, `backoff` wall seconds apart."""

    retries: int
    backoff: float

    @property
    def attempts(self) -> int:
        return self.retries + 1

    def worst_case(self, operation: float) -> float:
        """The longest a call whose attempts are each bounded by `operation` s takes to fail."""
        return self.attempts * operation + self.retries * self.backoff


async def with_retries(
    policy: RetryPolicy,
    what: str,
    operation: Callable[[], Awaitable[T]],
    *,
    sleep: Sleep,
    log: Any,
    failed: InstrumentError | None = None,
) -> T:
    """Run `operation` until it succeeds or `policy.attempts` attempts have failed with an
    instrument error, sleeping `policy.backoff` through `sleep` (the run clock's) in between;
    the last error is raised. `failed`: the first attempt already ran and failed so (an
    acquisition's scan, which pays for the policy only when something fails)."""
    first = failed

    async def attempt() -> T:
        nonlocal first
        if first is not None:
            error, first = first, None
            raise error
        return await operation()

    def before_sleep(state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome is not None else None
        if isinstance(error, WriteOutcomeUnknown):
            log.warning(
                "write outcome unknown; re-sending the same absolute value",
                operation=what,
                error=str(error),
            )
        log.warning(
            "instrument error, retrying",
            operation=what,
            attempt=state.attempt_number,
            retries=policy.retries,
            error=str(error),
        )

    retrying = AsyncRetrying(
        stop=stop_after_attempt(policy.attempts),
        wait=wait_fixed(policy.backoff),
        retry=retry_if_exception_type(InstrumentError),
        sleep=sleep,
        before_sleep=before_sleep,
        reraise=True,
    )
    return await retrying(attempt)
