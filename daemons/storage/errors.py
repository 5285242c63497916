"""The one error storage raises: the run's data cannot be written or read as required."""

from __future__ import annotations


class StorageError(RuntimeError):
    """Disk, lock or consistency trouble with a run's data file; the message names the file."""
