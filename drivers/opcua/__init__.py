"""The `opcua` driver (asyncua): batched reads, typed writes, subscriptions, browse."""

from .browse import BrowseEntry
from .config import OpcUaChannel, OpcUaInstrument, SecurityConfig
from .driver import OpcUaDriver

__all__ = ["BrowseEntry", "OpcUaChannel", "OpcUaDriver", "OpcUaInstrument", "SecurityConfig"]
