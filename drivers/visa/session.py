"""One blocking pyvisa session (INSTR, ASRL, GPIB, USB, ...), called only from a worker thread.

pyvisa blocks, so every method here runs on the instrument's worker thread (transport.py). A
threading lock serialises them: even if an awaiting task is cancelled while a call is still
blocked in the backend, the next call waits for it rather than interleaving on the wire.

After a timeout or a transport error the session is marked stale: a late reply may still be in
flight and would be read as the answer to the next query, so the next use reopens the session
(a serial port reopened with its input discarded). Only pyvisa's public API is used: a serial
port that vanished is found before an exchange (`_check_port`); any other loss shows as the I/O
error or the timeout of the operation that meets it (decision 52).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Sequence
from typing import Any, TypeVar

import pyvisa
import structlog
from pyvisa import constants
from pyvisa.errors import VisaIOError
from pyvisa.resources import MessageBasedResource, SerialInstrument

from ..errors import InstrumentDisconnected, InstrumentError, InstrumentTimeout
from .config import VisaInstrument
from .scpi import Dialogue, LinkDown, OutOfStep, Scpi, Send

T = TypeVar("T")
STOP_BITS = {
    1: constants.StopBits.one,
    1.5: constants.StopBits.one_and_a_half,
    2: constants.StopBits.two,
}
log = structlog.get_logger()


class VisaSession:
    def __init__(self, instrument: str, config: VisaInstrument) -> None:
        self._name = instrument
        self._config = config
        self._scpi = Scpi(instrument, config)
        self._lock = threading.Lock()
        self._manager: pyvisa.ResourceManager | None = None
        self._resource: MessageBasedResource | None = None
        self._termination = config.read_termination.encode(config.encoding)
        self._probe_port = config.is_serial
        self.stale = True
        self._log = log.bind(instrument=instrument, resource=config.resource)

    # --- public, each call holds the lock for its whole exchange

    def open(self) -> str:
        """(Re)open, discard stale errors, run the init sequence, return the identity."""
        with self._lock:
            self._close()
            self._resource = self._open_resource()
            try:
                identity = self._run(self._scpi.open())
            except InstrumentError:
                self._close()
                raise
            self.stale = False
            return identity

    def query(self, commands: Sequence[str]) -> list[bytes]:
        """Send the queries in order on this one session; return the raw replies."""
        with self._lock:
            self._check_port(commands[0] if commands else "")
            return self._run(self._scpi.query(commands))

    def write(self, command: str) -> None:
        """Write a command, then read the error queue so a rejection is an error."""
        with self._lock:
            self._check_port(command)
            self._run(self._scpi.write(command))

    def close(self) -> None:
        """Close this session only. The ResourceManager is left open: pyvisa hands out one per
        VISA library per process, so closing it would close every other instrument's session
        on that backend (pyvisa closes it at exit)."""
        with self._lock:
            self._close()
            self._manager = None

    # --- under the lock

    def _run(self, dialogue: Dialogue[T]) -> T:
        """Drive a dialogue with blocking pyvisa I/O."""
        reply: bytes | None = None
        try:
            while True:
                try:
                    step = dialogue.send(reply)
                except StopIteration as done:
                    return done.value
                reply = None
                self._send(step.command)
                if not isinstance(step, Send):
                    reply = self._receive(step.command)
        except OutOfStep:
            self.stale = True
            raise
        finally:
            dialogue.close()

    def _send(self, command: str) -> None:
        resource = self._require()
        try:
            resource.write(command)
        except (VisaIOError, OSError) as exc:
            raise self._failed(command, exc) from exc

    def _receive(self, command: str) -> bytes:
        resource = self._require()
        try:
            raw = resource.read_raw()
        except (VisaIOError, OSError) as exc:
            raise self._failed(command, exc) from exc
        return raw.removesuffix(self._termination)

    def _open_resource(self) -> MessageBasedResource:
        config = self._config
        options: dict[str, Any] = {
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

    def _check_port(self, command: str) -> None:
        """Refuse to use a serial port that has vanished, before anything is sent.

        A serial line has no connection whose end could be seen, but a port that went away
        (USB adapter unplugged, pty whose other end closed) is hung up by the kernel and fails
        every operation with EIO. Asking how many bytes wait in its input buffer (pyvisa's
        public `bytes_in_buffer`, VI_ATTR_ASRL_AVAIL_NUM: one ioctl, nothing on the wire) fails
        the same way, so the loss is `LinkDown` and a write may be sent on the reopened port.
        A cable pulled from a plain RS-232 port is not seen by anyone: the exchange times out.
        Backends without the attribute are not probed.
        """
        resource = self._require()
        if not self._probe_port or not isinstance(resource, SerialInstrument):
            return
        try:
            resource.bytes_in_buffer  # noqa: B018 - read for its failure, the count is unused
        except NotImplementedError:
            self._probe_port = False
        except VisaIOError as exc:
            if exc.error_code != constants.StatusCode.error_nonsupported_attribute:
                raise self._port_lost(command, exc) from exc
            self._probe_port = False
        except OSError as exc:
            raise self._port_lost(command, exc) from exc

    def _port_lost(self, command: str, exc: Exception) -> LinkDown:
        self.stale = True
        return LinkDown(
            self._name,
            f"the port is gone ({exc}); {command!r} not sent",
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
