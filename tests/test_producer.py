"""The producer API: readings one at a time, gathered into batches, into the hub and the run file.

Nothing is lost across batch boundaries, at stop, or (for rows flushed) at a kill -9;
order and timestamps are kept."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from arrowdaq.actors import ActorStatus
from arrowdaq.data.gather import ReadingColumns
from arrowdaq.hub import Producer
from arrowdaq.storage import RunInfo, StorageOptions, open_run, spawn_storage

T0 = 1_700_000_000_000_000_000


def test_reading_columns_take_batches_and_start_over():
    cols = ReadingColumns("power", "W", capacity=4)
    assert cols.take() is None
    assert [cols.append(float(i), T0 + i) for i in range(4)] == [False, False, False, True]
    full = cols.take()
    assert full.column("value").to_pylist() == [0.0, 1.0, 2.0, 3.0]
    assert full.column("timestamp_ns").to_pylist() == [T0, T0 + 1, T0 + 2, T0 + 3]
    assert full.column("channel").to_pylist() == ["power"] * 4 and full.column("unit").to_pylist() == ["W"] * 4
    cols.append(9.0)  # timestamp: now; the first batch's arrays are not reused
    small = cols.take()
    assert full.column("value").to_pylist() == [0.0, 1.0, 2.0, 3.0] and small.column("value").to_pylist() == [9.0]
    assert small.column("timestamp_ns")[0].as_py() > T0
    assert cols.extend(np.arange(6.0), np.arange(6, dtype=np.uint64)) == 4 and len(cols) == 4


async def test_every_reading_arrives_in_order_across_batch_boundaries_and_at_stop(hub, tmp_path):
    ref, path = spawn_storage(hub, "pm1/*", StorageOptions(data_dir=tmp_path, chunk_rows=1000), RunInfo(name="p"))
    live = hub.subscribe("pm1/power", delivery="lossless", name="counter")
    await ref.wait_status(ActorStatus.RUNNING)
    n = 25_500  # 25 full batches of 1,000 and 500 readings gathered when the block ends
    async with Producer(hub, "pm1/power", unit="W", batch_rows=1000, batch_latency=60) as power:
        for i in range(n):
            await power.put(float(i), T0 + 1000 * i)
            if i % 1000 == 999:
                await asyncio.sleep(0)  # a yield, not a wait: the storage actor runs now and then, as beside a device
    assert hub.streams["pm1/power"].meter.batches == 26 and power.published == n
    await hub.stop()  # storage drains while it makes progress: a loaded machine makes the stop slower, not lossy
    table = open_run(path).table("pm1/power")
    np.testing.assert_array_equal(table.column("value").to_numpy(), np.arange(n, dtype=float))
    np.testing.assert_array_equal(table.column("timestamp_ns").to_numpy(), T0 + 1000 * np.arange(n, dtype=np.uint64))
    assert set(table.column("channel").to_pylist()) == {"power"} and set(table.column("unit").to_pylist()) == {"W"}
    sizes = []
    while (item := live.pop()) is not None:
        sizes.append(item[1].num_rows)
    assert sizes == [1000] * 25 + [500]


async def test_hub_stop_publishes_what_a_producer_still_gathers(hub, tmp_path):
    """A producer never closed (its code forgot ``async with``, or is still running): stopping the
    hub publishes what it holds before storage closes the file."""
    ref, path = spawn_storage(hub, "pm1/*", StorageOptions(data_dir=tmp_path), RunInfo(name="s"))
    power = Producer(hub, "pm1/power", unit="W", batch_rows=1000, batch_latency=3600)  # never due by itself
    await ref.wait_status(ActorStatus.RUNNING)
    for i in range(2500):
        power.append(float(i), T0 + i)
    assert power.published == 2000 and len(power.columns) == 500  # two batches out, 500 readings held
    await hub.stop()
    assert power.published == 2500 and len(power) == 0
    table = open_run(path).table("pm1/power")
    np.testing.assert_array_equal(table.column("value").to_numpy(), np.arange(2500, dtype=float))
    np.testing.assert_array_equal(table.column("timestamp_ns").to_numpy(), T0 + np.arange(2500, dtype=np.uint64))


async def test_code_failing_inside_the_producer_block_loses_no_reading(hub, tmp_path):
    ref, path = spawn_storage(hub, "pm1/*", StorageOptions(data_dir=tmp_path), RunInfo(name="f"))
    await ref.wait_status(ActorStatus.RUNNING)
    with pytest.raises(RuntimeError, match="driver fault"):
        async with Producer(hub, "pm1/power", unit="W", batch_rows=1000, batch_latency=3600) as power:
            for i in range(1500):
                await power.put(float(i), T0 + i)
            raise RuntimeError("driver fault")
    assert power.published == 1500
    await hub.stop()
    values = open_run(path).table("pm1/power").column("value").to_numpy()
    np.testing.assert_array_equal(values, np.arange(1500, dtype=float))


async def test_default_timestamps_are_taken_at_each_append_in_order(hub, tmp_path):
    ref, path = spawn_storage(hub, "pm1/*", StorageOptions(data_dir=tmp_path), RunInfo(name="t"))
    await ref.wait_status(ActorStatus.RUNNING)
    before = time.time_ns()
    async with Producer(hub, "pm1/power", unit="W", batch_rows=100) as power:  # 11 batches
        for i in range(1050):
            await power.put(float(i))
            if i == 524:
                middle = time.time_ns()
    after = time.time_ns()
    await hub.stop()
    table = open_run(path).table("pm1/power")
    stamps = table.column("timestamp_ns").to_numpy().astype(np.int64)
    np.testing.assert_array_equal(table.column("value").to_numpy(), np.arange(1050, dtype=float))
    assert (np.diff(stamps) >= 0).all()  # in append order, across every batch boundary
    assert before <= stamps[0] and stamps[524] <= middle <= stamps[525] and stamps[-1] <= after


async def test_a_lone_reading_is_published_after_the_batch_latency(hub):
    sub = hub.subscribe("pm1/power", delivery="latest", name="gui")
    power = Producer(hub, "pm1/power", unit="W", batch_rows=10_000, batch_latency=0.02)
    power.append(1.5e-3)
    stream, batch = await asyncio.wait_for(sub.get(), 5)  # no more readings, no flush: the deadline sends it
    assert stream == "pm1/power" and batch.column("value").to_pylist() == [1.5e-3]
    assert len(power) == 0


async def test_code_that_never_yields_to_the_event_loop_still_publishes_within_the_batch_latency(hub):
    """A blocking read, then put: the deadline's timer never gets to run, so put itself must publish."""
    sub = hub.subscribe("pm1/power", delivery="lossless", name="storage")
    power = Producer(hub, "pm1/power", unit="W", batch_rows=10_000, batch_latency=0.02)
    first = None
    for i in range(5):
        time.sleep(0.01)  # noqa: ASYNC251 -- the scenario: a driver's blocking read in the loop's thread
        await power.put(float(i))
        if first is None and power.published:
            first = i
    assert first is not None and first <= 3  # published by the put that found the oldest reading 20 ms old
    _, batch = await asyncio.wait_for(sub.get(), 5)
    assert batch.column("value").to_pylist() == [float(i) for i in range(first + 1)]
    await power.close()


