"""The software version: `--version`, and the provenance of every data file and record."""

from __future__ import annotations

from functools import cache
from importlib.metadata import PackageNotFoundError, version


@cache
def package_version() -> str:
    """The installed distribution's version, e.g. `0.1.0`."""
    try:
        return version("mdfd")
    except PackageNotFoundError:
        return "unknown (not installed)"


def software_version() -> str:
    """`mdfd 0.1.0`: what the daemon reports and records carry."""
    return f"mdfd {package_version()}"
