"""JSON as every reader accepts it: NaN and ±inf become null.

Python's `json` writes `NaN`, `Infinity` and `-Infinity` by default, which no strict reader
(a browser, jq, Go, a platform's ingest) parses: one device answering NaN made `probe --json`,
the event stream and `GET /runs/{id}` unreadable. A non-finite number is no value, so it is
written as null. Every JSON the project prints, serves or stores goes through `dumps`.
"""

from __future__ import annotations

import json
import math
from typing import Any


def finite(value: Any) -> Any:
    """`value` with every non-finite float, however deeply nested, replaced by None."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [finite(item) for item in value]
    return value


_PLAIN = json.JSONEncoder(allow_nan=False)
"""The encoder of `dumps` without options, made once: `json.dumps` with any keyword argument
builds a new one per call (measured: 2.0 against 1.2 µs for a point's parameters)."""


def dumps(value: Any, **options: Any) -> str:
    """`json.dumps` with `allow_nan=False` semantics, never raising for a non-finite number.

    The common document has none and is encoded once; only one that has is walked and
    encoded again."""
    try:
        if not options:
            return _PLAIN.encode(value)
        return json.dumps(value, allow_nan=False, **options)
    except ValueError:
        return json.dumps(finite(value), allow_nan=False, **options)
