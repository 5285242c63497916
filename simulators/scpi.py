"""A small SCPI command interpreter: headers, short/long forms, program messages, error queue.

Real SCPI instruments accept `MEAS:CAP?`, `:measure:capacitance?` and `MEASure:CAPacitance?`
alike, chain commands with `;`, and report every rejected command through `SYST:ERR?` rather
than on the wire. Clients (pyvisa scripts, our driver) are written against that behaviour, so
the simulator implements it rather than matching literal strings.

Within a program message a header after `;` is relative to the previous header's path, as
SCPI-99 6.2.4 says (`MEAS:CAP?;LOSS?` is MEAS:CAP? then MEAS:LOSS?); a leading `:` roots it
and common commands (`*IDN?`) neither use nor change the path. A client that joins
`MEAS:CAP?;MEAS:LOSS?` gets -113 for MEAS:MEAS:LOSS?, as from a real instrument.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

QUEUE_DEPTH = 20

# The standard messages (IEEE 488.2 / SCPI-99 chapter 21) for the codes this simulator raises.
MESSAGES: dict[int, str] = {
    0: "No error",
    -100: "Command error",
    -102: "Syntax error",
    -108: "Parameter not allowed",
    -109: "Missing parameter",
    -113: "Undefined header",
    -200: "Execution error",
    -213: "Init ignored",
    -222: "Data out of range",
    -224: "Illegal parameter value",
    -300: "Device-specific error",
    -350: "Queue overflow",
    -410: "Query INTERRUPTED",
}


class ScpiError(Exception):
    """A command was rejected; the interpreter pushes (code, message) into the error queue."""

    def __init__(self, code: int, detail: str = "") -> None:
        self.code = code
        self.detail = detail
        super().__init__(f"{code}: {detail or MESSAGES.get(code, 'Error')}")


class ErrorQueue:
    """The SCPI error queue: FIFO, bounded, overflow replaces the newest entry with -350."""

    def __init__(
        self, depth: int = QUEUE_DEPTH, on_error: Callable[[int], None] | None = None
    ) -> None:
        self._depth = depth
        self._entries: deque[tuple[int, str]] = deque()
        self._on_error = on_error  # the status model's event register hears every error

    def push(self, code: int, detail: str = "") -> None:
        if self._on_error is not None:
            self._on_error(code)
        message = MESSAGES.get(code, "Error")
        text = f"{message};{detail}" if detail else message
        if len(self._entries) >= self._depth:
            self._entries[-1] = (-350, MESSAGES[-350])
            if self._on_error is not None:
                self._on_error(-350)
            return
        self._entries.append((code, text))

    def pop(self) -> str:
        code, text = self._entries.popleft() if self._entries else (0, MESSAGES[0])
        return f'{code:+d},"{text}"'

    def clear(self) -> None:
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)


Handler = Callable[[list[str]], str | None]


@dataclass(frozen=True)
class _Node:
    short: str
    long: str

    def matches(self, text: str) -> bool:
        return text in (self.short, self.long)


def _nodes(pattern: str) -> list[list[_Node]]:
    """Expand `SYSTem:ERRor[:NEXT]?` into every accepted node sequence."""
    variants: list[list[str]] = [[]]
    for part in re.findall(r"\[:?[^\]]+\]|[^:\[\]]+", pattern.lstrip(":")):
        if part.startswith("["):
            names = part.strip("[]:").split(":")
            variants = [v for base in variants for v in (base, base + names)]
        else:
            variants = [[*base, part] for base in variants]
    return [
        [_Node("".join(c for c in name if not c.islower()).upper(), name.upper()) for name in v]
        for v in variants
    ]


class CommandSet:
    """Headers registered in SCPI notation (upper case = short form) mapped to handlers.

    A handler takes the parameters and returns the reply text for a query, None for a command,
    and raises ScpiError to reject.
    """

    def __init__(self) -> None:
        self._common: dict[str, Handler] = {}
        self._tree: list[tuple[list[_Node], bool, Handler]] = []

    def add(self, pattern: str, handler: Handler) -> None:
        if pattern.startswith("*"):
            self._common[pattern.upper()] = handler
            return
        query = pattern.endswith("?")
        for nodes in _nodes(pattern.rstrip("?")):
            self._tree.append((nodes, query, handler))

    def find(self, header: str) -> Handler | None:
        header = header.upper()
        if header.startswith("*"):
            return self._common.get(header)
        query = header.endswith("?")
        parts = header.rstrip("?").lstrip(":").split(":")
        for nodes, is_query, handler in self._tree:
            if (
                is_query == query
                and len(nodes) == len(parts)
                and all(n.matches(p) for n, p in zip(nodes, parts, strict=True))
            ):
                return handler
        return None


def split_message(line: str) -> list[str]:
    """Split a program message on `;` outside quoted strings."""
    out: list[str] = []
    current: list[str] = []
    quote = ""
    for char in line:
        if quote:
            quote = "" if char == quote else quote
        elif char in "\"'":
            quote = char
        elif char == ";":
            out.append("".join(current).strip())
            current = []
            continue
        current.append(char)
    out.append("".join(current).strip())
    return [unit for unit in out if unit]


def split_unit(unit: str) -> tuple[str, list[str]]:
    """`SPEC:NEW 12` -> ("SPEC:NEW", ["12"]); parameters are comma separated."""
    header, _, rest = unit.partition(" ")
    rest = rest.strip()
    params = [p.strip() for p in rest.split(",")] if rest else []
    return header.strip(), params


def resolve(header: str, path: list[str]) -> tuple[str, list[str]]:
    """The absolute header a unit names after `path`, and the path the next unit starts from."""
    if header.startswith("*"):
        return header, path
    nodes = header.split(":")
    nodes = nodes[1:] if header.startswith(":") else path + nodes
    return ":".join(nodes), nodes[:-1]


def execute(
    commands: CommandSet,
    errors: ErrorQueue,
    line: str,
    replies: list[str] | None = None,
) -> list[str]:
    """Run one program message; return the replies of its queries, in order.

    A rejected unit pushes its error and the rest of the message still runs, as on an
    instrument; a query that fails yields no reply (the client then times out and reads the
    error queue). `replies` is the output queue being filled, for handlers that look at it
    (`*STB?`'s message-available bit).
    """
    replies = [] if replies is None else replies
    path: list[str] = []
    for unit in split_message(line):
        header, params = split_unit(unit)
        if not re.fullmatch(r"\*?:?[A-Za-z0-9:]+\??", header):
            errors.push(-102, header)
            continue
        header, path = resolve(header, path)
        handler = commands.find(header)
        if handler is None:
            errors.push(-113, header)
            continue
        try:
            reply = handler(params)
        except ScpiError as exc:
            errors.push(exc.code, exc.detail)
            continue
        if reply is not None:
            replies.append(reply)
    return replies


def number(params: list[str], low: float, high: float, *, integral: bool = False) -> float:
    """The single numeric parameter of a command, range-checked the SCPI way."""
    if not params:
        raise ScpiError(-109)
    if len(params) > 1:
        raise ScpiError(-108)
    try:
        value = float(params[0])
    except ValueError:
        raise ScpiError(-224, params[0]) from None
    if integral and not value.is_integer():
        raise ScpiError(-224, params[0])
    if not low <= value <= high:
        raise ScpiError(-222, params[0])
    return value


def no_params(params: list[str]) -> None:
    if params:
        raise ScpiError(-108)
