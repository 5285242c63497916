"""`mdfd`: the daemon and its offline tools, one subcommand per module in `commands/`.

Each module in `mdfd.daemons.commands` defines `register(subparsers)`; it is discovered here,
so adding a command never means editing a central list.

Exit codes shared by every subcommand: 0 ok, 1 failed, 2 bad input (nothing touched),
3 interrupted (resumable).
"""

from __future__ import annotations

import argparse
import errno
import importlib
import pkgutil
import sys
from collections.abc import Sequence

from mdfd.recipes.located import InputError

from . import commands
from .logging import configure
from .state import StateFull

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 3


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mdfd", description="Control and acquisition for Miniature Data Factories."
    )
    parser.add_argument(
        "--log-level",
        choices=["debug", "info", "warning", "error"],
        help="default: info (warning while a progress bar is shown on a terminal)",
    )
    parser.add_argument(
        "--log-json", action="store_true", default=None, help="JSON log lines even on a TTY"
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{commands.__name__}.{info.name}")
        module.register(sub)
    return parser


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
    except (StateFull, OSError) as exc:
        # A disk full before a run could even be recorded: nothing was moved, nothing is lost.
        if isinstance(exc, OSError) and exc.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        print(f"mdfd: disk full, nothing done: {exc}; free space and try again", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
