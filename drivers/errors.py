"""Typed instrument errors.

The engine decides retry / fail-point / stop-run by error type, and an operator reading the log
must see which instrument, channel and address misbehaved and what actually came back, so every
error carries those fields rather than a bare message.
"""

from __future__ import annotations


class InstrumentError(Exception):
    """Base of every error a driver raises."""

    def __init__(
        self,
        instrument: str,
        message: str,
        *,
        channel: str | None = None,
        address: str | None = None,
        reply: object = None,
    ) -> None:
        self.instrument = instrument
        self.channel = channel
        self.address = address
        self.reply = reply
        self.message = message
        parts = [f"instrument {instrument!r}"]
        if channel is not None:
            parts.append(f"channel {channel!r}")
        if address is not None:
            parts.append(f"at {address}")
        text = f"{', '.join(parts)}: {message}"
        if reply is not None:
            text += f" (reply: {reply!r})"
        super().__init__(text)


class InstrumentTimeout(InstrumentError):
    """No reply within the configured timeout; the link may still be up."""


class InstrumentDisconnected(InstrumentError):
    """The transport is gone; the driver will reconnect with backoff."""


class ProtocolError(InstrumentError):
    """The instrument answered, but with an exception, a bad status or garbage."""


class ChannelError(InstrumentError):
    """A channel-level refusal: unknown channel, not writable, value outside its limits."""


class WriteOutcomeUnknown(InstrumentError):
    """A write was sent but its fate is unknown; it is reported, never blindly repeated."""
