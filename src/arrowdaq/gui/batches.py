"""Arrow batches of the live service to NumPy, by the public contract alone (docs/live-service.md).

A stream's kind is in its schema metadata (``arrowdaq.kind``: scalar, vector,
image) and units in field metadata (``unit``). The GUI reads them here and
nowhere else, so it needs nothing from the daemon's internals.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

SIGNAL_FIELD = {"scalar": "value", "vector": "values", "image": "pixels"}


def kind_of(schema: pa.Schema) -> str | None:
    kind = (schema.metadata or {}).get(b"arrowdaq.kind")
    return kind.decode() if kind else None


def unit_of(schema: pa.Schema, field: str | None = None) -> str:
    """The unit of ``field`` (default: the kind's signal field), '' when none is declared."""
    field = field or SIGNAL_FIELD.get(kind_of(schema) or "", "value")
    if field not in schema.names:
        return ""
    unit = (schema.field(field).metadata or {}).get(b"unit")
    return unit.decode() if unit else ""


def times_values(batch: pa.RecordBatch) -> tuple[np.ndarray, np.ndarray]:
    """A scalar batch as (seconds since the epoch, values)."""
    t = batch.column("timestamp_ns").to_numpy().astype(np.float64) * 1e-9
    return t, batch.column("value").to_numpy(zero_copy_only=False).astype(np.float64, copy=False)


@dataclass
class Trace:
    """The newest row of a vector batch: its x axis and values."""

    x: np.ndarray
    y: np.ndarray
    x_unit: str
    unit: str


def last_trace(batch: pa.RecordBatch) -> Trace | None:
    if batch.num_rows == 0:
        return None
    row = batch.num_rows - 1
    y = batch.column("values")[row].values.to_numpy(zero_copy_only=False).astype(np.float64, copy=False)
    if "x" in batch.schema.names:
        x = batch.column("x")[row].values.to_numpy(zero_copy_only=False).astype(np.float64, copy=False)
        x_unit = unit_of(batch.schema, "x")
    else:
        x0 = batch.column("x0")[row].as_py()
        dx = batch.column("dx")[row].as_py()
        x = x0 + dx * np.arange(len(y), dtype=np.float64)
        x_unit = unit_of(batch.schema, "x0")
    return Trace(x, y, x_unit, unit_of(batch.schema))


def frames(batch: pa.RecordBatch) -> tuple[np.ndarray, np.ndarray]:
    """An image batch as ((N, H, W) pixels, frame numbers); zero-copy."""
    pixels = batch.column("pixels").to_numpy_ndarray()
    return pixels, batch.column("frame_number").to_numpy()
