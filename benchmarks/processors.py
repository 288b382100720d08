"""Processor throughput: rows/s of each streaming algorithm, beside the same scipy/numpy call on the whole array.

For each processor kind the same signal is processed three ways, in the same run:

* whole  — the plain scipy/numpy/Polars call on the whole array at once (the baseline);
* stream — the streaming algorithm fed batch by batch (state carried across batches);
* actor  — the processor actor on a hub: batches published, outputs published.

The ratios ``stream/whole`` and ``actor/whole`` are the price of streaming.

    .venv/bin/python benchmarks/processors.py [--quick] [--rows-per-batch N]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import polars as pl
import scipy.signal as sig

from arrowdaq.data import scalar_batch, scalar_schema
from arrowdaq.hub import InstrumentManager
from arrowdaq.processors import Decimator, MovingAverage, SlidingFFT, StreamingFilter, Trigger, WindowStatistics, build
from arrowdaq.processors.sql import run_query
from arrowdaq.processors.trigger import TriggerParams

FS = 10_000.0
QUERY = "SELECT timestamp_ns, value * 2.0 AS value FROM batch WHERE value > 0"


def best_of(repeats: int, fn: Callable[[], Any]) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def running_mean(x: np.ndarray, m: int) -> np.ndarray:
    """The O(N) whole-array moving average (a convolution would cost O(N*m))."""
    c = np.concatenate(([0.0], np.cumsum(x)))
    return (c[m:] - c[:-m]) / m


def cases(x: np.ndarray, ts: np.ndarray) -> dict[str, tuple[dict, Callable[[], Any], Callable[[], Callable]]]:
    """kind label -> (processor params, whole-array baseline, maker of a chunk function)."""
    sos = sig.butter(4, 500.0, fs=FS, output="sos")
    taps = sig.firwin(65, 500.0, fs=FS)
    trig = TriggerParams(level=1.0, pre=50, post=200)
    frame = pl.DataFrame({"timestamp_ns": ts, "value": x})

    def trigger_whole() -> Any:
        up = np.flatnonzero((x[1:] >= 1.0) & (x[:-1] < 1.0)) + 1
        up = up[(up >= 50) & (up + 200 <= len(x))]
        return x[up[:, None] - 50 + np.arange(250)]

    def stats_whole() -> Any:
        w = x[: len(x) // 1000 * 1000].reshape(-1, 1000)
        return w.mean(1), w.std(1, ddof=1), w.min(1), w.max(1)

    def streaming(factory: Callable[[], Any], call: Callable[[Any, np.ndarray, np.ndarray], Any]) -> Callable:
        def make() -> Callable:
            state = factory()
            return lambda t, v: call(state, t, v)

        return make

    return {
        "filter (IIR, butter 4)": (
            {"kind": "filter", "response": "lowpass", "cutoff": 500.0, "order": 4, "sample_rate": FS},
            lambda: sig.sosfilt(sos, x),
            streaming(lambda: StreamingFilter(sos=sos), lambda s, t, v: s.process(v)),
        ),
        "filter (FIR, 65 taps)": (
            {"kind": "filter", "response": "lowpass", "cutoff": 500.0, "order": 64, "design": "fir", "sample_rate": FS},
            lambda: sig.lfilter(taps, [1.0], x),
            streaming(lambda: StreamingFilter(fir=taps), lambda s, t, v: s.process(v)),
        ),
        "moving_average (100)": (
            {"kind": "moving_average", "samples": 100, "sample_rate": FS},
            lambda: np.convolve(x, np.full(100, 0.01), mode="valid"),
            streaming(lambda: MovingAverage(100), lambda s, t, v: s.process(v)),
        ),
        "moving_average (100,000)": (
            {"kind": "moving_average", "samples": 100_000, "sample_rate": FS},
            lambda: running_mean(x, 100_000),
            streaming(lambda: MovingAverage(100_000), lambda s, t, v: s.process(v)),
        ),
        "decimate (10, FIR)": (
            {"kind": "decimate", "factor": 10, "sample_rate": FS},
            lambda: sig.decimate(x, 10, ftype="fir", zero_phase=False),
            streaming(lambda: Decimator(10), lambda s, t, v: s.process(v)),
        ),
        "decimate (1000, FIR)": (
            {"kind": "decimate", "factor": 1000, "sample_rate": FS},
            lambda: sig.decimate(x, 1000, ftype="fir", zero_phase=False),
            streaming(lambda: Decimator(1000), lambda s, t, v: s.process(v)),
        ),
        "statistics (1000 rows)": (
            {"kind": "statistics", "rows": 1000},
            stats_whole,
            streaming(lambda: WindowStatistics(rows=1000), lambda s, t, v: s.process(t, v)),
        ),
        "fft (1024, 50 %, psd)": (
            {"kind": "fft", "window_size": 1024, "overlap": 0.5, "output": "psd", "sample_rate": FS},
            lambda: sig.spectrogram(
                x, FS, window="hann", nperseg=1024, noverlap=512, detrend=False, scaling="density", mode="psd"
            ),
            streaming(lambda: SlidingFFT(1024, 512, FS, scaling="psd"), lambda s, t, v: s.process(t, v)),
        ),
        "trigger (edge)": (
            {"kind": "trigger", "level": 1.0, "pre": 50, "post": 200, "sample_rate": FS},
            trigger_whole,
            streaming(lambda: Trigger(trig, FS), lambda s, t, v: s.process(t, v)),
        ),
        "sql (select/where)": (
            {"kind": "sql", "query": QUERY},
            lambda: run_query(QUERY, frame),
            streaming(lambda: None, lambda s, t, v: run_query(QUERY, pl.DataFrame({"timestamp_ns": t, "value": v}))),
        ),
    }


async def through_actor(params: dict, batches: list) -> float:
    hub = InstrumentManager()
    hub.declare("daq/ai0", scalar_schema("V"), producer="daq")
    options = {k: v for k, v in params.items() if k != "kind"}
    hub.spawn("p", build(params["kind"], "p", hub, "daq/ai0", options), inputs="daq/ai0")
    rows = sum(b.num_rows for b in batches)
    t0 = time.perf_counter()
    for b in batches:
        await hub.publish("daq/ai0", b)
    while (await hub.command("p", "status", timeout=60))["rows_in"] < rows:
        pass  # each status is answered after the batches queued before it: no polling pause needed
    elapsed = time.perf_counter() - t0
    await hub.stop()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a shorter signal (a smoke run)")
    parser.add_argument("--rows-per-batch", type=int, nargs="+", default=[1_000, 10_000])
    parser.add_argument(
        "--only", nargs="+", default=[], metavar="TEXT", help="run only the cases whose label contains one of these"
    )
    args = parser.parse_args()
    logging.getLogger("arrowdaq").setLevel(logging.ERROR)
    n = 200_000 if args.quick else 2_000_000
    repeats = 1 if args.quick else 3
    rng = np.random.default_rng(0)
    t = np.arange(n) / FS
    x = np.sin(2 * np.pi * 50 * t) * 1.5 + 0.2 * rng.standard_normal(n)
    ts = (1_700_000_000_000_000_000 + np.arange(n, dtype=np.uint64) * np.uint64(100_000)).astype(np.uint64)
    print(f"processor benchmark: {n:,} samples of a scalar signal; rows/s (higher is better)")
    print(
        f"{'processor':<24} {'rows/batch':>10} {'whole rows/s':>14} {'stream rows/s':>14} {'actor rows/s':>14} "
        f"{'stream/whole':>12} {'actor/whole':>11}"
    )
    for label, (params, whole, make_chunked) in cases(x, ts).items():
        if args.only and not any(text in label for text in args.only):
            continue
        t_whole = best_of(3, whole)
        for rows in args.rows_per_batch:
            cuts = np.arange(rows, n, rows)
            chunks = list(zip(np.split(ts, cuts), np.split(x, cuts), strict=True))

            def stream() -> None:
                step = make_chunked()
                for tc, xc in chunks:
                    step(tc, xc)

            t_stream = best_of(repeats, stream)
            batches = [scalar_batch(xc, channel="ai0", unit="V", timestamps_ns=tc) for tc, xc in chunks]
            t_actor = min(asyncio.run(through_actor(params, batches)) for _ in range(repeats))
            print(
                f"{label:<24} {rows:>10,} {n / t_whole:>14,.0f} {n / t_stream:>14,.0f} {n / t_actor:>14,.0f} "
                f"{t_whole / t_stream:>12.2f} {t_whole / t_actor:>11.2f}"
            )


if __name__ == "__main__":
    main()
