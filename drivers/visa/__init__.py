"""The `visa` driver: SCPI instruments over VISA (TCP sockets, VXI-11, serial lines, ...)."""

from .config import VisaChannel, VisaInstrument
from .driver import VisaDriver

__all__ = ["VisaChannel", "VisaDriver", "VisaInstrument"]
