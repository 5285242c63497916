"""`mdfd export --config C RUN_ID --csv PATH`: a run's per-point summary as CSV."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import add_command, add_config


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = add_command(
        sub,
        "export",
        "write a run's per-point summary table (CSV) for spreadsheets",
        "mdfd export --config config/sim.yaml RUN_ID --csv - | column -s, -t",
    )
    add_config(parser)
    parser.add_argument("run_id", metavar="RUN_ID", help="the run's id (as `mdfd runs` lists it)")
    parser.add_argument(
        "--csv", required=True, type=Path, metavar="PATH", help="the CSV file; - for stdout"
    )
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    # Imported here: h5py and matplotlib would slow every other `mdfd` command's start.
    from mdfd.daemons.storage.errors import StorageError
    from mdfd.daemons.storage.export import write_csv
    from mdfd.daemons.storage.locate import locate_run
    from mdfd.daemons.storage.reader import read_summary

    path = locate_run(args.config, args.run_id)
    try:
        rows = write_csv(read_summary(path), args.csv)
    except (StorageError, OSError) as exc:
        print(f"mdfd export: {exc}", file=sys.stderr)
        return 1
    # With `--csv -` stdout is the table: the note goes to stderr, where it cannot corrupt it.
    note = sys.stderr if str(args.csv) == "-" else sys.stdout
    print(f"{args.csv}: {rows} points of run {args.run_id}", file=note)
    return 0
