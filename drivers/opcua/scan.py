"""A polled scan, prepared once per channel set and connection, and the readings of its answer.

The engine reads the same channels of an instrument at every sample. Building a ReadValueId per
node, looking up each channel's unit and address and running the general value conversion on
every scan cost the driver close to a tenth of the raw library's read rate (issue 9). What does
not change between scans — the Read request itself, units, addresses — is built here once, and
the answer's common case (a Good status and a plain scalar) takes the shortest path.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from asyncua import ua

from ..base import Quality, Reading, judged
from ..errors import ProtocolError
from .config import OpcUaChannel
from .nodeids import NodeRef
from .values import quality_of, status_name, to_python

PLAIN = frozenset({float, int, bool, str})
"""Value types that are already the contract's Value: no conversion needed."""


@dataclass(frozen=True, slots=True)
class ReadPlan:
    """One Read service request and, in the same order, what each answer belongs to."""

    channels: tuple[str, ...]
    parameters: ua.ReadParameters
    units: tuple[str, ...]
    addresses: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Scan:
    """The channels of one `read` call, split by how they are answered."""

    channels: tuple[str, ...]
    subscribed: tuple[str, ...]
    polled: ReadPlan


def read_plan(
    channels: Sequence[str],
    specs: Mapping[str, OpcUaChannel],
    nodes: Mapping[str, ua.NodeId],
    refs: Mapping[str, NodeRef],
) -> ReadPlan:
    """The request is only ever serialised, never changed, so scans can share it."""
    parameters = ua.ReadParameters()
    for channel in channels:
        item = ua.ReadValueId()
        item.NodeId = nodes[channel]
        item.AttributeId = ua.AttributeIds.Value
        parameters.NodesToRead.append(item)
    return ReadPlan(
        tuple(channels),
        parameters,
        tuple(specs[c].unit for c in channels),
        tuple(refs[c].text for c in channels),
    )


def prepare(
    key: Sequence[str],
    specs: Mapping[str, OpcUaChannel],
    nodes: Mapping[str, ua.NodeId],
    refs: Mapping[str, NodeRef],
) -> Scan:
    """Valid for the node ids of one connection: a reconnect may resolve them differently."""
    channels = tuple(dict.fromkeys(key))
    subscribed = tuple(name for name in channels if specs[name].subscribe)
    polled = [name for name in channels if not specs[name].subscribe]
    return Scan(channels, subscribed, read_plan(polled, specs, nodes, refs))


def readings(
    instrument: str, plan: ReadPlan, values: Sequence[ua.DataValue], now: float
) -> dict[str, Reading]:
    """Readings in the plan's order; a Bad status or a missing value is an error naming the
    channel and its node, an Uncertain status becomes the reading's quality."""
    out: dict[str, Reading] = {}
    for channel, unit, address, dv in zip(
        plan.channels, plan.units, plan.addresses, values, strict=True
    ):
        status = dv.StatusCode
        quality = Quality.GOOD
        if status is not None and status.value:
            if status.is_bad():
                raise ProtocolError(
                    instrument,
                    "bad status",
                    channel=channel,
                    address=address,
                    reply=status_name(status),
                )
            quality = quality_of(status)
        variant = dv.Value
        value = variant.Value if variant is not None else None
        if value is None:
            raise ProtocolError(
                instrument, "the server returned no value", channel=channel, address=address
            )
        if type(value) not in PLAIN:
            value = to_python(value)
        out[channel] = Reading(value, unit, now, judged(value, quality))
    return out
