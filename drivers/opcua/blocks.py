"""Columnar scans: one Read service call answered into a float64 column and its quality codes.

A block is prepared once per channel list and connection (node ids are resolved anew at every
reconnect): which positions are polled — one Read request built once, as `read` does — and
which are subscribed, answered from their latest notification. Only number channels may be
asked: the node's data type is known from connect, so a String or structured node is refused
before the wire. A value's own bad status does not fail the block (a scan of a hundred
channels is not lost to one broken sensor): that position is NaN with quality BAD.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from asyncua import ua

from ..base import BAD_CODE, GOOD_CODE, UNCERTAIN_CODE, Block, Quality, Reading
from ..errors import ChannelError
from .config import OpcUaChannel
from .nodeids import NodeRef
from .scan import ReadPlan, read_plan

NUMBER_TYPES = frozenset(
    {
        ua.VariantType.Boolean,
        ua.VariantType.SByte,
        ua.VariantType.Byte,
        ua.VariantType.Int16,
        ua.VariantType.UInt16,
        ua.VariantType.Int32,
        ua.VariantType.UInt32,
        ua.VariantType.Int64,
        ua.VariantType.UInt64,
        ua.VariantType.Float,
        ua.VariantType.Double,
    }
)
NUMBERS = frozenset({float, int, bool})
CODES = {Quality.GOOD: GOOD_CODE, Quality.UNCERTAIN: UNCERTAIN_CODE, Quality.BAD: BAD_CODE}


@dataclass(frozen=True, slots=True)
class BlockScan:
    """The positions of a block's polled and subscribed channels, and the polled ones' Read."""

    channels: tuple[str, ...]
    polled: ReadPlan
    polled_at: npt.NDArray[np.intp]
    subscribed: tuple[str, ...]
    subscribed_at: tuple[int, ...]

    specs: Mapping[str, OpcUaChannel]

    def polling(
        self,
        latest: Mapping[str, Reading],
        values: npt.NDArray[np.float64],
        codes: list[int],
        nodes: Mapping[str, ua.NodeId],
        refs: Mapping[str, NodeRef],
    ) -> tuple[ReadPlan, npt.NDArray[np.intp]]:
        """Fill the subscribed positions from their latest notifications and return the Read
        to send with the positions of its answers: the prepared one, or — while a subscribed
        channel has had no notification yet — one that polls it too."""
        waiting = []
        for name, at in zip(self.subscribed, self.subscribed_at, strict=True):
            reading = latest.get(name)
            if reading is None:
                waiting.append(at)
            elif reading.value.__class__ in NUMBERS:
                values[at] = reading.value
                codes[at] = CODES[reading.quality]
            else:
                values[at], codes[at] = math.nan, BAD_CODE
        if not waiting:
            return self.polled, self.polled_at
        at_all = np.concatenate([self.polled_at, np.array(waiting, dtype=np.intp)])
        names = [self.channels[i] for i in at_all]
        return read_plan(names, self.specs, nodes, refs), at_all


def prepare_block(
    instrument: str,
    key: tuple[str, ...],
    specs: Mapping[str, OpcUaChannel],
    nodes: Mapping[str, ua.NodeId],
    refs: Mapping[str, NodeRef],
    types: Mapping[str, ua.VariantType],
) -> BlockScan:
    """A block of `key`; a channel whose node does not hold a number is a `ChannelError`."""
    for name in key:
        if types[name] not in NUMBER_TYPES:
            raise ChannelError(
                instrument,
                f"not a number channel (the node holds {types[name].name})",
                channel=name,
                address=refs[name].text,
            )
    polled = [i for i, name in enumerate(key) if not specs[name].subscribe]
    subscribed = [i for i, name in enumerate(key) if specs[name].subscribe]
    return BlockScan(
        key,
        read_plan([key[i] for i in polled], specs, nodes, refs),
        np.array(polled, dtype=np.intp),
        tuple(key[i] for i in subscribed),
        tuple(subscribed),
        specs,
    )


def answered(
    answers: Sequence[ua.DataValue],
    at: Sequence[int] | npt.NDArray[np.intp],
    values: npt.NDArray[np.float64],
    codes: list[int],
) -> None:
    """Write a Read's answers to their positions: a number with its quality, NaN and BAD for
    a bad status, a missing value or a value that is not a number (a node whose type is
    Variant may hold anything)."""
    numbers: list[float] = []
    for dv, position in zip(answers, at, strict=True):
        status = dv.StatusCode
        code = GOOD_CODE
        if status is not None and status.value:
            code = BAD_CODE if status.is_bad() else UNCERTAIN_CODE
        variant = dv.Value
        value = variant.Value if variant is not None else None
        if code == BAD_CODE or value.__class__ not in NUMBERS:
            value, code = math.nan, BAD_CODE
        numbers.append(value)  # type: ignore[arg-type]
        codes[position] = code
    values[np.asarray(at, dtype=np.intp)] = numbers


def finish(
    channels: tuple[str, ...], values: npt.NDArray[np.float64], codes: list[int], stamp: float
) -> Block:
    """The block: NaN where BAD, and a NaN or ±inf from the server is BAD too."""
    quality = np.array(codes, dtype=np.uint8)
    quality[~np.isfinite(values)] = BAD_CODE
    values[quality == BAD_CODE] = np.nan
    return Block(channels, values, quality, stamp)
