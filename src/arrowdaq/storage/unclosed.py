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
from typing import Any

import h5py

from .safeopen import find_superblock

#: Byte offset of the file-consistency flags in a version 2 or 3 superblock.
FLAGS_AT = 11
_M = 0xFFFFFFFF
#: lookup3's mixing rounds: (into, from, add, rotation): ``r[into] -= r[from]; r[into] ^= rot(r[from], k);
#: r[from] += r[add]``; and its final rounds (into, from, rotation): ``r[into] ^= r[from]; r[into] -= rot(r[from], k)``.
_MIX = ((0, 2, 1, 4), (1, 0, 2, 6), (2, 1, 0, 8), (0, 2, 1, 16), (1, 0, 2, 19), (2, 1, 0, 4))
_FINAL = ((2, 1, 14), (0, 2, 11), (1, 0, 25), (2, 1, 16), (0, 2, 4), (1, 0, 14), (2, 1, 24))


def _rot(x: int, k: int) -> int:
    return ((x << k) | (x >> (32 - k))) & _M


def _add_words(r: list[int], block: bytes) -> None:
    for i in range(3):
        r[i] = (r[i] + int.from_bytes(block[4 * i : 4 * i + 4], "little")) & _M


def lookup3(data: bytes, init: int = 0) -> int:
    """Bob Jenkins' lookup3 ``hashlittle``: HDF5's metadata checksum (here over a few dozen bytes)."""
    n = len(data)
    r = [(0xDEADBEEF + n + init) & _M] * 3  # a, b, c
    i = 0
    while n - i > 12:
        _add_words(r, data[i : i + 12])
        for into, frm, add, k in _MIX:
            r[into] = (r[into] - r[frm]) & _M
            r[into] ^= _rot(r[frm], k)
            r[frm] = (r[frm] + r[add]) & _M
        i += 12
    if n == i:
        return r[2]
    _add_words(r, data[i:] + bytes(12 - (n - i)))
    for into, frm, k in _FINAL:
        r[into] ^= r[frm]
        r[into] = (r[into] - _rot(r[frm], k)) & _M
    return r[2]


def cleared_superblock(path: Path) -> tuple[int, bytes] | None:
    """Where the superblock is and its bytes with the flags cleared; None if none are set (or an old format)."""
    with open(path, "rb") as f:
        found = find_superblock(f)
        if found is None:
            return None
        offset, head = found
        if head[8] not in (2, 3) or head[FLAGS_AT] == 0:
            return None
        size = 12 + 4 * head[9] + 4  # base, extension, end-of-file and root addresses, checksum
        f.seek(offset)
        block = bytearray(f.read(size))
    block[FLAGS_AT] = 0
    block[-4:] = lookup3(bytes(block[:-4])).to_bytes(4, "little")
    return offset, bytes(block)


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

    def readinto(self, buffer: Any) -> int:  # any writable buffer (bytearray, memoryview)
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
