"""The `http` publisher: POST batches of records as JSON to the platform's ingest URL.

Body: `{"schema": "mdfd.record/1", "records": [...]}`. Headers: `Authorization: Bearer <token
from the environment>`, any `headers_env` header (an API key) and an `Idempotency-Key` derived
from the batch's record ids, so a batch re-sent after a lost response carries the same key.
Any 2xx acknowledges the whole batch.

Status classes: 2xx delivered; 408, 429 and 5xx retried; 401 and 403 held and retried (the
token or grant is wrong — every record would fail the same way, so none is dead-lettered, and
the error says which variable to fix); any other 4xx is a permanent rejection.

Every message this publisher raises (they end up in logs, status and the state DB) shows the
URL redacted and is scrubbed of the token, header values and the URL's own secrets.
"""

from __future__ import annotations

import os
import ssl
import uuid
from collections.abc import Sequence

import aiohttp

from mdfd.daemons.core.config import HttpPublisher
from mdfd.daemons.core.redact import Scrubber, redact_url, url_secrets
from mdfd.daemons.store.outbox import Entry
from mdfd.daemons.upstream.record import RECORD_NAMESPACE, SCHEMA_ID

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
        self.shown = redact_url(config.url)
        self._scrub = Scrubber(url_secrets(config.url))
        self._headers: dict[str, str] = {}

    async def start(self) -> None:
        secret = {
            header: _from_env(variable, f"the {header} header")
            for header, variable in self.config.headers_env.items()
        }
        if self.config.token_env is not None:
            token = _from_env(self.config.token_env, "the bearer token")
            secret["Authorization"] = f"Bearer {token}"
        self._headers = {"Content-Type": "application/json", "User-Agent": "mdfd", **secret}
        self._scrub = Scrubber([*url_secrets(self.config.url), *secret.values()])
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
        try:
            async with self._session.post(self.config.url, data=body, headers=headers) as response:
                status = response.status
                reply = (await response.text(errors="replace"))[:REPLY_EXCERPT]
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            # `from None`: the original's text (and traceback) may carry the URL.
            raise Retryable(
                f"POST {self.shown}: {type(exc).__name__}: {self._scrub(str(exc))}"
            ) from None
        if 200 <= status < 300:
            return
        reply = self._scrub(reply.strip())
        said = f"POST {self.shown}: HTTP {status}" + (f": {reply}" if reply else "")
        if status in AUTH:
            variables = [self.config.token_env] if self.config.token_env else []
            variables += self.config.headers_env.values()
            where = (
                f"check {', '.join(f'${v}' for v in variables)}"
                if variables
                else "neither token_env nor headers_env is configured"
            )
            raise Blocked(f"{said} — upstream refuses our credentials ({where})")
        if status in RETRYABLE_4XX or status >= 500:
            raise Retryable(said)
        if 400 <= status < 500:
            raise Rejected(said)
        raise Retryable(said)


def _from_env(variable: str, what: str) -> str:
    value = os.environ.get(variable)
    if not value:
        raise Blocked(f"environment variable {variable} ({what}) is not set")
    return value
