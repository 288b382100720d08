"""Stop and a slow or stuck storage: what was acquired is written as long as storage makes progress;
a storage stuck at stop loses only what was still queued, and says so with counts (decision 0039)."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import h5py
import numpy as np
import pyarrow as pa
from rich.console import Console

from arrowdaq.actors import ActorRef, ActorStatus, RestartPolicy, Role
from arrowdaq.app.config import load_config
from arrowdaq.app.runner import Application, ExitStatus
from arrowdaq.cli.run_cmd import print_summary
from arrowdaq.data import image_batch
from arrowdaq.hub import InstrumentManager, RunEvent
from arrowdaq.processors.averaging import MovingAverageProcessor
from arrowdaq.processors.base import OFFLOAD_WORK, Outputs
from arrowdaq.storage import RunInfo, StorageActor, StorageOptions, open_run, spawn_storage

from .configs import instrument, lab, write_config
from .runs import Running, published
from .waiting import wait_until_async

FRAME = (1024, 1024)  # 2 MiB of uint16 pixels: two frames make one 4 MiB write


def frames(n: int, first: int, rng: np.random.Generator) -> list:
    """Camera frames of noise (gzip cannot shrink them: compressing is real work)."""
    return [
        image_batch(rng.integers(0, 4096, FRAME, dtype=np.uint16), channel="cam", frame_numbers=first + i)
        for i in range(n)
    ]


async def frames_storage(tmp_path, name: str, rng: np.random.Generator):
    """A hub with storage writing gzip frames, six frames stored, and a stop timeout of ten writes of two frames.

    One write is measured here, on this machine: the fastest of three, so that a load spike while measuring
    does not stretch the timeout. Returns the hub, storage's ref, the run file and the stop timeout."""
    hub = InstrumentManager(RestartPolicy())
    hub.declare("cam1/frames", frames(1, 0, rng)[0].schema, producer="cam1")
    options = StorageOptions(data_dir=tmp_path, image_compression="gzip", compression_level=1, flush_interval=3600)
    ref, path = spawn_storage(hub, "cam1/*", options, RunInfo(name=name), max_bytes=1 << 30)
    await ref.wait_status(ActorStatus.RUNNING)
    one_write = float("inf")
    for first in (0, 2, 4):
        for batch in frames(2, first, rng):
            await hub.publish("cam1/frames", batch)
        started = time.perf_counter()
        await hub.command("storage", "flush")
        one_write = min(one_write, time.perf_counter() - started)
    return hub, ref, path, max(0.3, 10 * one_write)


async def test_stop_writes_every_frame_of_a_backlog_that_takes_longer_than_the_stop_timeout(tmp_path, caplog):
    """A big backlog of compressed frames takes several stop timeouts to write: stop waits while storage makes
    progress (it used to drop what was still queued after the timeout), and the file has every frame.

    The stop timeout is ten times one write on this machine, measured now; the backlog is thirty writes."""
    rng = np.random.default_rng(3)
    hub, ref, path, stop_timeout = await frames_storage(tmp_path, "backlog", rng)
    backlog = frames(2 * 10 * 3, 6, rng)  # 3 stop timeouts of 10 writes, 2 frames each
    for batch in backlog:
        await hub.publish("cam1/frames", batch)
    assert ref.backlog > len(backlog) // 2  # most of it still waits for storage when the stop begins
    with caplog.at_level(logging.INFO, logger="arrowdaq.actors"):
        await hub.stop(timeout=stop_timeout)
    assert ref.status is ActorStatus.STOPPED and ref.last_error is None
    run = open_run(path)
    assert run.complete
    assert run.counts()["cam1/frames"] == (6 + len(backlog), 6 + len(backlog), 0)  # stored, published, lost
    numbers = run.lazy("cam1/frames").select("frame_number").collect()["frame_number"].to_numpy()
    assert np.array_equal(numbers, np.arange(6 + len(backlog)))  # every frame, in order
    assert "lost" not in run.events.column("kind").to_pylist()
    still = [r.getMessage() for r in caplog.records if "still draining" in r.getMessage()]
    assert still, "the backlog was written within one stop timeout: the test shows nothing"
    assert "actor 'storage' is still draining its queue" in still[0]


