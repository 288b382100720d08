"""The whole pipeline, beside raw h5py with the same settings, in the same run.

Four workloads go through the public API — producer → hub → storage actor →
closed run file → read back with ``open_run`` and counted — and the same data
is appended with h5py alone (``baseline.py``: same chunking, filter, SWMR, flush
every second), closed, read back and counted:

* scalar readings one at a time (``Producer.put``; raw: one resize and write per reading);
* scalar batches of 1,000 and of 100,000 rows (``scalar_batch`` + ``hub.publish``);
* camera frames of 8 MiB (2048 × 2048 uint16, ``image_batch``).

The data is the simulators': the 1830-C power meter's noisy readings and the
camera's beam-spot frames with shot noise (``arrowdaq.sim.table``), not random numbers.
Each workload runs with the default storage options (no filter), with gzip-1 +
shuffle on the table-like columns (frames stay unfiltered), and without the
viewers' ``time`` axis (``time_axis=False``). Raw h5py writes what the run file
holds per row: ``timestamp_ns``, the values, and — where the file has it — the
``time`` axis in seconds, computed from the timestamps as arrowdaq does (the
same bytes; docs/decisions/0026); both sides read back ``timestamp_ns`` and the
values. Rounds
are interleaved (arrowdaq and raw alternate, in alternating order) because the
machine is shared; each line gives the median and the min–max over the rounds,
and the ratio of the medians. Last, an instrument actor polls a driver whose
reads cost nothing at ``poll_hz = 100000`` (the target) and at ``1000000`` (more than it can: what it
reaches, and the readings it gives up, counted as ``missed``), with the rows stored per second, the
missed readings and the process's CPU.

Each run is measured three ways, on both sides:

* *whole run*, wall clock: from before the file exists to the rows read back
  (set-up, data, close, read back: what the issue's targets name);
* *whole run per CPU-second*: the same items over the process's CPU time (every
  thread). A loaded machine stretches wall time by whatever else runs; CPU time
  much less, so these ratios hold still while the wall ones swing;
* *data only*, wall clock: from the first reading to every row flushed to the
  file, with the file already laid out (arrowdaq: storage Running; raw: datasets
  created) and its close and read-back left out: what a recording of minutes
  runs at, without a run's fixed cost (the "run" line measures that alone).

    .venv/bin/python benchmarks/pipeline.py [--quick] [--rounds N] [--only run,one,1k,100k,frames,poll]
        [--settings default,gzip-1,no time]

The last lines give issue 15's targets beside what this run measured.

("run" is the fixed cost of a run: file laid out, actors started and stopped, file
completed and read back, for a single row; it weighs on the ratios of short runs.)
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

import baseline
from arrowdaq.actors import ActorStatus
from arrowdaq.data import image_batch, scalar_batch, scalar_schema
from arrowdaq.hub import InstrumentManager, Producer
from arrowdaq.instruments.actor import spawn_instrument
from arrowdaq.instruments.driver import Driver, Stream
from arrowdaq.sim.table import OpticalTable
from arrowdaq.storage import RunInfo, StorageOptions, open_run, spawn_storage
from arrowdaq.storage.writer import FILE_FORMAT

FRAME_SHAPE = (2048, 2048)  # uint16: 8 MiB
T0 = 1_700_000_000_000_000_000


# --- realistic data ------------------------------------------------------------------------
def lit_table() -> OpticalTable:
    table = OpticalTable(seed=1, latency_scale=0.0)
    table.emission = True
    table.shutter_open = True
    return table


def power_readings(n: int) -> np.ndarray:
    """The 1830-C simulator's readings (W): the beam through the optics, detector noise, a dark floor."""
    table = lit_table()
    distinct = np.array([table.power_meter_w() for _ in range(min(n, 100_000))])
    return np.resize(distinct, n)


def camera_frames(count: int) -> list[np.ndarray]:
    """The simulated camera's frames: a Gaussian beam spot with shot noise and dark counts."""
    table = lit_table()
    return [table.camera_frame(0.005, FRAME_SHAPE) for _ in range(count)]


