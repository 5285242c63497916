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
        logger_factory=structlog.PrintLoggerFactory(file=stream or _CurrentStderr()),
        cache_logger_on_first_use=False,
    )
    _route_library_logging(numeric, renderer, stream)
    _configured = True


class _LibraryHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """The one root handler mdfd installs; a second `configure` replaces it."""


def _route_library_logging(
    level: int, renderer: structlog.typing.Processor, stream: TextIO | None
) -> None:
    handler = _LibraryHandler(stream or _CurrentStderr())  # type: ignore[arg-type]
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
