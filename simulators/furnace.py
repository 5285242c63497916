"""A simulated furnace temperature controller speaking Modbus TCP and Modbus RTU.

It drives `world.zone` (a PID-controlled heater with first-order lag and a ramp-rate limit), so
what the furnace does is what the specimen — and the meter — experience. One device memory is
served on both ports (like a controller with an Ethernet and an RS-485 port). RTU runs over a
null-modem pty pair the simulator creates itself; `endpoints()["rtu"]` (and the optional stable
`rtu.link` symlink) is the path a client opens.

Register map (0-based protocol addresses; "x10" = value times ten as an integer)

Coils (FC1 read, FC5/15 write)
    0      run (1) / stop (0); stopped means heater output 0 %

Discrete inputs (FC2)
    0      high alarm      PV > high alarm limit
    1      low alarm       PV < low alarm limit
    2      deviation alarm |PV - working setpoint| > deviation band
    3      at setpoint     working setpoint == setpoint and |PV - setpoint| <= band

Input registers (FC4)
    0      PV                      int16 x10 degC
    1      working setpoint        int16 x10 degC (the ramping setpoint)
    2      output                  uint16 x10 %
    3      alarm word              bit0 high, bit1 low, bit2 deviation
    4      status word             bit0 running, bit1 ramping, bit2 at setpoint
    10-11  PV                      float32, word order big, byte order big (ABCD)
    12-13  working setpoint        float32 ABCD
    14-15  output %                float32 ABCD
    20-21  PV                      float32 word order little (CDAB)
    22-23  PV                      float32 byte order little (BADC)
    24-25  PV                      float32 word and byte order little (DCBA)
    26-29  PV                      float64 ABCDEFGH
    30-31  PV                      int32 milli-degC, word order big
    32-33  uptime                  uint32 seconds of simulated time

Holding registers (FC3 read, FC6/16 write)
    0      setpoint                int16 x10 degC, 0..1400 (else exception 3)
    1      ramp rate               uint16 x10 degC/min, 0 = unlimited
    2      high alarm limit        int16 degC
    3      low alarm limit         int16 degC
    4      deviation band          uint16 x10 degC
    10-11  setpoint                float32 ABCD (same value as register 0)
    12-13  ramp rate               float32 ABCD degC/min
    100-227 scratch memory         128 plain registers for commissioning and interop tests
    900    fault: latency ms       added before every reply
    901    fault: drop next N      TCP closes the connection unanswered, RTU stays silent
    902    fault: exception code   every reply is this Modbus exception (0 = off)
    903    fault: corrupt next N   replies garbled (RTU: bad CRC, TCP: bad MBAP header)
    904    fault: stuck PV         1 freezes every PV register at its current value

Requests touching only the fault block (900-904) are exempt from faults, so faults can always
be switched off again. Unknown unit ids get exception 11 (gateway target failed to respond) on
TCP and silence on RTU, as on a real bus.
"""

from __future__ import annotations

import asyncio
import collections
import contextvars
import math
import socket
import struct
from functools import partial
from typing import ClassVar

import structlog
from pymodbus.constants import ExcCodes
from pymodbus.pdu import ModbusPDU
from pymodbus.pdu.device import ModbusDeviceIdentification
from pymodbus.server import ModbusBaseServer, ModbusSerialServer, ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from .base import SimulatorSettings
from .furnace_settings import FurnaceSettings
from .modbus_faults import Fate, Faults, corrupt_rtu, corrupt_tcp, current_fate
from .modbus_memory import SharedMemory
from .nullmodem import NullModem
from .world import World

COIL_RUN = 0
DI_HIGH, DI_LOW, DI_DEVIATION, DI_AT_SETPOINT = 0, 1, 2, 3
IR_SIZE = 40
HR_SETPOINT, HR_RAMP, HR_HIGH, HR_LOW, HR_BAND = 0, 1, 2, 3, 4
HR_SETPOINT_F32, HR_RAMP_F32 = 10, 12
SCRATCH, SCRATCH_SIZE = 100, 128
FAULTS = 900
FAULT_LATENCY, FAULT_DROP, FAULT_EXCEPTION, FAULT_CORRUPT, FAULT_STUCK = range(900, 905)
HR_SIZE = FAULT_STUCK + 1
SETPOINT_RANGE = (0.0, 1400.0)
RAMP_RANGE = (0.0, 1000.0)


def _s16(value: float) -> int:
    return int(max(-32768, min(32767, round(value)))) & 0xFFFF


def _u16(value: float) -> int:
    return int(max(0, min(65535, round(value))))


def _signed(word: int) -> int:
    return word - 0x10000 if word & 0x8000 else word


def _words(fmt: str, value: float | int) -> list[int]:
    data = struct.pack(">" + fmt, value)
    return list(struct.unpack(f">{len(data) // 2}H", data))