# --- one workload ------------------------------------------------------------------------------
@dataclass
class Workload:
    name: str
    unit: str
    stream: str
    items: int  # readings, rows or frames per arrowdaq run
    raw_items: int  # per raw run (one reading per h5py call is slow)
    declare: Callable  # (hub): declares the stream, before storage starts (as the application does)
    feed: Callable  # async (hub): the data through the public API
    raw: Callable  # (options) -> (a sample of each column, the blocks to append): the raw h5py baseline


@dataclass
class Timing:
    """One run: wall seconds of the whole run, CPU seconds of the whole run, wall seconds of the data alone."""

    wall: float
    cpu: float
    data: float


async def through_arrowdaq(work: Workload, options: StorageOptions) -> Timing:
    """From before the run file exists to its rows read back and counted; the data part: from the
    first reading (file laid out) to the last row flushed to the file."""
    t0, c0 = time.perf_counter(), time.process_time()
    hub = InstrumentManager()
    work.declare(hub)
    ref, path = spawn_storage(hub, work.stream.split("/")[0] + "/*", options, RunInfo(name="bench"))
    await ref.wait_status(ActorStatus.RUNNING)
    t1 = time.perf_counter()
    await work.feed(hub)
    await hub.command(ref.name, "flush", timeout=600)  # every row published is written and flushed
    t2 = time.perf_counter()
    await hub.stop(timeout=600)
    table = open_run(path).table(work.stream)
    timing = Timing(time.perf_counter() - t0, time.process_time() - c0, t2 - t1)
    if ref.last_error or table.num_rows != work.items:
        raise RuntimeError(f"{work.name}: {table.num_rows} of {work.items} read back ({ref.last_error})")
    return timing


def through_raw(work: Workload, options: StorageOptions, path: Path) -> Timing:
    """From creating the file to reading it back (``baseline``: a hand-written h5py logger); the data
    part: from the first block (datasets created) to the last flush."""
    t0, c0 = time.perf_counter(), time.process_time()
    columns, blocks = baseline.with_time_axis(options, *work.raw(options), start_ns=time.time_ns())
    with h5py.File(path, "w", libver=FILE_FORMAT) as f:
        datasets = baseline.create_datasets(f, options, columns)
        t1 = time.perf_counter()
        baseline.append_blocks(f, options, datasets, blocks)
        f.flush()
        t2 = time.perf_counter()
    rows = baseline.rows_read_back(path)
    timing = Timing(time.perf_counter() - t0, time.process_time() - c0, t2 - t1)
    if set(rows.values()) != {work.raw_items}:
        raise RuntimeError(f"raw {work.name}: {rows} rows, expected {work.raw_items}")
    return timing


def declare_power(hub: InstrumentManager) -> None:
    """The power meter's stream, as ``Producer`` and ``scalar_batch(unit="W")`` declare it."""
    hub.declare("pm1/power", scalar_schema("W"), producer="pm1")


