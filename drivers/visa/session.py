"""One blocking pyvisa session, called only from worker threads.

pyvisa blocks, so the driver runs every method here on a worker thread. A threading lock
serialises them: even if an awaiting task is cancelled while a call is still blocked in the
backend, the next call waits for it rather than interleaving on the wire.

After a timeout or a transport error the session is marked stale: a late reply may still be in
flight and would be read as the answer to the next query, so the next use reopens the session
(a new TCP connection; a serial port reopened with its input discarded).
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Sequence

import pyvisa
import structlog
from pyvisa import constants
from pyvisa.errors import VisaIOError
from pyvisa.resources import MessageBasedResource

from ..errors import (
    InstrumentDisconnected,
    InstrumentError,
    InstrumentTimeout,
    ProtocolError,
)
from .config import VisaInstrument
from .parse import ParseFailure, decode_reply, error_entry, program_message, split_responses

STOP_BITS = {
    1: constants.StopBits.one,
    1.5: constants.StopBits.one_and_a_half,
    2: constants.StopBits.two,
}
log = structlog.get_logger()


class LinkDown(InstrumentDisconnected):
    """The link was found down before anything was sent: a write may safely be sent again
    on a new session."""


class VisaSession:
    def __init__(self, instrument: str, config: VisaInstrument) -> None:
        self._name = instrument
        self._config = config
        self._lock = threading.Lock()
        self._manager: pyvisa.ResourceManager | None = None
        self._resource: MessageBasedResource | None = None
        self.stale = True
        self._log = log.bind(instrument=instrument, resource=config.resource)

    # --- public, each call holds the lock for its whole exchange

    def open(self) -> str:
        """(Re)open, discard stale errors, run the init sequence, return the identity."""
        with self._lock:
            self._close()
            self._resource = self._open_resource()
            try:
                stale_errors = self._errors()
                if stale_errors:
                    self._log.warning("errors left in the queue before open", errors=stale_errors)
                for command in self._config.init:
                    self._write(command)
                    self._raise_errors(command)
                identity = self._query(self._config.identity_query)
            except InstrumentError:
                self._close()
                raise
            self.stale = False
            return identity

    def query(self, commands: Sequence[str]) -> list[bytes]:
        """Send the queries in order, on this one session, `queries_per_message` to a program
        message; return the raw replies (without the read termination) for the caller to
        decode and parse, channel by channel."""
        with self._lock:
            self._check_peer(commands[0] if commands else "")
            size = self._config.queries_per_message
            if size == 1:
                return [self._query_raw(command) for command in commands]
            replies: list[bytes] = []
            for start in range(0, len(commands), size):
                replies += self._query_message(commands[start : start + size])
            return replies

    def write(self, command: str) -> None:
        """Write a command, then read the error queue so a rejection is an error."""
        with self._lock:
            self._check_peer(command)
            self._write(command)
            self._raise_errors(command)

    def close(self) -> None:
        """Close this session only. The ResourceManager is left open: pyvisa hands out one per
        VISA library per process, so closing it would close every other instrument's session
        on that backend (pyvisa closes it at exit)."""
        with self._lock:
            self._close()
            self._manager = None

    # --- under the lock

    def _open_resource(self) -> MessageBasedResource:
        config = self._config
        options: dict[str, object] = {
            "read_termination": config.read_termination,
            "write_termination": config.write_termination,
            "encoding": config.encoding,
            "timeout": config.timeout * 1000.0,
        }
        if config.serial is not None:
            line = config.serial
            options.update(
                baud_rate=line.baud_rate,
                data_bits=line.data_bits,
                parity=constants.Parity[line.parity.value],
                stop_bits=STOP_BITS[line.stop_bits],
                flow_control=constants.ControlFlow[line.flow_control.value],
            )
        try:
            if self._manager is None:
                self._manager = pyvisa.ResourceManager(config.backend)
            resource = self._manager.open_resource(
                config.resource, open_timeout=int(config.open_timeout * 1000), **options
            )
        # Backends raise what they like on open (pyvisa-py: a bare Exception for a refused
        # TCP connection, OSError/SerialException for a missing port, VisaIOError, ValueError
        # for an unknown library); all of them mean "no session", which is what we report.
        except Exception as exc:
            raise InstrumentDisconnected(
                self._name, f"cannot open: {exc}", address=config.resource
            ) from exc
        if not isinstance(resource, MessageBasedResource):
            resource.close()
            raise InstrumentDisconnected(
                self._name, "not a message-based resource", address=config.resource
            )
        if config.is_serial:
            # A late reply from before a reopen must not answer our next query. Backends
            # without viFlush (pyvisa-sim) have no wire, hence nothing stale to discard.
            with contextlib.suppress(NotImplementedError):
                resource.flush(constants.BufferOperation.discard_read_buffer)
        return resource

    def _query(self, command: str) -> str:
        """A query whose reply this module reads itself (error queue, identity)."""
        raw = self._query_raw(command)
        try:
            return decode_reply(raw, self._config.encoding)
        except ParseFailure as exc:
            raise ProtocolError(
                self._name, f"reply to {command!r}: {exc}", address=self._config.resource, reply=raw
            ) from None

    def _query_raw(self, command: str) -> bytes:
        self._write(command)
        resource = self._require()
        try:
            raw = resource.read_raw()
        except (VisaIOError, OSError) as exc:
            raise self._failed(command, exc) from exc
        return raw.removesuffix(self._config.read_termination.encode(self._config.encoding))

    def _query_message(self, commands: Sequence[str]) -> list[bytes]:
        if len(commands) == 1:
            return [self._query_raw(commands[0])]
        message = program_message(commands)
        raw = self._query_raw(message)
        replies = split_responses(raw, len(commands))
        if len(replies) != len(commands):
            # A query of the message failed (its error is in the queue, logged at reopen).
            # An instrument may still send the rest on further lines, so the session is not
            # trusted to be in step any more.
            self.stale = True
            raise ProtocolError(
                self._name,
                f"{len(commands)} queries in {message!r}, {len(replies)} responses",
                address=self._config.resource,
                reply=raw,
            )
        return replies

    def _write(self, command: str) -> None:
        resource = self._require()
        try:
            resource.write(command)
        except (VisaIOError, OSError) as exc:
            raise self._failed(command, exc) from exc

    def _errors(self) -> list[str]:
        check = self._config.error_queue
        if check is None:
            return []
        found: list[str] = []
        for _ in range(check.max_entries):
            reply = self._query(check.query)
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

    def _raise_errors(self, command: str) -> None:
        errors = self._errors()
        if errors:
            raise ProtocolError(
                self._name,
                f"instrument rejected {command!r}",
                address=self._config.resource,
                reply="; ".join(errors),
            )

    def _check_peer(self, command: str) -> None:
        """Refuse to use a TCP socket whose peer has hung up.

        pyvisa-py cannot tell a closed peer from a silent one: its read spins until the
        timeout. A non-blocking peek at the session's socket (pyvisa-py keeps it as
        `interface`; pinned to 0.8) tells them apart in one syscall, so a dropped connection
        is reported as such and reopened instead of costing a timeout.
        """
        resource = self._require()
        sessions = getattr(resource.visalib, "sessions", {})
        sock = getattr(sessions.get(resource.session), "interface", None)
        if not isinstance(sock, socket.socket):
            return
        try:
            closed = sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
        except BlockingIOError:
            closed = False
        except OSError:
            closed = True
        if closed:
            self.stale = True
            raise LinkDown(
                self._name,
                f"the peer closed the connection; {command!r} not sent",
                address=self._config.resource,
            )

    def _failed(self, command: str, exc: Exception) -> InstrumentError:
        self.stale = True
        if isinstance(exc, VisaIOError) and exc.error_code == constants.StatusCode.error_timeout:
            return InstrumentTimeout(
                self._name,
                f"no reply to {command!r} within {self._config.timeout:g} s",
                address=self._config.resource,
            )
        return InstrumentDisconnected(
            self._name, f"{command!r} failed: {exc}", address=self._config.resource
        )

    def _require(self) -> MessageBasedResource:
        if self._resource is None:
            self.stale = True
            raise LinkDown(self._name, "not open", address=self._config.resource)
        return self._resource

    def _close(self) -> None:
        resource, self._resource = self._resource, None
        self.stale = True
        if resource is None:
            return
        try:
            resource.close()
        except (VisaIOError, OSError) as exc:
            self._log.warning("closing the session failed", error=str(exc))
