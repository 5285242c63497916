"""systemd readiness and watchdog notifications, without libsystemd.

The protocol is documented in sd_notify(3): the service manager passes the path of a UNIX
datagram socket in `NOTIFY_SOCKET` (a leading `@` means the abstract namespace); the service
sends newline-separated `KEY=VALUE` assignments in one datagram each. Sending is best effort
and must never stall the daemon, so the socket is non-blocking and a full or absent receiver
only costs one log line per outage. With `NOTIFY_SOCKET` unset (a shell, a test, a container)
every call is a no-op, so the daemon needs no "am I under systemd?" branches.

The watchdog's point is to prove the *work* still progresses, not merely that a timer fires:
`Watchdog` pings only when the work loop called `alive()` since the previous ping, so a loop
stuck on an instrument or a lock stops the pings and systemd restarts the service. Call it
from a loop that turns over at least once per interval even when idle (the scan / supervision
loop), never from one that waits for hours by design (a dwell): that would be a false alarm.

    with Notifier() as notifier:
        async with Watchdog(notifier, watchdog_interval()) as watchdog:
            ...                                   # bind the control socket, resume runs
            notifier.ready(status="idle, queue empty")
            while not stopping:
                watchdog.alive()
                ...                               # one scan / supervision step
            notifier.stopping(status="safe state, flush, checkpoint")
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
from collections.abc import Mapping
from types import TracebackType

import structlog

from .logging import get_logger
from .supervise import start_supervised


def _log() -> structlog.typing.FilteringBoundLogger:
    """Looked up per use: the CLI configures logging after this module is imported."""
    return get_logger(component="notify")


def _socket_address(value: str) -> str | None:
    """The AF_UNIX address for a NOTIFY_SOCKET value, or None for a kind we do not speak."""
    if value.startswith("@"):
        return "\0" + value[1:]
    if value.startswith("/"):
        return value
    return None


def _field(key: str, value: object) -> str:
    """One `KEY=VALUE` line; a newline inside a value would start a bogus assignment."""
    text = str(value).replace("\n", " ").replace("\r", " ")
    return f"{key}={text}"


class Notifier:
    """Sends sd_notify datagrams to the socket named by `NOTIFY_SOCKET`, or does nothing."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        raw = env.get("NOTIFY_SOCKET", "")
        self._address = _socket_address(raw) if raw else None
        if raw and self._address is None:
            _log().warning("unsupported NOTIFY_SOCKET, notifications disabled", notify_socket=raw)
        self._socket: socket.socket | None = None
        self._failing = False

    @property
    def enabled(self) -> bool:
        return self._address is not None

    def send(self, **fields: object) -> bool:
        """Send one datagram of `KEY=VALUE` lines; True when the kernel accepted it.

        Never blocks and never raises: a dropped STATUS or ping is better than a daemon
        that hangs because the service manager is busy.
        """
        if self._address is None:
            return False
        payload = "\n".join(_field(key, value) for key, value in fields.items()).encode()
        try:
            if self._socket is None:
                self._socket = socket.socket(
                    socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC
                )
                self._socket.setblocking(False)
            self._socket.sendto(payload, self._address)
        except OSError as exc:
            if not self._failing:
                _log().warning(
                    "service manager notification dropped",
                    fields=sorted(fields),
                    error=str(exc),
                )
            self._failing = True
            return False
        if self._failing:
            _log().info("service manager notifications delivered again")
        self._failing = False
        return True

    def ready(self, status: str | None = None) -> bool:
        """The daemon serves: systemd ends the start job and starts the watchdog."""
        return self.send(READY=1, **({"STATUS": status} if status is not None else {}))

    def status(self, text: str) -> bool:
        """Free-form one-line state shown by `systemctl status`."""
        return self.send(STATUS=text)

    def watchdog(self) -> bool:
        return self.send(WATCHDOG=1)

    def reloading(self, status: str | None = None) -> bool:
        """A reload began; MONOTONIC_USEC lets systemd (>= 253) match it to its request."""
        fields: dict[str, object] = {
            "RELOADING": 1,
            "MONOTONIC_USEC": time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000,
        }
        if status is not None:
            fields["STATUS"] = status
        return self.send(**fields)

    def stopping(self, status: str | None = None) -> bool:
        """Shutdown began: systemd now waits up to TimeoutStopSec= instead of assuming a hang."""
        return self.send(STOPPING=1, **({"STATUS": status} if status is not None else {}))

    def extend_timeout(self, seconds: float) -> bool:
        """Ask for `seconds` more before systemd gives up on the current start, stop or
        reload (e.g. flushing a large run on SIGTERM); repeat it while progress continues."""
        return self.send(EXTEND_TIMEOUT_USEC=round(seconds * 1_000_000))

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None

    def __enter__(self) -> Notifier:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def watchdog_interval(environ: Mapping[str, str] | None = None) -> float | None:
    """Seconds between pings (half of `WATCHDOG_USEC`), or None when no watchdog applies.

    `WATCHDOG_PID`, when set, names the process the watchdog is meant for: a child that
    inherited the environment must not ping on its parent's behalf.
    """
    env = os.environ if environ is None else environ
    raw = env.get("WATCHDOG_USEC")
    if not raw:
        return None
    pid = env.get("WATCHDOG_PID")
    try:
        usec = int(raw)
        if pid and int(pid) != os.getpid():
            return None
    except ValueError:
        _log().warning("malformed watchdog environment", watchdog_usec=raw, watchdog_pid=pid)
        return None
    if usec <= 0:
        return None
    return usec / 2 / 1_000_000


class Watchdog:
    """Pings systemd's watchdog only while the work loop keeps reporting `alive()`.

    Use as an async context manager: it owns its one task and cancels and awaits it on exit.
    The work loop calls `alive()` once per iteration (cheap: it sets a flag). Every `interval`
    seconds the ping task sends WATCHDOG=1 if the flag was set since the previous ping and
    clears it; otherwise it withholds the ping, counts it in `missed` and logs once per stall.
    A loop stalled longer than the unit's WatchdogSec= therefore gets the service restarted.
    """

    def __init__(self, notifier: Notifier, interval: float | None) -> None:
        self._notifier = notifier
        self.interval = interval
        self.missed = 0
        self.pings = 0
        self._alive = False
        self._task: asyncio.Task[None] | None = None

    @property
    def enabled(self) -> bool:
        return self.interval is not None and self._notifier.enabled

    def alive(self) -> None:
        """Called by the work loop each iteration: proof of progress for the next ping."""
        self._alive = True

    async def __aenter__(self) -> Watchdog:
        if self.enabled:
            self._task = start_supervised("systemd-watchdog", self._run)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        task, self._task = self._task, None
        if task is None:
            return
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    async def _run(self) -> None:
        assert self.interval is not None
        stalled = False
        while True:
            await asyncio.sleep(self.interval)
            if self._alive:
                self._alive = False
                if self._notifier.watchdog():
                    self.pings += 1
                if stalled:
                    _log().info("work loop progresses again, watchdog pings resumed")
                stalled = False
                continue
            self.missed += 1
            if not stalled:
                _log().warning(
                    "work loop reported no progress, withholding the watchdog ping",
                    interval_s=self.interval,
                )
            stalled = True
