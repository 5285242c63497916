"""The SCPI dialogue of a session, written once for both transports.

What to send and what to make of the replies (the error queue after every write and the init
sequence, the identity, compound program messages) is the same whether the bytes travel
through pyvisa on a worker thread or over mdfd's own asyncio socket. So the dialogue is a
generator that yields the I/O it needs, `Send(command)` or `Query(command)`, and is sent back
the raw reply of each `Query` (termination stripped); each transport drives it with its own
blocking or awaiting I/O and maps its own failures to the typed errors. No I/O happens here.

A query is one step, not a send then a receive: the transport writes the command and reads
its reply in one call (one coroutine on the socket, one pass on the worker thread), which is
most of what a one-channel read costs beyond the wire (decision 0067).
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from dataclasses import dataclass
from typing import TypeVar

import structlog

from ..errors import InstrumentDisconnected, ProtocolError
from .config import VisaInstrument
from .parse import ParseFailure, decode_reply, error_entry, program_message, split_responses

T = TypeVar("T")
log = structlog.get_logger()
MESSAGES_KEPT = 64
"""Scans whose program messages are kept built (a driver reads a handful of channel lists)."""


@dataclass(frozen=True, slots=True)
class Send:
    """Send a command that has no reply."""

    command: str


@dataclass(frozen=True, slots=True)
class Query:
    """Send a query and read its reply (the dialogue is sent the raw reply)."""

    command: str


Step = Send | Query
Dialogue = Generator[Step, bytes | None, T]


class LinkDown(InstrumentDisconnected):
    """The link was found down before anything was sent: a write may safely be sent again
    on a new session."""


class OutOfStep(ProtocolError):
    """The reply stream can no longer be trusted to answer the next query (a compound message
    answered short, an over-long reply): the session must be reopened before its next use."""


class Scpi:
    """The dialogues of one instrument; stateless between them (the program messages of a
    scan are built once and kept)."""

    def __init__(self, instrument: str, config: VisaInstrument) -> None:
        self._name = instrument
        self._config = config
        self._log = log.bind(instrument=instrument, resource=config.resource)
        self._messages: dict[tuple[str, ...], list[tuple[str, tuple[str, ...]]]] = {}

    def open(self) -> Dialogue[str]:
        """On a fresh session: discard stale errors, run the init sequence, return the identity."""
        stale_errors = yield from self._errors()
        if stale_errors:
            self._log.warning("errors left in the queue before open", errors=stale_errors)
        for command in self._config.init:
            yield Send(command)
            yield from self._raise_errors(command)
        return (yield from self._query(self._config.identity_query))

    def query(self, commands: Sequence[str]) -> Dialogue[list[bytes]]:
        """The queries in order, `queries_per_message` to a program message; the raw replies
        for the caller to decode and parse, channel by channel."""
        replies: list[bytes] = []
        for message, group in self.messages(commands):
            replies += self.units(group, (yield from self._query_raw(message)))
        return replies

    def messages(self, commands: Sequence[str]) -> list[tuple[str, tuple[str, ...]]]:
        """The program messages a scan of `commands` goes out as, each with the queries it
        carries: the queries alone, or up to `queries_per_message` joined into one message.

        With `units`, this is the scan's dialogue as plain data, for a transport that sends a
        scan without driving a generator (the socket: one await per message)."""
        key = tuple(commands)
        messages = self._messages.get(key)
        if messages is None:
            size = self._config.queries_per_message
            groups = [key[start : start + size] for start in range(0, len(key), size)]
            messages = [(_message(group), group) for group in groups]
            if len(self._messages) >= MESSAGES_KEPT:
                del self._messages[next(iter(self._messages))]
            self._messages[key] = messages
        return messages

    def units(self, group: Sequence[str], raw: bytes) -> list[bytes]:
        """The replies of a message's queries from its reply; fewer units than queries is
        `OutOfStep`: a query of the message failed (its error is in the queue, logged at
        reopen) and an instrument may still send the rest on further lines, so the session is
        not trusted to be in step any more."""
        if len(group) == 1:
            return [raw]
        units = split_responses(raw, len(group))
        if len(units) != len(group):
            raise OutOfStep(
                self._name,
                f"{len(group)} queries in {_message(group)!r}, {len(units)} responses",
                address=self._config.resource,
                reply=raw,
            )
        return units

    def write(self, command: str) -> Dialogue[None]:
        """A command, then the error queue, so that a rejection is an error."""
        yield Send(command)
        yield from self._raise_errors(command)

    def _query(self, command: str) -> Dialogue[str]:
        """A query whose reply this module reads itself (error queue, identity)."""
        raw = yield from self._query_raw(command)
        try:
            return decode_reply(raw, self._config.encoding)
        except ParseFailure as exc:
            raise ProtocolError(
                self._name, f"reply to {command!r}: {exc}", address=self._config.resource, reply=raw
            ) from None

    def _query_raw(self, command: str) -> Dialogue[bytes]:
        reply = yield Query(command)
        assert reply is not None  # a transport answers every Query with bytes
        return reply

    def _errors(self) -> Dialogue[list[str]]:
        check = self._config.error_queue
        if check is None:
            return []
        found: list[str] = []
        for _ in range(check.max_entries):
            reply = yield from self._query(check.query)
            try:
                code = error_entry(reply)
            except ParseFailure as exc:
                raise ProtocolError(
                    self._name, str(exc), address=self._config.resource, reply=reply
                ) from None
            if code == 0:
                break
            found.append(reply.strip())
        return found

    def _raise_errors(self, command: str) -> Dialogue[None]:
        errors = yield from self._errors()
        if errors:
            raise ProtocolError(
                self._name,
                f"instrument rejected {command!r}",
                address=self._config.resource,
                reply="; ".join(errors),
            )


def _message(commands: Sequence[str]) -> str:
    return commands[0] if len(commands) == 1 else program_message(commands)
