"""`mdfd plot --config C RUN_ID --out PATH.png`: each measured channel against the sweep."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "plot", help="draw a run's measured channels against its swept parameters (PNG)"
    )
    parser.add_argument("--config", required=True, type=Path)
    parser.add_argument("run_id", metavar="RUN_ID")
    parser.add_argument("--out", required=True, type=Path, metavar="PATH.png")
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    # Imported here: h5py and matplotlib would slow every other `mdfd` command's start.
    from ..storage.errors import StorageError
    from ..storage.locate import locate_run
    from ..storage.plot import plot_summary
    from ..storage.reader import read_summary

    path = locate_run(args.config, args.run_id)
    try:
        summary = read_summary(path)
        recipe = summary.metadata.get("recipe_name", "")
        title = f"run {args.run_id}" + (f" — {recipe}" if recipe else "")
        panels = plot_summary(summary, args.out, title=title)
    except (StorageError, OSError) as exc:
        print(f"mdfd plot: {exc}", file=sys.stderr)
        return 1
    print(f"{args.out}: {panels} panels, {summary.rows} points of run {args.run_id}")
    return 0
