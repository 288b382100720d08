"""Counters and rates for streams and subscribers, cheap enough for every batch."""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field


class RateMeter:
    """Totals plus a rate over the last few seconds (one clock read per update)."""

    SAMPLE_EVERY = 0.5
    WINDOW = 3.0

    def __init__(self) -> None:
        self.total = 0
        self._samples: deque[tuple[float, int]] = deque([(time.monotonic(), 0)])

    def add(self, n: int, now: float) -> None:
        self.total += n
        if now - self._samples[-1][0] >= self.SAMPLE_EVERY:
            self._samples.append((now, self.total))
            while len(self._samples) > 2 and now - self._samples[0][0] > self.WINDOW:
                self._samples.popleft()

    def rate(self, now: float | None = None) -> float:
        now = time.monotonic() if now is None else now
        t0, n0 = self._samples[0]
        dt = now - t0
        return (self.total - n0) / dt if dt > 0 else 0.0


@dataclass
class FlowMeter:
    """Rows, batches and bytes through one stream or to one subscriber."""

    rows: RateMeter = field(default_factory=RateMeter)
    batches: RateMeter = field(default_factory=RateMeter)
    bytes: RateMeter = field(default_factory=RateMeter)

    def add(self, rows: int, nbytes: int, now: float) -> None:
        self.rows.add(rows, now)
        self.batches.add(1, now)
        self.bytes.add(nbytes, now)

    def snapshot(self) -> dict[str, float]:
        now = time.monotonic()
        return {
            "rows": self.rows.total,
            "batches": self.batches.total,
            "bytes": self.bytes.total,
            "rows_per_s": self.rows.rate(now),
            "batches_per_s": self.batches.rate(now),
            "bytes_per_s": self.bytes.rate(now),
        }
