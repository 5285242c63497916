"""A buffered acquisition's bookkeeping on the host: when it started, its pace, how many scans
were fetched, and the `Scans` a fetch's readings become. No I/O here.

An instrument's reading memory holds bare readings (timestamps cost the instrument a format
change and the wire twice the bytes), so the host places them: scan k was taken at
`start + k / rate`, k counted from the start of the acquisition over every fetch. That holds
while the instrument keeps its pace and loses no reading; a memory overflow (readings lost
oldest first) breaks the count, which is why the driver reads the overflow flag when the
config says how (`buffer.overflow`) and fails the fetch rather than misplace scans.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from ..base import BAD_CODE, GOOD_CODE, Scans


@dataclass(slots=True)
class BufferRun:
    """One buffered acquisition, as the driver started it.

    `start` is the injected clock's time (`DriverContext.clock`, the engine's time base: scaled
    on a simulated MDF) taken just before the command that starts the run was sent, so scan 0
    is placed at most one one-way latency early. `rate` is scans per second. `count` is the
    scans asked for: no fetch asks for more than are still to come. `session` is the driver's
    session number at the start: a reopen since (which runs `init`) may have reset the memory.
    `fetched` is how many scans were fetched so far: the index of the next one.
    """

    channel: str
    start: float
    rate: float
    count: int
    session: int
    fetched: int = 0

    @property
    def remaining(self) -> int:
        return self.count - self.fetched

    def scans(self, readings: npt.NDArray[np.float64]) -> Scans:
        """The next `len(readings)` scans, timed from the start, and counted as fetched. A
        reading that is no finite number is NaN with quality BAD, as in a `Block`."""
        good = np.isfinite(readings)
        values = np.where(good, readings, np.nan).reshape(-1, 1)
        quality = np.where(good, GOOD_CODE, BAD_CODE).astype(np.uint8).reshape(-1, 1)
        index = np.arange(self.fetched, self.fetched + len(readings), dtype=np.float64)
        self.fetched += len(readings)
        return Scans((self.channel,), values, quality, self.start + index / self.rate)
