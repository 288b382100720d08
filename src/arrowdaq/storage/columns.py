"""How each Arrow column becomes arrays for native HDF5 datasets, and back.

One form per Arrow type (the classes in :mod:`.forms`), so MATLAB's ``h5read`` and plain h5py
see ordinary arrays:

* numeric/bool  → 1-D dataset, one value per row (plus ``<name>_valid`` uint8
  when the field is nullable: HDF5 has no nulls);
* list<number>  → 2-D dataset ``(rows, points)``, as wide as the longest trace so
  far; while every row has that length (the usual case) nothing else is stored,
  once lengths vary (a scope's record length changed) or a row is null,
  ``<name>_lengths`` holds each row's length (-1 = null) and shorter rows are
  padded (NaN for floats);
* fixed-shape tensor (camera frames) → ``(rows, *shape)`` dataset;
* string (``channel``, ``unit``, dictionary-encoded or not) → written once per
  stream while it is constant, as per-row codes only once it varies
  (see :class:`~.forms.StringForm`); a value longer than one fixed-length dictionary
  entry continues in the next ones (see :func:`pieces`).

Whole columns move as NumPy arrays; nothing here loops over rows.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa

from ..data.schemas import plain_type
from . import layout as L

#: Suffixes of the helper datasets beside a column.
VALID_SUFFIX = "_valid"
CODES_SUFFIX = "_codes"
DICTIONARY_SUFFIX = "_dictionary"
LENGTHS_SUFFIX = "_lengths"

#: Bytes of one dictionary entry (fixed length: SWMR writers cannot append variable-length strings).
PIECE_BYTES = L.DICTIONARY_BYTES


# --- writing: batches → arrays -----------------------------------------------------------
def one_batch(batches: Sequence[pa.RecordBatch]) -> Sequence[pa.RecordBatch]:
    """Consecutive batches of one stream as one: each column concatenated by Arrow in one call,
    not one Python call per batch and column (a 1,000-row batch would otherwise cost more in
    Python objects than in rows). Batches whose schemas differ (plain and dictionary-encoded
    strings mixed) stay as they are: :func:`column_of` casts them."""
    if len(batches) < 2:
        return batches
    try:
        return pa.Table.from_batches(batches).combine_chunks().to_batches()
    except pa.ArrowInvalid:
        return batches


def column_of(batches: Sequence[pa.RecordBatch], name: str) -> pa.Array:
    """One column of several batches as a single Array."""
    chunks = [b.column(name) for b in batches]
    if len(chunks) == 1:
        return chunks[0]
    if any(c.type != chunks[0].type for c in chunks):  # e.g. dictionary-encoded and plain strings mixed
        chunks = [c.cast(plain_type(c.type)) for c in chunks]
    return pa.concat_arrays(chunks)


def numeric_values(col: pa.Array, dtype: np.dtype, nullable: bool) -> tuple[np.ndarray, np.ndarray | None]:
    """Values (nulls stored as 0) and, for a nullable field, the validity mask as uint8."""
    valid = None
    if nullable:
        valid = np.ones(len(col), np.uint8) if col.null_count == 0 else np.asarray(col.is_valid(), np.uint8)
    if col.null_count:
        col = col.fill_null(False if pa.types.is_boolean(col.type) else 0)
    return col.to_numpy(zero_copy_only=False).astype(dtype, copy=False), valid


def list_rows(col: pa.Array, dtype: np.dtype, width: int | None) -> tuple[np.ndarray, np.ndarray]:
    """A list column as ``(rows, points)`` and each row's length (-1 = null).

    ``points`` is the longest of ``width`` (the stream's so far) and these rows;
    shorter rows are padded with NaN (floats) or 0. Vectorised: no loop over rows."""
    n = len(col)
    lengths = col.value_lengths().fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int32, copy=False)
    points = max(width or 0, int(lengths.max()) if n else 0)
    flat = col.flatten().to_numpy(zero_copy_only=False).astype(dtype, copy=False)  # null rows add nothing
    if n and (lengths == points).all():
        return flat.reshape(n, points), lengths
    out = np.full((n, points), np.nan if dtype.kind == "f" else 0, dtype)
    kept = np.maximum(lengths, 0)
    starts = np.cumsum(kept) - kept
    out[np.repeat(np.arange(n), kept), np.arange(len(flat)) - np.repeat(starts, kept)] = flat
    return out, lengths


def tensor_values(batches: Sequence[pa.RecordBatch], name: str) -> np.ndarray:
    arrays = [b.column(name).to_numpy_ndarray() for b in batches]
    return arrays[0] if len(arrays) == 1 else np.concatenate(arrays)


def pieces(value: str) -> list[bytes]:
    """A dictionary value as fixed-length entries: a full entry (``PIECE_BYTES``) continues
    in the next; the value ends at the first shorter one (empty if the value fills its last)."""
    raw = value.encode()
    return [raw[i : i + PIECE_BYTES] for i in range(0, len(raw) - len(raw) % PIECE_BYTES, PIECE_BYTES)] + [
        raw[len(raw) - len(raw) % PIECE_BYTES :]
    ]


def join_pieces(entries: Sequence[bytes], continued: bool = True) -> list[str | None]:
    """The inverse of :func:`pieces`, aligned with the entries: each value at its first entry,
    None at its continuations (and for a value a crash cut short). ``continued=False`` reads
    files of format version 1, where every entry is one value."""
    if not continued:
        return [e.decode(errors="replace") for e in entries]
    out: list[str | None] = []
    run: list[bytes] = []
    for entry in entries:  # one per distinct value: a short loop
        run.append(entry)
        if len(entry) < PIECE_BYTES:
            out += [b"".join(run).decode(errors="replace")] + [None] * (len(run) - 1)
            run = []
    return out + [None] * len(run)


# --- reading: arrays → Arrow ---------------------------------------------------------------
def numeric_array(values: np.ndarray, valid: np.ndarray | None, t: pa.DataType) -> pa.Array:
    mask = None if valid is None else ~valid.astype(bool)
    return pa.array(values, type=t, mask=mask)


def list_array(values: np.ndarray, t: pa.DataType, lengths: np.ndarray | None = None) -> pa.Array:
    """``(rows, points)`` back to lists; with ``lengths`` (-1 = null) rows are cut to their length."""
    n = values.shape[0]
    width = values.shape[1] if values.ndim == 2 else 0
    offset_type = np.int64 if pa.types.is_large_list(t) else np.int32
    cls = pa.LargeListArray if pa.types.is_large_list(t) else pa.ListArray
    if lengths is None:
        offsets = pa.array(np.arange(n + 1, dtype=offset_type) * width)
        flat = pa.array(np.ascontiguousarray(values).reshape(-1), type=t.value_type)
        return cls.from_arrays(offsets, flat).cast(t)
    kept = np.clip(lengths, 0, width)
    flat = pa.array(values[np.arange(width)[None, :] < kept[:, None]], type=t.value_type)
    offsets = pa.array(np.concatenate([[0], np.cumsum(kept)]).astype(offset_type))
    null = lengths < 0
    return cls.from_arrays(offsets, flat, mask=pa.array(null) if null.any() else None).cast(t)


def tensor_array(values: np.ndarray, t: pa.FixedShapeTensorType) -> pa.Array:
    size = int(np.prod(t.shape))
    flat = pa.array(np.ascontiguousarray(values).reshape(-1), type=t.value_type)
    return pa.ExtensionArray.from_storage(t, pa.FixedSizeListArray.from_arrays(flat, size))


def string_array(codes: np.ndarray, dictionary: list[str | None]) -> pa.DictionaryArray:
    """Per-row codes as a dictionary column (no string copied per row)."""
    unknown = (codes < 0) | (codes >= len(dictionary))  # null, or past a dictionary a crash cut short
    cut = np.array([v is None for v in dictionary] + [True])  # continuations, a value a crash cut short
    unknown |= cut[np.clip(codes, 0, len(dictionary))]
    dictionary = [v if v is not None else "" for v in dictionary]
    if unknown.any():
        indices = pa.array(np.where(unknown, 0, codes).astype(np.int32), mask=unknown)
    else:
        indices = pa.array(codes.astype(np.int32, copy=False))
    return pa.DictionaryArray.from_arrays(indices, pa.array(dictionary or [""], pa.utf8()), safe=False)  # in range


def constant_string_array(value: str | None, n: int) -> pa.DictionaryArray:
    """``n`` rows of one value (or null) as a dictionary column: what a column stored once reads back as."""
    if value is None:
        return pa.DictionaryArray.from_arrays(pa.nulls(n, pa.int32()), pa.array([""], pa.utf8()))
    return pa.DictionaryArray.from_arrays(np.zeros(n, np.int32), pa.array([value], pa.utf8()), safe=False)
