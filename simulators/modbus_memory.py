"""One Modbus device memory behind several pymodbus servers (a controller's TCP and RTU ports).

pymodbus builds a separate register memory for every server from the same device definitions,
and offers no public way to share one (assigning one server's `context` to another reaches
into its internals). What it does offer is the device `action` hook, called before every
access with the live register block of that server (documented: "modify inline"). So the
memory is kept coherent there: the block written last is the truth, and a block of another
server is brought up to date from it before it is read or written. pymodbus applies a write
after the hook returns, so a write is remembered only once the hook lets it through.
"""

from __future__ import annotations

BLOCKS = {1: "c", 5: "c", 15: "c", 2: "d", 3: "h", 6: "h", 16: "h", 22: "h", 23: "h", 4: "i"}
"""pymodbus' block of each function code: coils, discrete inputs, holding and input registers."""


class SharedMemory:
    def __init__(self) -> None:
        self._latest: dict[tuple[int, str], list[int]] = {}

    def adopt(self, unit: int, function_code: int, registers: list[int]) -> None:
        """Make `registers` (one server's block for this access) hold the latest contents."""
        key = (unit, BLOCKS.get(function_code, "?"))
        latest = self._latest.setdefault(key, registers)
        if latest is not registers:
            registers[:] = latest
            self._latest[key] = registers

    def written(self, unit: int, function_code: int, registers: list[int]) -> None:
        """The access is a write pymodbus will apply to `registers`: that block leads now."""
        self._latest[(unit, BLOCKS.get(function_code, "?"))] = registers