async def consume_slowly(sub, got: list[float], rows: int) -> None:
    """Take ``rows`` values from ``sub`` a batch at a time, 1 ms a batch: a subscriber slower than the producer."""
    while len(got) < rows:
        _, batch = await sub.get()
        got.extend(batch.column("value").to_pylist())
        await asyncio.sleep(0.001)  # the thing tested: a subscriber slower than the producer


async def test_put_waits_for_a_full_lossless_subscriber_and_keeps_the_order(hub):
    slow = hub.subscribe("pm1/power", delivery="lossless", name="slow", max_bytes=20_000)
    got: list[float] = []
    consumer = asyncio.create_task(consume_slowly(slow, got, 5000))
    async with Producer(hub, "pm1/power", unit="W", batch_rows=100) as power:
        for i in range(5000):
            power.append(float(i))  # append alone never waits: batches queue in the producer
            if len(power) > 2000:
                await power.flush()  # ...until the caller waits for the hub
    await asyncio.wait_for(consumer, 30)
    assert got == [float(i) for i in range(5000)] and slow.drops == 0 and slow.alarms >= 1


async def test_put_stores_the_reading_at_once_and_waits_for_a_full_lossless_subscriber(hub):
    """``put`` is a plain call returning an awaitable: the reading is gathered before anything is
    awaited; where a batch is published and storage is full, awaiting it waits (the backpressure),
    so the producer never holds more than a batch beyond the subscriber's bound."""
    slow = hub.subscribe("pm1/power", delivery="lossless", name="slow", max_bytes=20_000)
    got: list[float] = []
    consumer = asyncio.create_task(consume_slowly(slow, got, 5000))
    held = []
    async with Producer(hub, "pm1/power", unit="W", batch_rows=100, batch_latency=3600) as power:
        pending = power.put(0.0, T0)
        assert len(power) == 1 and power.columns.n == 1  # gathered before it is awaited
        await pending
        for i in range(1, 5000):
            await power.put(float(i), T0 + i)
            held.append(len(power))
    await asyncio.wait_for(consumer, 30)
    assert got == [float(i) for i in range(5000)] and slow.drops == 0 and slow.alarms >= 1
    assert max(held) <= 2 * 100  # put waited: batches did not pile up in the producer


