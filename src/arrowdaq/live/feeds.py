"""What the live service keeps for its clients: one feed per remote subscriber, and the last batch of every stream.

A feed is a hub subscription that a Flight thread drains. The hub fills it on
the event loop; a gRPC thread waits on it. So it is thread-safe (a lock and a
condition), and its ``offer`` never refuses a batch: the live service never
makes a producer wait (DESIGN section 8).

* ``latest``: the newest ``max_batches`` are kept, older ones are dropped and
  counted; the next batch the client gets says how many were dropped before it.
* ``lossless``: a bounded buffer; when it would overflow the feed is broken at
  that batch's sequence number and the call ends with "gap at seq N".

Every batch of a stream has a sequence number: the stream's batch count at
publish (0 for the first), the same for every client, so gaps are visible.

A stream declared again with other columns (each scan's ``scan/points``) cannot
change schema inside an open Flight stream: the feed takes no batch of the new
declaration, hands out what it holds, then ends with :class:`Redeclared`.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Mapping
from typing import Any, NamedTuple

import pyarrow as pa

from ..hub import Delivery, StreamSpec, Subscription
from ..hub.metrics import FlowMeter

#: Batches up to this size queued for a client go out together (one Flight message; see ClientFeed.next).
MERGE_BATCH_BYTES = 64 * 1024


class Handout(NamedTuple):
    """What :meth:`ClientFeed.next` hands the Flight thread: the first message's ``batches`` (one, or small
    ones merged) ending at ``seq``, with ``dropped`` before them, then ``following``: the published
    batches right after, one message each, sent by Arrow's C++ without a step of Python per message."""

    seq: int
    batches: list[pa.RecordBatch]
    dropped: int
    following: list[pa.RecordBatch]


class FeedBroken(Exception):
    """A lossless feed overflowed: the client fell behind at ``seq``."""

    def __init__(self, seq: int, queued: int) -> None:
        super().__init__(seq, queued)
        self.seq = seq
        self.queued = queued


class Redeclared(Exception):
    """The stream was declared again (another schema) after the feed opened: the client subscribes again."""


