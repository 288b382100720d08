"""The canonical Arrow schemas every batch in arrowdaq follows.

Three kinds of stream:

* scalar — one reading per row: ``timestamp_ns, channel, value, unit`` (the
  original design's schema, names, types and nullability unchanged);
* vector — one trace or spectrum per row, with a uniform (``x0``, ``dx``) or
  explicit (``x``) axis;
* image  — one camera frame per row, pixels as an Arrow fixed-shape tensor.

Units and axis descriptions live in field metadata (``unit``, ``long_name``),
never in column names. The kind is in the schema metadata (``arrowdaq.kind``).
In memory the constant string columns (``channel``, ``unit``) are
dictionary-encoded: one string per batch instead of one per row. Readers return
them dictionary-encoded too (:func:`encoded_schema`: Polars Categorical, pandas
category; docs/decisions/0023); :func:`plain_schema` is the decoded form that
exports and the live service's wire carry.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache

import numpy as np
import pyarrow as pa

KIND_KEY = b"arrowdaq.kind"
AXIS_KEY = b"arrowdaq.axis"
UNIT_KEY = b"unit"
LONG_NAME_KEY = b"long_name"

SCALAR, VECTOR, IMAGE = "scalar", "vector", "image"
UNIFORM, EXPLICIT = "uniform", "explicit"

#: The in-memory type of the constant string columns.
DICT_UTF8 = pa.dictionary(pa.int32(), pa.utf8())


def _meta(unit: str | None, long_name: str | None = None) -> dict[bytes, bytes] | None:
    meta: dict[bytes, bytes] = {}
    if unit is not None:
        meta[UNIT_KEY] = unit.encode()
    if long_name is not None:
        meta[LONG_NAME_KEY] = long_name.encode()
    return meta or None


def _string_type(encoded: bool) -> pa.DataType:
    return DICT_UTF8 if encoded else pa.utf8()


@lru_cache(maxsize=256)
def scalar_schema(unit: str | None = None, *, long_name: str | None = None, encoded: bool = True) -> pa.Schema:
    """timestamp_ns uint64, channel utf8, value float64, unit utf8 (nullable)."""
    s = _string_type(encoded)
    return pa.schema(
        [
            pa.field("timestamp_ns", pa.uint64(), nullable=False),
            pa.field("channel", s, nullable=False),
            pa.field("value", pa.float64(), nullable=False, metadata=_meta(unit, long_name)),
            pa.field("unit", s, nullable=True),
        ],
        metadata={KIND_KEY: SCALAR.encode()},
    )


@lru_cache(maxsize=256)
def vector_schema(
    unit: str | None = None,
    x_unit: str | None = None,
    *,
    axis: str = UNIFORM,
    long_name: str | None = None,
    x_name: str | None = None,
    encoded: bool = True,
) -> pa.Schema:
    """One trace per row: ``values`` list<float64> and a uniform or explicit x axis."""
    if axis not in (UNIFORM, EXPLICIT):
        raise ValueError(f"vector axis must be {UNIFORM!r} or {EXPLICIT!r}, got {axis!r}")
    xmeta = _meta(x_unit, x_name)
    fields = [
        pa.field("timestamp_ns", pa.uint64(), nullable=False),
        pa.field("channel", _string_type(encoded), nullable=False),
        pa.field("values", pa.list_(pa.float64()), nullable=False, metadata=_meta(unit, long_name)),
    ]
    if axis == UNIFORM:
        fields += [
            pa.field("x0", pa.float64(), nullable=False, metadata=xmeta),
            pa.field("dx", pa.float64(), nullable=False, metadata=xmeta),
        ]
    else:
        fields.append(pa.field("x", pa.list_(pa.float64()), nullable=False, metadata=xmeta))
    return pa.schema(fields, metadata={KIND_KEY: VECTOR.encode(), AXIS_KEY: axis.encode()})


@lru_cache(maxsize=256)
def image_schema(
    shape: tuple[int, ...],
    dtype: str = "uint16",
    unit: str | None = "counts",
    *,
    encoded: bool = True,
) -> pa.Schema:
    """One frame per row; ``pixels`` is a fixed-shape tensor (zero-copy to NumPy)."""
    value_type = pa.from_numpy_dtype(np.dtype(dtype))
    return pa.schema(
        [
            pa.field("timestamp_ns", pa.uint64(), nullable=False),
            pa.field("channel", _string_type(encoded), nullable=False),
            pa.field("frame_number", pa.uint64(), nullable=False),
            pa.field("pixels", pa.fixed_shape_tensor(value_type, tuple(shape)), nullable=False, metadata=_meta(unit)),
        ],
        metadata={KIND_KEY: IMAGE.encode()},
    )


def kind_of(schema: pa.Schema) -> str | None:
    """'scalar', 'vector', 'image', or None for a producer's own extension schema."""
    meta = schema.metadata or {}
    kind = meta.get(KIND_KEY)
    return kind.decode() if kind else None


#: The field that carries the measured quantity, per kind.
SIGNAL_FIELD = {SCALAR: "value", VECTOR: "values", IMAGE: "pixels"}


def unit_of(schema: pa.Schema, field: str | None = None) -> str | None:
    """The unit in a field's metadata (default: the kind's signal field); None when absent."""
    field = field or SIGNAL_FIELD.get(kind_of(schema) or "", "value")
    if field not in schema.names:
        return None
    meta = schema.field(field).metadata or {}
    unit = meta.get(UNIT_KEY)
    return unit.decode() if unit is not None else None


def plain_type(t: pa.DataType) -> pa.DataType:
    """The value type of a dictionary or run-end encoded column, else the type itself."""
    if pa.types.is_dictionary(t):
        return t.value_type
    if pa.types.is_run_end_encoded(t):
        return t.value_type
    return t


def _is_plain_string(t: pa.DataType) -> bool:
    return pa.types.is_string(t) or pa.types.is_large_string(t)


def encoded_schema(schema: pa.Schema) -> pa.Schema:
    """The schema with string columns dictionary-encoded: what readers return
    (a constant channel or unit costs 4 bytes a row, not the string's length)."""
    fields = [f.with_type(DICT_UTF8) if _is_plain_string(plain_type(f.type)) else f for f in schema]
    return pa.schema(fields, metadata=schema.metadata)


def plain_schema(schema: pa.Schema) -> pa.Schema:
    """The schema with encoded string columns decoded: what exports and the live service's wire carry."""
    fields: Iterable[pa.Field] = (f.with_type(plain_type(f.type)) for f in schema)
    return pa.schema(list(fields), metadata=schema.metadata)
