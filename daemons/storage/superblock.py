"""Make a data file whose SWMR writer was killed openable again, without h5clear.

A writer in SWMR mode marks the superblock with "file open for write / SWMR write" flags; a
process killed -9 never clears them, and every later open (h5py, h5dump, h5ls) refuses the file.
HDF5's own cure is `h5clear -s -m`, a command-line tool that operators may not have installed, so
the same two edits are done here: clear the flags and raise the end-of-allocation address to the
real file size (space the killed writer allocated after its last superblock write must not be
handed out again while its chunk index still points there). One more case h5clear leaves alone:
a writer that died of a full disk can leave a superblock recording an end beyond the file.
The superblock is checksummed with Bob Jenkins' lookup3, which HDF5 uses for all its metadata
checksums.
"""

from __future__ import annotations

import os
from pathlib import Path

SIGNATURE = b"\x89HDF\r\n\x1a\n"
_MASK = 0xFFFFFFFF
# Superblock versions 2 and 3 (the only ones SWMR writes), with 8-byte addresses:
# signature 8, version 1, offset size 1, length size 1, flags 1, base address 8,
# extension address 8, end-of-file address 8, root object header address 8, checksum 4.
_FLAGS_AT = 11
_EOF_AT = slice(28, 36)
_CHECKSUM_AT = 44
_LENGTH = 48


def _rot(x: int, k: int) -> int:
    return ((x << k) | (x >> (32 - k))) & _MASK


def lookup3(data: bytes, initval: int = 0) -> int:
    """Jenkins' lookup3 `hashlittle`, as H5_checksum_lookup3 computes it."""
    length = len(data)
    a = b = c = (0xDEADBEEF + length + initval) & _MASK
    i = 0
    while length > 12:
        a = (a + int.from_bytes(data[i : i + 4], "little")) & _MASK
        b = (b + int.from_bytes(data[i + 4 : i + 8], "little")) & _MASK
        c = (c + int.from_bytes(data[i + 8 : i + 12], "little")) & _MASK
        a = ((a - c) & _MASK) ^ _rot(c, 4)
        c = (c + b) & _MASK
        b = ((b - a) & _MASK) ^ _rot(a, 6)
        a = (a + c) & _MASK
        c = ((c - b) & _MASK) ^ _rot(b, 8)
        b = (b + a) & _MASK
        a = ((a - c) & _MASK) ^ _rot(c, 16)
        c = (c + b) & _MASK
        b = ((b - a) & _MASK) ^ _rot(a, 19)
        a = (a + c) & _MASK
        c = ((c - b) & _MASK) ^ _rot(b, 4)
        b = (b + a) & _MASK
        length -= 12
        i += 12
    if length == 0:
        return c
    tail = data[i:] + bytes(12 - length)
    a = (a + int.from_bytes(tail[0:4], "little")) & _MASK
    b = (b + int.from_bytes(tail[4:8], "little")) & _MASK
    c = (c + int.from_bytes(tail[8:12], "little")) & _MASK
    c = ((c ^ b) - _rot(b, 14)) & _MASK
    a = ((a ^ c) - _rot(c, 11)) & _MASK
    b = ((b ^ a) - _rot(a, 25)) & _MASK
    c = ((c ^ b) - _rot(b, 16)) & _MASK
    a = ((a ^ c) - _rot(c, 4)) & _MASK
    b = ((b ^ a) - _rot(a, 14)) & _MASK
    c = ((c ^ b) - _rot(b, 24)) & _MASK
    return c


def clear_status_flags(path: Path) -> bool:
    """Clear a dead writer's flags (like `h5clear -s -m`); True if the file needed it.

    Only superblocks at offset 0 with 8-byte addresses are handled — what `RunFile` writes.
    Never call this while a writer may still be alive: the flags are what protects it.
    """
    with open(path, "r+b") as handle:
        block = bytearray(handle.read(_LENGTH))
        if len(block) < _LENGTH or block[:8] != SIGNATURE:
            raise ValueError(f"{path}: not an HDF5 file with its superblock at offset 0")
        if block[8] not in (2, 3) or block[9] != 8:
            raise ValueError(f"{path}: superblock version {block[8]} is not one RunFile writes")
        checksum = int.from_bytes(block[_CHECKSUM_AT:_LENGTH], "little")
        if lookup3(bytes(block[:_CHECKSUM_AT])) != checksum:
            raise ValueError(f"{path}: superblock checksum mismatch; the file is damaged")
        end = int.from_bytes(block[_EOF_AT], "little")
        size = os.fstat(handle.fileno()).st_size
        if block[_FLAGS_AT] == 0 and end == size:
            return False
        if end > size:
            # The superblock landed but writes past it failed (a full disk): HDF5 refuses a
            # file shorter than its recorded end, so the missing tail becomes zeros. Only
            # blocks of the failed flush lived there; a resume cuts the data back before it.
            os.ftruncate(handle.fileno(), end)
        block[_FLAGS_AT] = 0
        block[_EOF_AT] = max(end, size).to_bytes(8, "little")
        block[_CHECKSUM_AT:_LENGTH] = lookup3(bytes(block[:_CHECKSUM_AT])).to_bytes(4, "little")
        handle.seek(0)
        handle.write(block)
        handle.flush()
        os.fsync(handle.fileno())
    return True
