"""A past run's files for download: its HDF5 file, the CSV export, the plot image — the same
content `mdfd export` and `mdfd plot` write, made on a worker thread."""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

from aiohttp import web

from mdfd.daemons.storage.errors import StorageError

from .keys import PLANE

KINDS = {"hdf5": ".h5", "csv": ".csv", "plot.png": ".png"}


async def download(request: web.Request) -> web.StreamResponse:
    kind = request.match_info["kind"]
    if kind not in KINDS:
        raise web.HTTPNotFound(text=f"no file kind {kind}")
    run = await request.app[PLANE].run_detail(request.match_info["id"])
    path = Path(run.data_file)
    name = f"{run.id}{KINDS[kind]}"
    disposition = {"Content-Disposition": f'attachment; filename="{name}"'}
    if kind == "hdf5":
        if not await asyncio.to_thread(path.is_file):
            raise web.HTTPNotFound(text=f"run {run.id} has no data file at {path}")
        return web.FileResponse(path, headers=disposition)
    try:
        body = await asyncio.to_thread(_derived, path, kind, f"run {run.id} — {run.recipe}")
    except (StorageError, OSError) as exc:
        raise web.HTTPNotFound(text=f"run {run.id}: {exc}") from exc
    content_type = "text/csv" if kind == "csv" else "image/png"
    headers = disposition if kind == "csv" else {}
    return web.Response(body=body, content_type=content_type, headers=headers)


def _derived(path: Path, kind: str, title: str) -> bytes:
    """The CSV export or the plot of a run file (blocking, in a worker thread). h5py and
    matplotlib are imported here, on first download, never on the daemon's way to READY=1."""
    from mdfd.daemons.storage.export import write_csv
    from mdfd.daemons.storage.plot import plot_summary
    from mdfd.daemons.storage.reader import read_summary

    summary = read_summary(path)
    with tempfile.TemporaryDirectory(prefix="mdfd-web-") as tmp:
        out = Path(tmp) / ("out.csv" if kind == "csv" else "out.png")
        if kind == "csv":
            write_csv(summary, out)
        else:
            plot_summary(summary, out, title=title)
        return out.read_bytes()
