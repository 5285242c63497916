"""Instrument drivers: one async contract, many protocols."""

from .base import (
    Browsable,
    BrowseEntry,
    ChannelConfig,
    Driver,
    DriverContext,
    DriverFactory,
    InstrumentConfig,
    Limits,
    Quality,
    Reading,
    StrictModel,
    Subscribable,
    Value,
    check_writable,
)
from .errors import (
    ChannelError,
    InstrumentDisconnected,
    InstrumentError,
    InstrumentTimeout,
    ProtocolError,
    WriteOutcomeUnknown,
)
from .registry import UnknownDriver, available, driver_class

__all__ = [
    "Browsable",
    "BrowseEntry",
    "ChannelConfig",
    "ChannelError",
    "Driver",
    "DriverContext",
    "DriverFactory",
    "InstrumentConfig",
    "InstrumentDisconnected",
    "InstrumentError",
    "InstrumentTimeout",
    "Limits",
    "ProtocolError",
    "Quality",
    "Reading",
    "StrictModel",
    "Subscribable",
    "UnknownDriver",
    "Value",
    "WriteOutcomeUnknown",
    "available",
    "check_writable",
    "driver_class",
]