async def test_one_write_longer_than_the_stop_timeout_is_progress_while_the_file_grows(tmp_path, caplog):
    """One batch of 60 compressed frames is a single write lasting about three stop timeouts: nothing is handled
    meanwhile, but the run file grows chunk by chunk, so the stop waits for it and for the frame queued behind."""
    rng = np.random.default_rng(4)
    hub, ref, path, stop_timeout = await frames_storage(tmp_path, "big", rng)
    pixels = rng.integers(0, 4096, (60, *FRAME), dtype=np.uint16)  # 3 stop timeouts of 10 writes of 2 frames
    await hub.publish("cam1/frames", image_batch(pixels, channel="cam", frame_numbers=6))
    await hub.publish("cam1/frames", frames(1, 66, rng)[0])  # queued behind the big one
    with caplog.at_level(logging.INFO, logger="arrowdaq.actors"):
        await hub.stop(timeout=stop_timeout)
    assert ref.status is ActorStatus.STOPPED and ref.last_error is None
    run = open_run(path)
    assert run.counts()["cam1/frames"] == (67, 67, 0)
    numbers = run.lazy("cam1/frames").select("frame_number").collect()["frame_number"].to_numpy()
    assert np.array_equal(numbers, np.arange(67))
    still = [r.getMessage() for r in caplog.records if "still draining" in r.getMessage()]
    assert still and "0 item(s) handled" in still[0]  # a window with no item handled, and yet progress


GATHERED = (1024, 1984)  # uint16: 3.9 MiB, just under the 4 MiB storage gathers per stream before writing


async def test_what_storage_gathered_is_written_at_stop_however_many_close_timeouts_it_takes(tmp_path, caplog):
    """Storage gathers each stream's batches (up to 4 MiB) until the flush timer or the stop writes them, and
    HDF5 compresses the chunks it cached when the file is flushed. At the stop, that write and flush are part of
    the drain (the file grows: progress), not of the close, whose ``close_timeout`` is a fixed bound: twelve
    streams with a gathered frame each take about four close timeouts to compress, and storage still closes
    within its close timeout, with every frame in the complete file. (In ``on_stop`` they were cut at the close
    timeout: closing went on in the worker thread after the stop had returned, or the rows were lost.)

    The close timeout is three writes and flushes of one gathered frame on this machine, measured now."""
    rng = np.random.default_rng(6)
    streams = [f"cam{i}/frames" for i in range(12)]

    def frame(number: int) -> pa.RecordBatch:  # noise: compressing it is real work
        return image_batch(rng.integers(0, 4096, GATHERED, dtype=np.uint16), channel="cam", frame_numbers=number)

    hub = InstrumentManager(RestartPolicy())
    for stream in streams:
        hub.declare(stream, frame(0).schema, producer=stream.split("/")[0])
    options = StorageOptions(data_dir=tmp_path, image_compression="gzip", compression_level=6, flush_interval=3600)
    instances: list[StorageActor] = []

    def storage() -> StorageActor:
        instances.append(StorageActor(hub, options, RunInfo(name="gathered")))
        return instances[-1]

    ref = hub.spawn("storage", storage, role=Role.SINK, inputs="cam*/*", delivery="lossless", max_bytes=1 << 30)
    await ref.wait_status(ActorStatus.RUNNING)
    one_write = float("inf")
    for number in (0, 1):  # the faster of two, as frames_storage measures
        await hub.publish(streams[0], frame(number))
        started = time.perf_counter()
        await hub.command("storage", "flush")
        one_write = min(one_write, time.perf_counter() - started)
    instances[-1].close_timeout = max(0.3, 3 * one_write)
    for stream in streams:
        await hub.publish(stream, frame(2))  # gathered, not written: under 4 MiB, and no flush timer is due
    await hub.command("storage", "status")  # every frame has reached storage: the stop finds them gathered
    with caplog.at_level(logging.WARNING):
        await hub.stop()
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []  # closed in time
    assert ref.status is ActorStatus.STOPPED and ref.last_error is None
    run = open_run(instances[-1].path)
    assert run.complete
    counts = run.counts()  # stored, published, lost
    assert counts[streams[0]] == (3, 3, 0) and all(counts[s] == (1, 1, 0) for s in streams[1:])
    assert "lost" not in run.events.column("kind").to_pylist()


