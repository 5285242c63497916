"""The `file` publisher: a JSON Lines spool, one file per run, `{directory}/{run_id}.jsonl`.

A batch is appended with one `write` per run file and fsynced before the drain moves the cursor.
A crash between fsync and cursor commit would append the same records again, so the first time
this process touches a file it reads the ids already in it (and cuts a torn last line left by a
power loss): every record id appears exactly once per file.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path

from mdfd.daemons.core.config import FilePublisher
from mdfd.daemons.store.outbox import Entry

from .base import Rejected, Retryable

KNOWN_FILES = 4
"""Run files whose ids stay in memory; a run appends to one file, older runs rarely return."""


class FileSpool:
    def __init__(self, config: FilePublisher) -> None:
        self.name = config.name
        self.batch_size = config.batch_size
        self.directory = config.directory
        self._known: OrderedDict[Path, set[str]] = OrderedDict()

    async def start(self) -> None:
        try:
            await asyncio.to_thread(self.directory.mkdir, parents=True, exist_ok=True)
        except OSError as exc:
            raise Retryable(f"spool directory {self.directory}: {exc}") from exc

    async def close(self) -> None:
        self._known.clear()

    async def deliver(self, batch: Sequence[Entry]) -> None:
        by_run: dict[str, list[Entry]] = {}
        for entry in batch:
            if not entry.run_id or "/" in entry.run_id or entry.run_id.startswith("."):
                raise Rejected(f"run id {entry.run_id!r} cannot name a spool file")
            by_run.setdefault(entry.run_id, []).append(entry)
        try:
            await asyncio.to_thread(self._append_all, by_run)
        except OSError as exc:
            raise Retryable(f"spool {self.directory}: {exc}") from exc

    def _append_all(self, by_run: dict[str, list[Entry]]) -> None:
        for run_id, entries in by_run.items():
            self._append(self.directory / f"{run_id}.jsonl", entries)

    def _append(self, path: Path, entries: list[Entry]) -> None:
        known = self._ids(path)
        fresh = [e for e in entries if e.record_id not in known]
        if not fresh:
            return
        data = "".join(f"{e.body}\n" for e in fresh).encode()
        created = not path.exists()
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        if created:
            _fsync_directory(path.parent)
        known.update(e.record_id for e in fresh)

    def _ids(self, path: Path) -> set[str]:
        if path in self._known:
            self._known.move_to_end(path)
            return self._known[path]
        ids = _read_ids(path)
        self._known[path] = ids
        while len(self._known) > KNOWN_FILES:
            self._known.popitem(last=False)
        return ids


def _read_ids(path: Path) -> set[str]:
    """Ids already spooled; a last line without its newline is a torn append and is cut off."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return set()
    end = data.rfind(b"\n") + 1
    if end != len(data):
        with path.open("r+b") as handle:
            handle.truncate(end)
            os.fsync(handle.fileno())
    ids = set()
    for line in data[:end].splitlines():
        if line.strip():
            ids.add(str(json.loads(line)["id"]))
    return ids


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
