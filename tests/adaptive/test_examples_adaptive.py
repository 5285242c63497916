"""The adaptive examples on the simulated MDF (`config/sim.yaml`, real sockets), with a
smaller budget: the campaign runs, finds a front, and its file, records and view agree."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import h5py

from tests.support import EXAMPLES, SIM_CONFIG, mdfd, retry_port_race, sim_env


def test_olefin_campaign_finds_a_front_on_the_simulators(tmp_path: Path) -> None:
    text = (EXAMPLES / "chemistry-olefin-adaptive.yaml").read_text()
    text = text.replace("max_points: 24", "max_points: 6").replace("samples: 8", "samples: 3")
    recipe = tmp_path / "olefin.yaml"
    recipe.write_text(text)
    env = sim_env(tmp_path / "var", MDFD_TIME_SCALE="6000")

    def attempt() -> subprocess.CompletedProcess[str]:
        env.update(sim_env(tmp_path / "var", MDFD_TIME_SCALE="6000"))
        return mdfd(
            "run",
            "--simulate",
            "--json",
            "--config",
            str(SIM_CONFIG),
            str(recipe),
            env=env,
            timeout=300,
        )

    result = retry_port_race(attempt)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert (summary["status"], summary["points_done"]) == ("completed", 6)
    with h5py.File(summary["data_file"], "r") as handle:
        group = handle["entry/campaign"]
        done = [s == b"done" for s in group["status"][()]]
        assert sum(done) == 6
        conversion = group["objectives/conversion"][()]
        selectivity = group["objectives/selectivity"][()]
        front = set(group["front"][()])
        assert front
        # No measured feasible point is better in both objectives than a front point.
        for i in front:
            for j, ok in enumerate(done):
                assert not (
                    ok and conversion[j] > conversion[i] and selectivity[j] > selectivity[i]
                )
    listed = mdfd("runs", "--config", str(SIM_CONFIG), "--json", env=env)
    [run] = json.loads(listed.stdout)
    assert sorted(b["trial"] for b in run["campaign"]["best"]) == sorted(int(i) for i in front)
    [spool] = (tmp_path / "var" / "sim-mdf-01" / "spool").glob("*.jsonl")
    records = [json.loads(line) for line in spool.read_text().splitlines()]
    chosen = [r["provenance"]["point"]["chosen_by"] for r in records]
    assert len(chosen) == 6
    # Trials 0-2 are the initial design (one may be rejected by the input constraint).
    assert all(c["source"] == ("initial" if c["trial"] < 3 else "optimiser") for c in chosen)
