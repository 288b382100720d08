"""Publishing readings one at a time: gathered into batches at the source.

A batch costs the hub and storage tens of microseconds whatever its size, so a
source that makes one reading at a time gathers them (:class:`~arrowdaq.data.gather.ReadingColumns`,
a few hundred nanoseconds a reading) and publishes a batch when ``batch_rows``
readings have gathered or the oldest is ``batch_latency`` seconds old (checked by a timer,
and by each ``put``/``append``, so that code that never yields to the event loop still publishes)::

    async with Producer(hub, "pm1/power", unit="W") as power:   # declares the stream
        while measuring:
            await power.put(read_power())        # or power.append(v) where awaiting is not possible
    # leaving the block publishes what is gathered: nothing is lost at stop

``hub.stop()`` also publishes what a producer still holds, before it stops any actor.
``append`` never waits. ``put`` stores the reading at once (a plain call, not a
coroutine) and returns an awaitable that is already done except where a batch
is published: there awaiting it lets the subscribers run, and waits while a
lossless subscriber (storage) is full, which is the backpressure. Use it from the event loop's thread; a worker
thread fills its own :class:`~arrowdaq.data.gather.ReadingColumns` and hands whole batches over.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable

import pyarrow as pa

from ..data.gather import ReadingColumns
from .manager import InstrumentManager
from .subscription import Subscription

_time_ns = time.time_ns

#: Readings per batch at most, and seconds a reading waits at most before it is published.
BATCH_ROWS = 10_000
BATCH_LATENCY = 0.02


class Producer:
    """A scalar stream published one reading at a time, gathered into batches (see :mod:`arrowdaq.hub.producer`).

    Why: a batch costs the hub and storage tens of microseconds whatever its size, a reading
    gathered here about one; so a source reading a value at a time stays fast.

    Args:
        hub: the hub to publish into; the stream is declared on it at once.
        stream: ``<producer>/<name>``, e.g. ``"pm1/power"``.
        unit: the values' unit (field metadata, shown by every viewer).
        channel: the ``channel`` column (default: the part of ``stream`` after the slash).
        producer: who publishes it (default: the part before the slash).
        batch_rows: readings per batch at most.
        batch_latency: seconds a reading waits at most before it is published.
    """

    def __init__(
        self,
        hub: InstrumentManager,
        stream: str,
        *,
        unit: str | None = None,
        channel: str | None = None,
        producer: str | None = None,
        batch_rows: int = BATCH_ROWS,
        batch_latency: float = BATCH_LATENCY,
    ) -> None:
        if not batch_latency > 0:
            raise ValueError(f"stream {stream!r}: batch_latency must be > 0 s, got {batch_latency!r}")
        self.hub = hub
        self.stream = stream
        self.batch_latency = batch_latency
        self.columns = ReadingColumns(channel or stream.rsplit("/", 1)[-1], unit, batch_rows)
        hub.declare(stream, self.columns.schema, producer=producer or stream.split("/", 1)[0])
        self.published = 0  # readings handed to the hub
        self._backlog: deque[tuple[pa.RecordBatch, list[Subscription] | None]] = deque()
        self._draining: asyncio.Task[None] | None = None
        self._deadline: asyncio.TimerHandle | None = None
        self._loop = asyncio.get_running_loop()
        self._ready: asyncio.Future[None] = self._loop.create_future()  # what put() returns with nothing to wait for
        self._ready.set_result(None)
        hub.gatherers.add(self)  # hub.stop() publishes what is still gathered

    def __len__(self) -> int:
        """Readings gathered and not yet published."""
        return len(self.columns) + sum(b.num_rows for b, _ in self._backlog)

    # --- gathering -----------------------------------------------------------------
    def append(self, value: float, timestamp_ns: int | None = None) -> None:
        """Gather one reading (timestamp default: now); never waits."""
        columns = self.columns
        if columns.append(value, timestamp_ns) or time.monotonic() - columns.first_at >= self.batch_latency:
            self._publish_gathered()
        elif columns.n == 1:
            self._deadline = self._loop.call_later(self.batch_latency, self._publish_gathered)

    def put(self, value: float, timestamp_ns: int | None = None) -> Awaitable[None]:
        """Gather one reading now and return what to await: ``await power.put(v)``.

        The reading is stored before ``put`` returns (a plain call: no coroutine per reading).
        What it returns is already done, unless a batch has just been handed to the hub (then
        awaiting it lets the subscribers run once) or batches wait for a full lossless subscriber
        (then awaiting it waits for them: the backpressure). A value that is not a number or a
        timestamp that is not ns since the epoch raises, and nothing of that reading is kept."""
        columns = self.columns  # ReadingColumns.append inlined: this is the per-reading path
        n = columns.n
        if n == 0:
            columns.first_at = time.monotonic()
        columns.values.append(value)  # a value that is not a number raises here, before anything is stored
        try:
            columns.stamps.append(_time_ns() if timestamp_ns is None else timestamp_ns)
        except BaseException:  # not a time in ns since the epoch (or interrupted): the value goes too
            columns.values.pop()
            raise
        columns.n = n = n + 1
        # Due by count, or by age checked here too: the deadline's timer fires only when the loop
        # runs, and a loop that awaits nothing but put (a blocking read, then put) never lets it.
        if n >= columns.capacity or time.monotonic() - columns.first_at >= self.batch_latency:
            self._publish_gathered()
            return self._handed_over()
        if n == 1:
            self._deadline = self._loop.call_later(self.batch_latency, self._publish_gathered)
        return self._wait_backlog() if self._backlog else self._ready

    async def flush(self) -> None:
        """Publish what is gathered now, and wait until every batch is with the hub."""
        self._publish_gathered()
        await self._wait_backlog()

    async def close(self) -> None:
        """Publish everything gathered (nothing is lost at stop)."""
        await self.flush()

    async def __aenter__(self) -> Producer:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # --- publishing ----------------------------------------------------------------------
    def _publish_gathered(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        batch = self.columns.take()
        if batch is None:
            return
        self.published += batch.num_rows
        if self._backlog:  # behind earlier batches still waiting: keep the order
            self._backlog.append((batch, None))
            return
        waiting = self.hub.publish_nowait(self.stream, batch)
        if waiting:
            self._backlog.append((batch, waiting))
            self._start_draining()

    def _start_draining(self) -> asyncio.Task[None]:
        if self._draining is None or self._draining.done():
            self._draining = self._loop.create_task(self._drain(), name=f"producer-{self.stream}")
        return self._draining

    async def _handed_over(self) -> None:
        await asyncio.sleep(0)  # a batch just left: let its subscribers (storage) run
        await self._wait_backlog()

    async def _wait_backlog(self) -> None:
        while self._backlog:  # one task drains; a cancelled put does not cancel it
            await asyncio.shield(self._start_draining())

    async def _drain(self) -> None:
        """Hand the held-back batches to their subscribers, in order."""
        while self._backlog:
            batch, waiting = self._backlog[0]
            if waiting is None:
                await self.hub.publish(self.stream, batch)
            else:
                await self.hub.deliver(self.stream, batch, waiting)
            self._backlog.popleft()
