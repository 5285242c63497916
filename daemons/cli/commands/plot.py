"""`mdfd plot --config C RUN_ID --out PATH.png`: each measured channel against the sweep."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import add_command, add_config


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = add_command(
        sub,
        "plot",
        "draw a run's measured channels against its swept parameters (PNG), and an adaptive"
        " run's campaign (objectives per trial, best so far, Pareto front)",
        "mdfd plot --config config/sim.yaml RUN_ID --out run.png",
    )
    add_config(parser)
    parser.add_argument("run_id", metavar="RUN_ID", help="the run's id (as `mdfd runs` lists it)")
    parser.add_argument(
        "--out", required=True, type=Path, metavar="PATH.png", help="the image to write"
    )
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    # Imported here: h5py and matplotlib would slow every other `mdfd` command's start.
    from mdfd.daemons.storage.campaign_plot import plot_campaign, read_campaign
    from mdfd.daemons.storage.errors import StorageError
    from mdfd.daemons.storage.locate import locate_run
    from mdfd.daemons.storage.plot import plot_summary
    from mdfd.daemons.storage.reader import read_summary

    path = locate_run(args.config, args.run_id)
    out = args.out
    try:
        summary = read_summary(path)
        recipe = summary.metadata.get("recipe_name", "")
        title = f"run {args.run_id}" + (f" — {recipe}" if recipe else "")
        campaign = read_campaign(path)
        if campaign is not None:
            # An adaptive run: PATH shows the campaign, PATH-channels.png the channels.
            panels = plot_campaign(campaign, out, title=f"{title}: campaign")
            trials = len(campaign.trial)
            print(f"{out}: {panels} panels, {trials} trials of the campaign of run {args.run_id}")
            out = out.with_name(f"{out.stem}-channels{out.suffix or '.png'}")
        panels = plot_summary(summary, out, title=title)
    except (StorageError, OSError) as exc:
        print(f"mdfd plot: {exc}", file=sys.stderr)
        return 1
    print(f"{out}: {panels} panels, {summary.rows} points of run {args.run_id}")
    return 0
