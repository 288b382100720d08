"""Checking batches against their declared schema.

The hot path checks the schema (cheap) and the null counts Arrow already keeps,
never the values: one compute pass over a column per batch measured 40 % of a
reference pipeline's time.
"""

from __future__ import annotations

import weakref

import pyarrow as pa

from ..errors import SchemaError
from .schemas import plain_schema, plain_type


def _where(stream: str | None) -> str:
    return f"stream {stream!r}: " if stream else ""


def check_schema(actual: pa.Schema, expected: pa.Schema, *, stream: str | None = None) -> None:
    """Raise SchemaError naming the first field that differs (encoding and metadata aside).

    Nullability is not compared here: a hand-built batch says "nullable" by
    default, and what matters is whether it holds nulls (``check_nulls``).
    """
    names = set(actual.names)
    for field in expected:
        if field.name not in names:
            raise SchemaError(f"{_where(stream)}missing field {field.name!r} (expected {plain_type(field.type)})")
        got = actual.field(field.name)
        if plain_type(got.type) != plain_type(field.type):
            raise SchemaError(
                f"{_where(stream)}field {field.name!r}: expected {plain_type(field.type)}, got {plain_type(got.type)}"
            )
    extra = [n for n in actual.names if n not in set(expected.names)]
    if extra:
        raise SchemaError(
            f"{_where(stream)}unexpected field {extra[0]!r} (declared fields: {', '.join(expected.names)})"
        )


def check_nulls(batch: pa.RecordBatch, expected: pa.Schema, *, stream: str | None = None) -> None:
    """Refuse nulls in fields declared not nullable (uses Arrow's cached null counts)."""
    for field in expected:
        if not field.nullable:
            nulls = batch.column(field.name).null_count
            if nulls:
                raise SchemaError(f"{_where(stream)}field {field.name!r} has {nulls} null(s) but is not nullable")


def validate_batch(batch: object, expected: pa.Schema, *, stream: str | None = None) -> pa.RecordBatch:
    """Check that ``batch`` is a RecordBatch of ``expected``'s shape, nulls included; return it.

    The error names the field and what was expected, e.g.
    ``stream 'pm1/power': field 'value': expected double, got int64``.
    """
    if not isinstance(batch, pa.RecordBatch):
        raise SchemaError(f"{_where(stream)}expected a pyarrow.RecordBatch, got {type(batch).__name__}")
    if not batch.schema.equals(expected, check_metadata=False):
        check_schema(batch.schema, expected, stream=stream)
    check_nulls(batch, expected, stream=stream)
    return batch


#: Batches a builder made with no validity buffer in their not-null columns (``id`` -> weak reference):
#: they cannot hold a null there, so the hub does not count them (a column's count costs ~1.5 µs:
#: the Python wrapper of the column, not the count). A dead entry never matches (its reference is
#: dead, whatever now has its id); they are swept when the table has doubled.
_NULL_FREE: dict[int, weakref.ref[pa.RecordBatch]] = {}
_sweep_at = 1024


def null_free(batch: pa.RecordBatch) -> pa.RecordBatch:
    """Record that ``batch`` was built without validity buffers in the columns its schema says are
    not null (arrowdaq's builders, the producer's columns); returns it. Only a builder that made
    every such column itself may say so: a batch from anywhere else has its null counts checked."""
    global _sweep_at
    _NULL_FREE[id(batch)] = weakref.ref(batch)
    if len(_NULL_FREE) >= _sweep_at:
        for key, ref in list(_NULL_FREE.items()):
            if ref() is None:
                _NULL_FREE.pop(key, None)
        _sweep_at = max(1024, 2 * len(_NULL_FREE))
    return batch


def _is_null_free(batch: pa.RecordBatch) -> bool:
    ref = _NULL_FREE.get(id(batch))
    return ref is not None and ref() is batch


def required_columns(schema: pa.Schema) -> tuple[int, ...]:
    """Indices of the not-null fields (computed once per stream, not per batch)."""
    return tuple(i for i, field in enumerate(schema) if not field.nullable)


def accept_batch(batch: object, expected: pa.Schema, required: tuple[int, ...], *, stream: str | None = None) -> None:
    """The hub's per-batch check: the schema, then the null counts Arrow keeps.

    Field-by-field diagnosis only when the schema differs. Null counts are read
    even when the schema matches: ``RecordBatch.from_arrays(..., schema=...)``
    does not enforce not-null, and a null stored as 0.0 would be a plausible,
    wrong reading (see docs/decisions/0001-hub-checks-schemas.md); except for
    a batch a builder made without validity buffers (:func:`null_free`).
    """
    # `__class__ is` (cheaper than isinstance on this per-batch path) does not narrow for mypy
    if batch.__class__ is not pa.RecordBatch or not batch.schema.equals(expected, check_metadata=False):  # type: ignore[attr-defined]
        validate_batch(batch, expected, stream=stream)
        return
    if not required or _is_null_free(batch):  # a RecordBatch (checked above)
        return
    for i in required:
        nulls = batch.column(i).null_count  # type: ignore[attr-defined]  # a RecordBatch (checked above)
        if nulls:
            name = expected.field(i).name
            raise SchemaError(f"{_where(stream)}field {name!r} has {nulls} null(s) but is not nullable")


def decode(batch: pa.RecordBatch | pa.Table) -> pa.RecordBatch | pa.Table:
    """Decode dictionary columns to plain utf8 (exports, and tools that want plain strings)."""
    target = plain_schema(batch.schema)
    if target.equals(batch.schema):
        return batch
    return batch.cast(target)
