"""Readings gathered one at a time into preallocated columns, taken as scalar batches.

Building a batch costs tens of microseconds whatever its size, so a source that
makes one reading at a time must not build one per reading. :class:`ReadingColumns`
stores each reading into preallocated NumPy columns (a few hundred nanoseconds)
and builds one batch when asked. It holds no lock: one thread fills it (the
event loop, or an instrument actor's worker thread) and the same thread takes it.
"""

from __future__ import annotations

import time

import numpy as np
import pyarrow as pa

from .builders import constant_string
from .schemas import scalar_schema

#: A batch with fewer rows than this share of the capacity gets copies of its rows
#: (the columns are reused); a fuller one takes the columns and new ones are allocated.
HAND_OVER_SHARE = 4


class ReadingColumns:
    """Up to ``capacity`` readings of one channel: ``append`` each, ``take`` a batch.

    >>> cols = ReadingColumns("power", "W", capacity=1000)
    >>> full = cols.append(1.5e-3)             # timestamp: now (ns since the epoch)
    >>> full = cols.append(1.6e-3, 1_700_000_000_000_000_000)
    >>> cols.take().num_rows
    2
    """

    __slots__ = ("channel", "unit", "capacity", "schema", "n", "first_at", "_values", "_stamps", "_strings")

    def __init__(
        self, channel: str, unit: str | None = None, capacity: int = 10_000, schema: pa.Schema | None = None
    ) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1 reading, got {capacity}")
        self.channel = channel
        self.unit = unit
        self.capacity = capacity
        self.schema = schema or scalar_schema(unit)  # a declared scalar schema (with its long_name, say)
        self.n = 0
        self.first_at = 0.0  # time.monotonic() of the first reading gathered (0 when empty)
        # channel and unit are constant: one dictionary column of full length, sliced per batch
        self._strings = (constant_string(channel, capacity), constant_string(unit, capacity))
        self._values = np.empty(capacity, np.float64)
        self._stamps = np.empty(capacity, np.uint64)

    def __len__(self) -> int:
        return self.n

    @property
    def full(self) -> bool:
        return self.n >= self.capacity

    def append(self, value: float, timestamp_ns: int | None = None) -> bool:
        """Store one reading (timestamp default: now); True when the columns are full."""
        i = self.n
        if i == 0:
            self.first_at = time.monotonic()
        self._values[i] = value
        self._stamps[i] = time.time_ns() if timestamp_ns is None else timestamp_ns
        self.n = i = i + 1
        return i >= self.capacity

    def extend(self, values: np.ndarray, timestamps_ns: np.ndarray) -> int:
        """Store as many of ``values`` as fit (with their timestamps); returns how many were taken."""
        i = self.n
        k = min(len(values), self.capacity - i)
        if k and i == 0:
            self.first_at = time.monotonic()
        self._values[i : i + k] = values[:k]
        self._stamps[i : i + k] = timestamps_ns[:k]
        self.n = i + k
        return k

    def take(self) -> pa.RecordBatch | None:
        """The gathered readings as a scalar batch (None when empty); the columns start over."""
        n = self.n
        if n == 0:
            return None
        if n * HAND_OVER_SHARE >= self.capacity:  # the batch takes the arrays: no copy
            values, stamps = self._values[:n], self._stamps[:n]
            self._values = np.empty(self.capacity, np.float64)
            self._stamps = np.empty(self.capacity, np.uint64)
            channel, unit = (s.slice(0, n) for s in self._strings)
        else:  # a small batch must not keep the whole columns alive
            values, stamps = self._values[:n].copy(), self._stamps[:n].copy()
            channel, unit = constant_string(self.channel, n), constant_string(self.unit, n)
        self.n = 0
        self.first_at = 0.0
        return pa.RecordBatch.from_arrays([pa.array(stamps), channel, pa.array(values), unit], schema=self.schema)
