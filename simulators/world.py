"""The shared world model of a simulated MDF.

The simulators of one config run in one process and read this single model, so what the
furnace did to the specimen is what the meter then measures and a sweep shows a real curve.
State is advanced lazily to "now" in small fixed steps whenever anything is read or written,
so there is no background task and no drift between instruments.

Physics, deliberately simple but shaped like the real thing:
- a thermal zone (furnace or bath): a PID loop drives heater output 0..100 %, the zone follows
  with a first-order lag towards ambient + gain * output, the working setpoint approaches the
  target setpoint no faster than the ramp-rate limit;
- a process skid: temperature, pressure, feed flow and pH follow their setpoints first-order,
  conversion and selectivity of an olefin catalyst follow Arrhenius kinetics and residence time;
- a specimen in the zone transforms with Arrhenius kinetics towards a temperature-dependent
  equilibrium (densification, recovery, dye uptake); its measurable properties — capacitance and
  loss of an MLCC, resistivity and hardness of an annealed metal, colour strength of a dyed
  fabric — are functions of that state, plus seeded noise at measurement time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .clock import ScaledClock

GAS_CONSTANT = 8.314
STEP_SECONDS = 0.5
MAX_CATCH_UP_SECONDS = 3600.0 * 48


@dataclass
class ThermalZone:
    """A PID-controlled heater with first-order thermal lag and a ramp-rate limit."""

    ambient: float = 25.0
    temperature: float = 25.0
    setpoint: float = 25.0
    working_setpoint: float = 25.0
    ramp_rate_per_min: float = 10.0
    tau: float = 120.0
    gain: float = 14.0
    kp: float = 4.0
    ki: float = 0.06
    kd: float = 0.0
    running: bool = True
    output: float = 0.0
    _integral: float = 0.0
    _last_error: float = 0.0

    def step(self, dt: float) -> None:
        max_delta = self.ramp_rate_per_min / 60.0 * dt if self.ramp_rate_per_min > 0 else math.inf
        gap = self.setpoint - self.working_setpoint
        self.working_setpoint += max(-max_delta, min(max_delta, gap))
        if self.running:
            error = self.working_setpoint - self.temperature
            derivative = (error - self._last_error) / dt
            self._last_error = error
            feedforward = (self.working_setpoint - self.ambient) / self.gain
            raw = feedforward + self.kp * error + self.ki * self._integral + self.kd * derivative
            self.output = max(0.0, min(100.0, raw))
            if 0.0 < raw < 100.0:
                self._integral += error * dt
        else:
            self.output = 0.0
            self._integral = 0.0
        equilibrium = self.ambient + self.gain * self.output
        self.temperature += (equilibrium - self.temperature) * (1.0 - math.exp(-dt / self.tau))


@dataclass
class FirstOrder:
    """A process variable that follows its setpoint with lag `tau` (seconds)."""

    value: float
    setpoint: float
    tau: float

    def step(self, dt: float) -> None:
        self.value += (self.setpoint - self.value) * (1.0 - math.exp(-dt / self.tau))


@dataclass
class ProcessSkid:
    """A catalytic reactor that doubles as a dye bath's dosing skid (pH)."""

    temperature: FirstOrder = field(default_factory=lambda: FirstOrder(25.0, 25.0, 90.0))
    pressure: FirstOrder = field(default_factory=lambda: FirstOrder(1.0, 1.0, 20.0))
    feed_flow: FirstOrder = field(default_factory=lambda: FirstOrder(0.0, 0.0, 10.0))
    ph: FirstOrder = field(default_factory=lambda: FirstOrder(7.0, 7.0, 30.0))
    valve_open: float = 0.0
    conversion: float = 0.0
    selectivity: float = 0.0

    def step(self, dt: float) -> None:
        for variable in (self.temperature, self.pressure, self.feed_flow, self.ph):
            variable.step(dt)
        self.valve_open = max(0.0, min(100.0, self.feed_flow.value / 5.0 * 100.0))
        target_conversion, target_selectivity = self.steady_state()
        relax = 1.0 - math.exp(-dt / 60.0)
        self.conversion += (target_conversion - self.conversion) * relax
        self.selectivity += (target_selectivity - self.selectivity) * relax

    def steady_state(self) -> tuple[float, float]:
        """Conversion (%) and selectivity (%) of the olefin catalyst at current conditions."""
        kelvin = self.temperature.value + 273.15
        rate = 2.0e6 * math.exp(-75_000.0 / (GAS_CONSTANT * kelvin)) * self.pressure.value
        residence = 60.0 / max(self.feed_flow.value, 0.05)
        conversion = 100.0 * (1.0 - math.exp(-rate * residence / 60.0))
        side = math.exp(-30_000.0 / (GAS_CONSTANT * kelvin)) * 400.0
        selectivity = 100.0 * (1.0 / (1.0 + side)) * (1.0 - 0.002 * conversion)
        return conversion, max(0.0, selectivity)


