"""The raw-h5py baseline the storage benchmarks measure arrowdaq against: a hand-written logger.

It writes the same data with the same settings as the storage actor — the same
file-format bounds, chunks of ``chunk_rows`` rows for per-row columns and one
frame per chunk for images, the same filters, SWMR, a flush every
``flush_interval``, the viewers' ``time`` axis where the run file has one — with one resize
and one write per block and column, and nothing else: no layout, no metadata, no event log. ``benchmarks/pipeline.py``
and ``benchmarks/storage.py`` both use it, so their ratios mean the same thing.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from pathlib import Path

import h5py
import numpy as np

from arrowdaq.storage import StorageOptions
from arrowdaq.storage.writer import FILE_FORMAT


def create_datasets(f: h5py.File, options: StorageOptions, columns: dict[str, np.ndarray]) -> list[h5py.Dataset]:
    """Empty, extendible datasets shaped like ``columns`` (a sample of each), then SWMR on."""
    out = []
    for name, sample in columns.items():
        row = sample.shape[1:]
        chunks = (1, *row) if row else (options.chunk_rows,)
        floating = sample.dtype.kind == "f"
        out.append(
            f.create_dataset(
                name,
                (0, *row),
                sample.dtype,
                maxshape=(None, *row),
                chunks=chunks,
                **options.filter_args(images=bool(row), floating=floating),
            )
        )
    f.create_dataset("channel", data="pm1")  # a constant string, stored once
    f.swmr_mode = True
    return out


def append_blocks(
    f: h5py.File, options: StorageOptions, datasets: Sequence[h5py.Dataset], blocks: Iterable[Sequence[np.ndarray]]
) -> None:
    """One resize and write per block and column, a flush every ``flush_interval``."""
    last_flush = time.monotonic()
    for block in blocks:
        for ds, a in zip(datasets, block, strict=True):
            n = ds.shape[0]
            ds.resize(n + len(a), axis=0)
            ds[n:] = a
        if time.monotonic() - last_flush >= options.flush_interval:
            f.flush()
            last_flush = time.monotonic()


def write(
    path: Path, options: StorageOptions, columns: dict[str, np.ndarray], blocks: Iterable[Sequence[np.ndarray]]
) -> None:
    """A whole file: create the datasets like ``columns``, append ``blocks`` (one array per column), close."""
    with h5py.File(path, "w", libver=FILE_FORMAT) as f:
        append_blocks(f, options, create_datasets(f, options, columns), blocks)


def with_time_axis(
    options: StorageOptions, columns: dict[str, np.ndarray], blocks: Iterable[Sequence[np.ndarray]], start_ns: int
) -> tuple[dict[str, np.ndarray], Iterable[Sequence[np.ndarray]]]:
    """What a run file holds per row, not less: with ``options.time_axis`` (the default) a stream with
    timestamps also has the viewers' ``time`` axis (seconds since ``start_ns``, float64), so the raw
    logger computes and writes it too (docs/decisions/0026). Without it, the columns as they are."""
    if not options.time_axis or "timestamp_ns" not in columns:
        return columns, blocks
    k = list(columns).index("timestamp_ns")
    start = np.int64(start_ns)
    timed = ((*block, (block[k].view(np.int64) - start) / 1e9) for block in blocks)
    return {**columns, "time": np.zeros(1)}, timed


def rows_read_back(path: Path) -> dict[str, int]:
    """Every per-row dataset read whole, but ``time`` (``open_run`` does not read it either): its rows."""
    with h5py.File(path, "r") as f:
        return {
            name: ds[...].shape[0]
            for name, ds in f.items()
            if isinstance(ds, h5py.Dataset) and ds.ndim and name != "time"
        }
