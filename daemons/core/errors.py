"""How a command ends on an error nobody handled below it: one line for the operator.

Two kinds (docs/decisions/0032-operational-errors-and-bugs.md):

- operational: the world said no — the operating system (a path, a permission, a full disk, a
  refused connection), an instrument, the state database, the data file. Expected in a lab;
  the line says what and where, the exit code is the documented "failed".
- a bug: anything else. The line says so, names the exception and how to see the traceback.

Either way the traceback goes to the log at debug level, never to an operator's terminal.
Bad input (`InputError`, exit 2) and interruption are handled by each entry point before this.
"""

from __future__ import annotations

import sys

from .logging import get_logger


def report(
    program: str,
    exc: BaseException,
    operational: tuple[type[BaseException], ...],
    debug_hint: str,
) -> None:
    """Print the one line for `exc` on stderr; log its traceback at debug level."""
    cause = _only_cause(exc)
    if isinstance(cause, operational):
        line = f"{program}: {describe(cause)}"
    else:
        line = (
            f"{program}: internal error: {type(cause).__name__}: {cause} "
            f"(a bug: rerun with {debug_hint} for the traceback, and report it)"
        )
    get_logger().debug("command ended by an error", error=line, exc_info=exc)
    print(line, file=sys.stderr, flush=True)


def describe(exc: BaseException) -> str:
    """`path: reason` for an OS error (the path first, as Unix tools do); else the message."""
    if isinstance(exc, OSError) and exc.strerror and exc.filename is not None:
        target = f"{exc.filename} -> {exc.filename2}" if exc.filename2 is not None else exc.filename
        return f"{target}: {exc.strerror}"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


def _only_cause(exc: BaseException) -> BaseException:
    """A task group's error with a single member is that member's error."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc
