"""What a recording is (run info) and how it is written (storage options)."""

from __future__ import annotations

import re
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal

from h5py import h5z

from ..errors import ConfigError

Layout = Literal["nexus", "arrow_ipc"]
NEXUS: Final = "nexus"
ARROW_IPC: Final = "arrow_ipc"

#: Filters every stock HDF5 build (h5dump, HDFView, MATLAB) can read.
STOCK_FILTERS = (None, "gzip")
#: The filters h5py takes by name; others are given by their registered HDF5 filter id (e.g. from hdf5plugin).
NAMED_FILTERS = {"gzip": h5z.FILTER_DEFLATE, "lzf": h5z.FILTER_LZF, "szip": h5z.FILTER_SZIP}


def _check_filter(key: str, name: str | int | None) -> None:
    if name is None:
        return
    filter_id = NAMED_FILTERS.get(name) if isinstance(name, str) else name
    if not isinstance(filter_id, int) or isinstance(filter_id, bool):
        raise ConfigError(
            f"{key}: unknown filter {name!r} (known by name: {', '.join(NAMED_FILTERS)}, or None;"
            " other filters by their HDF5 filter id, once registered e.g. by `import hdf5plugin`)"
        )
    if not h5z.filter_avail(filter_id):
        raise ConfigError(f"{key}: filter {name!r} is not available in this HDF5 build")


def new_run_id() -> str:
    """A sortable, unique run id: UTC start time plus a random suffix."""
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + secrets.token_hex(3)


@dataclass(frozen=True)
class RunInfo:
    """Who ran what: written into the run file's NXentry."""

    name: str = "run"
    run_id: str = field(default_factory=new_run_id)
    operator: str = ""
    sample: str = ""
    notes: str = ""
    #: The configuration that ran: TOML text as read, or a dict (stored as JSON).
    config: dict[str, Any] | str | None = None


@dataclass(frozen=True)
class StorageOptions:
    """How run files are written. Defaults are chosen from ``benchmarks/pipeline.py`` and
    ``benchmarks/compression.py`` (see docs/decisions/0021-storage-defaults-by-column.md)."""

    data_dir: Path = Path("data")
    layout: Layout = NEXUS
    #: Filter of table-like columns (scalars, traces); ``"gzip"`` or None open everywhere. None by
    #: default: gzip-1 writes noisy readings ~7x slower and saves only ~24 % of their size.
    compression: str | int | None = None
    compression_level: int | None = 1
    #: With ``compression`` set: False compresses only the integer columns (timestamps shrink to
    #: ~30 %), not the floating-point ones (measured values, trace points: noise does not compress).
    compress_floats: bool = True
    #: Filter of camera frames: off by default, frames are large and compress poorly.
    image_compression: str | int | None = None
    #: Rows per HDF5 chunk of a per-row column; the actor writes whole chunks.
    chunk_rows: int = 16384
    #: Seconds between flushes at most: rows older than this are on disk.
    flush_interval: float = 1.0
    #: The stream viewers plot on opening the file (``entry/@default``), e.g. ``"pm1/power"``;
    #: None: the most informative one (a measured quantity that varies, see ``nexus.default_rank``).
    default_plot: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "data_dir", Path(self.data_dir))
        if self.layout not in (NEXUS, ARROW_IPC):
            raise ConfigError(f"storage.layout: expected {NEXUS!r} or {ARROW_IPC!r}, got {self.layout!r}")
        _check_filter("storage.compression", self.compression)
        _check_filter("storage.image_compression", self.image_compression)
        level = self.compression_level
        if level is not None and not (isinstance(level, int) and not isinstance(level, bool) and 0 <= level <= 9):
            raise ConfigError(f"storage.compression_level: expected a gzip level 0-9 or None, got {level!r}")
        if self.chunk_rows < 1:
            raise ConfigError(f"storage.chunk_rows: expected a positive integer, got {self.chunk_rows!r}")
        if not self.flush_interval > 0:
            raise ConfigError(f"storage.flush_interval: expected seconds > 0, got {self.flush_interval!r}")

    def filter_args(self, images: bool = False, floating: bool = False) -> dict[str, Any]:
        """Keyword arguments for ``h5py.create_dataset`` of frames, floating-point or other
        columns (shuffle helps gzip on numbers)."""
        name = self.image_compression if images else self.compression
        if name is None or (floating and not images and not self.compress_floats):
            return {}
        args: dict[str, Any] = {"compression": name, "shuffle": True}
        if name == "gzip" and self.compression_level is not None:
            args["compression_opts"] = self.compression_level
        return args


def _safe(name: str) -> str:
    return re.sub(r"[^\w.-]+", "_", name).strip("_") or "run"


def run_path(options: StorageOptions, run: RunInfo) -> Path:
    """Where the run file goes: ``<data_dir>/<name>_<run id>.h5`` (known before recording starts)."""
    return options.data_dir / f"{_safe(run.name)}_{_safe(run.run_id)}.h5"
