"""Turn a SCPI reply into a channel value, or say precisely why it cannot be done.

Kept free of I/O so the rules are tested alone and a garbled reply is reported with the
instrument, channel, command and the raw text, never as a bare ValueError.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from ..base import Value
from .config import Parse, VisaChannel

TRUE_WORDS = {"1", "ON", "TRUE"}
FALSE_WORDS = {"0", "OFF", "FALSE"}


class ParseFailure(ValueError):
    """The reply does not fit the channel's rule; the caller wraps it in a ProtocolError."""


def decode_reply(raw: bytes, encoding: str) -> str:
    try:
        return raw.decode(encoding)
    except UnicodeDecodeError as exc:
        raise ParseFailure(f"undecodable as {encoding}: {exc.reason} at byte {exc.start}") from None


def parse_reply(reply: str, channel: VisaChannel) -> Value:
    text = reply.strip()
    if channel.parse is Parse.FLOATS:
        return [_float(part) for part in text.split(channel.separator)]
    if channel.field is not None:
        fields = text.split(channel.separator)
        if channel.field >= len(fields):
            raise ParseFailure(f"field {channel.field} requested, reply has {len(fields)}")
        text = fields[channel.field].strip()
    if channel.parse is Parse.FLOAT:
        return _float(text)
    if channel.parse is Parse.INT:
        return _int(text)
    if channel.parse is Parse.BOOL:
        return _bool(text)
    return text.strip("\"'")


def _float(text: str) -> float:
    try:
        return float(text.strip())
    except ValueError:
        raise ParseFailure(f"not a number: {text!r}") from None


def _int(text: str) -> int:
    value = _float(text)
    if not value.is_integer():
        raise ParseFailure(f"not an integer: {text!r}")
    return int(value)


def _bool(text: str) -> bool:
    word = text.strip().upper()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise ParseFailure(f"not a boolean: {text!r}")


def parse_readings(raw: bytes, encoding: str) -> npt.NDArray[np.float64]:
    """The readings of a reading-memory fetch, oldest first: comma-separated numbers, bare (a
    plain list, empty when there are none) or as the data of an IEEE 488.2 definite-length
    block (`#15 1,2,3`, `#10` for none: what Keysight's `R?` sends). `nan` and `inf` are
    numbers here; the caller marks them BAD."""
    text = decode_reply(block_data(raw.strip()), encoding).strip()
    if not text:
        return np.empty(0, np.float64)
    return np.array([_float(field) for field in text.split(",")], np.float64)


def block_data(raw: bytes) -> bytes:
    """The data of a definite-length block `#<n><length><data>`; anything not starting with
    `#` is returned as it is. A length that disagrees with the data is a garbled reply."""
    if not raw.startswith(b"#"):
        return raw
    digits = raw[1:2]
    if not digits.isdigit() or digits == b"0":
        raise ParseFailure(f"not a definite-length block: {raw[:16]!r}")
    count = int(digits)
    header = raw[2 : 2 + count]
    if len(header) != count or not header.isdigit():
        raise ParseFailure(f"block length field {header!r} is not {count} digits")
    data = raw[2 + count :]
    if len(data) != int(header):
        raise ParseFailure(f"block announces {int(header)} bytes, holds {len(data)}")
    return data


def error_entry(reply: str) -> int:
    """The code of one `SYST:ERR?` entry (`-113,"Undefined header"` -> -113)."""
    head = reply.strip().split(",", 1)[0].strip()
    try:
        return int(head)
    except ValueError:
        raise ParseFailure(f"not an error-queue entry: {reply!r}") from None


def program_message(queries: Sequence[str]) -> str:
    """Join queries into one IEEE 488.2 program message, so N channels cost one round trip.

    After a `;` a SCPI header is relative to the previous one's path (`MEAS:CAP?;LOSS?` asks
    for MEAS:LOSS?, and `MEAS:CAP?;MEAS:LOSS?` for the undefined MEAS:MEAS:LOSS?), so every
    unit after the first is rooted with `:` unless it already is, or is a common command.
    """
    first, *rest = (query.strip() for query in queries)
    return ";".join([first, *(q if q.startswith((":", "*")) else f":{q}" for q in rest)])


def split_responses(raw: bytes, count: int) -> list[bytes]:
    """The response units of one response message: split at `;` outside string data.

    Strings come double-quoted with `""` for a quote (IEEE 488.2 8.7.8), so toggling on every
    quote is exact. At most `count` units: arbitrary ASCII data (an `*IDN?` reply) may hold a
    `;`, and 488.2 allows it only as the last unit. Fewer units than queries means a query
    failed; the caller reports that.
    """
    if b'"' not in raw:
        return raw.split(b";", count - 1)
    units: list[bytes] = []
    start = 0
    quoted = False
    for index, byte in enumerate(raw):
        if byte == 0x22:  # '"'
            quoted = not quoted
        elif byte == 0x3B and not quoted and len(units) < count - 1:  # ';'
            units.append(raw[start:index])
            start = index + 1
    units.append(raw[start:])
    return units


def format_command(template: str, value: Value) -> str:
    """Fill a write template. Booleans go out as 1/0; an integral float (a recipe's `12.0`)
    also fits an integer format such as `{value:d}`."""
    if isinstance(value, bool):
        value = int(value)
    try:
        return template.format(value=value)
    except (ValueError, TypeError) as exc:
        if isinstance(value, float) and value.is_integer():
            return format_command(template, int(value))
        raise ParseFailure(f"cannot format {value!r} into {template!r}: {exc}") from None
