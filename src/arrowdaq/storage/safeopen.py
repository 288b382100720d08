"""Opening run files so that a damaged one fails at once instead of hanging.

Why a reader used to hang (0 % CPU) on a file cut short: a SWMR reader skips
HDF5's "truncated file" check (the writer may still be extending the file) and
retries every metadata read whose checksum fails, sleeping 1, 2, 4, … ns between
the default 100 attempts: 2^100 ns. Bytes past the end of a cut file read as
zeros, so their checksums always fail. Here:

* a file its writer closed (superblock flags clear) is opened without SWMR, so
  HDF5's own check reports a cut file at once;
* SWMR reads of a file being written get :data:`READ_ATTEMPTS` attempts (≈ 0.3 s
  of retrying at most), and of a closed file one,
  set through HDF5's ``H5Pset_metadata_read_attempts``, which h5py does not wrap (found in
  the library h5py loaded: Linux, macOS and Windows wheels, or a system HDF5);
* :func:`superblock` reads the size the file claims, so errors can say "cut short
  (N of M bytes)".
"""

from __future__ import annotations

import ctypes
import ctypes.util
import fcntl
import functools
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import h5py
from h5py import h5f, h5p

SIGNATURE = b"\x89HDF\r\n\x1a\n"

#: Metadata read attempts of a SWMR reader: the sleeps double from 1 ns, so 28 attempts
#: retry a torn read for up to ~0.27 s (HDF5's default of 100 never ends on a cut file).
READ_ATTEMPTS = 28


@dataclass(frozen=True)
class Superblock:
    version: int
    flags: int  # non-zero while a writer has the file open (or after it was killed)
    stored_eof: int | None  # the file's size as its superblock records it (versions 2, 3)


def find_superblock(f: BinaryIO) -> tuple[int, bytes] | None:
    """Where the HDF5 signature is (at 0, 512, 1024, 2048... bytes) and the 12 bytes from there; None if nowhere."""
    for offset in [0] + [512 << k for k in range(12)]:
        f.seek(offset)
        head = f.read(12)
        if len(head) < 12:
            return None
        if head[:8] == SIGNATURE:
            return offset, head
    return None


def superblock(path: Path) -> Superblock | None:
    """The superblock's version, flags and recorded end of file; None if there is no HDF5 signature."""
    with open(path, "rb") as f:
        found = find_superblock(f)
        if found is None:
            return None
        offset, head = found
        version = head[8]
        if version not in (2, 3):
            return Superblock(version, 0, None)
        size = head[9]  # bytes per address
        f.seek(offset + 12 + 2 * size)  # past base and extension addresses
        raw = f.read(size)
        eof = int.from_bytes(raw, "little") + offset if len(raw) == size else None
        return Superblock(version, head[11], eof)


def lockable(path: Path, exclusive: bool) -> bool | None:
    """Whether this process could take HDF5's file lock now (readers share it, a writer not in SWMR
    mode holds it alone); None if the file cannot be opened. Takes nothing: the lock is let go at once."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(fd, (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return True
    except OSError:
        return False
    finally:
        os.close(fd)


def hdf5_library_paths(maps: str = "/proc/self/maps") -> list[str]:
    """Where the HDF5 library h5py uses lives: the one loaded in this process (Linux, from
    ``/proc/self/maps``), else the copy bundled in h5py's wheel (``h5py.libs`` on Linux,
    ``h5py/.dylibs`` on macOS, ``h5py/hdf5.dll`` on Windows), else the system's."""
    try:
        with open(maps) as lines:
            loaded = sorted({line.split()[-1] for line in lines if "/libhdf5" in line})
    except OSError:
        loaded = []
    package = Path(h5py.__file__).parent
    bundled = [
        *sorted(package.parent.glob("h5py.libs/libhdf5*")),
        *sorted(package.glob(".dylibs/libhdf5*")),
        *sorted(package.glob("hdf5*.dll")),
    ]
    system = None if bundled else ctypes.util.find_library("hdf5")  # h5py built on the system's HDF5
    paths = [*loaded, *map(str, bundled), *([system] if system else [])]
    return [p for p in paths if not os.path.basename(p).startswith(("libhdf5_", "hdf5_"))]  # not the _hl library


@functools.cache
def _set_read_attempts() -> Callable[[int, int], int] | None:
    """HDF5's ``H5Pset_metadata_read_attempts`` from the library h5py uses, or None."""
    for path in hdf5_library_paths():
        try:
            fn = ctypes.CDLL(path).H5Pset_metadata_read_attempts
        except (OSError, AttributeError):
            continue
        fn.argtypes, fn.restype = [ctypes.c_int64, ctypes.c_uint], ctypes.c_int
        return fn
    return None


def open_swmr(path: Path, attempts: int = READ_ATTEMPTS) -> h5py.File:
    """A SWMR read-only open with bounded metadata retries (see the module docstring); a file
    no writer holds has no torn reads to retry, so it is read with ``attempts=1``."""
    fapl = h5p.create(h5p.FILE_ACCESS)
    fapl.set_fclose_degree(h5f.CLOSE_STRONG)
    set_attempts = _set_read_attempts()
    if set_attempts is None or set_attempts(fapl.id, attempts) < 0:
        return h5py.File(path, "r", swmr=True)
    return h5py.File(h5f.open(os.fsencode(path), h5f.ACC_RDONLY | h5f.ACC_SWMR_READ, fapl=fapl))


def damage(path: Path) -> str | None:
    """What is visibly wrong with the file, in a few words, or None."""
    try:
        size = path.stat().st_size
        sb = superblock(path)
    except OSError as exc:
        return f"cannot read it: {exc.strerror or exc}"
    if sb is None:
        return (
            "empty: its writer stopped as it created it"
            if size == 0
            else f"not an HDF5 file ({size} bytes, no HDF5 signature)"
        )
    if sb.stored_eof is not None and size < sb.stored_eof:
        return f"cut short: {size} bytes on disk, its superblock records {sb.stored_eof}"
    return None
