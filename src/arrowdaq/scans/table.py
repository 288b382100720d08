"""The scan table: one row per point, its Arrow schema, and the ``scan/points`` batches.

Columns, in order: ``timestamp_ns`` (when the detectors were read), ``index``
(0, 1, ... in measuring order), ``elapsed`` (s since the scan started), for
grids ``<axis>_index`` (the point's place in the grid), then per axis
``<axis>`` (setpoint) and ``<axis>_readback`` (where it stood), then per
detector ``<det>`` (mean of its reads) and ``<det>_std`` (their standard
deviation). Units and long names are in the field metadata.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa

from ..data.schemas import KIND_KEY, LONG_NAME_KEY, UNIT_KEY
from .devices import Axis, Detector

SCAN_KIND = "scan"
#: Schema metadata: the scan's axes, detectors and grid shape, as JSON.
SCAN_KEY = b"arrowdaq.scan"
POINTS_STREAM = "scan/points"


def _field(name: str, type_: pa.DataType, long_name: str, unit: str | None = None) -> pa.Field:
    meta = {LONG_NAME_KEY: long_name.encode()}
    if unit:
        meta[UNIT_KEY] = unit.encode()
    return pa.field(name, type_, nullable=False, metadata=meta)


def _label(text: str, unit: str | None) -> str:
    return f"{text} ({unit})" if unit else text


def table_schema(
    axes: Sequence[Axis], detectors: Sequence[Detector], grid: tuple[int, ...] | None, plan: str
) -> pa.Schema:
    fields = [
        _field("timestamp_ns", pa.uint64(), "time since the Unix epoch (UTC)", "ns"),
        _field("index", pa.int64(), "Point index"),
        _field("elapsed", pa.float64(), "Time since the scan started (s)", "s"),
    ]
    if grid is not None:
        fields += [_field(f"{ax.name}_index", pa.int64(), f"{ax.name} grid index") for ax in axes]
    for ax in axes:
        fields.append(_field(ax.name, pa.float64(), _label(f"{ax.name} setpoint", ax.unit), ax.unit))
        fields.append(_field(f"{ax.name}_readback", pa.float64(), _label(f"{ax.name} position", ax.unit), ax.unit))
    for det in detectors:
        fields.append(_field(det.name, pa.float64(), _label(f"{det.name} mean", det.unit), det.unit))
        fields.append(
            _field(f"{det.name}_std", pa.float64(), _label(f"{det.name} standard deviation", det.unit), det.unit)
        )
    info = {
        "plan": plan,
        "axes": [ax.name for ax in axes],
        "detectors": [d.name for d in detectors],
        "grid": list(grid) if grid else None,
    }
    names = [f.name for f in fields]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(
            f"scan table: column {duplicates[0]!r} would appear twice (an axis and a detector share a name?)"
        )
    return pa.schema(fields, metadata={KIND_KEY: SCAN_KIND.encode(), SCAN_KEY: json.dumps(info).encode()})


class ScanTable:
    """The rows measured so far, kept as columns (one list per column)."""

    def __init__(self, schema: pa.Schema) -> None:
        self.schema = schema
        self.columns: dict[str, list[Any]] = {name: [] for name in schema.names}
        self.rows = 0

    def add(self, row: dict[str, Any]) -> pa.RecordBatch:
        """Append one row; returns it as a one-row batch (the ``scan/points`` stream's)."""
        arrays = []
        for f in self.schema:
            value = row[f.name]
            self.columns[f.name].append(value)
            arrays.append(pa.array([value], f.type))
        self.rows += 1
        return pa.RecordBatch.from_arrays(arrays, schema=self.schema)

    def column(self, name: str) -> np.ndarray:
        return np.asarray(self.columns[name], dtype=float)

    def to_arrow(self) -> pa.Table:
        return pa.Table.from_pydict(self.columns, schema=self.schema)