class StuckHdf5:
    """Another user of HDF5 in this process holds the library's global lock (as a long read does): every h5py
    call of storage waits for it. As storage sees it, the disk stopped answering; nothing in storage is replaced."""

    def __init__(self) -> None:
        self.held = threading.Event()
        self.release = threading.Event()
        self._thread = threading.Thread(target=self._hold, name="holds-hdf5", daemon=True)

    def _hold(self) -> None:
        with h5py._objects.phil:
            self.held.set()
            self.release.wait(120)

    def hold(self) -> None:
        """From now on every h5py call waits (returns once the lock is held)."""
        self._thread.start()
        if not self.held.wait(30):
            raise AssertionError("HDF5's lock was not free within 30 s")

    @contextmanager
    def holding_when_asked(self) -> Iterator[StuckHdf5]:
        try:
            yield self
        finally:
            self.release.set()
            if self._thread.is_alive():
                self._thread.join(10)

    def release_at_the_first_loss(self, app: Application) -> list[RunEvent]:
        """The run's ``lost`` events as they come; the first lets the disk answer again (the file gets closed)."""
        lost: list[RunEvent] = []

        def on_event(event: object) -> None:
            if isinstance(event, RunEvent) and event.kind == "lost":
                lost.append(event)
                self.release.set()

        app.hub.add_listener(on_event)
        return lost

    async def hold_once_recording(self, app: Application, batches: int = 10) -> ActorRef:
        """Hold the disk once storage records pm1, until ``batches`` batches are queued for it; storage's ref."""
        storage = await recording(app, rows=5)
        await asyncio.to_thread(self.hold)
        await wait_until_async(lambda: storage.backlog >= batches, message=f"{batches} batches queued for storage")
        return storage


async def recording(app: Application, rows: int) -> ActorRef:
    """Storage's ref, once it runs and pm1 has published ``rows`` rows."""
    await wait_until_async(
        lambda: (
            app.storage is not None
            and app.storage.status is ActorStatus.RUNNING
            and published(app, "pm1/power") >= rows
        ),
        message="pm1 recording",
    )
    assert app.storage is not None
    return app.storage


STUCK_LAB = lab(instrument("pm1", poll_hz=50.0), name="stuck", extra="[server]\nenabled = false")


async def test_a_storage_stuck_at_stop_loses_only_what_was_queued_and_says_how_much_everywhere(tmp_path, capsys):
    """The disk stops answering while readings queue for storage; at stop, storage makes no progress for the
    stop timeout: what was still queued is lost and said so (stream, rows, batches) in the run file's event log,
    the storage's status, the summary and the exit status. Everything else is written once the disk answers."""
    config = load_config(write_config(tmp_path, STUCK_LAB), environ={})
    app = Application(config, restart=RestartPolicy(stop_timeout=0.5))
    disk = StuckHdf5()
    lost_events = disk.release_at_the_first_loss(app)  # the stop gave up: the disk answers again
    with disk.holding_when_asked():
        async with Running(app) as run:
            await disk.hold_once_recording(app)
    summary = run.summary
    assert summary is not None and lost_events

    published_rows = summary.streams["pm1/power"].rows
    lost_rows = sum(e.details["rows"] for e in lost_events)
    lost_batches = sum(e.details["batches"] for e in lost_events)
    assert lost_batches >= 10 and lost_rows >= lost_batches  # the queue at the stop, nothing else
    assert {e.details["stream"] for e in lost_events} == {"pm1/power"}
    assert "still queued when the stop gave up: actor 'storage' made no progress for 0.5 s" in lost_events[0].message

    run_file = open_run(summary.run_file)  # complete: the disk answered again, storage wrote the rest and closed it
    assert run_file.complete
    assert run_file.counts()["pm1/power"] == (published_rows - lost_rows, published_rows, lost_rows)
    logged = [e for e in run_file.events.to_pylist() if e["kind"] == "lost"]
    assert [e["message"] for e in logged] == [e.message for e in lost_events]
    details = [json.loads(e["details"]) for e in logged]
    assert sum(d["rows"] for d in details) == lost_rows and sum(d["batches"] for d in details) == lost_batches

    assert f"{lost_rows} row(s) in {lost_batches} batch(es) of pm1/power not stored" in summary.errors["storage"]
    assert summary.lost["pm1/power"].rows == lost_rows and summary.lost["pm1/power"].batches == lost_batches
    assert summary.not_stored == {"pm1/power": lost_rows}
    assert summary.exit_status is ExitStatus.DATA_LOST
    out = io.StringIO()
    print_summary(summary, Console(file=out, width=300))
    printed = out.getvalue() + capsys.readouterr().out
    assert f"lost: pm1/power: {lost_rows:,} row(s) in {lost_batches:,} batch(es) not stored: still queued" in printed
    assert f"exit status 5: not in the run file: pm1/power ({lost_rows:,} rows)" in printed


