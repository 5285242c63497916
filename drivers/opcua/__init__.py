"""The `opcua` driver (asyncua): batched reads, typed writes, subscriptions, browse.

`OpcUaDriver` is imported on first use: validating a config imports only `.config` (the
`mdfd.driver_configs` entry point), and asyncua stays off the daemon's way to READY (ADR 0075).
"""

from typing import TYPE_CHECKING

from ..base import BrowseEntry
from .config import OpcUaChannel, OpcUaInstrument, SecurityConfig

if TYPE_CHECKING:
    from .driver import OpcUaDriver


def __getattr__(name: str) -> object:
    if name == "OpcUaDriver":
        from .driver import OpcUaDriver

        return OpcUaDriver
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["BrowseEntry", "OpcUaChannel", "OpcUaDriver", "OpcUaInstrument", "SecurityConfig"]
