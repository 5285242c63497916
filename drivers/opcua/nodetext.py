"""Node id text as an engineer writes it in a config, checked without asyncua.

Forms (OPC 10000-6 §5.3.1.10): `ns=2;s=Reactor.Temperature`, `ns=2;i=1001`,
`ns=2;g=09087e75-8e5e-499b-954f-f2a9603db28a`, `ns=2;b=TWFu`, and the same with
`nsu=<namespace URI>` instead of `ns=<index>`. Config validation runs before `READY=1` and
must not import asyncua (about 0.35 s, ADR 0075): `nodeids` turns this into asyncua's types.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from dataclasses import dataclass
from typing import Literal

Kind = Literal["i", "s", "g", "b"]
KIND_NAMES: dict[str, str] = {"i": "Numeric", "s": "String", "g": "Guid", "b": "ByteString"}


@dataclass(frozen=True)
class NodeText:
    """A node id as written: its identifier decoded, its namespace an index or a URI."""

    text: str
    identifier: int | str | uuid.UUID | bytes
    kind: Kind
    index: int | None = None
    uri: str | None = None


def parse_node_text(text: str) -> NodeText:
    """Parse a node id string; raise ValueError saying what is wrong with it."""
    rest = text.strip()
    index: int | None = None
    uri: str | None = None
    while rest.startswith(("ns=", "nsu=")):
        head, sep, rest = rest.partition(";")
        if not sep:
            raise ValueError(f"{text!r}: expected ';' and an identifier after {head!r}")
        key, _, value = head.partition("=")
        if key == "ns":
            try:
                index = int(value)
            except ValueError:
                raise ValueError(f"{text!r}: namespace index {value!r} is not a number") from None
        else:
            uri = value
    if index is not None and uri is not None:
        raise ValueError(f"{text!r}: give the namespace by index (ns=) or by URI (nsu=), not both")
    key, sep, value = rest.partition("=")
    if not sep or key not in KIND_NAMES:
        raise ValueError(f"{text!r}: the identifier must start with i=, s=, g= or b=")
    kind: Kind = key  # type: ignore[assignment]
    identifier: int | str | uuid.UUID | bytes
    try:
        if kind == "i":
            identifier = int(value)
        elif kind == "g":
            identifier = uuid.UUID(value)
        elif kind == "b":
            identifier = base64.b64decode(value, validate=True)
        else:
            identifier = value
    except (ValueError, binascii.Error):
        raise ValueError(
            f"{text!r}: {value!r} is not a valid {KIND_NAMES[kind]} identifier"
        ) from None
    if isinstance(identifier, int) and identifier < 0:
        raise ValueError(f"{text!r}: numeric identifiers are unsigned")
    return NodeText(text, identifier, kind, index, uri)
