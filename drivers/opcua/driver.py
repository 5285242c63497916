"""The `opcua` driver: batched reads, typed writes and subscriptions over asyncua.

One session per instrument. A scan of many channels is one Read service call; channels marked
`subscribe` are delivered by one subscription into a `Reading` stream, and `read` answers them
from the latest notification (sample-and-hold) without a round trip. A server that samples
slower than asked (a revised sampling interval) is reported at warning level. When the server
goes away (restart, network loss, liveness probe timing out) the loss is logged, and the next
call reconnects — with the `reconnect` backoff while the server cannot be reached — resolves
namespaces again and re-creates the session and the subscription: one attempt per call, lazily,
never in the background while nobody asks (the driver contract; decision 0063).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import math
from collections.abc import AsyncIterator, Awaitable, Sequence
from typing import ClassVar, TypeVar

import numpy as np
import structlog
from asyncua import Client, ua
from asyncua.common.subscription import DataChangeEvent, StatusChangeEvent, Subscription
from tenacity import RetryCallState

from ..base import (
    GOOD_CODE,
    Block,
    DriverContext,
    InstrumentConfig,
    Quality,
    Reading,
    Value,
    check_writable,
    judged,
)
from ..errors import (
    ChannelError,
    InstrumentDisconnected,
    InstrumentError,
    InstrumentTimeout,
    ProtocolError,
    WriteOutcomeUnknown,
)
from .blocks import BlockScan, answered, finish, prepare_block
from .browse import BrowseEntry, browse
from .config import OpcUaChannel, OpcUaInstrument
from .login import channel_refused, configure_login, refusal
from .nodeids import NodeRef, node_id, parse_node
from .resolve import resolve
from .scan import Scan, prepare, read_plan, readings
from .streams import Fanout
from .values import encode, quality_of, status_name, to_python

BUILD_INFO = (
    ua.ObjectIds.Server_ServerStatus_BuildInfo_ManufacturerName,
    ua.ObjectIds.Server_ServerStatus_BuildInfo_ProductName,
    ua.ObjectIds.Server_ServerStatus_BuildInfo_ProductUri,
    ua.ObjectIds.Server_ServerStatus_BuildInfo_SoftwareVersion,
)
TRANSPORT_ERRORS = (ConnectionError, OSError, asyncio.IncompleteReadError)
SCANS_KEPT = 64
"""Channel sets whose prepared scan is kept; a recipe reads a handful, so more is a leak."""

T = TypeVar("T")


class OpcUaDriver:
    config_model: ClassVar[type[InstrumentConfig]] = OpcUaInstrument

    def __init__(self, name: str, config: OpcUaInstrument, context: DriverContext) -> None:
        self.name = name
        self.config = config
        self._context = context
        self._refs: dict[str, NodeRef] = {
            channel: parse_node(spec.node) for channel, spec in config.channels.items()
        }
        self._client: Client | None = None
        self._nodes: dict[str, ua.NodeId] = {}
        self._types: dict[str, ua.VariantType] = {}
        self._by_node: dict[ua.NodeId, list[str]] = {}
        self._scans: dict[tuple[str, ...], Scan] = {}
        self._blocks: dict[tuple[str, ...], BlockScan] = {}
        self._namespaces: list[str] = []
        self._fanout = Fanout(name)
        self._connected = False  # between connect() and close()
        self._lost = asyncio.Event()
        self._reopening = asyncio.Lock()
        self._lost_reason = ""
        self._pump: asyncio.Task[None] | None = None
        self._bad_status: dict[str, str] = {}
        self._log = structlog.get_logger().bind(instrument=name, endpoint=config.endpoint)

    # -- the Driver contract ---------------------------------------------------------------

    async def connect(self) -> None:
        if self._connected:
            return
        # Only a server that cannot be reached is tried again; one that accepts and does not
        # answer is a timeout the caller sees at once (decision 0063).
        retrying = self.config.reconnect.retrying(InstrumentDisconnected, self._log_retry)
        async for attempt in retrying:
            with attempt:
                await self._open()
        self._lost.clear()
        self._connected = True
        self._log.info("connected", subscribed=len(self.subscribed_channels()))

    async def close(self) -> None:
        self._connected = False
        await self._teardown()
        self._fanout.close()

    async def identify(self) -> str:
        client = await self._session()
        ids = [node_id(identifier) for identifier in BUILD_INFO]
        values = await self._call(client.uaclient.read_attributes(ids, ua.AttributeIds.Value))
        parts = [str(dv.Value.Value) if dv.Value is not None else "" for dv in values]
        return ",".join(parts)

    async def read(self, channels: Sequence[str]) -> dict[str, Reading]:
        key = tuple(channels)
        scan = self._scans.get(key)
        if scan is None:
            for name in key:
                self._channel(name)
        client = await self._session()
        if scan is None:
            if len(self._scans) >= SCANS_KEPT:
                del self._scans[next(iter(self._scans))]
            scan = self._scans[key] = prepare(key, self.config.channels, self._nodes, self._refs)
        out = self._latest(scan.subscribed) if scan.subscribed else {}
        plan = scan.polled
        if len(out) < len(scan.subscribed):
            waiting = [name for name in scan.subscribed if name not in out]
            plan = read_plan(
                [*plan.channels, *waiting], self.config.channels, self._nodes, self._refs
            )
        if plan.channels:
            values = await self._call(client.uaclient.read(plan.parameters))
            polled = readings(self.name, plan, values, self._context.clock())
            if not scan.subscribed:
                return polled
            out.update(polled)
        return {name: out[name] for name in scan.channels}

    async def read_block(self, channels: Sequence[str]) -> Block:
        """`BlockReadable`: the polled channels in one Read service call, subscribed ones from
        their latest notification (polled until the first), as columns (see `blocks`)."""
        key = tuple(channels)
        scan = self._blocks.get(key)
        if scan is None:
            for name in key:
                self._channel(name)
        client = await self._session()
        if scan is None:
            if len(self._blocks) >= SCANS_KEPT:
                del self._blocks[next(iter(self._blocks))]
            scan = prepare_block(
                self.name, key, self.config.channels, self._nodes, self._refs, self._types
            )
            self._blocks[key] = scan
        values, codes = np.empty(len(key)), [GOOD_CODE] * len(key)
        plan, at = scan.polling(self._fanout.latest, values, codes, self._nodes, self._refs)
        if plan.channels:
            answered(await self._call(client.uaclient.read(plan.parameters)), at, values, codes)
        return finish(key, values, codes, self._context.clock())

    async def write(self, channel: str, value: Value) -> None:
        config = self._channel(channel)
        check_writable(self.name, channel, config, value)
        client = await self._session()
        variant_type = self._types[channel]
        try:
            variant = encode(value, variant_type)
        except ValueError as exc:
            raise ChannelError(self.name, str(exc), channel=channel, address=config.node) from None
        node = self._nodes[channel]
        try:
            results = await client.uaclient.write_attributes(
                [node], [ua.DataValue(variant)], ua.AttributeIds.Value
            )
        except (TimeoutError, *TRANSPORT_ERRORS) as exc:
            if not isinstance(exc, TimeoutError):
                self._mark_lost(exc)
            self._log.warning(
                "write outcome unknown; not retried", channel=channel, value=value, error=repr(exc)
            )
            raise WriteOutcomeUnknown(
                self.name, f"no answer to the write ({exc!r})", channel=channel, address=config.node
            ) from exc
        except ua.UaStatusCodeError as exc:
            raise ProtocolError(
                self.name,
                "write refused",
                channel=channel,
                address=config.node,
                reply=status_name(exc.code),
            ) from exc
        status = results[0]
        if not status.is_good():
            raise ProtocolError(
                self.name,
                f"write of {variant_type.name} {variant.Value!r} refused",
                channel=channel,
                address=config.node,
                reply=status_name(status),
            )

    # -- Subscribable ------------------------------------------------------------------------

    def subscribed_channels(self) -> Sequence[str]:
        return [name for name, spec in self.config.channels.items() if spec.subscribe]

    def stream(self, channels: Sequence[str]) -> AsyncIterator[tuple[str, Reading]]:
        """Notifications of `channels` (all subscribed if empty); survives reconnects and ends
        when the driver is closed."""
        wanted = list(channels) or list(self.subscribed_channels())
        for name in wanted:
            if not self._channel(name).subscribe:
                raise ChannelError(self.name, "channel is not subscribed", channel=name)
        return self._fanout.stream(wanted)

    # -- probing -----------------------------------------------------------------------------

    async def browse(self, node: str | None = None) -> list[BrowseEntry]:
        """Variables under `node` (default Objects) with node ids, data types and values."""
        client = await self._session()
        start = None
        if node is not None:
            try:
                start = parse_node(node).resolve(self._namespaces, self.config.namespace)
            except (ValueError, LookupError) as exc:
                raise ChannelError(self.name, str(exc), address=node) from None
        return await self._call(browse(client, start))

    # -- connection ----------------------------------------------------------------------------

    async def _open(self) -> None:
        """Connect a fresh client; resolve nodes and their types; create the subscription."""
        client = Client(
            self.config.endpoint,
            timeout=self.config.timeout,
            watchdog_intervall=self.config.watchdog_interval,
        )
        client.name = client.description = f"mdfd {self.name}"
        client.application_uri = "urn:mdfd:client"
        try:
            await self._call(configure_login(self.name, self.config, client), connecting=True)
            try:
                await self._call(client.connect(), connecting=True)
            except AssertionError as exc:
                # asyncua's answer to an OpenSecureChannel response with a bad status (as
                # node-opcua sends for an untrusted certificate) is a bare assertion.
                raise ProtocolError(
                    self.name, channel_refused(self.config), address=self.config.endpoint
                ) from exc
            client.connection_lost_callback = functools.partial(self._on_lost, client)
            self._client = client
            await self._resolve(client)
            await self._subscribe(client)
        except BaseException:
            self._client = None
            await self._stop_pump()
            await self._discard(client)
            raise

    async def _resolve(self, client: Client) -> None:
        resolved = await self._call(
            resolve(self.name, client, self._refs, self.config.namespace), connecting=True
        )
        self._namespaces, nodes = resolved.namespaces, resolved.nodes
        self._nodes, self._types = nodes, resolved.types
        self._scans.clear()
        self._blocks.clear()
        self._by_node = {}
        for channel, node in nodes.items():
            self._by_node.setdefault(node, []).append(channel)

    async def _subscribe(self, client: Client) -> None:
        subscribed = self.subscribed_channels()
        if not subscribed:
            return
        subscription = await self._call(
            client.create_subscription(
                self.config.publishing_interval, handler=None, queue_maxsize=100_000
            ),
            connecting=True,
        )
        groups: dict[float, list[str]] = {}
        for channel in subscribed:
            interval = self.config.channels[channel].sampling_interval
            groups.setdefault(
                self.config.sampling_interval if interval is None else interval, []
            ).append(channel)
        for interval, channels in groups.items():
            nodes = [client.get_node(self._nodes[channel]) for channel in channels]
            results = await self._call(
                subscription.subscribe_data_change(nodes, sampling_interval=ua.Double(interval)),
                connecting=True,
            )
            for channel, result in zip(channels, results, strict=True):
                if isinstance(result, ua.StatusCode):
                    raise ChannelError(
                        self.name,
                        "subscription refused",
                        channel=channel,
                        address=self._refs[channel].text,
                        reply=status_name(result),
                    )
                await self._check_sampling(subscription, channel, result, interval)
        self._pump = asyncio.create_task(self._run_pump(subscription), name=f"{self.name}-pump")

    async def _check_sampling(
        self, subscription: Subscription, channel: str, handle: int, requested: float
    ) -> None:
        """Warn when the server samples a channel slower than asked and slower than it publishes
        (node-opcua, for one, revises to 1000 ms): held samples then repeat one value.

        asyncua's subscribe call keeps the revised interval to itself; ModifyMonitoredItems with
        the same request answers it, one round trip per subscribed channel at connect."""
        results = await self._call(
            subscription.modify_monitored_item(handle, ua.Double(requested)), connecting=True
        )
        revised = results[0].RevisedSamplingInterval
        if revised > max(requested, self.config.publishing_interval):
            self._log.warning(
                "server samples the channel slower than asked",
                channel=channel,
                requested_ms=requested,
                revised_ms=revised,
                publishing_ms=self.config.publishing_interval,
            )

    async def _run_pump(self, subscription: Subscription) -> None:
        async for event in subscription:
            if isinstance(event, DataChangeEvent):
                value = event.data.monitored_item.Value
                now = self._context.clock()
                for channel in self._by_node.get(event.node.nodeid, ()):
                    self._fanout.publish(channel, self._notified(channel, value, now))
            elif isinstance(event, StatusChangeEvent):
                self._log.warning(
                    "subscription status changed", status=status_name(event.notification.Status)
                )

    def _notified(self, channel: str, dv: ua.DataValue, now: float) -> Reading:
        unit = self.config.channels[channel].unit
        status = dv.StatusCode
        if status is not None and status.is_bad():
            self._bad_status[channel] = status_name(status)
            return Reading(math.nan, unit, now, Quality.BAD)
        value = dv.Value.Value if dv.Value is not None else None
        python = to_python(value) if value is not None else math.nan
        return Reading(python, unit, now, judged(python, quality_of(status)))

    async def _session(self) -> Client:
        """The connected client. A connection found lost is reopened here, by the call that
        needs it, once (serialised: concurrent callers share one reconnect)."""
        if not self._connected:
            raise InstrumentDisconnected(self.name, "not connected", address=self.config.endpoint)
        if self._lost.is_set() or self._client is None:
            async with self._reopening:
                if self._lost.is_set() or self._client is None:
                    await self._reopen()
        assert self._client is not None
        return self._client

    async def _reopen(self) -> None:
        """Tear the lost session down and open a new one, with the `reconnect` backoff while
        the server cannot be reached; a failure leaves it lost for the next call to try."""
        await self._teardown()
        self._lost.clear()
        retrying = self.config.reconnect.retrying(InstrumentDisconnected, self._log_retry)
        try:
            async for attempt in retrying:
                with attempt:
                    await self._open()
        except InstrumentError as exc:
            self._lost.set()
            raise InstrumentDisconnected(
                self.name, f"reconnecting failed: {exc.message}", address=self.config.endpoint
            ) from exc
        except BaseException:
            self._lost.set()
            raise
        if not self._connected:  # closed meanwhile
            await self._teardown()
            raise InstrumentDisconnected(self.name, "not connected", address=self.config.endpoint)
        self._log.info(
            "reconnected; session and subscription re-created",
            attempts=retrying.statistics.get("attempt_number", 1),
            subscribed=len(self.subscribed_channels()),
        )

    async def _on_lost(self, client: Client, exc: Exception) -> None:
        if client is self._client:
            self._mark_lost(exc)

    def _mark_lost(self, exc: BaseException) -> None:
        if not self._lost.is_set():
            self._lost_reason = repr(exc)
            self._lost.set()
            self._log.warning(
                "connection lost; reconnecting", reason=self._lost_reason, at="the next call"
            )

    async def _teardown(self) -> None:
        await self._stop_pump()
        self._fanout.latest.clear()  # until the new subscription reports, reads poll
        client, self._client = self._client, None
        if client is not None:
            await self._discard(client)

    async def _stop_pump(self) -> None:
        task, self._pump = self._pump, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _discard(self, client: Client) -> None:
        """Close a client whatever state it is in; a dead server must not block this."""
        with contextlib.suppress(Exception):
            await asyncio.wait_for(client.disconnect(), self.config.timeout)

    # -- helpers -------------------------------------------------------------------------------

    async def _call(self, operation: Awaitable[T], *, connecting: bool = False) -> T:
        """Await an asyncua operation; turn its failures into the driver's typed errors."""
        try:
            return await operation
        except InstrumentError:
            raise
        except TimeoutError as exc:
            raise InstrumentTimeout(
                self.name, f"no answer within {self.config.timeout} s", address=self.config.endpoint
            ) from exc
        except TRANSPORT_ERRORS as exc:
            if not connecting:
                self._mark_lost(exc)
            raise InstrumentDisconnected(
                self.name, f"connection failed: {exc!r}", address=self.config.endpoint
            ) from exc
        except ua.UaStatusCodeError as exc:
            raise ProtocolError(
                self.name,
                refusal(self.config, status_name(exc.code)),
                address=self.config.endpoint,
                reply=status_name(exc.code),
            ) from exc

    def _latest(self, channels: Sequence[str]) -> dict[str, Reading]:
        """The last notification of each subscribed channel that has had one, held: stamped
        now, since a data-change subscription reports changes and an unchanged value is still
        the current one (the engine samples subscribed channels at its own rate this way)."""
        out: dict[str, Reading] = {}
        now = self._context.clock()
        for name in channels:
            latest = self._fanout.latest.get(name)
            if latest is None:
                continue
            if latest.quality is Quality.BAD:
                raise ProtocolError(
                    self.name,
                    "bad status in the last notification",
                    channel=name,
                    address=self.config.channels[name].node,
                    reply=self._bad_status.get(name, "Bad"),
                )
            out[name] = Reading(latest.value, latest.unit, now, latest.quality)
        return out

    def _channel(self, name: str) -> OpcUaChannel:
        try:
            return self.config.channels[name]
        except KeyError:
            raise ChannelError(self.name, "no such channel", channel=name) from None

    def _log_retry(self, state: RetryCallState) -> None:
        outcome = state.outcome
        error = outcome.exception() if outcome is not None else None
        delay = state.next_action.sleep if state.next_action is not None else 0.0
        self._log.warning(
            "connect attempt failed", attempt=state.attempt_number, retry_in=delay, error=str(error)
        )
