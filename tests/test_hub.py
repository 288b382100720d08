"""The hub: declared streams, glob subscriptions, lossless and latest delivery, metrics."""

from __future__ import annotations

import asyncio

import numpy as np
import pyarrow as pa
import pytest

from arrowdaq.actors import Actor, ActorStatus, Role
from arrowdaq.data import constant_string, scalar_batch, scalar_schema
from arrowdaq.errors import SchemaError, StreamError
from arrowdaq.hub import batch_memory

from .waiting import wait_until_async


def batch(i: int, rows: int = 10) -> pa.RecordBatch:
    return scalar_batch(np.arange(rows) + i * rows, channel="power", unit="W", timestamps_ns=np.arange(rows) + i * rows)


class Producer(Actor):
    role = Role.SOURCE

    def __init__(self, hub, stream, n, finished: asyncio.Event | None = None):
        self.hub, self.stream, self.n, self.finished = hub, stream, n, finished

    async def handle(self, message):
        for i in range(self.n):
            await self.hub.publish(self.stream, batch(i))
        if self.finished is not None:
            self.finished.set()


class Recorder(Actor):
    """A lossless sink that is slower than its producer."""

    role = Role.SINK
    received: list

    async def on_batch(self, stream, b):
        self.received.append((stream, b))
        await asyncio.sleep(0.001)  # the thing tested: a sink slower than its producer


async def test_the_lossless_bound_counts_the_memory_a_small_batch_really_holds(hub):
    """A 1-row batch has 44 bytes of buffers but holds ~3.5 KB (its Arrow and Python objects):
    a 1 MB bound admits a few hundred of them, not ~24,000."""
    hub.declare("pm1/power", scalar_schema("W"), producer="pm1")
    sub = hub.subscribe("pm1/power", name="bounded", max_bytes=1_000_000)
    one = scalar_batch([1.0], channel="power", unit="W", timestamps_ns=1)
    assert one.get_total_buffer_size() < 100 and batch_memory(one) > 3000
    admitted = 0
    while sub.offer("pm1/power", one, batch_memory(one), 0.0):
        admitted += 1
    assert 250 <= admitted <= 1_000_000 // 3000
    assert sub.queued_bytes <= 1_000_000
    published = asyncio.ensure_future(hub.publish("pm1/power", one))  # the hub's producer now waits
    await wait_until_async(lambda: sub.alarms == 1, message="the full subscription's alarm")
    assert not published.done()
    await sub.get()
    await published
    assert len(sub) == admitted


async def test_lossless_subscriber_gets_every_batch_in_order_across_a_stop(hub):
    hub.declare("pm1/power", scalar_schema("W"), producer="pm1")
    received: list = []

    def recorder():
        r = Recorder()
        r.received = received
        return r

    finished = asyncio.Event()
    hub.spawn("pm1", lambda: Producer(hub, "pm1/power", 200, finished), role=Role.SOURCE)
    hub.spawn("storage", recorder, role=Role.SINK, inputs="pm1/*", max_bytes=20_000)
    await hub.actor("pm1").tell("go")
    await asyncio.wait_for(finished.wait(), 60)  # the producer waited for space on the way: a loaded machine is slow
    assert len(received) < 200  # stop while the sink is still behind
    await hub.stop()
    assert len(received) == 200
    values = np.concatenate([b.column("value").to_numpy() for _, b in received])
    assert np.array_equal(values, np.arange(2000))
    sub = hub.subscriptions[0]
    assert sub.drops == 0 and sub.alarms >= 1  # the producer waited, and it was reported
    assert any("is full" in getattr(e, "message", "") for e in hub.recent_events)


async def test_latest_subscriber_that_stalls_drops_oldest_and_slows_no_one(hub):
    hub.declare("cam1/frames", scalar_schema("W"), producer="cam1")
    stalled = hub.subscribe("cam1/*", delivery="latest", max_batches=4, name="gui")
    lossless = hub.subscribe("cam1/frames", delivery="lossless", name="storage")
    for i in range(1000):
        await hub.publish("cam1/frames", batch(i))
    assert len(stalled) == 4 and stalled.drops == 996
    kept = [stalled.pop()[1].column("value")[0].as_py() for _ in range(4)]
    assert kept == [9960.0, 9970.0, 9980.0, 9990.0]  # the newest survive
    assert len(lossless) == 1000 and lossless.drops == 0
    assert hub.status()["subscribers"]["gui"]["drops"] == 996
    assert lossless.alarms == 0 and stalled.alarms == 0  # no producer ever waited