@dataclass
class Specimen:
    """A specimen sitting in the thermal zone (and, for textiles, in the skid's bath)."""

    densification: float = 0.0
    grain_growth: float = 0.0
    recovery: float = 0.0
    dye_uptake: float = 0.0

    def step(self, dt: float, temperature: float, ph: float) -> None:
        kelvin = temperature + 273.15
        k_dense = 6.7e4 * math.exp(-234_000.0 / (GAS_CONSTANT * kelvin))
        self.densification += (1.0 - self.densification) * (1.0 - math.exp(-k_dense * dt))
        k_grain = 0.73 * math.exp(-110_000.0 / (GAS_CONSTANT * kelvin))
        self.grain_growth += k_grain * dt
        k_recovery = 86.0 * math.exp(-58_500.0 / (GAS_CONSTANT * kelvin))
        self.recovery += (1.0 - self.recovery) * (1.0 - math.exp(-k_recovery * dt))
        equilibrium_uptake = 1.0 / (1.0 + math.exp(-(ph - 6.0) * 1.2))
        k_dye = 1.28e3 * math.exp(-40_000.0 / (GAS_CONSTANT * kelvin))
        self.dye_uptake += (equilibrium_uptake - self.dye_uptake) * (1.0 - math.exp(-k_dye * dt))

    def reset(self) -> None:
        self.densification = self.grain_growth = self.recovery = self.dye_uptake = 0.0

    def capacitance_nf(self) -> float:
        permittivity_factor = (
            1.0 + 2.0 * min(self.grain_growth, 1.0) - 1.5 * max(self.grain_growth - 1.0, 0.0)
        )
        return 100.0 * (0.2 + 0.8 * self.densification) * max(permittivity_factor, 0.2)

    def dissipation_factor(self) -> float:
        return 0.002 + 0.03 * (1.0 - self.densification) + 0.004 * max(self.grain_growth - 1, 0)

    def resistivity_uohm_cm(self) -> float:
        return 1.72 + 0.9 * (1.0 - self.recovery)

    def hardness_hv(self) -> float:
        return 45.0 + 75.0 * (1.0 - self.recovery)

    def colour_strength(self) -> float:
        return 0.05 + 18.0 * self.dye_uptake


class World:
    """Everything the simulators of one config share, advanced on one scaled clock."""

    def __init__(self, clock: ScaledClock | None = None, seed: int = 0) -> None:
        self.clock = clock or ScaledClock()
        self.zone = ThermalZone()
        self.skid = ProcessSkid()
        self.specimen = Specimen()
        self.rng = np.random.default_rng(seed)
        self._time = self.clock.now()

    def advance(self, until: float | None = None) -> None:
        """Step the world to now, or to `until` when that is earlier (a reading the meter took
        at a past moment of its buffered run). The world never runs backwards: a moment it
        has passed leaves it where it is."""
        now = self.clock.now() if until is None else min(until, self.clock.now())
        if now <= self._time:
            return
        elapsed = min(now - self._time, MAX_CATCH_UP_SECONDS)
        while elapsed > 0.0:
            dt = min(STEP_SECONDS, elapsed)
            self.zone.step(dt)
            self.skid.step(dt)
            self.specimen.step(dt, self.zone.temperature, self.skid.ph.value)
            elapsed -= dt
        self._time = now

    def noisy(self, value: float, relative: float, absolute: float = 0.0) -> float:
        """A measured value: the truth plus seeded Gaussian noise."""
        sigma = abs(value) * relative + absolute
        return float(value + self.rng.normal(0.0, sigma)) if sigma > 0 else value
