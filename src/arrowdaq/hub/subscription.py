"""Subscriptions: a subscriber's own buffer, filled by the hub under a delivery mode.

* ``lossless`` (storage): bounded by the memory its batches hold. When full, the *producer* waits and an
  alarm is raised. Nothing is dropped silently.
* ``latest`` (GUI, live clients): keeps the newest N batches; the oldest are
  dropped and counted.

Each subscriber has its own buffer, so a slow one stalls only itself (or, when
lossless, its producers), never the hub or the other subscribers.
"""

from __future__ import annotations

import asyncio
import fnmatch
import time
from collections import deque
from collections.abc import Callable, Iterable
from enum import Enum
from typing import Any

import pyarrow as pa

from .metrics import FlowMeter

#: Default bound of a lossless buffer: the memory its batches hold (see :func:`batch_memory`).
LOSSLESS_MAX_BYTES = 64 * 2**20
#: Memory a batch holds besides its buffers: the RecordBatch and Array objects (C++ and Python),
#: measured ~3.5 KB for a 4-column batch of one row; a 1-row batch's buffers are 44 bytes.
BATCH_OVERHEAD = 512
COLUMN_OVERHEAD = 768


def batch_memory(batch: pa.RecordBatch, buffers: int | None = None) -> int:
    """The memory a batch holds: its buffers (``buffers``, when the caller has their size already)
    plus the objects around them.

    Counting only the buffers let a lossless buffer of 256 MiB admit ~6 M
    one-row batches (~22 GiB) before any backpressure."""
    size = batch.get_total_buffer_size() if buffers is None else buffers
    return size + BATCH_OVERHEAD + COLUMN_OVERHEAD * batch.num_columns


def matches_any(stream: str, patterns: Iterable[str]) -> bool:
    """True when ``stream`` matches one of the glob patterns (``'pm1/*'``, ``'*/power'``)."""
    return any(fnmatch.fnmatchcase(stream, p) for p in patterns)


class Delivery(str, Enum):
    """How a subscriber gets batches: every one (producers wait), or the newest (old ones dropped, counted)."""

    LOSSLESS = "lossless"
    LATEST = "latest"


class Subscription:
    """A buffer of ``(stream, batch)`` items for one subscriber.

    Use it from an actor (``ref.attach(sub)``: items arrive at ``on_batch``) or
    directly: ``async for stream, batch in sub`` / ``await sub.get()``.
    """

    def __init__(
        self,
        name: str,
        patterns: Iterable[str],
        delivery: Delivery | str = Delivery.LOSSLESS,
        *,
        max_bytes: int = LOSSLESS_MAX_BYTES,
        max_batches: int = 16,
        on_alarm: Callable[[Subscription, str], None] | None = None,
    ) -> None:
        self.name = name
        self.patterns = tuple(patterns)
        self.delivery = Delivery(delivery)
        self.max_bytes = max_bytes
        self.max_batches = max_batches
        self.streams: list[str] = []  # declared streams this subscription matched
        self.meter = FlowMeter()
        self.drops = 0
        self.alarms = 0
        self.last_lag = 0.0
        self.max_lag = 0.0
        self.closed = False
        self._items: deque[tuple[str, pa.RecordBatch, int, float]] = deque()
        self._bytes = 0
        self._waker: asyncio.Event | None = None
        self._ready = asyncio.Event()
        self._space = asyncio.Event()
        self._space.set()
        self._on_alarm = on_alarm
        self._stalled = False  # an alarm was raised and the buffer has not drained since

    def __repr__(self) -> str:
        return f"<Subscription {self.name} {self.delivery.value} {self.patterns}>"

    def matches(self, stream: str) -> bool:
        return matches_any(stream, self.patterns)

    def __len__(self) -> int:
        return len(self._items)

    @property
    def queued_bytes(self) -> int:
        return self._bytes

    # --- producer side (the hub) ---------------------------------------------------
    def offer(self, stream: str, batch: pa.RecordBatch, nbytes: int, now: float) -> bool:
        """Take the batch if its delivery allows now; False means: lossless and full, wait.

        ``nbytes`` is the memory the batch holds (:func:`batch_memory`)."""
        if self.closed:
            self.drops += 1
            return True
        if self.delivery is Delivery.LATEST:
            while len(self._items) >= self.max_batches:
                _, _, old_bytes, _ = self._items.popleft()
                self._bytes -= old_bytes
                self.drops += 1
        elif self._items and self._bytes + nbytes > self.max_bytes:
            self._space.clear()
            return False
        self._items.append((stream, batch, nbytes, now))
        self._bytes += nbytes
        self._ready.set()
        if self._waker is not None:
            self._waker.set()
        return True

    async def put(self, stream: str, batch: pa.RecordBatch, nbytes: int) -> None:
        """Offer, and while a lossless buffer is full wait for space.

        The alarm is raised once per stall: when the buffer fills, not for every
        batch that then waits; it re-arms once the subscriber has emptied its buffer.
        """
        if self.offer(stream, batch, nbytes, time.monotonic()):
            return
        if not self._stalled:
            self._stalled = True
            self.alarms += 1
            if self._on_alarm is not None:
                self._on_alarm(self, stream)
        while not self.offer(stream, batch, nbytes, time.monotonic()):
            await self._space.wait()

    # --- consumer side ----------------------------------------------------------
    def set_waker(self, event: asyncio.Event | None) -> None:
        self._waker = event
        if event is not None and self._items:
            event.set()

    def pop(self) -> tuple[str, pa.RecordBatch] | None:
        """The oldest item, or None when empty."""
        if not self._items:
            self._ready.clear()
            return None
        stream, batch, nbytes, t_in = self._items.popleft()
        self._bytes -= nbytes
        now = time.monotonic()
        self.last_lag = now - t_in
        self.max_lag = max(self.max_lag, self.last_lag)
        self.meter.add(batch.num_rows, nbytes, now)
        if not self._space.is_set():
            self._space.set()
        if self._stalled and not self._items:
            self._stalled = False  # caught up: the next stall is a new one
        return stream, batch

    async def get(self) -> tuple[str, pa.RecordBatch]:
        """Wait for the next item."""
        while (item := self.pop()) is None:
            if self.closed:
                raise EOFError(f"subscription {self.name!r} is closed")
            await self._ready.wait()
        return item

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> tuple[str, pa.RecordBatch]:
        try:
            return await self.get()
        except EOFError:
            raise StopAsyncIteration from None

    def close(self) -> None:
        """Stop accepting; producers waiting on this buffer are released."""
        self.closed = True
        self._space.set()
        self._ready.set()

    def snapshot(self) -> dict[str, Any]:
        return {
            "delivery": self.delivery.value,
            "patterns": list(self.patterns),
            "streams": list(self.streams),
            "queued": len(self._items),
            "queued_bytes": self._bytes,
            "drops": self.drops,
            "alarms": self.alarms,
            "lag_s": self.last_lag,
            "max_lag_s": self.max_lag,
            "closed": self.closed,
            **self.meter.snapshot(),
        }
