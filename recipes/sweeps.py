"""Sweep generators: from a declarative sweep to the ordered list of points.

Pure functions of the recipe (and its seed), so `mdfd plan`, `mdfd validate` and the engine see
the same points in the same order, and a resumed run finds point i where it left it.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence

import numpy as np

Point = dict[str, float]


def linspace(start: float, stop: float, num: int) -> list[float]:
    return [float(v) for v in np.linspace(start, stop, num)]


def logspace(start: float, stop: float, num: int) -> list[float]:
    """Geometric spacing between the actual values `start` and `stop` (both > 0)."""
    return [float(v) for v in np.geomspace(start, stop, num)]


def arange(start: float, stop: float, step: float) -> list[float]:
    """Inclusive of `stop` when it falls on the grid (within float tolerance): lab ranges are."""
    return [float(start + i * step) for i in range(arange_count(start, stop, step))]


def arange_count(start: float, stop: float, step: float) -> int:
    return max(int(np.floor((stop - start) / step + 1e-9)) + 1, 0)


def grid(axes: Mapping[str, Sequence[float]], serpentine: bool = False) -> list[Point]:
    """Cartesian product, first parameter outermost.

    Serpentine order reverses every other pass of each inner axis so consecutive points differ
    in one parameter by one step — a furnace never jumps from the top of a range back to the
    bottom between neighbouring points.
    """
    names = list(axes)
    if not names:
        return []
    if not serpentine:
        return [dict(zip(names, combo, strict=True)) for combo in itertools.product(*axes.values())]
    return [
        dict(zip(names, combo, strict=True)) for combo in _snake([list(v) for v in axes.values()])
    ]


def _snake(axes: list[list[float]]) -> list[tuple[float, ...]]:
    if len(axes) == 1:
        return [(v,) for v in axes[0]]
    inner = _snake(axes[1:])
    out: list[tuple[float, ...]] = []
    for index, value in enumerate(axes[0]):
        sequence = inner if index % 2 == 0 else inner[::-1]
        out.extend((value, *rest) for rest in sequence)
    return out


def zipped(axes: Mapping[str, Sequence[float]]) -> list[Point]:
    lengths = {len(v) for v in axes.values()}
    if len(lengths) > 1:
        raise ValueError(f"zip needs axes of equal length, got {sorted(lengths)}")
    names = list(axes)
    return [dict(zip(names, combo, strict=True)) for combo in zip(*axes.values(), strict=True)]


def latin_hypercube(
    bounds: Mapping[str, tuple[float, float]], samples: int, seed: int
) -> list[Point]:
    """One sample in each of `samples` equal strata of every parameter, strata paired at random.

    Seeded with numpy's PCG64 so the same recipe gives the same points on any machine.
    """
    rng = np.random.default_rng(seed)
    out: list[Point] = [{} for _ in range(samples)]
    for name, (low, high) in bounds.items():
        strata = rng.permutation(samples)
        offsets = rng.random(samples)
        unit = (strata + offsets) / samples
        for i in range(samples):
            out[i][name] = float(low + unit[i] * (high - low))
    return out


def uniform_random(
    bounds: Mapping[str, tuple[float, float]], samples: int, seed: int
) -> list[Point]:
    """Independent uniform samples, seeded like `latin_hypercube` (PCG64)."""
    rng = np.random.default_rng(seed)
    out: list[Point] = [{} for _ in range(samples)]
    for name, (low, high) in bounds.items():
        for i, u in enumerate(rng.random(samples)):
            out[i][name] = float(low + u * (high - low))
    return out
