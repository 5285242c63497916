"""Run data on disk: one HDF5 file per run (written by `RunFile`), and reading it back.

`run_file_path(config.storage.data_dir, run_id)` is the single naming convention shared by the
engine (which writes) and `mdfd export` / `mdfd plot` (which read).

The names below are imported on first use (a module `__getattr__`, PEP 562): importing
`storage.errors` or `storage.layout` runs this file, and they are on the daemon's way to
READY=1; h5py, which the writer and the readers need, is not (ADR 0085).
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .errors import DiskNearlyFull, StorageError
    from .hdf5_writer import RunFile
    from .layout import ChannelSpec, run_file_path
    from .reader import ChannelData, Summary, read_channel, read_metadata, read_summary

_MODULES = {
    "ChannelData": "reader",
    "ChannelSpec": "layout",
    "DiskNearlyFull": "errors",
    "RunFile": "hdf5_writer",
    "StorageError": "errors",
    "Summary": "reader",
    "read_channel": "reader",
    "read_metadata": "reader",
    "read_summary": "reader",
    "run_file_path": "layout",
}
__all__ = [
    "ChannelData",
    "ChannelSpec",
    "DiskNearlyFull",
    "RunFile",
    "StorageError",
    "Summary",
    "read_channel",
    "read_metadata",
    "read_summary",
    "run_file_path",
]


def __getattr__(name: str) -> Any:
    if name not in _MODULES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f".{_MODULES[name]}", __name__), name)
