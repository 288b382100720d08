"""Which filter for which column: write speed and size on the simulators' data.

Each column the storage writes — timestamps, measured values (the 1830-C power
meter's noisy readings), trace points (the scope's photodiode signal), camera
frames — is appended with h5py in 100,000-row (or one-frame) writes with the
chunking arrowdaq uses, once per filter: none, gzip-1 + shuffle, lzf + shuffle.
Rounds are interleaved; medians and min–max are printed with the compressed size.
This decides the storage defaults (docs/decisions/0021-storage-defaults-by-column.md).

    .venv/bin/python benchmarks/compression.py [--quick] [--rounds N]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np

from arrowdaq.sim.table import OpticalTable
from arrowdaq.storage.writer import FILE_FORMAT

FILTERS = {
    "none": {},
    "gzip-1+shuffle": {"compression": "gzip", "compression_opts": 1, "shuffle": True},
    "lzf+shuffle": {"compression": "lzf", "shuffle": True},
}


def columns(rows: int, frames: int) -> dict[str, tuple[np.ndarray, tuple[int, ...]]]:
    """Column name → (data, chunk shape), from one simulated optical table."""
    table = OpticalTable(seed=3, latency_scale=0.0)
    table.emission = table.shutter_open = True
    power = np.resize(np.array([table.power_meter_w() for _ in range(50_000)]), rows)
    jitter = np.random.default_rng(0).integers(-2_000, 2_000, rows)  # a 1 kHz poll's timing jitter (ns)
    stamps = (1_700_000_000_000_000_000 + np.arange(rows) * 1_000_000 + jitter).astype(np.uint64)
    trace = table.photodiode_trace(rows, 1e-6, 0.0)
    frame_stack = np.stack([table.camera_frame(0.005, (2048, 2048)) for _ in range(frames)])
    return {
        "timestamp_ns (uint64)": (stamps, (16384,)),
        "power meter value (float64)": (power, (16384,)),
        "scope trace points (float64)": (trace, (16384,)),
        "camera frames (uint16, 8 MiB)": (frame_stack, (1, 2048, 2048)),
    }


def write(path: Path, data: np.ndarray, chunks: tuple[int, ...], filters: dict) -> tuple[float, int]:
    step = 1 if data.ndim > 1 else 100_000
    t0 = time.perf_counter()
    with h5py.File(path, "w", libver=FILE_FORMAT) as f:
        ds = f.create_dataset(
            "c", (0, *data.shape[1:]), data.dtype, maxshape=(None, *data.shape[1:]), chunks=chunks, **filters
        )
        for i in range(0, len(data), step):
            block = data[i : i + step]
            ds.resize(i + len(block), axis=0)
            ds[i:] = block
    elapsed = time.perf_counter() - t0
    with h5py.File(path, "r") as f:
        stored = f["c"].id.get_storage_size()
    return elapsed, stored


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    rows, frames, rounds = (200_000, 4, 1) if args.quick else (2_000_000, 16, args.rounds)
    data = columns(rows, frames)
    tmp = Path(tempfile.mkdtemp(prefix="arrowdaq-compression-"))
    times: dict[tuple[str, str], list[float]] = {}
    sizes: dict[tuple[str, str], int] = {}
    try:
        for r in range(rounds):
            order = list(FILTERS) if r % 2 == 0 else list(reversed(FILTERS))
            for column, (values, chunks) in data.items():
                for name in order:
                    elapsed, stored = write(tmp / "c.h5", values, chunks, FILTERS[name])
                    times.setdefault((column, name), []).append(values.nbytes / elapsed / 2**20)
                    sizes[(column, name)] = stored
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(
        f"compression benchmark: simulator data, {rounds} interleaved round(s), MiB/s median [min–max]; shared machine"
    )
    print(f"{'column':<32} {'filter':<16} {'MiB/s':>28} {'size':>8} {'vs none':>8}")
    for column, (values, _) in data.items():
        for name in FILTERS:
            rates = times[(column, name)]
            spread = f"{statistics.median(rates):,.0f} [{min(rates):,.0f}–{max(rates):,.0f}]"
            none = statistics.median(times[(column, "none")])
            ratio = sizes[(column, name)] / values.nbytes
            print(f"{column:<32} {name:<16} {spread:>28} {ratio:>7.0%} {statistics.median(rates) / none:>8.2f}")


if __name__ == "__main__":
    main()
