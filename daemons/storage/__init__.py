"""Run data on disk: one HDF5 file per run (written by `RunFile`), and reading it back.

`run_file_path(config.storage.data_dir, run_id)` is the single naming convention shared by the
engine (which writes) and `mdfd export` / `mdfd plot` (which read).
"""

from __future__ import annotations

from .errors import DiskNearlyFull, StorageError
from .hdf5_writer import RunFile
from .layout import ChannelSpec, run_file_path
from .reader import ChannelData, Summary, read_channel, read_metadata, read_summary

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
