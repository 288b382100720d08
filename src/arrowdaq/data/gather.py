"""Readings gathered one at a time into growing columns, taken as scalar batches.

Building a batch costs tens of microseconds whatever its size, so a source that
makes one reading at a time must not build one per reading. :class:`ReadingColumns`
appends each reading to two ``array.array`` columns (values and timestamps: an
append is ~3x cheaper than storing into a NumPy array by index) and builds one
batch when asked, handing the arrays' memory to Arrow without a copy. It holds
no lock: one thread fills it (the event loop, or an instrument actor's worker
thread) and the same thread takes it.
"""

from __future__ import annotations

import time
from array import array

import pyarrow as pa

from .builders import constant_string
from .schemas import scalar_schema
from .validate import null_free

_UINT64, _FLOAT64 = pa.uint64(), pa.float64()


class ReadingColumns:
    """Up to ``capacity`` readings of one channel: ``append`` each, ``take`` a batch.

    >>> cols = ReadingColumns("power", "W", capacity=1000)
    >>> full = cols.append(1.5e-3)             # timestamp: now (ns since the epoch)
    >>> full = cols.append(1.6e-3, 1_700_000_000_000_000_000)
    >>> cols.take().num_rows
    2
    """

    __slots__ = ("channel", "unit", "capacity", "schema", "n", "first_at", "values", "stamps")

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
        #: The columns being filled. ``append`` is the way in; a caller whose per-reading path cannot afford
        #: the call (``Producer.put``: ~10 % of its instructions) does what it does itself, in the same order.
        self.values = array("d")
        self.stamps = array("Q")

    def __len__(self) -> int:
        return self.n

    @property
    def full(self) -> bool:
        return self.n >= self.capacity

    def append(self, value: float, timestamp_ns: int | None = None) -> bool:
        """Store one reading (timestamp default: now); True when the columns are full."""
        n = self.n
        if n == 0:
            self.first_at = time.monotonic()
        self.values.append(value)  # a value that is not a number raises here, before anything is stored
        try:
            self.stamps.append(time.time_ns() if timestamp_ns is None else timestamp_ns)
        except BaseException:  # not a time in ns since the epoch (or interrupted): the value goes too
            self.values.pop()
            raise
        self.n = n = n + 1
        return n >= self.capacity

    def extend(self, values: object, timestamps_ns: object) -> int:
        """Store as many of ``values`` as fit (with their timestamps: NumPy arrays or sequences);
        returns how many were taken."""
        k = min(len(values), self.capacity - self.n)  # type: ignore[arg-type]
        if k and self.n == 0:
            self.first_at = time.monotonic()
        self.values.extend(array("d", values[:k]))  # type: ignore[index]
        self.stamps.extend(array("Q", timestamps_ns[:k]))  # type: ignore[index]
        self.n += k
        return k

    def take(self) -> pa.RecordBatch | None:
        """The gathered readings as a scalar batch (None when empty); the columns start over.

        The batch takes the arrays' memory (no copy); new, empty arrays take their place."""
        n = self.n
        if n == 0:
            return None
        values, stamps = self.values, self.stamps
        self.values, self.stamps = array("d"), array("Q")
        self.n = 0
        self.first_at = 0.0
        columns = [
            pa.Array.from_buffers(_UINT64, n, [None, pa.py_buffer(stamps)]),
            constant_string(self.channel, n),
            pa.Array.from_buffers(_FLOAT64, n, [None, pa.py_buffer(values)]),
            constant_string(self.unit, n),
        ]
        return null_free(pa.RecordBatch.from_arrays(columns, schema=self.schema))  # no validity buffers
