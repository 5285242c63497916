"""Resolving a config's node ids and their data types against a server, at every (re)connect.

Namespace indexes may change when a server is reconfigured, so each connect reads the namespace
array, turns every channel's node reference into a concrete NodeId, and reads each node's data
type (the variant type a write must carry, and what tells a number channel from a text one).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from asyncua import Client, ua
from asyncua.common.ua_utils import data_type_to_variant_type

from ..errors import ChannelError
from .nodeids import NodeRef
from .values import builtin_variant, status_name


@dataclass(frozen=True, slots=True)
class Resolved:
    namespaces: list[str]
    nodes: dict[str, ua.NodeId]
    types: dict[str, ua.VariantType]


async def resolve(
    instrument: str, client: Client, refs: Mapping[str, NodeRef], namespace: str | None
) -> Resolved:
    """Every channel's NodeId and variant type; an unknown namespace or a node without a usable
    data type is a `ChannelError` naming the channel. Transport and service failures are left
    to the caller, which types them."""
    namespaces = await client.get_namespace_array()
    nodes: dict[str, ua.NodeId] = {}
    for channel, ref in refs.items():
        try:
            nodes[channel] = ref.resolve(namespaces, namespace)
        except LookupError as exc:
            raise ChannelError(instrument, str(exc), channel=channel, address=ref.text) from None
    channels = list(nodes)
    types = await client.uaclient.read_attributes(
        [nodes[c] for c in channels], ua.AttributeIds.DataType
    )
    variant_types: dict[str, ua.VariantType] = {}
    for channel, dv in zip(channels, types, strict=True):
        if dv.StatusCode is not None and not dv.StatusCode.is_good():
            raise ChannelError(
                instrument,
                "node is not usable",
                channel=channel,
                address=refs[channel].text,
                reply=status_name(dv.StatusCode),
            )
        if dv.Value is None:
            raise ChannelError(
                instrument,
                "node answered no data type",
                channel=channel,
                address=refs[channel].text,
            )
        type_id: ua.NodeId = dv.Value.Value
        builtin = builtin_variant(type_id)
        if builtin is None:
            builtin = await data_type_to_variant_type(client.get_node(type_id))
        variant_types[channel] = builtin
    return Resolved(namespaces, nodes, variant_types)