def _float_of(words: list[int]) -> float:
    return struct.unpack(">f", struct.pack(">2H", *words))[0]


def _swap(words: list[int]) -> list[int]:
    return [((w & 0xFF) << 8) | (w >> 8) for w in words]


class FurnaceSimulator:
    settings_model: ClassVar[type[SimulatorSettings]] = FurnaceSettings

    def __init__(self, name: str, settings: FurnaceSettings, world: World) -> None:
        self.name = name
        self.settings = settings
        self.world = world
        zone = world.zone
        for field in ("tau", "gain", "kp", "ki", "ambient"):
            value = getattr(settings, field)
            if value is not None:
                setattr(zone, field, value)
        if settings.ambient is not None:
            zone.temperature = zone.setpoint = zone.working_setpoint = settings.ambient
        if settings.ramp_rate is not None:
            zone.ramp_rate_per_min = settings.ramp_rate
        self.faults = Faults(**settings.faults.model_dump())
        self.high_alarm = settings.high_alarm
        self.low_alarm = settings.low_alarm
        self.band = settings.deviation_band
        self.requests: collections.Counter[int] = collections.Counter()
        self._stuck_pv: float | None = None
        self._started_at = 0.0
        self._stopping = asyncio.Event()
        self._servers: list[ModbusBaseServer] = []
        self._tcp: ModbusTcpServer | None = None
        self._tcp_port = settings.port
        self._identity: ModbusDeviceIdentification | None = None
        self._units: set[int] = set()
        self._memory = SharedMemory()
        self._dropping: asyncio.Task[None] | None = None
        self._modem: NullModem | None = None
        self._log = structlog.get_logger().bind(simulator=name)

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        self._stopping = asyncio.Event()
        self._started_at = self.world.clock.now()
        identity = ModbusDeviceIdentification(
            info_name={
                "VendorName": self.settings.vendor,
                "ProductCode": self.settings.model,
                "MajorMinorRevision": self.settings.revision,
            }
        )
        units = {self.settings.unit}
        if self.settings.rtu is not None:
            units.add(self.settings.rtu.unit)
        self._identity, self._units = identity, units
        try:
            if self.settings.port is not None:
                port = self.settings.port or _free_port(self.settings.host)
                self._tcp_port = port
                await self._serve_tcp(port)
            if self.settings.rtu is not None:
                self._modem = NullModem(self.settings.rtu.link)
                self._modem.open()
                rtu = ModbusSerialServer(
                    self._devices(units),
                    port=self._modem.server_path,
                    baudrate=self.settings.rtu.baudrate,
                    identity=identity,
                    trace_packet=partial(self._trace_packet, "rtu", units),
                    trace_pdu=self._trace_pdu,
                )
                await rtu.serve_forever(background=True)
                self._servers.append(rtu)
        except BaseException:
            await self.stop()
            raise

    async def _serve_tcp(self, port: int) -> None:
        self._tcp = ModbusTcpServer(
            self._devices(self._units),
            address=(self.settings.host, port),
            identity=self._identity,
            trace_packet=partial(self._trace_packet, "tcp", self._units),
            trace_pdu=self._trace_pdu,
        )
        await self._tcp.serve_forever(background=True)
        self._servers.append(self._tcp)

    async def stop(self) -> None:
        self._stopping.set()
        task, self._dropping = self._dropping, None
        if task is not None:
            await asyncio.gather(task, return_exceptions=True)
        for server in self._servers:
            await server.shutdown()
        self._servers.clear()
        self._tcp = None
        if self._modem is not None:
            self._modem.close()
            self._modem = None
        # let handlers woken from injected latency finish their (now unsendable) replies
        for _ in range(5):
            await asyncio.sleep(0)

    def endpoints(self) -> dict[str, str]:
        out: dict[str, str] = {}
        if self._tcp is not None:
            out["tcp"] = f"{self.settings.host}:{self._tcp_port}"
        if self._modem is not None:
            link = self.settings.rtu.link if self.settings.rtu else None
            out["rtu"] = str(link) if link is not None else self._modem.client_path
            out["rtu_device"] = self._modem.client_path
        return out

    @property
    def tcp_port(self) -> int:
        return int(self.endpoints()["tcp"].rsplit(":", 1)[1])

    # ------------------------------------------------------------------ device memory

    def _devices(self, units: set[int]) -> list[SimDevice]:
        def blocks() -> tuple[list[SimData], list[SimData], list[SimData], list[SimData]]:
            return (
                [SimData(0, count=16, values=False, datatype=DataType.BITS)],
                [SimData(0, count=16, values=False, datatype=DataType.BITS)],
                [SimData(0, count=HR_SIZE, values=0, datatype=DataType.REGISTERS)],
                [SimData(0, count=IR_SIZE, values=0, datatype=DataType.REGISTERS)],
            )

        devices = [
            SimDevice(unit, simdata=blocks(), action=partial(self._action, unit)) for unit in units
        ]
        devices.append(SimDevice(0, simdata=blocks(), action=self._unknown_unit))
        return devices

    async def _unknown_unit(self, *_: object) -> ExcCodes:
        return ExcCodes.GATEWAY_NO_RESPONSE

    async def _action(
        self,
        unit: int,
        function_code: int,
        start: int,
        address: int,
        count: int,
        registers: list[int],
        values: list[int] | list[bool] | None,
    ) -> ExcCodes | None:
        """Called by pymodbus for every access: inject faults, apply writes, refresh reads."""
        if current_fate() is None and not self._fault_block_only(function_code, address, count):
            refusal = await self.faults.decide(self._stopping)
            if refusal is not None:
                return refusal
        self._memory.adopt(unit, function_code, registers)
        self.world.advance()
        if values is not None:
            refusal = self._write(function_code, start, address, registers, values)
            if refusal is None:
                self._memory.written(unit, function_code, registers)
            return refusal
        self._refresh(function_code, start, registers)
        return None

    @staticmethod
    def _fault_block_only(function_code: int, address: int, count: int) -> bool:
        return function_code in (3, 6, 16) and address >= FAULTS and address + count <= HR_SIZE

    # ------------------------------------------------------------------ reads

    def _pv(self) -> float:
        zone = self.world.zone
        if self.faults.stuck:
            if self._stuck_pv is None:
                self._stuck_pv = self.world.noisy(zone.temperature, 0.0, self.settings.noise)
            return self._stuck_pv
        self._stuck_pv = None
        return self.world.noisy(zone.temperature, 0.0, self.settings.noise)

    def _alarms(self, pv: float) -> tuple[bool, bool, bool, bool]:
        zone = self.world.zone
        high = pv > self.high_alarm
        low = pv < self.low_alarm
        deviation = abs(pv - zone.working_setpoint) > self.band
        settled = abs(zone.working_setpoint - zone.setpoint) < 1e-9
        at_setpoint = settled and abs(pv - zone.setpoint) <= self.band
        return high, low, deviation, at_setpoint

    def _refresh(self, function_code: int, start: int, registers: list[int]) -> None:
        zone = self.world.zone
        if function_code in (1, 5, 15):
            registers[0 - start] = (registers[0 - start] & ~1) | int(zone.running)
        elif function_code == 2:
            bits = self._alarms(self._pv())
            word = sum(1 << i for i, on in enumerate(bits) if on)
            registers[0 - start] = (registers[0 - start] & 0xFFF0) | word
        elif function_code == 4:
            self._refresh_inputs(registers, start)
        else:
            self._refresh_holding(registers, start)

    def _refresh_inputs(self, r: list[int], start: int) -> None:
        zone = self.world.zone
        pv = self._pv()
        high, low, deviation, at_setpoint = self._alarms(pv)
        ramping = abs(zone.working_setpoint - zone.setpoint) > 1e-9
        image: dict[int, list[int]] = {
            0: [_s16(pv * 10)],
            1: [_s16(zone.working_setpoint * 10)],
            2: [_u16(zone.output * 10)],
            3: [int(high) | int(low) << 1 | int(deviation) << 2],
            4: [int(zone.running) | int(ramping) << 1 | int(at_setpoint) << 2],
            10: _words("f", pv),
            12: _words("f", zone.working_setpoint),
            14: _words("f", zone.output),
            20: _words("f", pv)[::-1],
            22: _swap(_words("f", pv)),
            24: _swap(_words("f", pv)[::-1]),
            26: _words("d", pv),
            30: _words("i", max(-(2**31), min(2**31 - 1, round(pv * 1000)))),
            32: _words("I", max(0, int(self.world.clock.now() - self._started_at))),
        }
        for address, words in image.items():
            r[address - start : address - start + len(words)] = words

    def _refresh_holding(self, r: list[int], start: int) -> None:
        zone = self.world.zone
        ramp = zone.ramp_rate_per_min if math.isfinite(zone.ramp_rate_per_min) else 0.0
        image: dict[int, list[int]] = {
            HR_SETPOINT: [_s16(zone.setpoint * 10)],
            HR_RAMP: [_u16(ramp * 10)],
            HR_HIGH: [_s16(self.high_alarm)],
            HR_LOW: [_s16(self.low_alarm)],
            HR_BAND: [_u16(self.band * 10)],
            HR_SETPOINT_F32: _words("f", zone.setpoint),
            HR_RAMP_F32: _words("f", ramp),
            FAULT_LATENCY: [
                _u16(self.faults.latency_ms),
                _u16(self.faults.drop),
                _u16(self.faults.exception_code),
                _u16(self.faults.corrupt),
                int(self.faults.stuck),
            ],
        }
        for address, words in image.items():
            r[address - start : address - start + len(words)] = words

    # ------------------------------------------------------------------ writes

    def _write(
        self,
        function_code: int,
        start: int,
        address: int,
        registers: list[int],
        values: list[int] | list[bool],
    ) -> ExcCodes | None:
        if function_code in (5, 15):
            if address <= COIL_RUN < address + len(values):
                self.world.zone.running = bool(values[COIL_RUN - address])
                self._log.debug("furnace run state", running=self.world.zone.running)
            return None
        self._refresh_holding(registers, start)
        image = list(registers)
        image[address - start : address - start + len(values)] = [int(v) for v in values]
        end = address + len(values)

        def touched(first: int, size: int = 1) -> bool:
            return address < first + size and first < end

        zone = self.world.zone
        setpoint = ramp = None
        if touched(HR_SETPOINT):
            setpoint = _signed(image[HR_SETPOINT - start]) / 10.0
        if touched(HR_SETPOINT_F32, 2):
            setpoint = _float_of(image[HR_SETPOINT_F32 - start : HR_SETPOINT_F32 - start + 2])
        if touched(HR_RAMP):
            ramp = image[HR_RAMP - start] / 10.0
        if touched(HR_RAMP_F32, 2):
            ramp = _float_of(image[HR_RAMP_F32 - start : HR_RAMP_F32 - start + 2])
        if setpoint is not None and not SETPOINT_RANGE[0] <= setpoint <= SETPOINT_RANGE[1]:
            return ExcCodes.ILLEGAL_VALUE
        if ramp is not None and not RAMP_RANGE[0] <= ramp <= RAMP_RANGE[1]:
            return ExcCodes.ILLEGAL_VALUE
        if setpoint is not None:
            zone.setpoint = setpoint
            self._log.debug("furnace setpoint", setpoint=setpoint)
        if ramp is not None:
            zone.ramp_rate_per_min = ramp if ramp > 0 else math.inf
        if touched(HR_HIGH):
            self.high_alarm = float(_signed(image[HR_HIGH - start]))
        if touched(HR_LOW):
            self.low_alarm = float(_signed(image[HR_LOW - start]))
        if touched(HR_BAND):
            self.band = image[HR_BAND - start] / 10.0
        if touched(FAULTS, HR_SIZE - FAULTS):
            self.faults.latency_ms = image[FAULT_LATENCY - start]
            self.faults.drop = image[FAULT_DROP - start]
            self.faults.exception_code = image[FAULT_EXCEPTION - start]
            self.faults.corrupt = image[FAULT_CORRUPT - start]
            self.faults.stuck = bool(image[FAULT_STUCK - start])
            self._log.info("furnace faults", faults=self.faults)
        return None

    # ------------------------------------------------------------------ wire hooks

    def _trace_pdu(self, sending: bool, pdu: ModbusPDU) -> ModbusPDU:
        if not sending:
            self.requests[pdu.function_code] += 1
        return pdu

    def _trace_packet(self, transport: str, units: set[int], sending: bool, data: bytes) -> bytes:
        """Silence, drop or garble a reply according to the fate decided for its request."""
        if not sending:
            return data
        if transport == "rtu" and data and data[0] not in units:
            return b""
        fate = current_fate()
        if fate is Fate.DROP:
            if transport == "tcp" and (self._dropping is None or self._dropping.done()):
                # A fresh context: the new listener must not inherit this request's fate.
                self._dropping = asyncio.get_running_loop().create_task(
                    self._drop_tcp_links(), context=contextvars.Context()
                )
            return b""
        if fate is Fate.CORRUPT:
            return corrupt_tcp(data) if transport == "tcp" else corrupt_rtu(data)
        return data

    async def _drop_tcp_links(self) -> None:
        """Drop every TCP link, as a controller whose Ethernet port resets does: the server is
        shut down (closing its connections; pymodbus has no public per-connection close) and
        started again on the same port. The device memory survives in `SharedMemory`."""
        server, port = self._tcp, self._tcp_port
        if server is None or port is None or self._stopping.is_set():
            return
        self._servers.remove(server)
        await server.shutdown()
        if not self._stopping.is_set():
            try:
                await self._serve_tcp(port)
            except (OSError, RuntimeError) as exc:
                self._log.error("furnace TCP port could not be reopened", error=repr(exc))

    @property
    def request_total(self) -> int:
        return sum(self.requests.values())


def _free_port(host: str) -> int:
    """A port nobody listens on now, for `port: 0` (pymodbus reports no bound address)."""
    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])
