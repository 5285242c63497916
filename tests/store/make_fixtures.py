"""Write a state database fixture with the SQL of an earlier commit: `python
tests/store/make_fixtures.py COMMIT NAME [--no-upstream]` → tests/store/fixtures/NAME.sql.

The old commit's own `state.py` (and `upstream/outbox.py` where it existed) is taken from git
and run as it was, so the dump holds exactly what that version wrote: one interrupted run of
3 points with 2 checkpointed (the second failed), each with its upstream record when that
version had an outbox — unless `--no-upstream`: an MDF without publishers never created the
outbox tables. `test_migrations.py` opens every dump with today's store.
"""

from __future__ import annotations

import asyncio
import importlib
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
# What the old modules import from their package; absent files are skipped (older commits).
MODULES = {
    "state.py": "daemons/state.py",
    "strictjson.py": "daemons/core/strictjson.py",
    "logging.py": "daemons/core/logging.py",
    "outbox.py": "daemons/upstream/outbox.py",
}


def _show(commit: str, path: str) -> str | None:
    shown = subprocess.run(
        ["git", "show", f"{commit}:{path}"], cwd=REPO, capture_output=True, text=True
    )
    return shown.stdout if shown.returncode == 0 else None


def _old_package(commit: str, into: Path) -> Any:
    """The old `state` module, or from the store package on (ADR 0060) the old `store`."""
    package = into / "legacy"
    package.mkdir()
    (package / "__init__.py").write_text("")
    for name, path in MODULES.items():
        text = _show(commit, path)
        if text is not None:
            (package / name).write_text(text)
    sys.path.insert(0, str(into))
    listed = subprocess.run(
        ["git", "ls-tree", "--name-only", f"{commit}:daemons/store"],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    if listed.returncode != 0:
        return importlib.import_module("legacy.state")
    (package / "store").mkdir()
    for name in listed.stdout.split():
        (package / "store" / name).write_text(_show(commit, f"daemons/store/{name}") or "")
    return importlib.import_module("legacy.store")


def _summary(state_module: Any, index: int) -> Any:
    """The point's statistics in the form that version's `PointRow` takes: JSON-ready fields,
    or from schema version 3 on (which packs them into a binary column) `PointStats` — today's
    class, whose fields the old `pack` reads as it read its own."""
    points = sys.modules.get(f"{state_module.__name__}.points")
    if points is None or not hasattr(points, "pack"):
        return {"furnace.temperature": {"mean": 300.0 + 50 * index}}
    from mdfd.daemons.core.stats import PointStats, Stats

    nan = float("nan")
    completed = Stats(300.0, 0.5, 299.0, 301.0, 4, 300.25, 1)
    stats = completed if index == 0 else Stats(nan, nan, nan, nan, 0)
    return PointStats.of({"furnace.temperature": stats})


async def _write(state_module: Any, outbox: Any, path: Path) -> None:
    state = state_module.StateDB(path)
    await state.open()
    await state.create_run(
        run_id="legacy-run",
        recipe_name="legacy-sweep",
        recipe_version="1.2",
        recipe_sha256="ab" * 32,
        recipe_text="recipe:\n  name: legacy-sweep\n",
        recipe_path="/srv/recipes/legacy-sweep.yaml",
        config_text="mdf:\n  id: legacy-mdf\n",
        points_total=3,
        status=state_module.RunStatus.RUNNING,
        data_file="/srv/data/legacy-run.h5",
    )
    statuses = [state_module.PointStatus.COMPLETED, state_module.PointStatus.FAILED]
    for index, status in enumerate(statuses):
        row = state_module.PointRow(
            run_id="legacy-run",
            point_index=index,
            status=status,
            parameters={"temperature": 300.0 + 50 * index},
            started_at=1000.0 + index,
            ended_at=1000.5 + index,
            rows={"furnace": 4 * (index + 1)},
            summary=_summary(state_module, index),
            message="" if index == 0 else "read timed out",
        )
        extra = None
        if outbox is not None:
            body = f'{{"id": "legacy-run/{index}"}}'

            def extra(c: sqlite3.Connection, i: int = index, b: str = body) -> None:
                outbox.enqueue(c, f"legacy-run/{i}", "legacy-run", i, b)

        await state.complete_point(row, extra=extra)
    if outbox is not None:
        await state.transaction(lambda c: outbox.register(c, ["spool"]))
    await state.set_status("legacy-run", state_module.RunStatus.INTERRUPTED, "process died mid-run")
    await state.close()


def main(commit: str, name: str, upstream: bool) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        state_module = _old_package(commit, Path(tmp))
        outbox = None
        if upstream and (Path(tmp) / "legacy" / "store").exists():
            outbox = importlib.import_module("legacy.store.outbox")
        elif upstream and (Path(tmp) / "legacy" / "outbox.py").exists():
            outbox = importlib.import_module("legacy.outbox")
        database = Path(tmp) / "state.sqlite3"
        asyncio.run(_write(state_module, outbox, database))
        connection = sqlite3.connect(database)
        (version,) = connection.execute("PRAGMA user_version").fetchone()
        lines = [f"-- written by mdfd {commit} (user_version {version})"]
        lines += list(connection.iterdump())
        lines.append(f"PRAGMA user_version = {version};")  # iterdump leaves the version out
        connection.close()
    (HERE / "fixtures" / f"{name}.sql").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], "--no-upstream" not in sys.argv[3:])
