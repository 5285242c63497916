"""The unit gives the daemon more file descriptors than any connection cap can take."""

from __future__ import annotations

import configparser

from mdfd.daemons.core.config import ControlTcp
from tests.support import REPO

HEADROOM = 1024  # instruments, HDF5, SQLite, the UNIX socket, simulators, libraries


def test_limit_nofile_exceeds_the_largest_connection_cap() -> None:
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str  # type: ignore[assignment,method-assign]
    unit.read(REPO / "systemd" / "mdfd@.service")
    limit = int(unit["Service"]["LimitNOFILE"])
    largest_cap = ControlTcp.model_fields["max_connections"].metadata
    ceiling = next(m.le for m in largest_cap if getattr(m, "le", None) is not None)
    assert limit >= ceiling + HEADROOM
