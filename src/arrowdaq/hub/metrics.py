"""Counters and rates for streams and subscribers, cheap enough for every batch.

Totals are plain integers; rates come from a few samples of the totals taken at
most every half second, so an update costs three additions and one comparison.
"""

from __future__ import annotations

import time
from collections import deque


class FlowMeter:
    """Rows, batches and bytes through one stream or to one subscriber."""

    __slots__ = ("rows", "batches", "bytes", "_samples", "_next_sample")

    SAMPLE_EVERY = 0.5  # seconds between samples of the totals
    WINDOW = 3.0  # seconds of history the rates are computed over

    def __init__(self) -> None:
        self.rows = self.batches = self.bytes = 0
        now = time.monotonic()
        self._samples: deque[tuple[float, int, int, int]] = deque([(now, 0, 0, 0)])
        self._next_sample = now + self.SAMPLE_EVERY

    def add(self, rows: int, nbytes: int, now: float) -> None:
        self.rows += rows
        self.batches += 1
        self.bytes += nbytes
        if now >= self._next_sample:
            self._sample(now)

    def _sample(self, now: float) -> None:
        self._samples.append((now, self.rows, self.batches, self.bytes))
        self._next_sample = now + self.SAMPLE_EVERY
        while len(self._samples) > 2 and now - self._samples[1][0] >= self.WINDOW:
            self._samples.popleft()

    def snapshot(self) -> dict[str, float]:
        now = time.monotonic()
        if now >= self._next_sample:
            self._sample(now)  # so a stream that stopped shows its rate falling to 0
        t0, rows0, batches0, bytes0 = self._samples[0]
        dt = now - t0
        rate = (lambda total, then: (total - then) / dt) if dt > 0 else (lambda total, then: 0.0)
        return {
            "rows": self.rows,
            "batches": self.batches,
            "bytes": self.bytes,
            "rows_per_s": rate(self.rows, rows0),
            "batches_per_s": rate(self.batches, batches0),
            "bytes_per_s": rate(self.bytes, bytes0),
        }
