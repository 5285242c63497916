"""What a publisher promises the drain: deliver a whole batch, or say why not.

`deliver` returns only when every record of the batch is acknowledged by the other side (fsync,
2xx, PUBACK); the drain moves the publisher's cursor only after that. It raises `Retryable` for
anything that may succeed later (the record stays queued) and `Rejected` for a permanent refusal
of the batch (the drain narrows it down to the records at fault and dead-letters those).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from mdfd.daemons.store.outbox import Entry


class DeliveryError(Exception):
    pass


class Retryable(DeliveryError):
    """Transient: connection refused, timeout, 5xx, 408, 429. Try again after a backoff."""


class Blocked(Retryable):
    """Nothing will pass until an operator acts (401/403: the token or the grant is wrong).

    Still retried, so nothing is lost, but reported loudly: it is not a network hiccup.
    """


class Rejected(DeliveryError):
    """Permanent: the other side refuses these records as they are (a 4xx other than
    401/403/408/429). Re-sending the same bytes cannot succeed."""


class Publisher(Protocol):
    name: str
    batch_size: int

    async def start(self) -> None: ...

    async def deliver(self, batch: Sequence[Entry]) -> None: ...

    async def close(self) -> None: ...
