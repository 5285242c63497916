"""Register read responses decoded in one struct call, keeping the payload bytes.

pymodbus 3.16 decodes a register response one register at a time in Python; for a 100-register
scan that is the largest single cost on the client. These subclasses plug into pymodbus's own
extension point (`DecodePDU.register`, on the link's decoder) and decode the same frames with
one `struct.unpack`, keeping the raw payload so the scan's plan can unpack its values straight
from the wire bytes.
"""

from __future__ import annotations

import struct

from pymodbus.exceptions import ModbusIOException
from pymodbus.pdu.register_message import (
    ReadHoldingRegistersResponse,
    ReadInputRegistersResponse,
)


def _decode(pdu: ReadHoldingRegistersResponse, data: bytes) -> None:
    count = int(data[0])
    if count >= len(data) or count % 2:
        raise ModbusIOException(
            f"byte_count {count} does not fit a packet of {len(data)} bytes",
            function_code=pdu.function_code,
        )
    payload = bytes(data[1 : 1 + count])
    pdu.payload = payload  # type: ignore[attr-defined]
    pdu.registers = list(struct.unpack(f">{count // 2}H", payload))


class HoldingRegistersReply(ReadHoldingRegistersResponse):
    """Function 3 reply: `registers` as usual, plus the big-endian `payload` bytes."""

    payload: bytes = b""

    def decode(self, data: bytes) -> None:
        _decode(self, data)

    def __str__(self) -> str:
        # pymodbus formats every decoded reply for a debug line even when debug is off;
        # listing a hundred registers there costs more than decoding them
        return f"{type(self).__name__}(dev_id={self.dev_id}, registers={len(self.registers)})"


class InputRegistersReply(HoldingRegistersReply, ReadInputRegistersResponse):
    """Function 4 reply: `registers` as usual, plus the big-endian `payload` bytes."""

    function_code = 4


REPLY_CLASSES = (HoldingRegistersReply, InputRegistersReply)
