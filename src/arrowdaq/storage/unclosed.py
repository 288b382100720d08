"""Reading a run file its writer never closed, without changing it.

HDF5 marks a file "open for writing" in its superblock and refuses to open it
again until the writer closes it. A writer killed mid-run (``kill -9``, power
cut) never does. Files written in SWMR mode (the ``nexus`` layout) still open
as SWMR readers; the ``arrow_ipc`` layout is written without SWMR, so stock
tools need ``h5clear -s FILE`` first. :func:`open_unclosed` opens such a file
read-only through a file object that shows HDF5 a superblock with the flags
cleared (and its checksum recomputed): the file on disk is not touched.
"""

from __future__ import annotations

import io
from pathlib import Path

import h5py

SIGNATURE = b"\x89HDF\r\n\x1a\n"
#: Byte offset of the file-consistency flags in a version 2 or 3 superblock.
FLAGS_AT = 11
_M = 0xFFFFFFFF


def _rot(x: int, k: int) -> int:
    return ((x << k) | (x >> (32 - k))) & _M


def lookup3(data: bytes, init: int = 0) -> int:
    """Bob Jenkins' lookup3 ``hashlittle``: HDF5's metadata checksum (here over a few dozen bytes)."""
    n = len(data)
    a = b = c = (0xDEADBEEF + n + init) & _M
    i = 0

    def words(j: int) -> tuple[int, int, int]:
        return (
            int.from_bytes(data[j : j + 4], "little"),
            int.from_bytes(data[j + 4 : j + 8], "little"),
            int.from_bytes(data[j + 8 : j + 12], "little"),
        )

    while n - i > 12:
        x, y, z = words(i)
        a, b, c = (a + x) & _M, (b + y) & _M, (c + z) & _M
        a = (a - c) & _M
        a ^= _rot(c, 4)
        c = (c + b) & _M
        b = (b - a) & _M
        b ^= _rot(a, 6)
        a = (a + c) & _M
        c = (c - b) & _M
        c ^= _rot(b, 8)
        b = (b + a) & _M
        a = (a - c) & _M
        a ^= _rot(c, 16)
        c = (c + b) & _M
        b = (b - a) & _M
        b ^= _rot(a, 19)
        a = (a + c) & _M
        c = (c - b) & _M
        c ^= _rot(b, 4)
        b = (b + a) & _M
        i += 12
    if n == i:
        return c
    data = data[i:] + bytes(12 - (n - i))
    i = 0
    x, y, z = words(0)
    a, b, c = (a + x) & _M, (b + y) & _M, (c + z) & _M
    c ^= b
    c = (c - _rot(b, 14)) & _M
    a ^= c
    a = (a - _rot(c, 11)) & _M
    b ^= a
    b = (b - _rot(a, 25)) & _M
    c ^= b
    c = (c - _rot(b, 16)) & _M
    a ^= c
    a = (a - _rot(c, 4)) & _M
    b ^= a
    b = (b - _rot(a, 14)) & _M
    c ^= b
    c = (c - _rot(b, 24)) & _M
    return c


def cleared_superblock(path: Path) -> tuple[int, bytes] | None:
    """Where the superblock is and its bytes with the flags cleared; None if none are set (or an old format)."""
    with open(path, "rb") as f:
        for offset in [0] + [512 << k for k in range(12)]:
            f.seek(offset)
            head = f.read(12)
            if len(head) < 12:
                return None
            if head[:8] != SIGNATURE:
                continue
            if head[8] not in (2, 3) or head[FLAGS_AT] == 0:
                return None
            size = 12 + 4 * head[9] + 4  # base, extension, end-of-file and root addresses, checksum
            f.seek(offset)
            block = bytearray(f.read(size))
            block[FLAGS_AT] = 0
            block[-4:] = lookup3(bytes(block[:-4])).to_bytes(4, "little")
            return offset, bytes(block)
    return None


class _ClearedFlagsFile(io.RawIOBase):
    """The file, read-only, with the superblock bytes replaced."""

    def __init__(self, path: Path, offset: int, block: bytes) -> None:
        self._f = open(path, "rb")
        self._offset, self._block = offset, block

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, pos: int, whence: int = io.SEEK_SET) -> int:
        return self._f.seek(pos, whence)

    def tell(self) -> int:
        return self._f.tell()

    def readinto(self, buffer) -> int:
        pos = self._f.tell()
        n = self._f.readinto(buffer)
        lo, hi = max(pos, self._offset), min(pos + n, self._offset + len(self._block))
        if lo < hi:
            memoryview(buffer)[lo - pos : hi - pos] = self._block[lo - self._offset : hi - self._offset]
        return n

    def close(self) -> None:
        self._f.close()
        super().close()


def open_unclosed(path: Path) -> tuple[h5py.File, io.RawIOBase] | None:
    """The file opened read-only as if ``h5clear -s`` had run, and the file object to close after it;
    None if the superblock has no flags to clear."""
    found = cleared_superblock(path)
    if found is None:
        return None
    raw = _ClearedFlagsFile(path, *found)
    try:
        return h5py.File(raw, "r"), raw
    except Exception:
        raw.close()
        raise
