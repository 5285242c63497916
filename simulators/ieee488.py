"""The IEEE 488.2 status model of a simulated instrument: *ESR, *ESE, *STB, *SRE, *CLS.

Test programs poll the status byte and the event status register to learn whether a command
failed or a reply waits, without reading the error queue; a simulator answering -113 to the
mandatory common commands breaks them. Every error pushed into the SCPI error queue sets its
class's bit in the Standard Event Status Register, as the standard ties them:

    ESR bit 0 OPC (`*OPC`), 2 QYE (-4xx), 3 DDE (-3xx and device codes), 4 EXE (-2xx),
        5 CME (-1xx); `*ESR?` reads and clears it, `*ESE` masks it into the status byte.
    STB bit 2 EAV (error queue not empty, SCPI), 4 MAV (a reply is waiting), 5 ESB (an enabled
        ESR bit is set), 6 MSS (an enabled STB bit is set); `*SRE` is that mask (bit 6 ignored).
"""

from __future__ import annotations

from dataclasses import dataclass

OPC = 1 << 0
QYE = 1 << 2
DDE = 1 << 3
EXE = 1 << 4
CME = 1 << 5

EAV = 1 << 2
MAV = 1 << 4
ESB = 1 << 5
MSS = 1 << 6


def event_bit(code: int) -> int:
    """The ESR bit an error code sets (SCPI-99 21.8: the code's hundreds name its class)."""
    if -199 <= code <= -100:
        return CME
    if -299 <= code <= -200:
        return EXE
    if -499 <= code <= -400:
        return QYE
    if code != 0:
        return DDE  # -3xx and positive device-specific codes
    return 0


@dataclass
class StatusModel:
    """The registers; the error queue's length and waiting replies are passed in when read."""

    event_status: int = 0
    event_enable: int = 0
    service_enable: int = 0

    def error(self, code: int) -> None:
        self.event_status |= event_bit(code)

    def operation_complete(self) -> None:
        self.event_status |= OPC

    def read_event_status(self) -> int:
        """`*ESR?`: the register, cleared by reading it."""
        value, self.event_status = self.event_status, 0
        return value

    def status_byte(self, *, errors_queued: bool, reply_waiting: bool) -> int:
        """`*STB?`: the summary bits now; reading does not clear anything."""
        stb = (EAV if errors_queued else 0) | (MAV if reply_waiting else 0)
        if self.event_status & self.event_enable:
            stb |= ESB
        if stb & self.service_enable & ~MSS:
            stb |= MSS
        return stb

    def clear(self) -> None:
        """`*CLS` (the caller also empties the error queue); the enable masks are kept."""
        self.event_status = 0
