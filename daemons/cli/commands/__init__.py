"""One module per `mdfd` subcommand; each defines `register(subparsers)`.

Every command is added through `add_command`, so each `mdfd COMMAND --help` has the same
shape: a one-line purpose, described arguments, and an example to copy.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_command(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
    name: str,
    purpose: str,
    example: str,
    details: str = "",
) -> argparse.ArgumentParser:
    description = purpose[0].upper() + purpose[1:] + "." + (f"\n\n{details}" if details else "")
    return sub.add_parser(
        name,
        help=purpose,
        description=description,
        epilog=f"example:\n  {example}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def add_config(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, type=Path, help="the MDF's config file (YAML)")
