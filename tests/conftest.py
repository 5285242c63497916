"""Shared fixtures. The leak guard fails any test that leaves tasks or threads running:
a daemon that leaks tasks dies slowly, weeks into an unattended run. A failed test's report
ends with the output of the child processes it ran (they write to files, not pipes)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Generator, Iterator

import pytest
from hypothesis import HealthCheck, settings

from mdfd.daemons.core.logging import configure
from tests.support import CHILDREN

# No per-example deadline: the machines are shared and noisy, and a timing threshold in a test
# fails for the machine's load, not for the code.
settings.register_profile("mdfd", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("mdfd")

THREAD_GRACE_SECONDS = 3.0
CHILD_OUTPUT_TAIL = 4000  # characters of each stream shown for a failed test
_FIRST_CHILD = pytest.StashKey[int]()


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    item.stash[_FIRST_CHILD] = len(CHILDREN)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """On failure, the tails of the output of every child the test started or still runs."""
    report = yield
    if report.failed:
        first = item.stash.get(_FIRST_CHILD, len(CHILDREN))
        for index, child in enumerate(CHILDREN):
            if index < first and child.poll() is not None:
                continue
            streams = {child.out_path: "stdout", child.err_path: "stderr"}
            if child.out_path == child.err_path:
                streams = {child.out_path: "output"}
            for path, stream in streams.items():
                text = path.read_text(errors="replace") if path.exists() else ""
                if text:
                    report.sections.append(
                        (f"{child.name} {stream} ({path})", text[-CHILD_OUTPUT_TAIL:])
                    )
    return report


@pytest.fixture(autouse=True, scope="session")
def logging_configured() -> None:
    """mdfd configures structlog on its first logger; done here once, that never happens
    inside a test's `structlog.testing.capture_logs()`, whose capture it would replace (a test
    that ran first in its xdist worker saw none of its warnings)."""
    configure()


@pytest.fixture(autouse=True)
def no_leaked_threads() -> Iterator[None]:
    before = set(threading.enumerate())
    yield
    deadline = time.monotonic() + THREAD_GRACE_SECONDS
    while True:
        leaked = [t for t in threading.enumerate() if t not in before and t.is_alive()]
        leaked = [t for t in leaked if not t.name.startswith(("asyncio_", "ThreadPoolExecutor"))]
        if not leaked or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert not leaked, f"test left threads running: {[t.name for t in leaked]}"


@pytest.fixture(autouse=True)
async def no_leaked_tasks() -> AsyncIterator[None]:
    yield
    current = asyncio.current_task()
    for _ in range(20):
        pending = [t for t in asyncio.all_tasks() if t is not current and not t.done()]
        if not pending:
            return
        await asyncio.sleep(0.05)
    names = [t.get_coro().__qualname__ for t in pending]  # type: ignore[union-attr]
    for task in pending:
        task.cancel()
    pytest.fail(f"test left asyncio tasks running: {names}")