class ClientFeed(Subscription):
    """One remote client's buffer for one stream; see the module docstring."""

    def __init__(
        self,
        name: str,
        stream: str,
        counter: FlowMeter,
        delivery: Delivery | str = Delivery.LATEST,
        *,
        max_batches: int = 16,
        max_bytes: int = 64 * 2**20,
        streams: Mapping[str, StreamSpec] | None = None,
    ) -> None:
        """``streams``: the hub's declarations, to see ``stream`` declared again (None: never, as ``_events``)."""
        super().__init__(name, [stream], delivery, max_bytes=max_bytes, max_batches=max_batches)
        self.stream = stream
        self.client = ""  # who reads it (the x-arrowdaq-client header, else the peer), shown in ``status``
        self._counter = counter  # the stream's meter: its batch count is the sequence number
        self._cond = threading.Condition(threading.Lock())
        self._feed: deque[tuple[int, pa.RecordBatch, int, float]] = deque()
        self._skipped = 0  # dropped since the last batch handed out
        self.gap_at: int | None = None
        self._streams = streams
        self.declared = streams.get(stream) if streams is not None else None  # the declaration the client has
        if self.declared is not None:
            self._counter = self.declared.meter  # its own count (a new declaration counts from 0 again)
        self.redeclared = False
        #: The seq of the stream's last batch before this feed: what a heartbeat says until the first batch
        #: (so a client sees the first one come ``dropped + batches`` after it, as any other).
        self.start_seq = -1

    def mark_start(self, seq: int | None = None) -> None:
        """Note the stream's last seq as the feed starts (on the loop, as it is subscribed: no batch between)."""
        self.start_seq = self._counter.batches - 1 if seq is None else seq

    # --- the hub's side (event loop thread) --------------------------------------------
    def offer(self, stream: str, batch: pa.RecordBatch, nbytes: int, now: float, seq: int | None = None) -> bool:
        seq = self._counter.batches - 1 if seq is None else seq
        with self._cond:
            if self.closed or self.gap_at is not None or self.redeclared:
                self.drops += 1
                return True
            if self._streams is not None and self._streams.get(stream) is not self.declared:
                self.redeclared = True  # another schema: not for this Flight stream
                self._cond.notify()
                return True
            if self.delivery is Delivery.LATEST:
                while len(self._feed) >= self.max_batches:
                    _, _, old_bytes, _ = self._feed.popleft()
                    self._bytes -= old_bytes
                    self.drops += 1
                    self._skipped += 1
            elif self._feed and (len(self._feed) >= self.max_batches or self._bytes + nbytes > self.max_bytes):
                self.gap_at = seq
                self.drops += 1
                self._cond.notify()
                return True
            self._feed.append((seq, batch, nbytes, now))
            self._bytes += nbytes
            self._cond.notify()
        return True

    def close(self) -> None:
        with self._cond:
            super().close()
            self._cond.notify_all()

    def __len__(self) -> int:
        return len(self._feed)

    # --- the client's side (a Flight thread) ------------------------------------------
    def next(self, timeout: float, merge_bytes: int = 0, run_bytes: int = 0) -> Handout | None:
        """What to send next, or None after ``timeout`` s or when closed.

        With ``merge_bytes``, the small batches queued behind the first (each at most MERGE_BATCH_BYTES,
        together at most ``merge_bytes``) come with it: consecutive, to go as one message. With
        ``run_bytes``, the batches queued after that message (up to ``run_bytes`` in all; only large ones
        while small ones are merged, none empty) come as ``following``, one message each.

        Raises FeedBroken once a lossless feed has overflowed, Redeclared once the stream has another
        declaration, after the batches before have been handed out.
        """
        with self._cond:
            feed = self._feed
            if not feed and not self.closed and self.gap_at is None and not self.redeclared:
                self._cond.wait(timeout)
            if not feed:
                if self.gap_at is not None:
                    raise FeedBroken(self.gap_at, self.max_batches)
                if self.redeclared:
                    raise Redeclared(self.stream)
                return None
            seq, batch, nbytes, t_in = feed.popleft()
            batches = [batch]
            taken = nbytes
            if nbytes <= MERGE_BATCH_BYTES:
                while feed and feed[0][2] <= MERGE_BATCH_BYTES and taken + feed[0][2] <= merge_bytes:
                    seq, batch, nbytes, _ = feed.popleft()
                    batches.append(batch)
                    taken += nbytes
            rows = batch.num_rows if len(batches) == 1 else sum(b.num_rows for b in batches)
            following: list[pa.RecordBatch] = []
            while feed and taken + feed[0][2] <= run_bytes:
                _, batch, nbytes, _ = feed[0]
                if not batch.num_rows or (merge_bytes and nbytes <= MERGE_BATCH_BYTES):
                    break  # an empty batch would vanish in C++'s hands; small ones go merged, next time
                feed.popleft()
                following.append(batch)
                taken += nbytes
                rows += batch.num_rows
            self._bytes -= taken
            dropped, self._skipped = self._skipped, 0
        now = time.monotonic()
        self.last_lag = now - t_in
        self.max_lag = max(self.max_lag, self.last_lag)
        self.meter.add(rows, taken, now)
        return Handout(seq, batches, dropped, following)

    def pop(self) -> tuple[str, pa.RecordBatch] | None:  # the Subscription interface, for completeness
        item = self.next(0.0)
        return None if item is None else (self.stream, item.batches[0])

    def snapshot(self) -> dict[str, Any]:
        return {**super().snapshot(), "client": self.client, "queued": len(self._feed), "gap_at": self.gap_at}


class LastBatches(Subscription):
    """The newest batch of every stream and its sequence number (``latest()`` and a new client's first view).

    Costs one dict store per published batch; nothing is queued.
    """

    def __init__(self, streams: dict[str, StreamSpec], name: str = "live:last") -> None:
        super().__init__(name, ["*"], Delivery.LATEST, max_batches=1)
        self.last: dict[str, tuple[int, pa.RecordBatch]] = {}
        self._streams = streams  # the hub's declarations: their meters count the batches

    def offer(self, stream: str, batch: pa.RecordBatch, nbytes: int, now: float) -> bool:
        self.last[stream] = (self._streams[stream].meter.batches - 1, batch)
        return True

    def pop(self) -> None:
        return None

    def snapshot(self) -> dict[str, Any]:
        return {**super().snapshot(), "queued": 0, "streams": sorted(self.last)}
