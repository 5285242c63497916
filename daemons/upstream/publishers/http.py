"""The `http` publisher: POST batches of records as JSON to the platform's ingest URL.

Body: `{"schema": "mdfd.record/1", "records": [...]}`. Headers: `Authorization: Bearer <token
from the environment>` and an `Idempotency-Key` derived from the batch's record ids, so a batch
re-sent after a lost response carries the same key. Any 2xx acknowledges the whole batch.

Status classes: 2xx delivered; 408, 429 and 5xx retried; 401 and 403 held and retried (the
token or grant is wrong — every record would fail the same way, so none is dead-lettered, and
the error says which variable to fix); any other 4xx is a permanent rejection.
"""

from __future__ import annotations

import os
import ssl
import uuid
from collections.abc import Sequence

import aiohttp

from ...config import HttpPublisher
from ..outbox import Entry
from ..record import RECORD_NAMESPACE, SCHEMA_ID
from .base import Blocked, Rejected, Retryable

RETRYABLE_4XX = frozenset({408, 425, 429})
AUTH = frozenset({401, 403})
REPLY_EXCERPT = 300


def idempotency_key(batch: Sequence[Entry]) -> str:
    return str(uuid.uuid5(RECORD_NAMESPACE, "batch:" + ",".join(e.record_id for e in batch)))


class HttpPoster:
    def __init__(self, config: HttpPublisher) -> None:
        self.config = config
        self.name = config.name
        self.batch_size = config.batch_size
        self._session: aiohttp.ClientSession | None = None
        self._headers: dict[str, str] = {}

    async def start(self) -> None:
        headers = {"Content-Type": "application/json", "User-Agent": "mdfd"}
        env = self.config.token_env
        if env is not None:
            token = os.environ.get(env)
            if not token:
                raise Blocked(f"environment variable {env} (the bearer token) is not set")
            headers["Authorization"] = f"Bearer {token}"
        self._headers = headers
        if self._session is None:
            connector = aiohttp.TCPConnector(ssl=self._tls(), limit=4)
            timeout = aiohttp.ClientTimeout(total=self.config.timeout)
            self._session = aiohttp.ClientSession(connector=connector, timeout=timeout)

    def _tls(self) -> ssl.SSLContext | bool:
        if not self.config.url.startswith("https://"):
            return True
        if not self.config.verify_tls:
            return False
        cafile = str(self.config.ca_file) if self.config.ca_file else None
        return ssl.create_default_context(cafile=cafile)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def deliver(self, batch: Sequence[Entry]) -> None:
        assert self._session is not None, "start() first"
        records = ",".join(e.body for e in batch)
        body = f'{{"schema":"{SCHEMA_ID}","records":[{records}]}}'.encode()
        headers = {**self._headers, "Idempotency-Key": idempotency_key(batch)}
        url = self.config.url
        try:
            async with self._session.post(url, data=body, headers=headers) as response:
                status = response.status
                reply = (await response.text(errors="replace"))[:REPLY_EXCERPT]
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise Retryable(f"POST {url}: {type(exc).__name__}: {exc}") from exc
        if 200 <= status < 300:
            return
        said = f"POST {url}: HTTP {status}" + (f": {reply.strip()}" if reply.strip() else "")
        if status in AUTH:
            where = (
                f"the token in ${self.config.token_env}"
                if self.config.token_env
                else ("token_env is not configured")
            )
            raise Blocked(f"{said} — upstream refuses our credentials ({where})")
        if status in RETRYABLE_4XX or status >= 500:
            raise Retryable(said)
        if 400 <= status < 500:
            raise Rejected(said)
        raise Retryable(said)
