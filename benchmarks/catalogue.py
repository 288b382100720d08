"""The catalogue of runs: listing a data directory without the index (every file read) and with it.

Baseline in the same run: one ``open_run(path).metadata`` per file, the least a listing
without an index must do. Writes N small real run files (the storage writer) first.

    .venv/bin/python benchmarks/catalogue.py [--runs 20] [--rounds 3]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from arrowdaq.data import scalar_batch, scalar_schema
from arrowdaq.hub.streams import StreamSpec
from arrowdaq.storage import RunInfo, StorageOptions, open_run, run_path
from arrowdaq.storage.catalogue import INDEX_NAME, runs
from arrowdaq.storage.nexus import NexusWriter


def make_runs(data: Path, n: int) -> None:
    options = StorageOptions(data_dir=data)
    for k in range(n):
        info = RunInfo(name=f"run{k}", operator="bench", sample=f"S{k % 4}")
        writer = NexusWriter(run_path(options, info), options, info)
        writer.open([StreamSpec(f"dev{j}/v", scalar_schema("V"), producer=f"dev{j}") for j in range(4)])
        for j in range(4):
            writer.append(f"dev{j}/v", [scalar_batch(np.arange(1000.0), channel="v", unit="V")])
        writer.close()


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp)
        make_runs(data, args.runs)
        files = sorted(data.glob("*.h5"))
        baseline, cold, warm = [], [], []
        for _ in range(args.rounds):
            baseline.append(timed(lambda: [open_run(p).metadata for p in files]))
            (data / INDEX_NAME).unlink(missing_ok=True)
            cold.append(timed(lambda: runs(data)))
            warm.append(timed(lambda: runs(data)))
        base = statistics.median(baseline)
        print(f"{args.runs} runs, median of {args.rounds} rounds (min-max):")
        for name, values in [
            ("open_run().metadata per file", baseline),
            ("runs(), no index", cold),
            ("runs(), index", warm),
        ]:
            med = statistics.median(values)
            print(
                f"  {name:<30} {med * 1000:8.1f} ms ({min(values) * 1000:.1f}-{max(values) * 1000:.1f})  x{med / base:.2f}"
            )


if __name__ == "__main__":
    main()