class HeldAverage(MovingAverageProcessor):
    """A moving average whose work (in its worker thread) waits once ``hold`` is set, until ``release``: as a
    processor stuck in one batch (a computation that never ends) looks to the stop."""

    held_rows = 0
    hold = threading.Event()
    held = threading.Event()
    release = threading.Event()

    def work(self, batch: pa.RecordBatch) -> float:
        return float(OFFLOAD_WORK)  # in the worker thread, so that holding it does not hold the event loop

    def transform(self, batch: pa.RecordBatch) -> Outputs:
        if self.hold.is_set():
            self.held_rows = batch.num_rows
            self.held.set()
            self.release.wait(60)
        return super().transform(batch)


async def test_a_processor_stuck_at_stop_says_how_much_input_it_never_processed_everywhere(tmp_path, capsys):
    """A processor stuck in one batch while its input queues: the stop gives up on it after the stop timeout.
    Its input left unprocessed (the batch in hand and those queued) is counted with its stream, rows and batches
    in the run file's event log, its status, the summary and exit status 5 (its output stream is short by them);
    storage still records every row published, its outputs included."""
    config = load_config(write_config(tmp_path, STUCK_LAB), environ={})
    app = Application(config, restart=RestartPolicy(stop_timeout=0.5))
    lost_events: list[RunEvent] = []
    app.hub.add_listener(lambda e: lost_events.append(e) if isinstance(e, RunEvent) and e.kind == "lost" else None)

    averages: list[HeldAverage] = []

    async def spawn_average(hub: InstrumentManager) -> None:
        def average() -> HeldAverage:
            averages.append(HeldAverage(hub, "pm1/power", id="pm1_avg", samples=2, sample_rate=50.0))
            return averages[-1]

        hub.spawn("pm1_avg", average, inputs="pm1/power")

    HeldAverage.release.clear()
    try:
        task = asyncio.create_task(app.run(prepare=spawn_average))
        await wait_until_async(lambda: published(app, "pm1_avg/average") >= 5, message="pm1_avg averaging")
        average = app.hub.actor("pm1_avg")
        HeldAverage.hold.set()
        await asyncio.to_thread(HeldAverage.held.wait, 30)
        await wait_until_async(lambda: average.backlog >= 10, message="10 batches queued for pm1_avg")
        app.request_stop()
        summary = await task
    finally:
        HeldAverage.release.set()
        HeldAverage.hold.clear()

    assert len(lost_events) == 1 and lost_events[0].source == "pm1_avg"
    details = lost_events[0].details
    assert details["stream"] == "pm1/power" and details["outputs"] == ["pm1_avg/average"]
    rows, batches = details["rows"], details["batches"]
    assert batches >= 11 and rows >= batches  # the batch in hand and those queued at the stop
    assert details["reason"].startswith(
        "in hand or still queued when the stop gave up: actor 'pm1_avg' made no progress"
    )

    assert summary.unprocessed["pm1_avg"].rows == rows and summary.unprocessed["pm1_avg"].batches == batches
    delivered = app.hub.actor("pm1_avg").inboxes[0].meter.rows  # every row the hub gave it: processed or counted
    assert rows == delivered - (averages[-1].counters["rows_in"] - averages[-1].held_rows)
    assert summary.lost == {} and summary.not_stored == {}  # storage has every row published, the average's too
    assert "pm1_avg" in summary.errors and f"{rows} row(s) in {batches} batch(es)" in summary.errors["pm1_avg"]
    assert summary.exit_status is ExitStatus.DATA_LOST

    with open_run(summary.run_file) as run_file:
        assert run_file.complete
        logged = [e for e in run_file.events.to_pylist() if e["kind"] == "lost"]
    assert [(e["source"], json.loads(e["details"])["rows"]) for e in logged] == [("pm1_avg", rows)]

    out = io.StringIO()
    print_summary(summary, Console(file=out, width=300))
    printed = out.getvalue() + capsys.readouterr().out
    assert (
        f"not processed: pm1_avg: {rows:,} row(s) in {batches:,} batch(es) of pm1/power: in hand or still queued"
        in printed
    )
    assert f"exit status 5: input not processed: pm1_avg ({rows:,} rows of pm1/power)" in printed


