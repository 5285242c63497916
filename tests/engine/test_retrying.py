"""The engine's one retry owner (decision 0063): `retries` more attempts after a failed one,
`backoff` apart through the run clock's sleep, the last error raised; nothing else repeats."""

from __future__ import annotations

import pytest
import structlog

from mdfd.daemons.engine.retrying import RetryPolicy, with_retries
from mdfd.drivers import InstrumentTimeout


class Instrument:
    """Fails its first `failing` calls with a timeout, then answers its call count."""

    def __init__(self, failing: int) -> None:
        self.failing = failing
        self.calls = 0

    async def read(self) -> int:
        self.calls += 1
        if self.calls <= self.failing:
            raise InstrumentTimeout("furnace", f"no reply ({self.calls})")
        return self.calls


async def run(
    policy: RetryPolicy, instrument: Instrument, first: InstrumentTimeout | None = None
) -> tuple[int | BaseException, list[float]]:
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    try:
        result: int | BaseException = await with_retries(
            policy, "read", instrument.read, sleep=sleep, log=structlog.get_logger(), failed=first
        )
    except InstrumentTimeout as exc:
        result = exc
    return result, slept


async def test_a_read_that_keeps_failing_is_tried_attempts_times_backoff_apart() -> None:
    instrument = Instrument(failing=10)
    result, slept = await run(RetryPolicy(retries=2, backoff=5.0), instrument)
    assert isinstance(result, InstrumentTimeout)
    assert str(result).endswith("no reply (3)")  # the last error
    assert instrument.calls == 3
    assert slept == [5.0, 5.0]


async def test_a_read_that_recovers_returns_its_answer() -> None:
    instrument = Instrument(failing=1)
    assert await run(RetryPolicy(retries=2, backoff=1.0), instrument) == (2, [1.0])


async def test_a_first_attempt_made_by_the_caller_counts_as_one() -> None:
    instrument = Instrument(failing=10)
    first = InstrumentTimeout("furnace", "no reply (scan)")
    result, slept = await run(RetryPolicy(retries=2, backoff=1.0), instrument, first)
    assert isinstance(result, InstrumentTimeout)
    assert instrument.calls == 2  # two more, three in all
    assert slept == [1.0, 1.0]


async def test_no_retries_is_one_attempt_and_no_sleep() -> None:
    instrument = Instrument(failing=10)
    result, slept = await run(RetryPolicy(retries=0, backoff=1.0), instrument)
    assert isinstance(result, InstrumentTimeout)
    assert (instrument.calls, slept) == (1, [])


async def test_what_is_not_an_instrument_error_is_not_retried() -> None:
    calls = 0

    async def broken() -> None:
        nonlocal calls
        calls += 1
        raise ValueError("a bug")

    async def sleep(seconds: float) -> None:
        raise AssertionError("no sleep expected")

    with pytest.raises(ValueError, match="a bug"):
        await with_retries(
            RetryPolicy(2, 1.0), "read", broken, sleep=sleep, log=structlog.get_logger()
        )
    assert calls == 1


def test_the_worst_case_is_attempts_operations_and_the_backoffs_between() -> None:
    assert RetryPolicy(retries=2, backoff=5.0).worst_case(60.0) == 3 * 60.0 + 2 * 5.0
    assert RetryPolicy(retries=0, backoff=5.0).worst_case(2.0) == 2.0
