"""The simulated physics behind the adaptive examples has an optimum worth finding: inside the
space, not at a corner (issue 17). Computed with the simulators' own models."""

from __future__ import annotations

import numpy as np

from mdfd.simulators.world import FirstOrder, ProcessSkid, Specimen


def sintered(temperature: float, dwell_min: float) -> tuple[float, float]:
    """The MLCC example's point: ramp at 5 degC/min, hold, 5 min measurement."""
    specimen = Specimen()
    ramp = (temperature - 25.0) / 5.0 * 60.0
    for i in range(40):
        specimen.step(ramp / 40, 25.0 + (temperature - 25.0) * (i + 0.5) / 40, 7.0)
    specimen.step(dwell_min * 60.0 + 300.0, temperature, 7.0)
    return specimen.capacitance_nf(), specimen.dissipation_factor()


def test_mlcc_capacitance_peaks_inside_the_example_space() -> None:
    temperatures = np.linspace(1100, 1350, 26)
    dwells = np.linspace(30, 360, 34)
    best, where = -1.0, (0.0, 0.0)
    for t in temperatures:
        for d in dwells:
            capacitance, loss = sintered(float(t), float(d))
            if loss <= 0.005 and capacitance > best:
                best, where = capacitance, (float(t), float(d))
    assert temperatures[0] < where[0] < temperatures[-1], where
    assert dwells[0] < where[1] < dwells[-1], where
    corners = [sintered(float(t), float(d))[0] for t in (1100, 1350) for d in (30, 360)]
    assert best > 1.05 * max(corners)


def test_olefin_front_runs_through_the_inside_of_the_temperature_range() -> None:
    points = []
    for t in np.linspace(150, 350, 21):
        for p in (5.0, 20.0, 40.0):
            for f in (0.5, 2.0, 5.0):
                skid = ProcessSkid()
                skid.temperature = FirstOrder(t, t, 1.0)
                skid.pressure = FirstOrder(p, p, 1.0)
                skid.feed_flow = FirstOrder(f, f, 1.0)
                points.append((*skid.steady_state(), t))
    front = [
        a
        for a in points
        if not any(b[0] >= a[0] and b[1] >= a[1] and b[:2] != a[:2] for b in points)
    ]
    temperatures = {a[2] for a in front}
    assert len(front) >= 5
    assert len({t for t in temperatures if 150 < t < 350}) >= 3  # a trade-off, not a corner
