"""`mdfd`: the daemon and its offline tools, one subcommand per module in `commands/`.

Each module in `mdfd.daemons.cli.commands` defines `register(subparsers)`; it is discovered here,
so adding a command never means editing a central list.

Exit codes shared by every subcommand: 0 ok, 1 failed, 2 bad input (nothing touched),
3 interrupted (resumable). Whatever goes wrong, an operator reads one line, never a traceback
(`errors.report`).
"""

from __future__ import annotations

import argparse
import errno
import importlib
import os
import pkgutil
import sqlite3
import sys
from collections.abc import Sequence

from mdfd.daemons.core.errors import report
from mdfd.daemons.core.logging import configure
from mdfd.daemons.core.version import software_version
from mdfd.daemons.storage.errors import StorageError
from mdfd.daemons.store import StateFull
from mdfd.drivers.errors import InstrumentError
from mdfd.recipes.located import InputError

from . import commands

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 3
# What the world can do to a command (see errors.py); anything else is a bug.
OPERATIONAL = (OSError, sqlite3.Error, InstrumentError, StorageError)
EPILOG = """\
--log-level and --log-json go before or after the command.
exit codes: 0 ok, 1 failed, 2 bad input (nothing touched), 3 interrupted (resumable)
example:
  mdfd run recipes/examples/metal-annealing.yaml --config config/sim.yaml --simulate"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mdfd",
        description="Control and acquisition for Miniature Data Factories.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=software_version())
    _log_flags(parser, None)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{commands.__name__}.{info.name}")
        module.register(sub)
    for command_parser in sub.choices.values():
        _log_flags(command_parser, argparse.SUPPRESS)
    return parser


def _log_flags(parser: argparse.ArgumentParser, default: object) -> None:
    """Before or after the command: on a subcommand SUPPRESS keeps the top-level value."""
    parser.add_argument(
        "--log-level",
        choices=["debug", "info", "warning", "error"],
        default=default,
        help="default: info (warning while a progress bar is shown on a terminal)",
    )
    parser.add_argument(
        "--log-json", action="store_true", default=default, help="JSON log lines even on a TTY"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    configure(args.log_level, json=args.log_json)
    try:
        return int(args.handler(args) or 0)
    except InputError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader left (`mdfd runs | head`): nothing to tell it; keep the exit quiet.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_FAILED
    except Exception as exc:
        if _disk_full(exc):
            # A disk full before a run could even be recorded: nothing moved, nothing lost.
            print(
                f"mdfd: disk full, nothing done: {exc}; free space and try again", file=sys.stderr
            )
            return EXIT_INTERRUPTED
        report("mdfd", exc, OPERATIONAL, debug_hint="--log-level debug")
        return EXIT_FAILED


def _disk_full(exc: Exception) -> bool:
    if isinstance(exc, StateFull):
        return True
    return isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)


if __name__ == "__main__":
    sys.exit(main())
