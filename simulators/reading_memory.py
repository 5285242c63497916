"""The meter's reading memory: a buffered acquisition as a Keysight Truevolt DMM (34465A) runs
one, so a driver's buffered path is tested against the commands and replies of the real thing.

`INITiate` takes `SAMPle:COUNt` samples `SAMPle:TIMer` seconds apart on the world's clock
(scaled simulated time: the clock the meter's measurements use), the first at once, into a
memory that `R?` reads and erases and `DATA:POINts?` counts. Nothing runs in the background:
the samples that fell due since the last look are taken when the memory is next looked at,
each from the world advanced to its own sample time (the world never runs backwards, so one
due while another instrument had already moved the world on is the specimen of that later
moment). Everything is bounded: the count by `MAX_SAMPLES`, the memory by `MEMORY_SIZE`;
readings not fetched before the memory is full are lost oldest first and the overflow sets
bit 14 of the Questionable Data event register, as on the 34465A (no error is queued there,
and it counts nothing either: the readings lost are `taken - fetched - DATA:POINts?`).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from .scpi import ScpiError

MAX_SAMPLES = 1_000_000
"""`SAMPle:COUNt` range 1..MAX_SAMPLES (the 34465A's)."""
MEMORY_SIZE = 50_000
"""Readings the memory holds (a 34465A without the MEM option)."""
MIN_INTERVAL, MAX_INTERVAL = 20e-6, 3600.0
"""`SAMPle:TIMer` range, seconds."""
MEMORY_OVERFLOW = 1 << 14
"""Questionable Data register bit 14: one or more (oldest) readings were lost."""


@dataclass
class _Run:
    """One INITiate: when it started, its pacing and how many samples are taken so far (lost
    ones included)."""

    start: float
    interval: float
    count: int
    taken: int = 0

    def due(self, now: float) -> int:
        """Samples whose time has come by `now`: the first at once, then one per interval."""
        return min(self.count, math.floor((now - self.start) / self.interval) + 1)


class ReadingMemory:
    """Sample settings, the run in progress and the memory, for one meter."""

    def __init__(self, clock: Callable[[], float], sample: Callable[[float], str]) -> None:
        self._clock = clock
        self._sample = sample  # a reading formatted as MEAS answers it, taken at a given time
        self.count = 1
        self.interval = 1.0
        self.questionable = 0
        self._run: _Run | None = None
        self._readings: deque[str] = deque(maxlen=MEMORY_SIZE)

    def initiate(self) -> None:
        """Start a run; the memory is cleared. -213 "Init ignored" while one runs."""
        self._catch_up()
        if self._run is not None:
            raise ScpiError(-213)
        self._readings.clear()
        self._run = _Run(self._clock(), self.interval, self.count)
        self._catch_up()

    def abort(self) -> None:
        """Stop taking samples; what is in the memory stays until the next INITiate."""
        self._catch_up()
        self._run = None

    def reset(self) -> None:
        """`*RST` and a new `CONFigure`: stopped, empty, default sample settings."""
        self._run = None
        self._readings.clear()
        self.count, self.interval = 1, 1.0

    def points(self) -> int:
        self._catch_up()
        return len(self._readings)

    def remove(self, most: int) -> list[str]:
        """Read and erase up to `most` readings, oldest first."""
        self._catch_up()
        return [self._readings.popleft() for _ in range(min(most, len(self._readings)))]

    def read_questionable(self) -> int:
        """`STAT:QUES?`: the event register, cleared by reading it."""
        self._catch_up()
        value, self.questionable = self.questionable, 0
        return value

    def clear_status(self) -> None:
        """`*CLS`: clears the event register, of the samples taken by now too."""
        self._catch_up()
        self.questionable = 0

    def _catch_up(self) -> None:
        """Take the samples due by now. Those that would only be pushed out again before
        anyone could read them (more than the memory holds) are counted lost, not computed,
        so a run left alone for hours costs one memory's worth of samples, not hours' worth."""
        run = self._run
        if run is None:
            return
        due = run.due(self._clock())
        unseen = due - run.taken - MEMORY_SIZE
        if unseen > 0:
            run.taken += unseen
            self.questionable |= MEMORY_OVERFLOW
        for index in range(run.taken, due):
            if len(self._readings) == MEMORY_SIZE:
                self.questionable |= MEMORY_OVERFLOW
            self._readings.append(self._sample(run.start + index * run.interval))
        run.taken = due
        if due == run.count:
            self._run = None
