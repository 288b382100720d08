"""HDF5 run files: the storage actor that records them, and the reader.

* :class:`StorageActor` / :func:`spawn_storage` — a lossless hub subscriber
  writing one NeXus/HDF5 file per run (SWMR, flushed at least every second);
* :func:`open_run` — streams as Arrow tables and Polars LazyFrames, metadata,
  usable while the file is still being written or after a crash;
* :class:`RunInfo`, :class:`StorageOptions` — what a run is and how it is written.

The file layout is described in :mod:`arrowdaq.storage.layout`.
"""

from .actor import StorageActor, spawn_storage
from .options import ARROW_IPC, NEXUS, RunInfo, StorageOptions, new_run_id, run_path
from .reader import RunFile, RunOverview, StreamSummary, open_run

__all__ = [
    "ARROW_IPC",
    "NEXUS",
    "RunFile",
    "RunInfo",
    "RunOverview",
    "StorageActor",
    "StorageOptions",
    "StreamSummary",
    "new_run_id",
    "open_run",
    "run_path",
    "spawn_storage",
]