async def test_glob_subscription_matches_streams_declared_later(hub):
    sub = hub.subscribe(["scope1/*", "pm?/power"], name="s")
    hub.declare("scope1/trace", scalar_schema("V"), producer="scope1")
    hub.declare("pm1/power", scalar_schema("W"), producer="pm1")
    hub.declare("laser/power", scalar_schema("W"), producer="laser")
    assert sub.streams == ["scope1/trace", "pm1/power"]
    await hub.publish("laser/power", batch(0))
    await hub.publish("pm1/power", batch(1))
    stream, got = sub.pop()
    assert stream == "pm1/power" and sub.pop() is None


async def test_invalid_batches_are_refused_naming_the_field(hub):
    hub.declare("pm1/power", scalar_schema("W"), producer="pm1")
    wrong = pa.record_batch({"timestamp_ns": pa.array([1], pa.uint64()), "channel": ["p"], "value": [1], "unit": ["W"]})
    with pytest.raises(SchemaError, match=r"stream 'pm1/power': field 'value': expected double, got int64"):
        await hub.publish("pm1/power", wrong)
    with_nulls = pa.record_batch(
        {"timestamp_ns": pa.array([1, 2], pa.uint64()), "channel": ["p", "p"], "value": [1.0, None], "unit": ["W", "W"]}
    )
    with pytest.raises(SchemaError, match=r"stream 'pm1/power': field 'value' has 1 null\(s\)"):
        await hub.publish("pm1/power", with_nulls)
    smuggled = pa.RecordBatch.from_arrays(  # the declared schema, but a null inside: Arrow does not refuse it
        [pa.array([1, 2], pa.uint64()), constant_string("p", 2), pa.array([1.0, None]), constant_string("W", 2)],
        schema=scalar_schema("W"),
    )
    assert smuggled.schema.equals(hub.streams["pm1/power"].schema)
    with pytest.raises(SchemaError, match=r"stream 'pm1/power': field 'value' has 1 null\(s\)"):
        await hub.publish("pm1/power", smuggled)
    with pytest.raises(SchemaError, match="got dict"):
        await hub.publish("pm1/power", {"value": 1.0})
    with pytest.raises(StreamError, match=r"unknown stream 'pm2/power' \(streams: pm1/power\)"):
        await hub.publish("pm2/power", batch(0))


async def test_only_batches_a_builder_made_skip_the_null_counts(hub):
    """The builders' batches have no validity buffer in their not-null columns, so the hub does not
    count their nulls (the per-batch cost); any other batch is counted, even one made of a built
    batch's columns, and a built batch whose channel is None (nulls in a not-null column) too."""
    hub.declare("pm1/power", scalar_schema("W"), producer="pm1")
    sub = hub.subscribe("pm1/*", name="all")
    built = scalar_batch([1.0, 2.0], channel="p", unit="W", timestamps_ns=[1, 2])
    await hub.publish("pm1/power", built)
    assert sub.pop()[1] is built
    columns = [built.column(0), constant_string("p", 2), pa.array([1.0, None]), built.column(3)]
    for _ in range(3000):  # through the sweeps of the table of built batches: a dead entry never vouches
        remade = pa.RecordBatch.from_arrays(columns, schema=built.schema)
        with pytest.raises(SchemaError, match=r"field 'value' has 1 null\(s\)"):
            await hub.publish("pm1/power", remade)
        scalar_batch([1.0], channel="p", unit="W")  # built and dropped at once: its id is free again
    no_channel = scalar_batch([1.0, 2.0], channel=None, unit="W", timestamps_ns=[1, 2])
    with pytest.raises(SchemaError, match=r"field 'channel' has 2 null\(s\)"):
        await hub.publish("pm1/power", no_channel)
    assert sub.pop() is None


async def test_stream_names_and_redeclaration_are_checked(hub):
    with pytest.raises(StreamError, match="must look like"):
        hub.declare("power", scalar_schema())
    hub.declare("pm1/power", scalar_schema("W"), producer="pm1")
    hub.declare("pm1/power", scalar_schema("W"), producer="pm1")  # idempotent, e.g. after a restart
    with pytest.raises(StreamError, match="already declared"):
        hub.declare("pm1/power", scalar_schema("mW"), producer="pm1")


