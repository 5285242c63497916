"""A simulated SCPI measuring instrument (LCR meter, four-point probe, hardness tester and
colorimeter in one box) on a raw TCP socket and on a serial line (a pty pair it creates).

Its readings are the shared world's specimen, advanced to "now" at every measurement, so what
the furnace and the bath did to the specimen is what a recipe measures. Like a DMM with a
reading memory it also samples one configured measurement on its own clock into a memory a
client fetches from (`CONF:...`, `SAMP:...`, `INIT`, `R?`: reading_memory.py). Fault injection (slow
replies, no reply, garbage, errors in the queue, dropped connections) is reachable on the wire
(`SIM:FAULT:...`) so a test or an operator can break a running simulator from any client.
"""

from __future__ import annotations

import asyncio
import math
import os
import random
import tty
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Literal

import structlog
from pydantic import BaseModel, ConfigDict, Field

from .base import SimulatorSettings
from .ieee488 import StatusModel
from .reading_memory import MAX_INTERVAL, MAX_SAMPLES, MIN_INTERVAL, ReadingMemory
from .scpi import CommandSet, ErrorQueue, ScpiError, execute, no_params, number
from .world import Specimen, World

MAX_LINE = 4096
log = structlog.get_logger()
# What the meter measures, by the short form of its MEASure / CONFigure header.
FUNCTIONS: dict[str, tuple[str, Callable[[Specimen], float]]] = {
    "CAP": ("CAPacitance", Specimen.capacitance_nf),
    "LOSS": ("LOSS", Specimen.dissipation_factor),
    "RES": ("RESistivity", Specimen.resistivity_uohm_cm),
    "HARD": ("HARDness", Specimen.hardness_hv),
    "KS": ("KS", Specimen.colour_strength),
}
DEFAULT_FUNCTION = "CAP"


