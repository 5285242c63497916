"""Fault injection for simulated Modbus devices.

Faults are switched at run time through a block of holding registers (or the simulator's
settings) so that a driver test, an operator with any Modbus tool, or a recipe dry run can make
the device misbehave on demand. Each request's fate is decided once, in the request's own task,
and carried to the moment its reply is framed through a context variable: the datastore hook
knows *what* was asked, the packet hook is the only place that can silence or garble the reply.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
from contextvars import ContextVar
from dataclasses import dataclass

from pymodbus.constants import ExcCodes


class Fate(enum.Enum):
    REPLY = "reply"
    DROP = "drop"
    CORRUPT = "corrupt"


_fate: ContextVar[Fate | None] = ContextVar("modbus_reply_fate", default=None)


def current_fate() -> Fate | None:
    """The fate decided for the request being handled in this task (None: not decided)."""
    return _fate.get()


def set_fate(fate: Fate) -> None:
    _fate.set(fate)


@dataclass
class Faults:
    """The live fault switches; counters count down as they fire."""

    latency_ms: int = 0
    drop: int = 0
    exception_code: int = 0
    corrupt: int = 0
    stuck: bool = False

    async def decide(self, stopping: asyncio.Event) -> ExcCodes | None:
        """Apply latency, pick this request's fate, or answer with an exception code."""
        if self.latency_ms > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), self.latency_ms / 1000.0)
        if self.drop > 0:
            self.drop -= 1
            set_fate(Fate.DROP)
            return None
        if self.exception_code:
            set_fate(Fate.REPLY)
            try:
                return ExcCodes(self.exception_code)
            except ValueError:
                return ExcCodes.DEVICE_FAILURE
        if self.corrupt > 0:
            self.corrupt -= 1
            set_fate(Fate.CORRUPT)
            return None
        set_fate(Fate.REPLY)
        return None


def corrupt_rtu(frame: bytes) -> bytes:
    """Flip the bits of one payload byte: the CRC no longer matches."""
    if len(frame) < 4:
        return frame[::-1]
    middle = len(frame) // 2
    return frame[:middle] + bytes([frame[middle] ^ 0xFF]) + frame[middle + 1 :]


def corrupt_tcp(frame: bytes) -> bytes:
    """Break the MBAP header's protocol identifier (must be 0): a frame no client can accept."""
    if len(frame) < 8:
        return frame[::-1]
    return frame[:2] + b"\xde\xad" + frame[4:]
