"""Batches as they go on the wire: string columns plain, not dictionary-encoded.

pyarrow.flight's GeneratorStream (the only do_get that carries per-batch app
metadata) sends no dictionary messages, so a dictionary-encoded column cannot
cross it; and readers get plain strings everywhere else too (DESIGN section 2).
``channel`` and ``unit`` are constant within a stream, so the plain column is
built from its one value (and cached per length) instead of decoded row by row
(measured: decoding a 10,000-row column costs ~400 µs, this ~30 µs).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from ..data.schemas import plain_schema


class WireFormat:
    """Converts one stream's batches to its wire schema (thread-safe: the caches only ever gain entries,
    and the last conversion is replaced whole).

    Every client of a stream sends the same batches: the last one converted is kept, so that
    clients reading in step convert each batch once between them, not once each."""

    def __init__(self, schema: pa.Schema) -> None:
        self.source = schema  # the declaration's schema: a stream declared again gets a new WireFormat
        self.schema = plain_schema(schema)
        self._encoded = [i for i, f in enumerate(schema) if pa.types.is_dictionary(f.type)]
        self._fields = [self.schema.field(i) for i in range(len(self.schema))]
        self._constant: dict[tuple[int, str | None, int], pa.Array] = {}
        self._last: tuple[pa.RecordBatch, pa.RecordBatch] | None = None

    def __call__(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        """The batch with its encoded columns plain. Only those columns are touched (``set_column``: 1.5 us
        for two, where rebuilding the batch from all its columns took 16 us); the other fields keep the
        batch's own metadata, which Flight does not send: clients have the stream's schema."""
        if not self._encoded:
            return batch
        last = self._last
        if last is not None and last[0] is batch:
            return last[1]
        if batch.schema.equals(self.source):
            wired = batch
            for i in self._encoded:
                wired = wired.set_column(i, self._fields[i], self._plain(i, batch.column(i)))
        else:  # a hand-built batch the hub accepted (nullability differs, plain strings): the stream's schema
            columns = batch.columns
            for i in self._encoded:
                if pa.types.is_dictionary(columns[i].type):
                    columns[i] = self._plain(i, columns[i])
            wired = pa.RecordBatch.from_arrays(columns, schema=self.schema)
        self._last = (batch, wired)
        return wired

    def merged(self, batches: list[pa.RecordBatch]) -> pa.RecordBatch:
        """Consecutive batches of the stream as one wire batch (concatenated, then converted once)."""
        try:
            return self(pa.concat_batches(batches))
        except pa.ArrowInvalid:  # schemas that differ in metadata only: each converted to the wire schema first
            return pa.concat_batches([pa.RecordBatch.from_arrays(self(b).columns, schema=self.schema) for b in batches])

    def table(self, batches: list[pa.RecordBatch]) -> pa.Table:
        """Batches of the stream as one wire Table, a chunk per batch: Flight sends it a message per batch,
        from C++. The encoded columns are replaced once for all the chunks (6 us a batch, where converting
        each batch costs 14). One batch is converted as a batch (the conversion of the last batch is
        shared by the clients that read in step)."""
        if len(batches) == 1:
            return pa.Table.from_batches([self(batches[0])], schema=self.schema)
        try:
            table = pa.Table.from_batches(batches)
        except pa.ArrowInvalid:  # hand-built batches whose schemas differ: each converted first
            return pa.Table.from_batches([self(b) for b in batches], schema=self.schema)
        if not table.schema.equals(self.source):
            return pa.Table.from_batches([self(b) for b in batches], schema=self.schema)
        for i in self._encoded:
            field = self._fields[i]
            chunks = [self._plain(i, chunk) for chunk in table.column(i).chunks]
            table = table.set_column(i, field, pa.chunked_array(chunks, field.type))
        return table

    def _plain(self, i: int, column: pa.Array) -> pa.Array:
        n = len(column)
        nulls = column.null_count
        target = self._fields[i].type
        if nulls == n:
            value = None
        else:
            values = column.dictionary.to_pylist()  # one list, not a scalar object per look
            if nulls or len(values) != 1:
                return column.cast(target)  # several values in one batch: rare, decoded
            value = values[0]
        key = (i, value, n)
        cached = self._constant.get(key)
        if cached is None:
            if len(self._constant) > 64:
                self._constant.clear()
            cached = self._constant[key] = constant_strings(value, n, target)
        return cached


def constant_strings(value: str | None, n: int, target: pa.DataType) -> pa.Array:
    """``n`` copies of ``value`` as a plain string array, without a Python loop."""
    if value is None:
        return pa.nulls(n, target)
    raw = value.encode()
    offsets = np.arange(n + 1, dtype=np.int64 if pa.types.is_large_string(target) else np.int32) * len(raw)
    return pa.Array.from_buffers(target, n, [None, pa.py_buffer(offsets), pa.py_buffer(raw * n)])
