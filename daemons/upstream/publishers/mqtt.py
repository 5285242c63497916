"""The `mqtt` publisher: each record with QoS 1 to `{prefix}/{site}/{mdf_id}/records`.

The drain moves the cursor only when every PUBACK of a batch is in, so a broker that dies
mid-batch costs a re-send (the same record ids), never a loss. The session is persistent
(clean_session false, a stable client id). `{prefix}/{site}/{mdf_id}/status` is retained:
`online` after each connect, `offline` on a clean close and, through the last will, when the
daemon vanishes — a fleet dashboard subscribed to `{prefix}/+/+/status` sees every MDF.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import ssl
from collections.abc import Sequence

import aiomqtt

from ...config import Identity, MqttPublisher
from ..outbox import Entry
from .base import Blocked, Retryable

CLOSE_TIMEOUT = 5.0
ONLINE = b"online"
OFFLINE = b"offline"


def topics(config: MqttPublisher, mdf: Identity) -> tuple[str, str]:
    base = f"{config.prefix.rstrip('/')}/{mdf.site}/{mdf.id}"
    return f"{base}/records", f"{base}/status"


class MqttPoster:
    def __init__(self, config: MqttPublisher, mdf: Identity) -> None:
        self.config = config
        self.name = config.name
        self.batch_size = config.batch_size
        self.records_topic, self.status_topic = topics(config, mdf)
        self.client_id = config.client_id or f"mdfd-{mdf.id}-{config.name}"
        self._password: str | None = None
        self._client: aiomqtt.Client | None = None

    async def start(self) -> None:
        env = self.config.password_env
        if env is not None:
            self._password = os.environ.get(env)
            if self._password is None:
                raise Blocked(f"environment variable {env} (the MQTT password) is not set")

    def _tls(self) -> ssl.SSLContext | None:
        if not self.config.tls:
            return None
        cafile = str(self.config.ca_file) if self.config.ca_file else None
        return ssl.create_default_context(cafile=cafile)

    async def _connect(self) -> aiomqtt.Client:
        client = aiomqtt.Client(
            self.config.host,
            self.config.port,
            username=self.config.username,
            password=self._password,
            identifier=self.client_id,
            clean_session=False,
            will=aiomqtt.Will(self.status_topic, OFFLINE, qos=1, retain=True),
            keepalive=self.config.keepalive,
            timeout=self.config.timeout,
            tls_context=self._tls(),
            max_inflight_messages=self.config.max_inflight,
        )
        client.pending_calls_threshold = self.batch_size + 2
        await client.__aenter__()
        self._client = client
        await client.publish(self.status_topic, ONLINE, qos=1, retain=True)
        return client

    async def deliver(self, batch: Sequence[Entry]) -> None:
        try:
            client = self._client or await self._connect()
            async with asyncio.timeout(self.config.timeout):
                await _publish_all(client, self.records_topic, batch)
        except (aiomqtt.MqttError, OSError, TimeoutError) as exc:
            await self._drop()
            where = f"mqtt://{self.config.host}:{self.config.port}"
            if isinstance(exc, aiomqtt.MqttCodeError) and exc.rc in (4, 5, 134, 135):
                raise Blocked(f"{where}: broker refuses our credentials: {exc}") from exc
            raise Retryable(f"{where}: {type(exc).__name__}: {exc}") from exc

    async def _drop(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(aiomqtt.MqttError, OSError, TimeoutError):
                async with asyncio.timeout(CLOSE_TIMEOUT):
                    await client.__aexit__(None, None, None)

    async def close(self) -> None:
        """Say `offline` ourselves (retained); a clean disconnect does not fire the will."""
        if self._client is not None:
            with contextlib.suppress(aiomqtt.MqttError, OSError, TimeoutError):
                async with asyncio.timeout(CLOSE_TIMEOUT):
                    await self._client.publish(self.status_topic, OFFLINE, qos=1, retain=True)
        await self._drop()


async def _publish_all(client: aiomqtt.Client, topic: str, batch: Sequence[Entry]) -> None:
    """Pipelined: all publishes in flight at once (paho caps them at max_inflight)."""
    try:
        async with asyncio.TaskGroup() as group:
            for entry in batch:
                group.create_task(client.publish(topic, entry.body.encode(), qos=1))
    except ExceptionGroup as failed:
        raise failed.exceptions[0] from failed
