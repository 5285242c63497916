"""The `visa` driver: SCPI instruments over VISA (TCP sockets, VXI-11, serial lines, ...).

`VisaDriver` is imported on first use: validating a config imports only `.config` (the
`mdfd.driver_configs` entry point), and pyvisa stays off the daemon's way to READY (ADR 0075).
"""

from typing import TYPE_CHECKING

from .config import VisaChannel, VisaInstrument

if TYPE_CHECKING:
    from .driver import VisaDriver


def __getattr__(name: str) -> object:
    if name == "VisaDriver":
        from .driver import VisaDriver

        return VisaDriver
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["VisaChannel", "VisaDriver", "VisaInstrument"]
