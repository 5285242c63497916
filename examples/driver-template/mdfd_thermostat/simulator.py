"""A simulated bath thermostat for the driver's tests: the water follows the setpoint."""

from __future__ import annotations

import asyncio
import math
import time


class ThermostatSimulator:
    def __init__(self, tau: float = 5.0) -> None:
        self.values = {"temperature": 25.0, "setpoint": 25.0}
        self._tau = tau
        self._since = time.monotonic()
        self._server: asyncio.Server | None = None
        self.port = 0

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await asyncio.wait_for(self._server.wait_closed(), 5)

    def _advance(self) -> None:
        now = time.monotonic()
        target = self.values["setpoint"]
        decay = math.exp(-(now - self._since) / self._tau)
        self.values["temperature"] = target + (self.values["temperature"] - target) * decay
        self._since = now

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while line := await reader.readline():
                writer.write(self._answer(line.decode().split()).encode() + b"\n")
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    def _answer(self, words: list[str]) -> str:
        self._advance()
        match words:
            case ["ID?"]:
                return "Acme,BT-200,SN42"
            case ["GET", name] if name in self.values:
                return f"{self.values[name]:.3f}"
            case ["SET", "setpoint", value]:
                self.values["setpoint"] = float(value)
                return "OK"
            case _:
                return "ERR unknown command"
