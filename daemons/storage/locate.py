"""Find a run's data file from an MDF config and a run id, as `mdfd export`/`plot` do."""

from __future__ import annotations

from pathlib import Path

from mdfd.daemons.core.config import load_config
from mdfd.recipes.located import InputError, Problem

from .layout import run_file_path


def locate_run(config_path: Path, run_id: str) -> Path:
    """`config.storage.data_dir / f"{run_id}.h5"`; an unknown run is bad input (exit 2)."""
    data_dir = load_config(config_path).model.storage.data_dir
    try:
        path = run_file_path(data_dir, run_id)
    except ValueError as exc:
        raise InputError([Problem("RUN_ID", None, "", str(exc))]) from None
    if not path.is_file():
        message = f"no run {run_id!r} in {data_dir} (looked for {path})"
        raise InputError([Problem("RUN_ID", None, "", message)])
    return path
