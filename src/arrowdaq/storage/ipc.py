"""The design's original layout, kept for compatibility: Arrow IPC bytes in HDF5.

Each coalesced write becomes one u8 dataset
``/arrow_data/<instrument>/<stream>/batch_NNNNNN`` holding a complete Arrow IPC
*file* (readable with ``pyarrow.ipc.open_file``). A new dataset per write means
new objects, which SWMR forbids: this layout is written without SWMR, so a
crash can leave a file that needs ``h5clear -s``. Prefer the ``nexus`` layout.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import h5py
import numpy as np
import pyarrow as pa

from ..data.schemas import plain_schema
from ..data.validate import decode
from ..hub.streams import StreamSpec
from . import layout as L
from .writer import RunWriter


def ipc_file_bytes(batches: Sequence[pa.RecordBatch], schema: pa.Schema) -> np.ndarray:
    """Batches as the bytes of one Arrow IPC file (plain strings, declared schema)."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_file(sink, schema) as writer:
        for batch in batches:
            writer.write_batch(pa.RecordBatch.from_arrays(decode(batch).columns, schema=schema))
    return np.frombuffer(sink.getvalue(), np.uint8)


class ArrowIpcWriter(RunWriter):
    layout = "arrow_ipc"
    swmr = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._schemas: dict[str, pa.Schema] = {}
        self._counts: dict[str, int] = {}
        self._rows: dict[str, int] = {}

    @property
    def streams(self) -> list[str]:
        return list(self._schemas)

    def rows(self, stream: str) -> int:
        return self._rows[stream]

    def _add_streams(self, streams: Sequence[StreamSpec]) -> None:
        root = self._open_file.require_group(L.ARROW_DATA)
        for spec in streams:
            if spec.name in root:
                continue
            g = root.create_group(spec.name)
            g.attrs[L.STREAM_ATTR] = spec.name
            g.attrs[L.SCHEMA_ATTR] = L.encode_schema(spec.schema)
            g.attrs[L.PRODUCER_ATTR] = spec.producer or ""
            g.attrs[L.KIND_ATTR] = spec.kind or "extension"

    def _load(self) -> None:
        root = self._open_file.require_group(L.ARROW_DATA)

        def visit(name: str, item: h5py.Group | h5py.Dataset) -> None:
            if L.STREAM_ATTR in item.attrs:
                stream = L.attr_text(item.attrs[L.STREAM_ATTR])
                self._schemas[stream] = L.decode_schema(item.attrs[L.SCHEMA_ATTR])
                self._counts[stream] = len(item)
                self._rows.setdefault(stream, 0)

        root.visititems(visit)

    def append(self, stream: str, batches: Sequence[pa.RecordBatch]) -> int:
        batches = [b for b in batches if b.num_rows]
        if not batches:
            return 0
        data = ipc_file_bytes(batches, plain_schema(self._schemas[stream]))
        g = self._open_file[L.ARROW_DATA][stream]
        n = self._counts[stream]
        g.create_dataset(f"batch_{n:06d}", data=data, **self.options.filter_args())
        self._counts[stream] = n + 1
        self._rows[stream] += sum(b.num_rows for b in batches)
        return data.nbytes
