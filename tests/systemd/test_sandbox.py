"""mdfd's libraries keep working under the unit's system-call filter and MemoryDenyWriteExecute.

These two settings fail only at run time, on the target machine, and only when a library takes
an unusual path (a JIT, an executable stack, a privileged call). `sandbox.py` applies them as
systemd would; the workload exercises HDF5/SWMR, SQLite WAL, OpenSSL, libffi, numpy, UNIX and
TCP sockets, a pty through pyserial, and worker threads. The controls prove the sandbox is on.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from sandbox import command, unavailable

HERE = Path(__file__).resolve().parent
UNITS = HERE.parents[1] / "systemd"


pytestmark = pytest.mark.skipif(unavailable() is not None, reason=str(unavailable()))


def _sandboxed(unit: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command(UNITS / unit, sys.executable, str(HERE / "sandbox_workload.py"), *args),
        capture_output=True,
        text=True,
        timeout=100,
        check=False,
    )


@pytest.mark.parametrize("unit", ["mdfd@.service", "mdfd-sim.service"])
def test_the_sandbox_is_really_applied(unit: str) -> None:
    result = _sandboxed(unit, "--controls")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.split() == ["sandbox-active"]


@pytest.mark.parametrize("unit", ["mdfd@.service", "mdfd-sim.service"])
def test_the_daemons_libraries_work_inside_it(unit: str) -> None:
    result = _sandboxed(unit)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.split() == ["ok"]