class MeterFaults(BaseModel):
    """Faults active from start-up; `SIM:FAULT:...` changes them at run time."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    delay: float = Field(default=0.0, ge=0.0, description="seconds before every reply")
    mute: int = Field(default=0, ge=0, description="the next N replies are never sent")
    garbage: int = Field(default=0, ge=0, description="the next N replies are garbage bytes")


class MeterSettings(SimulatorSettings):
    kind: Literal["meter"]
    port: int = Field(default=5025, ge=0, le=65535, description="raw SCPI socket; 0 = any")
    serial: bool = Field(default=True, description="also serve the command set on a pty")
    link: Path | None = Field(default=None, description="stable symlink to the pty's slave")
    identity: str = "MDFD,SIM-LCR-3000,SN0001,1.0"
    noise: float = Field(default=0.002, ge=0.0, description="relative noise of one reading")
    faults: MeterFaults = MeterFaults()


@dataclass
class Faults:
    """The live fault state, shared by every connection of one simulator."""

    delay: float = 0.0
    mute: int = 0
    garbage: int = 0

    def take(self) -> Literal["mute", "garbage", "ok"]:
        """What happens to the next reply; consumes one count of a counted fault."""
        if self.mute > 0:
            self.mute -= 1
            return "mute"
        if self.garbage > 0:
            self.garbage -= 1
            return "garbage"
        return "ok"

    def describe(self) -> str:
        return f"DELAY {self.delay:g},MUTE {self.mute},GARBAGE {self.garbage}"


class Meter:
    """The instrument behind both ports: one command set, one error queue, one specimen."""

    def __init__(self, settings: MeterSettings, world: World, drop: Callable[[], None]) -> None:
        self.settings = settings
        self.world = world
        self.status = StatusModel()
        self.errors = ErrorQueue(on_error=self.status.error)
        self._output: list[str] = []  # replies of the program message being executed
        self.faults = Faults(**settings.faults.model_dump())
        self.averaging = 1
        self.specimen_id = 0
        self.function = DEFAULT_FUNCTION  # what the reading memory samples (CONFigure)
        self.memory = ReadingMemory(world.clock.now, self._sample_at)
        self._drop = drop
        self._rng = random.Random(settings.identity)
        self.commands = CommandSet()
        self._register()

    def execute(self, line: str) -> list[str]:
        self._output = []
        return execute(self.commands, self.errors, line, self._output)

    def garbage(self) -> bytes:
        length = self._rng.randint(8, 24)
        return bytes(self._rng.choice(b"\x00\x07#@!?\x80\x9f\xc3\xfe\xff") for _ in range(length))

    def _register(self) -> None:
        add = self.commands.add
        add("*IDN?", self._query(lambda: self.settings.identity))
        add("*RST", self._command(self._reset))
        add("*CLS", self._command(self._clear_status))
        add("*OPC?", self._query(lambda: "1"))
        add("*OPC", self._command(self.status.operation_complete))
        add("*ESR?", self._query(lambda: str(self.status.read_event_status())))
        add("*ESE", self._mask("event_enable"))
        add("*ESE?", self._query(lambda: str(self.status.event_enable)))
        add("*SRE", self._mask("service_enable"))
        add("*SRE?", self._query(lambda: str(self.status.service_enable)))
        add("*STB?", self._query(self._status_byte))
        add("*WAI", self._command(lambda: None))
        add("*TST?", self._query(lambda: "0"))
        add("SYSTem:ERRor[:NEXT]?", self._query(self.errors.pop))
        add("SYSTem:ERRor:COUNt?", self._query(lambda: str(len(self.errors))))
        add("SYSTem:VERSion?", self._query(lambda: "1999.0"))
        for short, (header, truth) in FUNCTIONS.items():
            add(f"MEASure:{header}?", self._measurement(truth))
            add(f"CONFigure:{header}", self._configure(short))
        add("MEASure:ALL?", self._query(self._measure_all))
        add("CONFigure?", self._query(lambda: f'"{self.function}"'))
        add("SAMPle:COUNt", self._sample_count)
        add("SAMPle:COUNt?", self._query(lambda: f"{self.memory.count:+d}"))
        add("SAMPle:TIMer", self._sample_timer)
        add("SAMPle:TIMer?", self._query(lambda: f"{self.memory.interval:+.8E}"))
        add("SAMPle:SOURce", self._only("TIMer", "the simulator paces samples by SAMP:TIM only"))
        add("TRIGger:SOURce", self._only("IMMediate", "the simulator triggers immediately only"))
        add("INITiate[:IMMediate]", self._command(self.memory.initiate))
        add("ABORt", self._command(self.memory.abort))
        add("DATA:POINts?", self._query(lambda: f"{self.memory.points():+d}"))
        add("R?", self._read_memory)
        add("STATus:QUEStionable[:EVENt]?", self._query(self._questionable))
        add("SPECimen?", self._query(lambda: str(self.specimen_id)))
        add("SPECimen:NEW", self._new_specimen)
        add("SENSe:AVERage:COUNt?", self._query(lambda: str(self.averaging)))
        add("SENSe:AVERage:COUNt", self._set_averaging)
        add("SIMulation:FAULt:DELay", self._fault_delay)
        add("SIMulation:FAULt:MUTE", self._fault_count("mute"))
        add("SIMulation:FAULt:GARBage", self._fault_count("garbage"))
        add("SIMulation:FAULt:ERRor", self._fault_error)
        add("SIMulation:FAULt:DROP", self._command(self._drop))
        add("SIMulation:FAULt:CLEar", self._command(self._clear_faults))
        add("SIMulation:FAULt?", self._query(self.faults.describe))

    @staticmethod
    def _query(produce: Callable[[], str]) -> Callable[[list[str]], str]:
        def handler(params: list[str]) -> str:
            no_params(params)
            return produce()

        return handler

    @staticmethod
    def _command(action: Callable[[], None]) -> Callable[[list[str]], None]:
        def handler(params: list[str]) -> None:
            no_params(params)
            action()

        return handler

    def _measurement(self, truth: Callable[[Specimen], float]) -> Callable[[list[str]], str]:
        def handler(params: list[str]) -> str:
            no_params(params)
            self.world.advance()
            return self._reading(truth)

        return handler

    def _reading(self, truth: Callable[[Specimen], float]) -> str:
        relative = self.settings.noise / math.sqrt(self.averaging)
        return f"{self.world.noisy(truth(self.world.specimen), relative):.6E}"

    def _sample_at(self, when: float) -> str:
        """A reading of the configured function as the memory takes it, at sample time `when`."""
        self.world.advance(until=when)
        return self._reading(FUNCTIONS[self.function][1])

    def _configure(self, function: str) -> Callable[[list[str]], None]:
        """`CONFigure:<function>`: as on a DMM, a new configuration stops a run, clears the
        memory and resets the sample settings."""

        def handler(params: list[str]) -> None:
            no_params(params)
            self.function = function
            self.memory.reset()

        return handler

    def _sample_count(self, params: list[str]) -> None:
        self.memory.count = int(number(params, 1, MAX_SAMPLES, integral=True))

    def _sample_timer(self, params: list[str]) -> None:
        self.memory.interval = number(params, MIN_INTERVAL, MAX_INTERVAL)

    @staticmethod
    def _only(choice: str, detail: str) -> Callable[[list[str]], None]:
        """A setting of which the simulator has only the one `choice` (short or long form)."""
        short = "".join(c for c in choice if not c.islower()).upper()

        def handler(params: list[str]) -> None:
            if len(params) != 1:
                raise ScpiError(-109 if not params else -108)
            if params[0].upper() not in (short, choice.upper()):
                raise ScpiError(-224, detail)

        return handler

    def _read_memory(self, params: list[str]) -> str:
        """`R? [max]`: read and erase up to max readings (all without one) as an IEEE 488.2
        definite-length block of comma-separated readings, `#10` when there are none."""
        most = int(number(params, 1, MAX_SAMPLES, integral=True)) if params else MAX_SAMPLES
        data = ",".join(self.memory.remove(most))
        size = str(len(data))
        return f"#{len(size)}{size}{data}"

    def _questionable(self) -> str:
        return str(self.memory.read_questionable())

    def _measure_all(self) -> str:
        self.world.advance()
        return ",".join(
            self._reading(truth)
            for truth in (
                Specimen.capacitance_nf,
                Specimen.dissipation_factor,
                Specimen.resistivity_uohm_cm,
                Specimen.hardness_hv,
                Specimen.colour_strength,
            )
        )

    def _clear_status(self) -> None:
        self.errors.clear()
        self.status.clear()
        self.memory.clear_status()

    def _status_byte(self) -> str:
        # MAV: replies of earlier queries in this program message wait in the output queue.
        stb = self.status.status_byte(
            errors_queued=len(self.errors) > 0, reply_waiting=bool(self._output)
        )
        return str(stb)

    def _mask(
        self, register: Literal["event_enable", "service_enable"]
    ) -> Callable[[list[str]], None]:
        def handler(params: list[str]) -> None:
            value = int(number(params, 0, 255, integral=True))
            if register == "service_enable":
                value &= ~0x40  # bit 6 (MSS) cannot be enabled
            setattr(self.status, register, value)

        return handler

    def _reset(self) -> None:
        self.averaging = 1
        self.function = DEFAULT_FUNCTION
        self.memory.reset()

    def _new_specimen(self, params: list[str]) -> None:
        self.specimen_id = int(number(params, 0, 1_000_000, integral=True))
        self.world.advance()
        self.world.specimen.reset()
        log.info("meter loaded a new specimen", specimen=self.specimen_id)

    def _set_averaging(self, params: list[str]) -> None:
        self.averaging = int(number(params, 1, 100, integral=True))

    def _fault_delay(self, params: list[str]) -> None:
        self.faults.delay = number(params, 0.0, 3600.0)

    def _fault_count(self, kind: Literal["mute", "garbage"]) -> Callable[[list[str]], None]:
        def handler(params: list[str]) -> None:
            count = int(number(params, 0, 1_000_000, integral=True)) if params else 1
            setattr(self.faults, kind, count)

        return handler

    def _fault_error(self, params: list[str]) -> None:
        if not params:
            raise ScpiError(-109)
        code = int(number(params[:1], -999, 999, integral=True))
        detail = params[1].strip("\"'") if len(params) > 1 else ""
        self.errors.push(code, detail)

    def _clear_faults(self) -> None:
        self.faults.delay = 0.0
        self.faults.mute = self.faults.garbage = 0


class Line:
    """One client line (a TCP connection or the pty): framing, faults, delayed replies.

    A reply delayed by the DELAY fault is a timer, not a task; a command that arrives before
    the reply went out cancels it and queues -410 "Query INTERRUPTED", as IEEE 488.2 says.
    """

    def __init__(self, meter: Meter, send: Callable[[bytes], None]) -> None:
        self._meter = meter
        self._send = send
        self._buffer = bytearray()
        self._pending: asyncio.TimerHandle | None = None

    def feed(self, data: bytes) -> None:
        self._buffer.extend(data)
        while (end := self._buffer.find(b"\n")) >= 0:
            raw = bytes(self._buffer[:end])
            del self._buffer[: end + 1]
            self._line(raw.decode("latin-1").strip())
        if len(self._buffer) > MAX_LINE:
            self._buffer.clear()
            self._meter.errors.push(-100, "line too long")

    def close(self) -> None:
        if self._pending is not None:
            self._pending.cancel()
            self._pending = None

    def _line(self, text: str) -> None:
        if not text:
            return
        if self._pending is not None:
            self.close()
            self._meter.errors.push(-410)
        replies = self._meter.execute(text)
        if not replies:
            return
        payload = (";".join(replies) + "\n").encode("ascii")
        if text.lstrip(":").upper().startswith("SIM"):
            self._send(payload)
            return
        outcome = self._meter.faults.take()
        if outcome == "mute":
            return
        if outcome == "garbage":
            payload = self._meter.garbage() + b"\n"
        delay = self._meter.faults.delay
        if delay > 0:
            self._pending = asyncio.get_running_loop().call_later(delay, self._deliver, payload)
        else:
            self._send(payload)

    def _deliver(self, payload: bytes) -> None:
        self._pending = None
        self._send(payload)


class _TcpClient(asyncio.Protocol):
    def __init__(self, simulator: MeterSimulator) -> None:
        self._simulator = simulator
        self.transport: asyncio.Transport | None = None
        self._line: Line | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self._line = Line(self._simulator.meter, self._write)
        self._simulator.clients.add(self)

    def data_received(self, data: bytes) -> None:
        assert self._line is not None
        self._line.feed(data)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._line is not None:
            self._line.close()
        self._simulator.clients.discard(self)

    def _write(self, payload: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(payload)


class _PtyPort:
    """The serial side: a pty pair in raw mode; the client opens the slave (or its symlink)."""

    def __init__(self, meter: Meter, link: Path | None) -> None:
        self._meter = meter
        self._link = link
        self.master, self._slave = os.openpty()
        tty.setraw(self._slave)
        os.set_blocking(self.master, False)
        self.path = os.ttyname(self._slave)
        self._line = Line(meter, self._write)
        if link is not None:
            link.parent.mkdir(parents=True, exist_ok=True)
            temporary = link.with_name(f".{link.name}.{os.getpid()}")
            temporary.unlink(missing_ok=True)
            temporary.symlink_to(self.path)
            temporary.replace(link)
        asyncio.get_running_loop().add_reader(self.master, self._readable)

    def close(self) -> None:
        asyncio.get_running_loop().remove_reader(self.master)
        self._line.close()
        link = self._link
        if link is not None and link.is_symlink() and os.readlink(link) == self.path:
            link.unlink()
        os.close(self.master)
        os.close(self._slave)

    def _readable(self) -> None:
        try:
            data = os.read(self.master, MAX_LINE)
        except OSError:  # EAGAIN, or EIO while no client holds the slave open
            return
        self._line.feed(data)

    def _write(self, payload: bytes) -> None:
        try:
            written = os.write(self.master, payload)
        except BlockingIOError:
            written = 0
        if written < len(payload):
            log.warning("meter serial output buffer full; reply dropped", path=self.path)


class MeterSimulator:
    settings_model: ClassVar[type[SimulatorSettings]] = MeterSettings

    def __init__(self, name: str, settings: MeterSettings, world: World) -> None:
        self.name = name
        self.settings = settings
        self.meter = Meter(settings, world, self.drop_connections)
        self.clients: set[_TcpClient] = set()
        self._server: asyncio.Server | None = None
        self._pty: _PtyPort | None = None
        self._port = settings.port
        self._log = log.bind(simulator=name)

    @property
    def faults(self) -> Faults:
        return self.meter.faults

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: _TcpClient(self), self.settings.host, self.settings.port, reuse_address=True
        )
        self._port = self._server.sockets[0].getsockname()[1]
        if self.settings.serial:
            self._pty = _PtyPort(self.meter, self.settings.link)
        self._log.info("meter listening", **self.endpoints())

    async def stop(self) -> None:
        if self._pty is not None:
            self._pty.close()
            self._pty = None
        if self._server is not None:
            self._server.close()
            self.drop_connections()
            await self._server.wait_closed()
            self._server = None
            for _ in range(100):
                if not self.clients:
                    break
                await asyncio.sleep(0.01)

    def drop_connections(self) -> None:
        """Close every TCP client (the DROP fault; also part of stop)."""
        for client in list(self.clients):
            if client.transport is not None:
                client.transport.close()

    def endpoints(self) -> dict[str, str]:
        host = self.settings.host
        out = {"tcp": f"{host}:{self._port}", "visa": f"TCPIP::{host}::{self._port}::SOCKET"}
        if self._pty is not None:
            out["serial"] = self._pty.path
            if self.settings.link is not None:
                out["link"] = str(self.settings.link)
            out["visa_serial"] = f"ASRL{self.settings.link or self._pty.path}::INSTR"
        return out