def workloads(scale: int) -> list[Workload]:
    one_n = 1_000_000 // scale
    one_values = power_readings(one_n).tolist()  # Python floats, as a driver's parse() returns them
    raw_one = 3_000 // min(scale, 3)

    async def feed_one(hub: InstrumentManager) -> None:
        async with Producer(hub, "pm1/power", unit="W") as power:
            for v in one_values:
                await power.put(v)

    def raw_one_fn(options: StorageOptions) -> tuple[dict, Iterable]:
        values = np.asarray(one_values[:raw_one])
        blocks = ((np.array([time.time_ns()], np.uint64), values[i : i + 1]) for i in range(raw_one))
        return {"timestamp_ns": np.zeros(1, np.uint64), "value": values}, blocks

    def batched(rows: int, count: int, raw_count: int) -> Workload:
        values = power_readings(rows * count).reshape(count, rows)
        stamps = (T0 + np.arange(rows * count, dtype=np.uint64) * 1000).reshape(count, rows)

        async def feed(hub: InstrumentManager) -> None:
            for k in range(count):
                await hub.publish(
                    "pm1/power", scalar_batch(values[k], channel="power", unit="W", timestamps_ns=stamps[k])
                )

        def raw(options: StorageOptions) -> tuple[dict, Iterable]:
            blocks = zip(stamps[:raw_count], values[:raw_count], strict=True)
            return {"timestamp_ns": stamps[0], "value": values[0]}, blocks

        label = f"scalar, {rows:,}-row batches"
        return Workload(label, "rows/s", "pm1/power", rows * count, rows * raw_count, declare_power, feed, raw)

    n_frames = max(4, 40 // scale)
    distinct = camera_frames(4)
    frames = [distinct[k % 4] for k in range(n_frames)]

    def declare_frames(hub: InstrumentManager) -> None:
        first = image_batch(frames[0], channel="frames", frame_numbers=0, timestamps_ns=T0)
        hub.declare("cam1/frames", first.schema, producer="cam1")

    async def feed_frames(hub: InstrumentManager) -> None:
        for k, frame in enumerate(frames):
            await hub.publish(
                "cam1/frames", image_batch(frame, channel="frames", frame_numbers=k, timestamps_ns=T0 + k)
            )

    def raw_frames(options: StorageOptions) -> tuple[dict, Iterable]:
        numbers = np.arange(n_frames, dtype=np.uint64)
        columns = {"timestamp_ns": numbers, "frame_number": numbers, "pixels": np.stack(frames[:1])}
        blocks = ((T0 + numbers[k : k + 1], numbers[k : k + 1], frame[np.newaxis]) for k, frame in enumerate(frames))
        return columns, blocks

    async def feed_single(hub: InstrumentManager) -> None:
        await hub.publish("pm1/power", scalar_batch([1.0], channel="power", unit="W", timestamps_ns=T0))

    def raw_single(options: StorageOptions) -> tuple[dict, Iterable]:
        columns = {"timestamp_ns": np.array([T0], np.uint64), "value": np.ones(1)}
        return columns, [tuple(columns.values())]

    return [
        Workload("fixed cost: a run of one row", "runs/s", "pm1/power", 1, 1, declare_power, feed_single, raw_single),
        Workload(
            "scalar, one reading at a time",
            "readings/s",
            "pm1/power",
            one_n,
            raw_one,
            declare_power,
            feed_one,
            raw_one_fn,
        ),
        # both move 10 M rows through arrowdaq, so a run's fixed cost (~0.1 s) weighs the same on both; raw
        # h5py, which pays ~5 ms of it, appends 2 M rows in 1,000-row blocks (~1 s: one resize and write each)
        batched(1_000, max(2, 10_000 // scale), max(2, 2_000 // scale)),
        batched(100_000, max(2, 100 // scale), max(2, 100 // scale)),
        Workload(
            "frames, 8 MiB each", "frames/s", "cam1/frames", n_frames, n_frames, declare_frames, feed_frames, raw_frames
        ),
    ]


# --- the instrument actor polling a free driver ----------------------------------------------
class Instant(Driver):
    """A driver whose reads cost nothing: what the actor itself costs per reading."""

    driver_name = "instant"
    streams = (Stream("value", unit="V", poll_hz=100_000),)

    def read(self, stream: str) -> float:
        return 1.0


@dataclass
class Poll:
    """One poll run: readings stored per second (from the run file's timestamps), readings the actor
    gave up (counted on the hub), and the process's CPU per second of polling."""

    stored_per_s: float
    missed: int
    cpu_share: float


async def poll_rate(options: StorageOptions, seconds: float, poll_hz: float = 100_000) -> Poll:
    """Readings stored per second, from the run file: rows over the span of their timestamps."""
    hub = InstrumentManager()
    ref, path = spawn_storage(hub, "fast/*", options, RunInfo(name="poll"))
    inst = spawn_instrument(hub, "fast", Instant, lambda: Instant(None, name="fast"), poll_hz={"value": poll_hz})
    await inst.wait_status(ActorStatus.RUNNING)
    c0, t0 = time.process_time(), time.perf_counter()
    await asyncio.sleep(seconds)
    cpu_share = (time.process_time() - c0) / (time.perf_counter() - t0)
    missed = hub.streams["fast/value"].missed
    await hub.stop(timeout=60)
    summary = next(s for s in open_run(path).summary() if s.name == "fast/value")
    return Poll(summary.rate or 0.0, missed, cpu_share)


# --- report ------------------------------------------------------------------------------------
def spread(rates: list[float]) -> str:
    return f"{statistics.median(rates):>12,.0f} [{min(rates):,.0f}–{max(rates):,.0f}]"


#: The three measures of a run: its title, and the rate of ``items`` it gives.
MEASURES: dict[str, tuple[str, Callable[[int, Timing], float]]] = {
    "wall": ("whole run (set-up, data, close, read back), wall clock", lambda n, t: n / t.wall),
    "cpu": ("whole run, per CPU-second of the process (all threads)", lambda n, t: n / t.cpu),
    "data": ("data only (file laid out before, close and read back left out), wall clock", lambda n, t: n / t.data),
}


def report(chosen: list[Workload], settings: list[str], results: dict[tuple[str, str], tuple[list, list]]) -> None:
    for key, (title, rate) in MEASURES.items():
        print(f"\n{title}")
        print(f"{'workload':<32} {'settings':<10} {'arrowdaq':>32} {'raw h5py':>32} {'ratio':>6}")
        for work in chosen:
            if key == "data" and work.items == 1:
                continue  # one row: nothing but set-up
            for label in settings:
                ours_t, raw_t = results[(work.name, label)]
                ours = [rate(work.items, t) for t in ours_t]
                raw = [rate(work.raw_items, t) for t in raw_t]
                ratio = statistics.median(ours) / statistics.median(raw)
                print(f"{work.name:<32} {label:<10} {spread(ours):>32} {spread(raw):>32} {ratio:>6.2f}  {work.unit}")


#: Issue 15's targets, as (workload, what is compared, the bound): each printed beside what this run measured.
TARGETS = (
    ("scalar, one reading at a time", "rate", 1_000_000),
    ("scalar, 1,000-row batches", "rate", 8_000_000),
    ("scalar, 100,000-row batches", "ratio", 0.9),
    ("frames, 8 MiB each", "ratio", 0.9),
)


def targets(
    chosen: list[Workload],
    settings: list[str],
    results: dict[tuple[str, str], tuple[list, list]],
    polled: float | None,
) -> None:
    """The targets' lines: the whole run by the wall clock (medians), as the issue names them; with the
    default settings for rates, with each setting for ratios to raw h5py with the same settings."""
    print("\nissue 15's targets (whole run, wall clock, medians):")
    names = {w.name: w for w in chosen}
    for name, kind, bound in TARGETS:
        work = names.get(name)
        if work is None:
            continue
        for label in settings if kind == "ratio" else ["default"]:
            if (name, label) not in results:
                continue
            ours_t, raw_t = results[(name, label)]
            ours = statistics.median(work.items / t.wall for t in ours_t)
            if kind == "rate":
                print(f"  {name}, {label}: {ours:,.0f} {work.unit} (target ≥ {bound:,})")
                continue
            raw = statistics.median(work.raw_items / t.wall for t in raw_t)
            print(f"  {name}, {label}: {ours / raw:.2f} × raw h5py with the same settings (target ≥ {bound})")
    frames = names.get("frames, 8 MiB each")
    if frames is not None and (frames.name, "default") in results:
        # the default has no filter: raw h5py with the same settings is raw h5py uncompressed
        ours_t, raw_t = results[(frames.name, "default")]
        ours = statistics.median(frames.items / t.wall for t in ours_t)
        raw = statistics.median(frames.raw_items / t.wall for t in raw_t)
        print(f"  frames, default settings: {ours / raw:.2f} × raw h5py uncompressed (target ≥ 0.8)")
    if polled is not None:
        print(f"  instrument actor, zero-latency driver at poll_hz=100000: {polled:,.0f} readings/s (target ≥ 100,000)")


#: Memory touched (and freed) before every timed run: more than a run's largest buffers (the read-back).
WARM_MIB = 512


def warm_memory(mib: int = WARM_MIB) -> None:
    """Touch and free ``mib`` MiB, so that the next run starts on memory the host backs.

    This machine is a VM whose balloon driver reports free memory to the host a few seconds after it
    is freed; touching it again then costs ~1 ms of system time per MiB (320 MiB: 0.31-0.55 s after a
    3-5 s pause, 0.04-0.06 s straight after other use). Which side of a frames run met such memory was
    chance, and the scalar workloads before it made it likely: frames measured 0.83-0.92x alone and
    0.37-0.44x after them (docs/decisions/0027). Pages freed last are handed out first, so touching
    them here makes both sides start warm."""
    np.ones(mib << 20, np.uint8)


def warm_up(chosen: list[Workload], options: StorageOptions, path: Path) -> None:
    """One untimed run of each side: first calls import and compile what later runs reuse."""
    for work in chosen[:1]:
        asyncio.run(through_arrowdaq(work, options))
        through_raw(work, options, path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a tenth of the data, one round (a smoke run)")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (default 5)")
    parser.add_argument("--only", default="run,one,1k,100k,frames,poll", help="workloads, comma-separated")
    parser.add_argument("--settings", default="default,gzip-1,no time", help="storage settings, comma-separated")
    args = parser.parse_args()
    logging.getLogger("arrowdaq").setLevel(logging.ERROR)  # backpressure alarms are expected here
    scale, rounds = (10, 1) if args.quick else (1, args.rounds)
    keys = dict(zip(("run", "one", "1k", "100k", "frames"), workloads(scale), strict=True))
    chosen = [keys[k] for k in args.only.split(",") if k in keys]
    tmp = Path(tempfile.mkdtemp(prefix="arrowdaq-pipeline-"))
    known = {  # the default has no filter (docs/decisions/0021); gzip on the table-like columns is opt-in
        "default": {},
        "gzip-1": {"compression": "gzip"},
        "no time": {"time_axis": False},  # no viewers' axis: 16 B a scalar row, not 24 (docs/decisions/0026)
    }
    settings = {k: StorageOptions(data_dir=tmp, **known[k]) for k in args.settings.split(",") if k in known}
    print(
        f"pipeline benchmark: producer → hub → storage → closed file → read back, beside raw h5py with the same"
        f" settings; {rounds} interleaved round(s), median [min–max]; load average {os.getloadavg()[0]:.1f} at the"
        " start (2 cores, shared: wall-clock rates swing with it)"
    )
    try:
        warm_up(chosen, next(iter(settings.values())), tmp / "raw.h5")
        results: dict[tuple[str, str], tuple[list[Timing], list[Timing]]] = {}
        for r in range(rounds):
            for work in chosen:
                for label, options in settings.items():
                    ours, raw = results.setdefault((work.name, label), ([], []))
                    for which in (0, 1) if r % 2 == 0 else (1, 0):
                        for f in tmp.glob("*.h5"):
                            f.unlink()
                        warm_memory()
                        if which == 0:
                            ours.append(asyncio.run(through_arrowdaq(work, options)))
                        else:
                            raw.append(through_raw(work, options, tmp / "raw.h5"))
        report(chosen, list(settings), results)
        polled = None
        if "poll" in args.only.split(","):
            options = settings.get("default", StorageOptions(data_dir=tmp))
            print()
            for hz in (100_000, 1_000_000):  # the target's rate, and more than the actor can: what it reaches
                polls = [asyncio.run(poll_rate(options, 2.0 / scale, hz)) for _ in range(rounds)]
                stored = [p.stored_per_s for p in polls]
                polled = statistics.median(stored) if hz == 100_000 else polled
                print(
                    f"instrument actor, zero-latency driver at poll_hz={hz}: {spread(stored)} readings/s stored,"
                    f" missed (counted) {statistics.median(p.missed for p in polls):,.0f},"
                    f" CPU {statistics.median(p.cpu_share for p in polls):.0%} of a core"
                )
        targets(chosen, list(settings), results, polled)
        print(f"load average at the end: {os.getloadavg()[0]:.1f}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
