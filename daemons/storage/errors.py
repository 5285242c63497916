"""The one error storage raises: the run's data cannot be written or read as required."""

from __future__ import annotations

MIN_FREE_BYTES = 64 << 20  # the default reserve a run needs on its data file's disk


class StorageError(RuntimeError):
    """Disk, lock or consistency trouble with a run's data file; the message names the file."""


class DiskNearlyFull(StorageError):
    """Free space fell below the configured reserve; raised before HDF5 could hit a full disk,
    so the file is still healthy and closes normally."""
