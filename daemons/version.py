"""The software version recorded in every data file and record's provenance."""

from __future__ import annotations

from functools import cache
from importlib.metadata import PackageNotFoundError, version


@cache
def software_version() -> str:
    try:
        return f"mdfd {version('mdfd')}"
    except PackageNotFoundError:
        return "mdfd (not installed)"
