"""structlog, configured once for every entry point.

On a TTY a human reads the console renderer; under systemd (no TTY) journald gets JSON lines.
MDF, run, point and instrument are bound with `structlog.contextvars` where they become known,
so every event below them carries them without threading a logger through every call.
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
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]
        ),
        logger_factory=structlog.PrintLoggerFactory(file=stream or _CurrentStderr()),
        cache_logger_on_first_use=False,
    )
    logging.getLogger("asyncua").setLevel(logging.ERROR)
    _configured = True


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
