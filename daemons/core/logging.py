"""structlog, configured once for every entry point.

On a TTY a human reads the console renderer; under systemd (no TTY) journald gets JSON lines.
MDF, run, point and instrument are bound with `structlog.contextvars` where they become known,
so every event below them carries them without threading a logger through every call.

The protocol libraries (pymodbus, asyncua, pyvisa, aiohttp, aiomqtt, ...) log through the
standard library; one root handler renders their records with the same renderer, so
`--log-json` means every line on stderr is JSON. Libraries speak at warning and above unless
the level is debug; pymodbus' frame hex dumps (which it appends to its error lines) only
appear at debug.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import TextIO

import structlog

_configured = False
_explicit_level = False


class _CurrentStderr:
    """Whatever `sys.stderr` is at the time of writing, not at configuration: a test's capture
    file or a progress bar's redirect may replace (and close) the stream configured earlier."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def configure(
    level: str | None = None, stream: TextIO | None = None, json: bool | None = None
) -> None:
    """`level=None` means the default (info) and lets a progress display quieten it."""
    global _configured, _explicit_level
    _explicit_level = level is not None
    level = level or "info"
    as_json = (not (stream or sys.stderr).isatty()) if json is None else json
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer() if as_json else structlog.dev.ConsoleRenderer()
    )
    numeric = logging.getLevelNamesMapping()[level.upper()]
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        # structlog annotates `file` as TextIO; its PrintLogger only writes and flushes.
        logger_factory=structlog.PrintLoggerFactory(
            file=stream or _CurrentStderr()  # type: ignore[arg-type]
        ),
        cache_logger_on_first_use=False,
    )
    _route_library_logging(numeric, renderer, stream)
    _configured = True


class _LibraryHandler(logging.StreamHandler[TextIO | _CurrentStderr]):
    """The one root handler mdfd installs; a second `configure` replaces it."""


def _route_library_logging(
    level: int, renderer: structlog.typing.Processor, stream: TextIO | None
) -> None:
    handler = _LibraryHandler(stream or _CurrentStderr())
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[
                structlog.contextvars.merge_contextvars,
                structlog.stdlib.add_logger_name,
                structlog.processors.add_log_level,
                structlog.processors.TimeStamper(fmt="iso", utc=True),
                structlog.processors.format_exc_info,
            ],
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        )
    )
    handler.addFilter(_frame_dumps_at_debug_only)
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _LibraryHandler)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level if level <= logging.DEBUG else max(level, logging.WARNING))
    # asyncua reports at warning what the OPC-UA driver already reports with context.
    logging.getLogger("asyncua").setLevel(logging.ERROR)


PYMODBUS_FRAMES = "\n>>>>> "
"""How pymodbus appends its last frames to an error line when its debug level is off."""


def _frame_dumps_at_debug_only(record: logging.LogRecord) -> bool:
    if record.levelno > logging.DEBUG and isinstance(record.msg, str):
        record.msg = record.msg.split(PYMODBUS_FRAMES, 1)[0]
    return True


def quiet_for_progress() -> None:
    """On a TTY a live progress bar replaces the info lines; warnings and alarms still print.

    Called before anything binds a logger: a bound logger keeps the level it was made with.
    """
    if not _explicit_level and sys.stderr.isatty():
        structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))


def get_logger(**bound: object) -> structlog.typing.FilteringBoundLogger:
    if not _configured:
        configure()
    return structlog.get_logger("mdfd").bind(**bound)


class Throttle:
    """At most `burst` lines per `window` seconds for each kind of line; the rest are counted.

    A flood of bad connections or requests must cost the log a few lines, not a traceback each:
    1,100 idle connections once wrote 97 MB of tracebacks in 30 s. `allow` answers how many
    lines of that kind were dropped since the last one let through (to report with it), or
    None to drop this one.
    """

    def __init__(self, burst: int = 5, window: float = 60.0) -> None:
        self.burst = burst
        self.window = window
        self._seen: dict[str, tuple[float, int, int]] = {}  # kind -> (since, let through, dropped)

    def allow(self, kind: str, now: float | None = None) -> int | None:
        now = time.monotonic() if now is None else now
        since, passed, dropped = self._seen.get(kind, (now, 0, 0))
        if now - since >= self.window:
            since, passed = now, 0
        if passed >= self.burst:
            self._seen[kind] = (since, passed, dropped + 1)
            return None
        self._seen[kind] = (since, passed + 1, 0)
        return dropped


class ThrottleFilter(logging.Filter):
    """The same for the standard-library loggers of asyncio and aiohttp (accept errors,
    malformed requests): repeated records are dropped, and a record let through after drops
    says how many and loses its traceback."""

    def __init__(self, throttle: Throttle | None = None) -> None:
        super().__init__()
        self.throttle = throttle or Throttle()

    def filter(self, record: logging.LogRecord) -> bool:
        dropped = self.throttle.allow(f"{record.name}:{record.msg}")
        if dropped is None:
            return False
        if dropped:
            record.msg = f"{record.msg} ({dropped} like it suppressed)"
            record.exc_info = None
            record.exc_text = None
        return True


def throttle_library_logs() -> None:
    """Called by `mdfd serve`: its listeners face clients we do not control."""
    for name in ("asyncio", "aiohttp.server", "aiohttp.web", "aiohttp.access"):
        library = logging.getLogger(name)
        if not any(isinstance(f, ThrottleFilter) for f in library.filters):
            library.addFilter(ThrottleFilter())
