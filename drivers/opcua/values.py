"""Between OPC-UA variants and the driver contract's plain values.

A write must carry the node's declared data type: a server rejects a Double sent to a Float or
an Int64 sent to a UInt16 node with BadTypeMismatch, so the driver converts (and range-checks)
before the value leaves, rather than letting the plant refuse it.
"""

from __future__ import annotations

import math
from datetime import datetime

from asyncua import ua

from ..base import Quality, Value

INTEGER_RANGES: dict[ua.VariantType, tuple[int, int]] = {
    ua.VariantType.SByte: (-(2**7), 2**7 - 1),
    ua.VariantType.Byte: (0, 2**8 - 1),
    ua.VariantType.Int16: (-(2**15), 2**15 - 1),
    ua.VariantType.UInt16: (0, 2**16 - 1),
    ua.VariantType.Int32: (-(2**31), 2**31 - 1),
    ua.VariantType.UInt32: (0, 2**32 - 1),
    ua.VariantType.Int64: (-(2**63), 2**63 - 1),
    ua.VariantType.UInt64: (0, 2**64 - 1),
}
FLOATS = (ua.VariantType.Float, ua.VariantType.Double)


def status_name(status: ua.StatusCode | int) -> str:
    code = status.value if isinstance(status, ua.StatusCode) else status
    return ua.StatusCode(ua.UInt32(code)).name


def to_python(value: object) -> Value:
    """A read value as the contract's Value; structured values become their text."""
    if isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, list | tuple) and all(
        isinstance(v, int | float) and not isinstance(v, bool) for v in value
    ):
        return [float(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, ua.LocalizedText):
        return value.Text or ""
    if isinstance(value, ua.QualifiedName):
        return value.Name or ""
    if isinstance(value, ua.NodeId):
        return value.to_string()
    return str(value)


def encode(value: Value, variant: ua.VariantType) -> ua.Variant:
    """Convert `value` to the node's type; raise ValueError when it does not fit."""
    if variant == ua.VariantType.Boolean:
        if isinstance(value, bool) or (isinstance(value, int | float) and value in (0, 1)):
            return ua.Variant(bool(value), variant)
        raise ValueError(f"{value!r} is not a boolean")
    if variant in INTEGER_RANGES:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"{value!r} is not a number")
        if isinstance(value, float) and not value.is_integer():
            raise ValueError(f"{value!r} is not a whole number, the node is {variant.name}")
        low, high = INTEGER_RANGES[variant]
        if not low <= int(value) <= high:
            raise ValueError(f"{value!r} does not fit {variant.name} [{low}, {high}]")
        return ua.Variant(int(value), variant)
    if variant in FLOATS:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"{value!r} is not a number")
        if variant == ua.VariantType.Float and math.isfinite(value) and abs(value) > 3.4028235e38:
            raise ValueError(f"{value!r} does not fit a Float")
        return ua.Variant(float(value), variant)
    if variant == ua.VariantType.String:
        if not isinstance(value, str):
            raise ValueError(f"{value!r} is not a string")
        return ua.Variant(value, variant)
    if variant == ua.VariantType.Variant:
        return ua.Variant(value)
    raise ValueError(f"writing {variant.name} nodes is not supported")


ABSTRACT_TYPES = (24, 26, 27, 28, 29)


def builtin_variant(type_id: ua.NodeId) -> ua.VariantType | None:
    """The variant type of a concrete built-in data type (its number is its variant type);
    None for any other data type."""
    identifier = type_id.Identifier
    if (
        type_id.NamespaceIndex == 0
        and isinstance(identifier, int)
        and identifier < 26
        and identifier not in ABSTRACT_TYPES
    ):
        return ua.VariantType(identifier)
    return None


def quality_of(status: ua.StatusCode | None) -> Quality:
    return Quality.UNCERTAIN if status is not None and status.is_uncertain() else Quality.GOOD
