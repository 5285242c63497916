"""Run a command under the system-call filter and W^X rule a unit file declares.

Usage: python sandbox.py UNIT_FILE COMMAND [ARG...]

Tests cannot start the unit under systemd (a test machine or container has no systemd as PID 1),
so this applies the settings of the unit most likely to break a Python process in the field,
the way systemd does: `SystemCallFilter=` (allow list from the positive lines, minus the `~`
lines, groups expanded by `systemd-analyze syscall-filter`, other calls fail with
`SystemCallErrorNumber=`) and `RestrictAddressFamilies=` (socket() of another family fails;
with EPERM here, EAFNOSUPPORT under systemd) through libseccomp, and `MemoryDenyWriteExecute=`
through the kernel's PR_SET_MDWE; and `UMask=`. Then it execs COMMAND, which inherits them.
"""

from __future__ import annotations

import ctypes
import errno
import os
import re
import shutil
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

PR_SET_MDWE = 65
PR_GET_MDWE = 66
PR_MDWE_REFUSE_EXEC_GAIN = 1
SCMP_ACT_ALLOW = 0x7FFF0000
SCMP_ACT_ERRNO = 0x00050000
SCMP_CMP_EQ = 4


class ArgCompare(ctypes.Structure):
    """libseccomp's `struct scmp_arg_cmp`."""

    _fields_ = [
        ("arg", ctypes.c_uint),
        ("op", ctypes.c_int),
        ("datum_a", ctypes.c_uint64),
        ("datum_b", ctypes.c_uint64),
    ]


@dataclass(frozen=True)
class Settings:
    allow: set[str]
    deny: set[str]
    error: int
    families: list[int]
    mdwe: bool
    umask: int | None


def unavailable() -> str | None:
    """Why this machine cannot apply the sandbox, or None when it can."""
    if shutil.which("systemd-analyze") is None:
        return "systemd-analyze is not installed (it lists the system-call groups)"
    try:
        ctypes.CDLL("libseccomp.so.2")
    except OSError:
        return "libseccomp.so.2 is not installed (apt-get install libseccomp2)"
    if ctypes.CDLL(None).prctl(PR_GET_MDWE, 0, 0, 0, 0) < 0:
        return "this kernel has no PR_SET_MDWE (Linux >= 6.3) to stand in for systemd's MDWE"
    return None


def command(unit: Path, *argv: str) -> list[str]:
    """`argv` wrapped so that it runs inside `unit`'s sandbox."""
    return [sys.executable, str(Path(__file__).resolve()), str(unit), *argv]


def filter_groups() -> dict[str, list[str]]:
    text = subprocess.run(
        ["systemd-analyze", "syscall-filter"], capture_output=True, text=True, check=True
    ).stdout
    groups: dict[str, list[str]] = {}
    current: list[str] = []
    for line in text.splitlines():
        if line.startswith("@"):
            current = groups.setdefault(line.split()[0], [])
        elif line.strip() and not line.strip().startswith("#"):
            current.append(line.strip())
    return groups


def expand(items: list[str], groups: dict[str, list[str]]) -> set[str]:
    out: set[str] = set()
    for item in items:
        out |= expand(groups[item], groups) if item.startswith("@") else {item}
    return out


def unit_settings(unit: Path) -> Settings:
    text = unit.read_text()
    allow: list[str] = []
    deny: list[str] = []
    for value in re.findall(r"^SystemCallFilter=(.*)$", text, re.MULTILINE):
        (deny if value.startswith("~") else allow).extend(value.lstrip("~").split())
    number = re.search(r"^SystemCallErrorNumber=(\w+)$", text, re.MULTILINE)
    families = re.search(r"^RestrictAddressFamilies=(.*)$", text, re.MULTILINE)
    umask = re.search(r"^UMask=([0-7]+)$", text, re.MULTILINE)
    groups = filter_groups()
    return Settings(
        allow=expand(allow, groups),
        deny=expand(deny, groups),
        error=getattr(errno, number.group(1)) if number else errno.EPERM,
        families=[getattr(socket, name) for name in families.group(1).split()] if families else [],
        mdwe=re.search(r"^MemoryDenyWriteExecute=yes$", text, re.MULTILINE) is not None,
        umask=int(umask.group(1), 8) if umask else None,
    )


def main(argv: list[str]) -> None:
    settings = unit_settings(Path(argv[0]))
    if settings.umask is not None:
        os.umask(settings.umask)
    libc = ctypes.CDLL(None, use_errno=True)
    if settings.mdwe and libc.prctl(PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_MDWE)")
    if settings.allow:
        seccomp = ctypes.CDLL("libseccomp.so.2")
        seccomp.seccomp_init.restype = ctypes.c_void_p
        action = ctypes.c_uint32(SCMP_ACT_ERRNO | settings.error)
        ctx = ctypes.c_void_p(seccomp.seccomp_init(action))
        allow = ctypes.c_uint32(SCMP_ACT_ALLOW)
        for name in sorted(settings.allow - settings.deny):
            number = seccomp.seccomp_syscall_resolve_name(name.encode())
            if number < 0:  # a name this architecture does not have
                continue
            if name == "socket" and settings.families:
                for family in settings.families:
                    compare = ArgCompare(0, SCMP_CMP_EQ, family, 0)
                    seccomp.seccomp_rule_add_array(ctx, allow, number, 1, ctypes.byref(compare))
            else:
                seccomp.seccomp_rule_add(ctx, allow, number, 0)
        if seccomp.seccomp_load(ctx) != 0:  # also sets no_new_privs, like NoNewPrivileges=
            raise OSError("seccomp_load failed")
    os.execvp(argv[1], argv[1:])


if __name__ == "__main__":
    main(sys.argv[1:])
