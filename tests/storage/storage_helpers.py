"""A deterministic run for the storage tests: every sample value is exact in binary, so the
file's contents can be compared with `==`, not approximately."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mdfd.daemons.core.stats import RunningStats, Stats
from mdfd.daemons.storage import ChannelSpec, RunFile

CHANNELS = [ChannelSpec("furnace.temperature", "degC"), ChannelSpec("meter.capacitance", "nF")]
PARAMETERS = ["temperature", "dwell"]
T0 = 1_700_000_000.0
RELEASE_0_2 = Path(__file__).parent / "data" / "release-0.2-run.h5"
"""Written by release 0.2's RunFile (layout 2: a group per channel, summary columns per channel
and statistic) with `make_run_file(run_id="layout-2")`: points 0-2 of `write_point(samples=4)`,
completed, then point 3 failed without samples."""


def sample(channel: int, point: int, i: int) -> tuple[float, float]:
    """(time, value) of sample i of a channel in a point."""
    return T0 + point * 100 + i * 0.125, point * 1000.0 + channel * 100.0 + i * 0.25


def parameters(point: int) -> dict[str, float]:
    return {"temperature": 100.0 + 50.0 * (point % 4), "dwell": 10.0 * (point // 4)}


def metadata(run_id: str) -> dict[str, object]:
    return {
        "run_id": run_id,
        "mdf_id": "sim-mdf-01",
        "mdf_domains": ["metal", "ceramic"],
        "material_domain": "ceramic",
        "recipe_name": "storage-test",
        "recipe_version": "1",
        "recipe_text": "recipe: {name: storage-test}\n",
        "config_text": "mdf: {id: sim-mdf-01}\n",
        "instrument_identities": {"furnace": "ACME,F1,001", "meter": "ACME,LCR,002"},
        "time_scale": 600.0,
    }


def make_run_file(path: Path, run_id: str = "run-1", **kwargs: object) -> RunFile:
    options: dict[str, object] = {"block_size": 8, "queue_blocks": 4}
    options.update(kwargs)
    return RunFile(
        path,
        metadata=metadata(run_id),
        channels=CHANNELS,
        parameters=PARAMETERS,
        parameter_units={"temperature": "degC", "dwell": "min"},
        **options,  # type: ignore[arg-type]
    )


def add_one(run: RunFile, channel: str, t: float, value: float, point: int) -> bool:
    """One channel's sample, as a scan of its instrument that read that channel only."""
    return run.add_scan(channel.partition(".")[0], [channel], t, np.array([value]), point)


def add_point_samples(run: RunFile, point: int, samples: int) -> dict[str, Stats]:
    """Feed a point's samples for every channel; their statistics as the engine computes them."""
    stats = {spec.name: RunningStats() for spec in CHANNELS}
    for i in range(samples):
        for number, spec in enumerate(CHANNELS):
            t, value = sample(number, point, i)
            add_one(run, spec.name, t, value, point)
            stats[spec.name].add(value)
    return {name: s.result() for name, s in stats.items()}


async def write_point(run: RunFile, point: int, samples: int) -> dict[str, int]:
    stats = add_point_samples(run, point, samples)
    await run.drain()
    return await run.complete_point(
        point, parameters(point), stats, T0 + point * 100, T0 + point * 100 + samples * 0.125
    )
