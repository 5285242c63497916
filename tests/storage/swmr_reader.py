"""A reader process for the SWMR test: one open handle, refreshed on each line of stdin.

Prints, per request, the points and samples it sees and the summary's temperature column.
"""

from __future__ import annotations

import json
import sys

import h5py

from mdfd.daemons.storage.layout import LIBVER


def main(path: str) -> None:
    with h5py.File(path, "r", libver=LIBVER, swmr=True) as handle:
        print("open", flush=True)
        summary = handle["entry/summary"]
        values = handle["entry/instrument/meter/data/value"]  # [scans, channels]
        for _ in sys.stdin:
            for dataset in (summary["point_index"], summary["temperature"], values):
                dataset.refresh()
            points = min(summary["point_index"].shape[0], summary["temperature"].shape[0])
            answer = {
                "points": points,
                "temperature": summary["temperature"][:points].tolist(),
                "samples": values[: values.shape[0], 0].tolist(),
            }
            print(json.dumps(answer), flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