async def test_the_third_ctrl_c_gives_up_on_what_storage_still_has_queued_and_says_how_much(tmp_path, caplog):
    """A stop waits for storage as long as it makes progress, here a minute without any (the disk does not
    answer): Ctrl-C again only says what the stop waits for, an impatient double press loses nothing. The third
    is a hard stop: what is still queued is counted as lost (event log, summary, exit status 5) and the file is
    closed once the disk answers."""
    config = load_config(write_config(tmp_path, STUCK_LAB), environ={})
    app = Application(config, restart=RestartPolicy(stop_timeout=60.0))
    disk = StuckHdf5()
    lost_events = disk.release_at_the_first_loss(app)  # the disk answers again: storage closes the file
    with disk.holding_when_asked():
        task = asyncio.create_task(app.run())
        storage = await disk.hold_once_recording(app)
        app.request_stop()  # Ctrl-C
        await wait_until_async(lambda: storage.stop_requested.is_set(), message="storage's stop begun")
        with caplog.at_level(logging.WARNING, logger="arrowdaq.app"):
            app.request_stop()  # again: the stop goes on
        said = [r.getMessage() for r in caplog.records if "already stopping" in r.getMessage()]
        assert len(said) == 1 and "storage: " in said[0] and "press Ctrl-C 1 more time(s) to give up" in said[0]
        assert not lost_events and not task.done()
        app.request_stop()  # the third: a hard stop
        summary = await task

    lost_rows = sum(e.details["rows"] for e in lost_events)
    lost_batches = sum(e.details["batches"] for e in lost_events)
    assert lost_batches >= 10 and {e.details["stream"] for e in lost_events} == {"pm1/power"}
    assert "the stop was cut short by 3 stop requests (Ctrl-C)" in lost_events[0].details["reason"]
    assert summary.lost["pm1/power"].rows == lost_rows and summary.exit_status is ExitStatus.DATA_LOST
    run_file = open_run(summary.run_file)
    assert run_file.complete
    published_rows = summary.streams["pm1/power"].rows
    assert run_file.counts()["pm1/power"] == (published_rows - lost_rows, published_rows, lost_rows)
    assert (
        sum(json.loads(e["details"])["rows"] for e in run_file.events.to_pylist() if e["kind"] == "lost") == lost_rows
    )


async def test_an_impatient_triple_ctrl_c_before_any_drain_loses_nothing(tmp_path, caplog):
    """Three stop requests at once, before the stop has reached any actor: a hard stop cuts only the drains
    a stop waits for at that moment, and there is none yet. Storage's turn comes later and writes every row."""
    config = load_config(write_config(tmp_path, STUCK_LAB), environ={})
    app = Application(config)
    task = asyncio.create_task(app.run())
    await recording(app, rows=20)
    with caplog.at_level(logging.WARNING, logger="arrowdaq.app"):
        for _ in range(3):
            app.request_stop()
    summary = await task
    assert "no drain to give up on now" in caplog.text
    assert summary.lost == {} and summary.not_stored == {} and summary.exit_status is ExitStatus.OK
    assert summary.stored is not None and summary.stored["pm1/power"] == summary.streams["pm1/power"].rows
