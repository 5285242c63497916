"""Background tasks of the daemon survive an unexpected exception: it is logged with its
traceback at error level and the work restarted, never lost."""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import Iterator

import pytest

from mdfd.daemons.core import logging as mdfd_logging
from mdfd.daemons.core.supervise import start_supervised


@pytest.fixture
def log_lines() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    mdfd_logging.configure("info", stream=stream, json=True)
    yield stream
    mdfd_logging.configure()


async def test_a_failing_task_is_logged_with_its_traceback_and_restarted(
    log_lines: io.StringIO,
) -> None:
    calls: list[int] = []

    async def work() -> None:
        calls.append(len(calls))
        if len(calls) < 3:
            raise RuntimeError(f"surprise {len(calls)}")

    task = start_supervised("flaky", work, first=0.01, most=0.02)
    async with asyncio.timeout(10):
        await task
    assert calls == [0, 1, 2]
    events = [json.loads(line) for line in log_lines.getvalue().splitlines()]
    failures = [e for e in events if e.get("task") == "flaky"]
    assert [e["level"] for e in failures] == ["error", "error"]
    assert "RuntimeError: surprise 1" in failures[0]["exception"]
    assert "Traceback" in failures[0]["exception"]
    assert [e["restarts"] for e in failures] == [1, 2]


async def test_cancelling_a_supervised_task_stops_it() -> None:
    started = asyncio.Event()

    async def forever() -> None:
        started.set()
        await asyncio.Event().wait()

    task = start_supervised("forever", forever)
    async with asyncio.timeout(10):
        await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
