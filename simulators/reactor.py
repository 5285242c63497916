"""The simulated reactor / process skid: an OPC-UA server over the shared world's ProcessSkid.

Like a PLC, it scans: every `update_interval` wall seconds it advances the world and writes the
measured values into the address space, which is what makes subscriptions deliver changes.
Setpoint writes by clients go straight into the world. Faults are injected at run time by
writing the `Faults` folder (or set initially in the config): a response delay, variables that
freeze (`Stuck`), report Bad quality (`Bad`) or NaN with a Good status (`Invalid`), and a full
server restart (`Restart`).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import socket
from datetime import UTC, datetime
from typing import ClassVar

import structlog
from asyncua import Node, Server, ua
from asyncua.common.callback import CallbackType, ServerItemCallback

from .base import SimulatorSettings
from .opcua_security import PasswordUsers, configure_security
from .opcua_shelf import initialized_server
from .opcua_space import TAGS_BY_KEY, build_address_space, out_of_range
from .reactor_settings import ReactorSettings
from .world import World

BAD_QUALITY = ua.StatusCodes.BadSensorFailure
REFUSED_MARK = ua.AttributeIds.EventNotifier
"""What a refused write item is re-aimed at while asyncua handles the request: variables have
no EventNotifier attribute, so nothing is written, and the answer is replaced afterwards."""
RESTART_GRACE_SECONDS = 0.2


def _number(value: object) -> float:
    """A variable's number: the server has checked a write's variant type against the node's, so
    anything else is a bug here."""
    if isinstance(value, int | float):
        return float(value)
    raise TypeError(f"{value!r} is not a number")


def _keys(text: str) -> set[str]:
    return {part.strip() for part in text.split(",") if part.strip() in TAGS_BY_KEY}


class ReactorSimulator:
    settings_model: ClassVar[type[SimulatorSettings]] = ReactorSettings

    def __init__(self, name: str, settings: ReactorSettings, world: World) -> None:
        self.name = name
        self.settings = settings
        self.world = world
        self._log = structlog.get_logger().bind(simulator=name, kind="reactor")
        self._port = settings.port
        self._server: Server | None = None
        self._nodes: dict[str, Node] = {}
        self._namespace = 0
        self._scan_task: asyncio.Task[None] | None = None
        self._restart_task: asyncio.Task[None] | None = None
        self._delay_ms = settings.faults.response_delay_ms
        self._stuck = set(settings.faults.stuck)
        self._bad = set(settings.faults.bad)
        self._invalid = set(settings.faults.invalid)
        self._flagged_bad: set[str] = set()
        self._refused: set[int] = set()  # ids of write items refused, until answered
        self._flow_setpoint = world.skid.feed_flow.setpoint
        self._pump_running = True
        self._sample_interval = _number(TAGS_BY_KEY["Analyser.SampleInterval"].initial)
        self._next_sample = 0.0
        self._samples = 0
        self._analysis = (world.skid.conversion, world.skid.selectivity)

    @property
    def url(self) -> str:
        return f"opc.tcp://{self.settings.host}:{self._port}/{self.settings.path}"

    def endpoints(self) -> dict[str, str]:
        return {"opcua": self.url, "namespace": self.settings.namespace}

    async def start(self) -> None:
        if self._port == 0:
            with socket.socket() as probe:
                probe.bind((self.settings.host, 0))
                self._port = probe.getsockname()[1]
        if self.settings.time_constants is not None:
            skid, taus = self.world.skid, self.settings.time_constants
            skid.temperature.tau, skid.pressure.tau = taus.temperature, taus.pressure
            skid.feed_flow.tau, skid.ph.tau = taus.feed_flow, taus.ph
        await self._serve()

    async def stop(self) -> None:
        task, self._restart_task = self._restart_task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._shutdown()

    async def restart(self, downtime: float | None = None) -> None:
        """Stop the server (dropping every session and subscription) and start a new one."""
        pause = self.settings.restart_downtime if downtime is None else downtime
        self._log.info("server restarting", downtime=pause)
        await self._shutdown()
        await asyncio.sleep(pause)
        await self._serve()
        self._log.info("server restarted", url=self.url)

    async def _serve(self) -> None:
        settings = self.settings
        server = await initialized_server(
            lambda: Server(user_manager=PasswordUsers(settings.users))
        )
        server.set_endpoint(self.url)
        server.set_server_name(f"mdfd reactor simulator {self.name}")
        await server.set_application_uri(f"urn:mdfd:sim:reactor:{self.name}")
        await server.set_build_info(
            f"urn:mdfd:sim:reactor:{self.name}",
            "mdfd",
            "Reactor skid simulator",
            "1.0",
            "1",
            datetime.now(UTC),
        )
        await configure_security(
            server,
            list(settings.security),
            settings.certificate_dir,
            settings.trusted_clients,
            settings.users,
        )
        self._namespace = await server.register_namespace(settings.namespace)
        self._nodes = await build_address_space(server, self._namespace)
        await self._write_faults(server)
        await self._write_setpoints(server)
        server.subscribe_server_callback(CallbackType.PreRead, self._slow_down)
        server.subscribe_server_callback(CallbackType.PreWrite, self._slow_down)
        server.subscribe_server_callback(CallbackType.PreWrite, self._refuse_out_of_range)
        server.subscribe_server_callback(CallbackType.PostWrite, self._written)
        server.subscribe_server_callback(CallbackType.ItemSubscriptionCreated, self._revise)
        server.subscribe_server_callback(CallbackType.ItemSubscriptionModified, self._revise)
        self._flagged_bad = set()
        await self._scan(server)
        self._server = server  # before start(), so a cancelled start is still stopped
        await server.start()
        self._scan_task = asyncio.create_task(self._scan_loop(server), name=f"{self.name}-scan")

    async def _shutdown(self) -> None:
        task, self._scan_task = self._scan_task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        server, self._server = self._server, None
        if server is not None:
            await server.stop()
            # asyncua keeps the subscriptions of sessions whose transport is gone (a client
            # may re-activate them) and Server.stop() does not end them; a stopped plant
            # server has none, so delete them, publish tasks and all, through the public
            # subscription service.
            service = server.iserver.subscription_service
            await service.delete_subscriptions(list(service.subscriptions))

    async def _scan_loop(self, server: Server) -> None:
        while True:
            await asyncio.sleep(self.settings.update_interval)
            try:
                await self._scan(server)
            except Exception:
                self._log.exception("scan failed")

    async def _scan(self, server: Server) -> None:
        """One PLC scan: advance the world, publish measurements, honour stuck/bad faults."""
        world = self.world
        world.advance()
        skid = world.skid
        now = world.clock.now()
        if now >= self._next_sample:
            self._analysis = (
                max(0.0, world.noisy(skid.conversion, 0.0, 0.15)),
                max(0.0, world.noisy(skid.selectivity, 0.0, 0.15)),
            )
            self._samples += 1
            self._next_sample = now + self._sample_interval
        values: dict[str, object] = {
            "Reactor.Temperature": world.noisy(skid.temperature.value, 0.0, 0.05),
            "Reactor.Pressure": world.noisy(skid.pressure.value, 0.001),
            "Feed.Flow": max(0.0, world.noisy(skid.feed_flow.value, 0.0, 0.003)),
            "Feed.ValvePosition": skid.valve_open,
            "Bath.pH": world.noisy(skid.ph.value, 0.0, 0.003),
            "Analyser.Conversion": self._analysis[0],
            "Analyser.Selectivity": self._analysis[1],
            "Analyser.SampleCount": self._samples,
        }
        stamp = ua.DateTime.now(UTC)  # asyncua's marker subclass of datetime
        for key in self._bad - self._flagged_bad:
            await server.write_attribute_value(
                self._nodes[key].nodeid,
                ua.DataValue(
                    StatusCode=ua.StatusCode(ua.UInt32(BAD_QUALITY)), SourceTimestamp=stamp
                ),
            )
        self._flagged_bad = set(self._bad)
        for key, value in values.items():
            if key in self._stuck or key in self._bad:
                continue
            if key in self._invalid:
                value = math.nan
            variant = ua.Variant(value, TAGS_BY_KEY[key].variant)
            await server.write_attribute_value(
                self._nodes[key].nodeid,
                ua.DataValue(variant, SourceTimestamp=stamp, ServerTimestamp=stamp),
            )

    async def _write_faults(self, server: Server) -> None:
        faults = {
            "Faults.ResponseDelay": ua.Variant(self._delay_ms, ua.VariantType.Double),
            "Faults.Stuck": ua.Variant(",".join(sorted(self._stuck)), ua.VariantType.String),
            "Faults.Bad": ua.Variant(",".join(sorted(self._bad)), ua.VariantType.String),
            "Faults.Invalid": ua.Variant(",".join(sorted(self._invalid)), ua.VariantType.String),
        }
        for key, variant in faults.items():
            await server.write_attribute_value(self._nodes[key].nodeid, ua.DataValue(variant))

    async def _write_setpoints(self, server: Server) -> None:
        """A restarted server comes back with the world's setpoints, as a PLC keeps them."""
        skid = self.world.skid
        setpoints = {
            "Reactor.TemperatureSetpoint": skid.temperature.setpoint,
            "Reactor.PressureSetpoint": skid.pressure.setpoint,
            "Feed.FlowSetpoint": self._flow_setpoint,
            "Feed.PumpRunning": self._pump_running,
            "Bath.pHSetpoint": skid.ph.setpoint,
            "Analyser.SampleInterval": int(self._sample_interval),
        }
        for key, value in setpoints.items():
            variant = ua.Variant(value, TAGS_BY_KEY[key].variant)
            await server.write_attribute_value(self._nodes[key].nodeid, ua.DataValue(variant))

    async def _slow_down(self, event: ServerItemCallback, _dispatcher: object) -> None:
        if event.is_external and self._delay_ms > 0:
            await asyncio.sleep(self._delay_ms / 1000.0)

    async def _revise(self, event: ServerItemCallback, _dispatcher: object) -> None:
        """Answer sampling intervals below `min_sampling_interval` revised up to it, as servers
        with a slowest-sensor floor (node-opcua: 1000 ms) do; the scan still runs as set."""
        floor = self.settings.min_sampling_interval
        for result in event.response_params:
            result.RevisedSamplingInterval = max(result.RevisedSamplingInterval, floor)

    async def _refuse_out_of_range(self, event: ServerItemCallback, _dispatcher: object) -> None:
        """A client's value outside the variable's EURange is not taken: the item is re-aimed at
        an attribute variables lack, and `_written` answers it BadOutOfRange."""
        if not event.is_external:
            return
        for item in event.request_params.NodesToWrite:
            node = item.NodeId
            if item.AttributeId != ua.AttributeIds.Value or node.NamespaceIndex != self._namespace:
                continue
            value = item.Value.Value.Value if item.Value.Value is not None else None
            refused = out_of_range(str(node.Identifier), value)
            if refused is not None:
                self._log.info(
                    "write outside EURange refused",
                    variable=node.Identifier,
                    value=value,
                    eu_range=refused,
                )
                item.AttributeId = REFUSED_MARK
                self._refused.add(id(item))

    async def _written(self, event: ServerItemCallback, _dispatcher: object) -> None:
        """Answer refused writes BadOutOfRange; apply the others to the world (setpoints) or to
        the fault state."""
        written = event.request_params.NodesToWrite
        for index, item in enumerate(written):
            if id(item) in self._refused:
                self._refused.discard(id(item))
                item.AttributeId = ua.AttributeIds.Value
                event.response_params[index] = ua.StatusCode(
                    ua.UInt32(ua.StatusCodes.BadOutOfRange)
                )
        for item, status in zip(written, event.response_params, strict=True):
            node = item.NodeId
            if not status.is_good() or item.AttributeId != ua.AttributeIds.Value:
                continue
            if node.NamespaceIndex != self._namespace or not isinstance(node.Identifier, str):
                continue
            value = item.Value.Value.Value if item.Value.Value is not None else None
            self._apply(node.Identifier, value)

    def _apply(self, key: str, value: object) -> None:
        self.world.advance()
        skid = self.world.skid
        if key == "Reactor.TemperatureSetpoint":
            skid.temperature.setpoint = _number(value)
        elif key == "Reactor.PressureSetpoint":
            skid.pressure.setpoint = _number(value)
        elif key == "Bath.pHSetpoint":
            skid.ph.setpoint = _number(value)
        elif key == "Feed.FlowSetpoint":
            self._flow_setpoint = _number(value)
        elif key == "Feed.PumpRunning":
            self._pump_running = bool(value)
        elif key == "Analyser.SampleInterval":
            self._sample_interval = _number(value)
        elif key == "Faults.ResponseDelay":
            self._delay_ms = _number(value)
        elif key == "Faults.Stuck":
            self._stuck = _keys(str(value or ""))
        elif key == "Faults.Bad":
            self._bad = _keys(str(value or ""))
        elif key == "Faults.Invalid":
            self._invalid = _keys(str(value or ""))
        elif key == "Faults.Restart" and value and self._restart_task is None:
            self._restart_task = asyncio.create_task(
                self._restart_soon(), name=f"{self.name}-restart"
            )
        skid.feed_flow.setpoint = self._flow_setpoint if self._pump_running else 0.0
        if key.startswith("Faults."):
            self._log.info("fault changed", variable=key, value=value)

    async def _restart_soon(self) -> None:
        """Let the write that asked for the restart be answered, then restart."""
        try:
            await asyncio.sleep(RESTART_GRACE_SECONDS)
            await self.restart()
        finally:
            self._restart_task = None
