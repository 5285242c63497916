"""The `mqtt` publisher: each record with QoS 1 to `{prefix}/{site}/{mdf_id}/records`.

The drain moves the cursor only when every PUBACK of a batch is in, so a broker that dies
mid-batch costs a re-send (the same record ids), never a loss. The session is persistent
(clean_session false, a stable client id). `{prefix}/{site}/{mdf_id}/status` is retained:
`online` after each connect, `offline` on a clean close and, through the last will, when the
daemon vanishes — a fleet dashboard subscribed to `{prefix}/+/+/status` sees every MDF. The
publisher connects at start, not at the first record: an idle daemon is `online` and has its
will registered; a watcher notices when an idle connection dies (a broker restart) and
reconnects, so the will stays registered while no record flows.

Only a CONNACK refusal (bad user name or password, not authorised) is a credentials problem;
a publish on a connection the broker dropped (it restarted) is a lost connection, retried, and
said as such.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import ssl
from collections.abc import Sequence

import aiomqtt
from aiomqtt.exceptions import MqttConnectError

from mdfd.daemons.core.config import Identity, MqttPublisher
from mdfd.daemons.core.logging import get_logger
from mdfd.daemons.store.outbox import Entry

from .base import Blocked, Retryable

CLOSE_TIMEOUT = 5.0
ONLINE = b"online"
OFFLINE = b"offline"
REFUSED_CREDENTIALS = (4, 5, 134, 135)
"""CONNACK codes: MQTT 3.1.1 bad user name or password / not authorised, and their 5.0 forms
(paho reports 3.1.1 refusals as 5.0 reason codes, which compare equal to ints but do not
hash: a tuple, not a set)."""


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
        self._connecting = asyncio.Lock()
        self._watcher: asyncio.Task[None] | None = None
        self.log = get_logger(component="upstream", publisher=self.name)

    async def start(self) -> None:
        env = self.config.password_env
        if env is not None:
            self._password = os.environ.get(env)
            if self._password is None:
                raise Blocked(f"environment variable {env} (the MQTT password) is not set")
        try:
            await self._connected()
        except (aiomqtt.MqttError, OSError, TimeoutError) as exc:
            raise await self._failure(exc) from exc

    def _tls(self) -> ssl.SSLContext | None:
        if not self.config.tls:
            return None
        cafile = str(self.config.ca_file) if self.config.ca_file else None
        return ssl.create_default_context(cafile=cafile)

    async def _connected(self) -> aiomqtt.Client:
        """The live client, connecting first if there is none (one connect at a time)."""
        async with self._connecting:
            return self._client or await self._connect()

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
        try:
            async with asyncio.timeout(self.config.timeout):
                await client.publish(self.status_topic, ONLINE, qos=1, retain=True)
        except BaseException:
            await _close_quietly(client)
            raise
        self._client = client
        self._watcher = asyncio.create_task(self._watch(client), name=f"mqtt-watch-{self.name}")
        return client

    async def _watch(self, client: aiomqtt.Client) -> None:
        """Until the connection dies (no subscriptions: the message iterator only ends with
        it), then reconnect with the publisher's backoff. Cancelled by `_drop`."""
        try:
            async for _message in client.messages:
                pass
        except aiomqtt.MqttError as exc:
            cause = exc.__cause__ or exc
            self.log.warning(
                "connection to the MQTT broker lost (broker restarted or unreachable)",
                error=str(cause),
            )
        if self._client is client:
            self._client = None
            await _close_quietly(client)
        delay = self.config.retry_initial
        while self._client is None:
            await asyncio.sleep(delay)
            try:
                await self._connected()
            except (aiomqtt.MqttError, OSError, TimeoutError) as exc:
                delay = min(delay * 2, self.config.retry_max)
                self.log.debug("MQTT broker still unreachable", error=str(exc), retry_in=delay)
        self.log.info("reconnected to the MQTT broker")

    async def deliver(self, batch: Sequence[Entry]) -> None:
        try:
            client = await self._connected()
            async with asyncio.timeout(self.config.timeout):
                await _publish_all(client, self.records_topic, batch)
        except (aiomqtt.MqttError, OSError, TimeoutError) as exc:
            raise await self._failure(exc) from exc

    async def _failure(self, exc: BaseException) -> Retryable:
        """Drop the connection and say what went wrong in words an operator can act on."""
        await self._drop()
        where = f"mqtt://{self.config.host}:{self.config.port}"
        if isinstance(exc, MqttConnectError) and exc.rc in REFUSED_CREDENTIALS:
            return Blocked(f"{where}: broker refuses our credentials: {exc}")
        if isinstance(exc, MqttConnectError):
            return Retryable(f"{where}: broker refused the connection: {exc}")
        if isinstance(exc, aiomqtt.MqttCodeError):
            return Retryable(f"{where}: connection lost (broker restarted or unreachable): {exc}")
        if isinstance(exc, TimeoutError):
            return Retryable(f"{where}: no acknowledgement within {self.config.timeout:g} s")
        return Retryable(f"{where}: {type(exc).__name__}: {exc}")

    async def _drop(self) -> None:
        client, self._client = self._client, None
        watcher, self._watcher = self._watcher, None
        if watcher is not None:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
        if client is not None:
            await _close_quietly(client)

    async def close(self) -> None:
        """Say `offline` ourselves (retained); a clean disconnect does not fire the will."""
        if self._client is not None:
            with contextlib.suppress(aiomqtt.MqttError, OSError, TimeoutError):
                async with asyncio.timeout(CLOSE_TIMEOUT):
                    await self._client.publish(self.status_topic, OFFLINE, qos=1, retain=True)
        await self._drop()


async def _close_quietly(client: aiomqtt.Client) -> None:
    with contextlib.suppress(aiomqtt.MqttError, OSError, TimeoutError):
        async with asyncio.timeout(CLOSE_TIMEOUT):
            await client.__aexit__(None, None, None)


async def _publish_all(client: aiomqtt.Client, topic: str, batch: Sequence[Entry]) -> None:
    """Pipelined: all publishes in flight at once (paho caps them at max_inflight)."""
    try:
        async with asyncio.TaskGroup() as group:
            for entry in batch:
                group.create_task(client.publish(topic, entry.body.encode(), qos=1))
    except ExceptionGroup as failed:
        raise failed.exceptions[0] from failed
