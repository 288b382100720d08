"""Storage throughput: batches through the hub into the storage actor, beside raw h5py.

For each case the same data is written twice in the same run, with the same
settings (SWMR, chunk size, filter, a flush every second):

* storage — published to the hub, recorded by the storage actor (coalescing,
  Arrow → NumPy, strings stored once), timed from the first publish until the
  run file is closed;
* raw h5py — the NumPy columns appended to the same datasets, one
  resize-and-write per batch, as a hand-written logger would (``baseline.py``,
  shared with ``benchmarks/pipeline.py``).

    .venv/bin/python benchmarks/storage.py [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

import baseline
from arrowdaq.actors import ActorStatus
from arrowdaq.data import image_batch, scalar_batch
from arrowdaq.hub import InstrumentManager
from arrowdaq.storage import RunInfo, StorageOptions, spawn_storage

FRAME_SHAPE = (2048, 2048)  # uint16: 8 MiB


def scalar_batches(rows: int, count: int) -> list:
    rng = np.random.default_rng(0)
    distinct = [
        scalar_batch(
            rng.normal(size=rows), channel="pm1", unit="W", timestamps_ns=np.arange(rows, dtype=np.uint64) + k * rows
        )
        for k in range(min(count, 100))
    ]
    return [distinct[k % len(distinct)] for k in range(count)]


def frame_batches(count: int) -> list:
    rng = np.random.default_rng(0)
    distinct = [
        image_batch(
            rng.integers(0, 4096, (1, *FRAME_SHAPE), dtype=np.uint16), channel="cam1", frame_numbers=k, timestamps_ns=k
        )
        for k in range(4)
    ]
    return [distinct[k % len(distinct)] for k in range(count)]


async def through_storage(stream: str, batches: list, options: StorageOptions) -> float:
    hub = InstrumentManager()
    hub.declare(stream, batches[0].schema, producer=stream.split("/")[0])
    ref, path = spawn_storage(hub, stream, options, RunInfo(name="bench"))
    await ref.wait_status(ActorStatus.RUNNING)
    t0 = time.perf_counter()
    for batch in batches:
        await hub.publish(stream, batch)
    await hub.stop(timeout=600)
    elapsed = time.perf_counter() - t0
    if ref.last_error:
        raise RuntimeError(ref.last_error)
    return elapsed


def raw_h5py(path: Path, batches: list, options: StorageOptions, frames: bool) -> float:
    """The same columns appended by the raw h5py baseline (``baseline.py``), one resize and write per batch."""
    columns = ["timestamp_ns", "frame_number", "pixels"] if frames else ["timestamp_ns", "value"]
    arrays = []
    for b in batches:  # conversion is not timed: the baseline is h5py alone
        arrays.append([b.column(c).to_numpy_ndarray() if c == "pixels" else b.column(c).to_numpy() for c in columns])
    t0 = time.perf_counter()
    baseline.write(path, options, dict(zip(columns, arrays[0], strict=True)), arrays)
    return time.perf_counter() - t0


def best_of(repeats: int, tmp: Path, stream: str, batches: list, options: StorageOptions) -> tuple[float, float]:
    """Best time of each, alternating which goes first (the disk's write-back of one run
    otherwise lands on the next)."""
    storage, raw = [], []
    for k in range(repeats):
        for which in (0, 1) if k % 2 == 0 else (1, 0):
            for f in tmp.glob("*.h5"):
                f.unlink()
            if which == 0:
                storage.append(asyncio.run(through_storage(stream, batches, options)))
            else:
                raw.append(raw_h5py(tmp / "raw.h5", batches, options, frames=stream == "cam1/frames"))
    return min(storage), min(raw)


def row(case: str, settings: str, rows: int, unit: str, t_storage: float, t_raw: float) -> None:
    s, r = rows / t_storage, rows / t_raw
    print(f"{case:<24} {settings:<18} {s:>14,.0f} {r:>14,.0f} {s / r:>7.2f}   {unit}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer rows and frames (a smoke run)")
    args = parser.parse_args()
    logging.getLogger("arrowdaq").setLevel(logging.ERROR)
    scale = 10 if args.quick else 1
    repeats = 1 if args.quick else 3
    tmp = Path(tempfile.mkdtemp(prefix="arrowdaq-bench-"))
    try:
        gzip = StorageOptions(data_dir=tmp, compression="gzip")  # opt-in since decision 0021
        default = StorageOptions(data_dir=tmp)  # no filter
        print(
            "storage benchmark: storage actor vs raw h5py appends, same data and settings (SWMR, flush every 1 s);"
            f" best of {repeats}"
        )
        print(f"{'case':<24} {'settings':<18} {'storage /s':>14} {'raw h5py /s':>14} {'ratio':>7}")
        cases = [(1, 20_000), (100, 4_000), (10_000, 400)]
        for options, label in ((gzip, "gzip-1+shuffle"), (default, "no filter")):
            for rows, count in cases:
                batches = scalar_batches(rows, max(2, count // scale))
                total = rows * len(batches)
                t_storage, t_raw = best_of(repeats, tmp, "pm1/power", batches, options)
                row(f"scalar, {rows:,} rows/batch", label, total, "rows/s", t_storage, t_raw)
        frames = frame_batches(max(4, 100 // scale))
        t_storage, t_raw = best_of(repeats, tmp, "cam1/frames", frames, default)
        row("frames, 8 MiB each", "no filter", len(frames), "frames/s", t_storage, t_raw)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