async def test_metrics_per_stream_and_subscriber(hub):
    hub.declare("pm1/power", scalar_schema("W"), producer="pm1")
    sub = hub.subscribe("pm1/power", name="storage")
    for i in range(20):
        await hub.publish("pm1/power", batch(i))
    for _ in range(5):
        sub.pop()
    status = hub.status()
    stream = status["streams"]["pm1/power"]
    assert stream["rows"] == 200 and stream["batches"] == 20 and stream["bytes"] > 0
    assert stream["producer"] == "pm1" and stream["kind"] == "scalar"
    s = status["subscribers"]["storage"]
    assert s["queued"] == 15 and s["rows"] == 50 and s["drops"] == 0 and s["lag_s"] >= 0


async def test_commands_are_routed_with_ask(hub):
    class Laser(Actor):
        async def on_start(self):
            self.nm = 800.0

        async def handle(self, command):
            if command.action == "set_wavelength":
                self.nm = float(command.args["nm"])
            return self.nm

    hub.spawn("laser", Laser, role=Role.SOURCE)
    assert await hub.command("laser", "set_wavelength", nm=780) == 780.0
    with pytest.raises(Exception, match="no actor named 'lazer'"):
        await hub.command("lazer", "get")


async def test_a_failed_consumer_never_blocks_its_producer(hub):
    class Crashing(Actor):
        role = Role.SINK

        async def on_batch(self, stream, b):
            raise OSError("disk full")

    hub.declare("pm1/power", scalar_schema("W"), producer="pm1")
    ref = hub.spawn("storage", Crashing, inputs="pm1/power", max_bytes=1000)
    other = hub.subscribe("pm1/power", name="other")
    async with asyncio.timeout(5):
        for i in range(100):
            await hub.publish("pm1/power", batch(i))
            await asyncio.sleep(0)  # the crashing sink gets its turn between batches, as with a real producer
        await ref.wait_status(ActorStatus.FAILED)
        for i in range(100, 120):
            await hub.publish("pm1/power", batch(i))
    assert len(other) == 120
    assert hub.status()["actors"]["storage"]["error"] == "OSError: disk full"


async def test_a_subscription_can_be_read_with_async_for_until_closed(hub):
    hub.declare("pm1/power", scalar_schema("W"), producer="pm1")
    sub = hub.subscribe("pm1/*", delivery="latest", max_batches=100, name="notebook")
    for i in range(3):
        await hub.publish("pm1/power", batch(i))
    sub.close()
    got = [(stream, b.column("value")[0].as_py()) async for stream, b in sub]
    assert got == [("pm1/power", 0.0), ("pm1/power", 10.0), ("pm1/power", 20.0)]


def test_rates_follow_the_stream_and_fall_to_zero_when_it_stops(monkeypatch):
    from arrowdaq.hub import metrics

    clock = [1000.0]
    monkeypatch.setattr(metrics.time, "monotonic", lambda: clock[0])
    meter = metrics.FlowMeter()
    for _ in range(50):  # 10 rows every 0.1 s for 5 s
        clock[0] += 0.1
        meter.add(10, 80, clock[0])
    assert meter.snapshot()["rows_per_s"] == pytest.approx(100, rel=0.05)
    clock[0] += 10  # the device stopped publishing
    meter.snapshot()
    clock[0] += 0.5
    assert meter.snapshot()["rows_per_s"] == 0.0
    assert meter.rows == 500


async def test_a_stalled_lossless_subscriber_raises_one_alarm_per_stall(hub):
    hub.declare("pm1/power", scalar_schema("W"), producer="pm1")
    capacity = 20
    sub = hub.subscribe("pm1/power", name="slow", max_bytes=capacity * batch_memory(batch(0)))
    received = []

    async def consume_slowly():  # slower than the producer: the buffer stays full, batch after batch
        while len(received) < capacity + 10:
            await asyncio.sleep(0.005)  # the thing tested: a consumer slower than the producer
            received.append(await sub.get())

    consumer = asyncio.create_task(consume_slowly())
    for i in range(capacity + 10):
        await hub.publish("pm1/power", batch(i))
    await consumer
    assert len(received) == capacity + 10 and sub.drops == 0
    assert sub.alarms == 1
    assert sum(1 for e in hub.recent_events if "is full" in getattr(e, "message", "")) == 1
