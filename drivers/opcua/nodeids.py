"""Node ids as an engineer writes them in a config (parsed by `nodetext`), resolved against the
server at connect. Namespace indexes may change when a server is reconfigured, URIs do not; so a
URI is resolved to its index on every (re)connect.
"""

from __future__ import annotations

import base64
import uuid
from dataclasses import dataclass

from asyncua import ua

from .nodetext import parse_node_text

KINDS = {
    "i": ua.NodeIdType.Numeric,
    "s": ua.NodeIdType.String,
    "g": ua.NodeIdType.Guid,
    "b": ua.NodeIdType.ByteString,
}


@dataclass(frozen=True)
class NodeRef:
    """A parsed node id whose namespace may still be a URI."""

    text: str
    identifier: int | str | uuid.UUID | bytes
    kind: ua.NodeIdType
    index: int | None = None
    uri: str | None = None

    def resolve(self, namespaces: list[str], default_uri: str | None = None) -> ua.NodeId:
        """The concrete NodeId on a server whose namespace array is `namespaces`."""
        if self.index is not None:
            index = self.index
        else:
            uri = self.uri or default_uri
            if uri is None:
                index = 0
            elif uri in namespaces:
                index = namespaces.index(uri)
            else:
                raise LookupError(f"namespace {uri!r} is not on the server (it has {namespaces})")
        return node_id(self.identifier, index, self.kind)


def node_id(
    identifier: int | str | uuid.UUID | bytes,
    namespace: int = 0,
    kind: ua.NodeIdType | None = None,
) -> ua.NodeId:
    """asyncua annotates NodeId's fields with its wire-encoding marker classes (ua.Int32,
    ua.String, ua.Int16 ...), though it takes, and its own decoder returns, plain values."""
    return ua.NodeId(identifier, namespace, kind)  # type: ignore[arg-type]


def parse_node(text: str) -> NodeRef:
    """Parse a node id string; raise ValueError saying what is wrong with it."""
    parsed = parse_node_text(text)
    return NodeRef(text, parsed.identifier, KINDS[parsed.kind], parsed.index, parsed.uri)


def format_node(node: ua.NodeId, namespaces: list[str] | None = None) -> str:
    """The string form of a node id, by URI when the namespace array is known."""
    kind = {v: k for k, v in KINDS.items()}.get(node.NodeIdType, "i")
    if node.NodeIdType in (ua.NodeIdType.TwoByte, ua.NodeIdType.FourByte):
        kind = "i"
    raw = node.Identifier
    identifier = base64.b64encode(raw).decode() if isinstance(raw, bytes) else str(raw)
    if node.NamespaceIndex == 0:
        return f"{kind}={identifier}"
    if namespaces is not None and node.NamespaceIndex < len(namespaces):
        return f"nsu={namespaces[node.NamespaceIndex]};{kind}={identifier}"
    return f"ns={node.NamespaceIndex};{kind}={identifier}"
