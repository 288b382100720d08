"""What a recording is (run info) and how it is written (storage options)."""

from __future__ import annotations

import re
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Final

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..errors import ConfigError
from ..validation import Filter, FlushInterval, Layout, error_lines

NEXUS: Final = "nexus"
ARROW_IPC: Final = "arrow_ipc"


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


class StorageOptions(BaseModel):
    """How run files are written. Defaults are chosen from ``benchmarks/pipeline.py`` and
    ``benchmarks/compression.py`` (see docs/decisions/0021-storage-defaults-by-column.md).
    A bad value is a ConfigError naming the key (``storage.compression: unknown filter 'zstd' ...``);
    the configuration's ``[storage]`` table is checked with the same types."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    data_dir: Path = Path("data")
    layout: Layout = NEXUS
    #: Filter of table-like columns (scalars, traces); ``"gzip"`` or None open everywhere. None by
    #: default: gzip-1 writes noisy readings ~7x slower and saves only ~24 % of their size.
    compression: Filter = None
    compression_level: Annotated[int, Field(ge=0, le=9)] | None = 1
    #: With ``compression`` set: False compresses only the integer columns (timestamps shrink to
    #: ~30 %), not the floating-point ones (measured values, trace points: noise does not compress).
    compress_floats: bool = True
    #: Filter of camera frames: off by default, frames are large and compress poorly.
    image_compression: Filter = None
    #: Whether streams with timestamps get the viewers' ``time`` axis (float64 seconds since the run
    #: start, beside the exact ``timestamp_ns``): a third of a scalar stream's bytes. False: silx and
    #: h5web plot against the row number (``timestamp_ns_indices`` names the raw axis); ``open_run``
    #: is the same either way (docs/decisions/0026).
    time_axis: bool = True
    #: Rows per HDF5 chunk of a per-row column; the actor writes whole chunks.
    chunk_rows: int = Field(16384, ge=1)
    #: Seconds between flushes at most: rows older than this are on disk.
    flush_interval: FlushInterval = 1.0
    #: The stream viewers plot on opening the file (``entry/@default``), e.g. ``"pm1/power"``;
    #: None: the most informative one (a measured quantity that varies, see ``nexus.default_rank``).
    default_plot: str | None = None

    def __init__(self, **options: Any) -> None:
        try:
            super().__init__(**options)
        except ValidationError as exc:
            raise ConfigError("\n".join(error_lines(exc, prefix="storage"))) from None

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
