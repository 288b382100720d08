"""Builders: NumPy arrays in, canonical RecordBatches out, with no per-row Python.

A driver that reads 1,000 samples calls one builder once; the constant
``channel`` and ``unit`` columns cost one dictionary entry, not 1,000 strings.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from functools import lru_cache

import numpy as np
import pyarrow as pa

from .schemas import DICT_UTF8, EXPLICIT, UNIFORM, image_schema, scalar_schema, vector_schema
from .validate import null_free

ArrayLike = np.ndarray | Sequence[float]


def now_ns() -> int:
    """Nanoseconds since the Unix epoch (UTC): the timestamp of an acquisition."""
    return time.time_ns()


#: Constant string columns up to this many rows are built once per (value, rows) and shared by every
#: batch of that size (immutable; a batch's memory still counts exactly its own rows' indices).
SHARED_ROWS = 1 << 14


@lru_cache(maxsize=1024)
def _dictionary(value: str) -> pa.Array:
    return pa.array([value], pa.utf8())


#: Zero indices every constant column views the first rows of (read-only; grown by doubling): a
#: 100,000-row batch's two constant columns cost no 800 KB of fresh zeros (~10 % of its storing).
_zeros = np.zeros(SHARED_ROWS, np.int32)
_zeros.flags.writeable = False


def _zero_indices(n: int) -> pa.Buffer:
    """``n`` int32 zeros: a slice of :data:`_zeros` (a batch's memory counts exactly these bytes)."""
    global _zeros
    zeros = _zeros
    if len(zeros) < n:
        zeros = np.zeros(max(n, 2 * len(zeros)), np.int32)
        zeros.flags.writeable = False
        _zeros = zeros
    return pa.py_buffer(zeros).slice(0, 4 * n)


def _build_constant(value: str | None, n: int) -> pa.Array:
    if value is None:
        return pa.nulls(n, DICT_UTF8)
    zeros = pa.Array.from_buffers(pa.int32(), n, [None, _zero_indices(n)])
    return pa.DictionaryArray.from_arrays(zeros, _dictionary(value), safe=False)  # zeros: valid


_shared_constant = lru_cache(maxsize=128)(_build_constant)


def constant_string(value: str | None, n: int) -> pa.Array:
    """A column of ``n`` copies of ``value`` (dictionary-encoded: one string stored).

    Building one costs ~10 µs, a third of a 1,000-row batch's building: batches of a
    common size (every 1,000-row batch, a producer's full batches) share one column."""
    return _shared_constant(value, n) if n <= SHARED_ROWS else _build_constant(value, n)


@lru_cache(maxsize=64)
def _arrow_type(dtype: np.dtype) -> pa.DataType:
    return pa.from_numpy_dtype(dtype)  # ~1 µs a call: once per dtype


def numpy_column(values: np.ndarray, dtype: np.dtype | type) -> pa.Array:
    """A 1-D NumPy array as an Arrow column of ``dtype``, sharing its buffer (cast or made
    contiguous only if needed). ``pa.array`` takes ~1.7x as long for the same zero-copy result."""
    a = np.ascontiguousarray(values, dtype=dtype)
    return pa.Array.from_buffers(_arrow_type(a.dtype), len(a), [None, pa.py_buffer(a)])


def _timestamps(timestamps_ns: ArrayLike | int | None, n: int) -> pa.Array:
    if timestamps_ns is None:
        return numpy_column(np.full(n, now_ns(), np.uint64), np.uint64)
    if isinstance(timestamps_ns, (int, float, np.number)):  # a tuple: a third cheaper than a union
        return numpy_column(np.full(n, timestamps_ns, np.uint64), np.uint64)
    ts = np.asarray(timestamps_ns)
    if ts.shape != (n,):
        raise ValueError(f"timestamps_ns: expected {n} values, got shape {ts.shape}")
    return numpy_column(ts, np.uint64)


def scalar_batch(
    values: ArrayLike | float,
    *,
    channel: str,
    unit: str | None = None,
    timestamps_ns: ArrayLike | int | None = None,
) -> pa.RecordBatch:
    """Readings of one channel as a scalar batch (timestamps default to now)."""
    v = np.atleast_1d(np.asarray(values, dtype=np.float64))
    if v.ndim != 1:
        raise ValueError(f"scalar values must be 1-D, got shape {v.shape}")
    n = len(v)
    batch = pa.RecordBatch.from_arrays(
        [
            _timestamps(timestamps_ns, n),
            constant_string(channel, n),
            numpy_column(v, np.float64),
            constant_string(unit, n),
        ],
        schema=scalar_schema(unit),
    )
    return batch if channel is None else null_free(batch)  # no validity buffers in the not-null columns


def _list_column(rows: np.ndarray) -> pa.Array:
    """A 2-D array as list<float64>, sharing the NumPy buffer."""
    n, m = rows.shape
    offsets = pa.array(np.arange(0, (n + 1) * m, m, dtype=np.int32))
    return pa.ListArray.from_arrays(offsets, pa.array(rows.reshape(-1)))


def vector_batch(
    values: np.ndarray,
    *,
    channel: str,
    unit: str | None = None,
    x0: ArrayLike | float | None = None,
    dx: ArrayLike | float | None = None,
    x: np.ndarray | None = None,
    x_unit: str | None = None,
    timestamps_ns: ArrayLike | int | None = None,
) -> pa.RecordBatch:
    """Traces (rows of a 2-D array, or one 1-D trace) with a uniform or explicit axis.

    Give ``x0`` and ``dx`` for a uniform axis, or ``x`` (1-D shared by every
    trace, or 2-D one per trace) for an explicit one.
    """
    rows = np.asarray(values, dtype=np.float64)
    if rows.ndim == 1:
        rows = rows[np.newaxis, :]
    if rows.ndim != 2:
        raise ValueError(f"vector values must be 1-D or 2-D, got shape {rows.shape}")
    rows = np.ascontiguousarray(rows)
    n = rows.shape[0]
    columns = [_timestamps(timestamps_ns, n), constant_string(channel, n), _list_column(rows)]
    if x is None:
        if x0 is None or dx is None:
            raise ValueError("vector_batch needs x0 and dx (uniform axis) or x (explicit axis)")
        columns += [
            pa.array(np.broadcast_to(np.asarray(x0, np.float64), (n,)).copy()),
            pa.array(np.broadcast_to(np.asarray(dx, np.float64), (n,)).copy()),
        ]
        axis = UNIFORM
    else:
        xs = np.asarray(x, dtype=np.float64)
        xs = np.ascontiguousarray(np.broadcast_to(xs, rows.shape)) if xs.ndim == 1 else xs
        if xs.shape != rows.shape:
            raise ValueError(f"x: expected an axis of shape {rows.shape[1]} (or {rows.shape}), got shape {xs.shape}")
        columns.append(_list_column(xs))
        axis = EXPLICIT
    return pa.RecordBatch.from_arrays(columns, schema=vector_schema(unit, x_unit, axis=axis))


def image_batch(
    frames: np.ndarray,
    *,
    channel: str,
    frame_numbers: ArrayLike | int,
    unit: str | None = "counts",
    timestamps_ns: ArrayLike | int | None = None,
) -> pa.RecordBatch:
    """Frames (``(H, W)`` or ``(N, H, W)``) as an image batch; pixels are not copied."""
    stack = np.ascontiguousarray(frames)
    if stack.ndim == 2:  # reshape, not np.newaxis: Arrow needs the strides of a contiguous stack
        stack = stack.reshape(1, *stack.shape)
    if stack.ndim < 3:
        raise ValueError(f"image frames must be (H, W) or (N, H, W), got shape {stack.shape}")
    stack = stack.reshape(-1, *stack.shape[1:])  # also a (1, H, W) view with a stride-0 first axis
    n = stack.shape[0]
    numbers = np.atleast_1d(np.asarray(frame_numbers, dtype=np.uint64))
    if numbers.shape == (1,) and n > 1:
        numbers = numbers[0] + np.arange(n, dtype=np.uint64)
    if numbers.shape != (n,):
        raise ValueError(f"frame_numbers: expected {n} values, got shape {numbers.shape}")
    pixels = pa.FixedShapeTensorArray.from_numpy_ndarray(stack)
    schema = image_schema(tuple(stack.shape[1:]), stack.dtype.name, unit)
    return pa.RecordBatch.from_arrays(
        [_timestamps(timestamps_ns, n), constant_string(channel, n), pa.array(numbers), pixels],
        schema=schema,
    )


def frames_of(batch: pa.RecordBatch) -> np.ndarray:
    """The pixels of an image batch as an ``(N, H, W)`` array (zero-copy)."""
    return batch.column("pixels").to_numpy_ndarray()


def traces_of(batch: pa.RecordBatch, column: str = "values") -> np.ndarray:
    """The traces of a vector batch as a 2-D array (all traces must have one length)."""
    col = batch.column(column)
    if len(col) == 0:
        return np.empty((0, 0))
    flat = col.flatten().to_numpy(zero_copy_only=False)
    return flat.reshape(len(col), -1)