async def test_a_bad_reading_raises_keeps_nothing_of_it_and_the_next_ones_stay_aligned(hub):
    sub = hub.subscribe("pm1/power", delivery="lossless", name="all")
    async with Producer(hub, "pm1/power", unit="W", batch_rows=1000, batch_latency=3600) as power:
        await power.put(1.0, T0)
        with pytest.raises(TypeError):
            await power.put("1.5 mW", T0 + 1)  # a reply not parsed: not a number
        with pytest.raises(OverflowError):
            await power.put(2.0, -1)  # not a time since the epoch: the value is not kept either
        with pytest.raises(TypeError):
            power.append(2.0, "now")
        assert len(power) == 1
        await power.put(3.0, T0 + 3)
    _, batch = sub.pop()
    assert batch.column("value").to_pylist() == [1.0, 3.0]
    assert batch.column("timestamp_ns").to_pylist() == [T0, T0 + 3]


async def test_a_stream_declared_with_another_schema_is_refused(hub):
    from arrowdaq.data import vector_schema
    from arrowdaq.errors import StreamError

    hub.declare("scope1/trace", vector_schema("V", "s"), producer="scope1")
    with pytest.raises(StreamError, match="scope1/trace"):
        Producer(hub, "scope1/trace", unit="V")


CRASH_CHILD = """
import asyncio, json, sys
from arrowdaq.actors import ActorStatus
from arrowdaq.hub import InstrumentManager, Producer
from arrowdaq.storage import RunInfo, StorageOptions, spawn_storage

async def main(data_dir):
    hub = InstrumentManager()
    ref, path = spawn_storage(hub, "pm1/*", StorageOptions(data_dir=data_dir, chunk_rows=1000, flush_interval=3600),
                              RunInfo(name="crash"))
    power = Producer(hub, "pm1/power", unit="W", batch_rows=700, batch_latency=3600)
    await ref.wait_status(ActorStatus.RUNNING)
    n = 0
    for _ in range(7000):
        await power.put(float(n), n)
        n += 1
    await power.flush()
    status = await hub.command("storage", "flush")
    print(json.dumps({"path": str(path), "flushed": status["rows"]["pm1/power"]}), flush=True)
    while True:  # keep producing, never flushed again, until killed
        await power.put(float(n), n)
        n += 1
        if n == 7000 + 30_000:
            print("producing", flush=True)
        if n % 700 == 0:
            await asyncio.sleep(0)  # a yield, not a wait: the storage actor runs now and then

asyncio.run(main(sys.argv[1]))
"""


def test_kill_9_keeps_every_flushed_reading(tmp_path):
    proc = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(CRASH_CHILD), str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = proc.stdout.readline()
        assert line, proc.stderr.read()
        info = json.loads(line)
        assert proc.stdout.readline().strip() == "producing"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=30)
    assert info["flushed"] == 7000
    run = open_run(info["path"])
    assert not run.complete  # the file says the run ended without closing: readings after the last flush may be gone
    assert run.summary()[0].published >= 7000  # published to storage as of the last flush, all of them stored
    table = run.table("pm1/power")
    assert table.num_rows >= 7000  # every reading flushed is there, and only whole, correct rows
    np.testing.assert_array_equal(table.column("value").to_numpy(), np.arange(table.num_rows, dtype=float))
    np.testing.assert_array_equal(table.column("timestamp_ns").to_numpy(), np.arange(table.num_rows))
