"""Run every benchmark: `python -m bench [--quick] [--json PATH] [--only NAME,...]`.

Each module `bench/<name>.py` exposes `run(quick) -> list[Figure]` and measures its baseline
in the same run. A module that fails (a missing optional library, a port in use) is reported
and the others still run; the exit status is 1 if any failed, so a tracking job notices.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import time
import traceback

from bench.common import Figure, machine
from mdfd.daemons.core.logging import configure

MODULES = [
    "engine",
    "hdf5",
    "scale",
    "modbus",
    "opcua",
    "visa",
    "upstream",
    "daemon",
    "hostile",
    "web",
    "adaptive",
]


def main() -> int:
    configure("warning")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes (about 2 minutes)")
    parser.add_argument("--json", metavar="PATH", help="write every figure as JSON")
    parser.add_argument("--only", metavar="NAME,...", help=f"a subset of {','.join(MODULES)}")
    args = parser.parse_args()
    names = args.only.split(",") if args.only else MODULES
    unknown = sorted(set(names) - set(MODULES))
    if unknown:
        parser.error(f"unknown benchmarks {unknown}; known: {MODULES}")
    print(f"machine: {machine()}", flush=True)
    figures: list[tuple[str, Figure]] = []
    failed: dict[str, str] = {}
    for name in names:
        began = time.perf_counter()
        print(f"== {name}", flush=True)
        try:
            module = importlib.import_module(f"bench.{name}")
            results = module.run(quick=args.quick)
        except Exception as exc:  # one broken benchmark must not hide the others' figures
            traceback.print_exc()
            failed[name] = repr(exc)
            continue
        for figure in results:
            print(figure.line(), flush=True)
            figures.append((name, figure))
        print(f"   ({time.perf_counter() - began:.0f} s)", flush=True)
    if args.json:
        document = {
            "machine": machine(),
            "quick": args.quick,
            "figures": [{"bench": name, **figure.as_dict()} for name, figure in figures],
            "failed": failed,
        }
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(document, handle, indent=2)
    for name, error in failed.items():
        print(f"FAILED {name}: {error}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
