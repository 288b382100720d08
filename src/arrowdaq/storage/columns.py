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
  (see :class:`StringColumn`); a value longer than one fixed-length dictionary
  entry continues in the next ones (see :func:`pieces`).

Whole columns move as NumPy arrays; nothing here loops over rows.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

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


class StringColumn:
    """A string column stored once per stream while constant, as codes once it varies.

    On disk: ``<name>_dictionary`` (the distinct values, in order of first use,
    each in one or more entries: see :func:`pieces`) and ``<name>_codes`` (int32
    per row: the index of the value's first entry, -1 = null). While every row
    carries the same value the codes stay empty: the dictionary's first value (or,
    with an empty dictionary, null) holds for every row. The first batch with
    another value back-fills the codes of the rows before it.

    ``dictionary`` mirrors the entries on disk: a value at its first entry, None at
    its continuations.
    """

    def __init__(
        self, name: str, dictionary: list[str | None] | None = None, varying: bool = False, constant: int = -1
    ):
        self.name = name
        self.dictionary: list[str | None] = list(dictionary or [])
        self.index = {v: i for i, v in enumerate(self.dictionary) if v is not None}
        self.varying = varying
        self.constant = constant  # the code every row has while not varying (-1 = null)
        self.rows = 0  # rows accounted for (set by the writer on resume)

    def snapshot(self) -> tuple[int, bool, int]:
        """The state :meth:`restore` returns to when a batch is refused after :meth:`encode`."""
        return len(self.dictionary), self.varying, self.constant

    def restore(self, state: tuple[int, bool, int]) -> None:
        known, self.varying, self.constant = state
        for value in self.dictionary[known:]:
            if value is not None:
                del self.index[value]
        del self.dictionary[known:]

    def _code(self, value: str) -> int:
        code = self.index.get(value)
        if code is None:
            code = self.index[value] = len(self.dictionary)
            self.dictionary += [value] + [None] * (len(value.encode()) // PIECE_BYTES)
        return code

    def codes(self, col: pa.Array) -> np.ndarray:
        """Per-row codes of a column (one NumPy take; a loop only over distinct values)."""
        if not pa.types.is_dictionary(col.type):
            col = pc.dictionary_encode(col)
        values = col.dictionary.to_pylist()
        mapping = np.array([self._code(v) for v in values] + [-1], np.int32)
        indices = col.indices.fill_null(len(values)).to_numpy(zero_copy_only=False)
        return mapping[indices]

    def single_code(self, col: pa.Array) -> int | None:
        """The one code every row of ``col`` has, or None; cheap (dictionary size and null count)."""
        n = len(col)
        if col.null_count == n:
            return -1
        if col.null_count:
            return None
        if pa.types.is_dictionary(col.type):
            if len(col.dictionary) == 1:
                return self._code(col.dictionary[0].as_py())
            return None
        first = col[0].as_py()
        return self._code(first) if pc.all(pc.equal(col, first)).as_py() else None

    def encode(self, chunks: Sequence[pa.Array], rows_before: int) -> tuple[np.ndarray | None, list[str | None]]:
        """The codes to append (None while constant) and the dictionary entries new since last time
        (None for continuations: :func:`pieces` of the value before them fill those).

        Takes the column of each batch separately: while constant, each is checked
        by its dictionary alone, and nothing is concatenated.
        """
        known = len(self.dictionary)
        chunks = [c for c in chunks if len(c)]
        if not self.varying:
            for chunk in chunks:
                code = self.single_code(chunk)
                if rows_before == 0 and code is not None and chunk is chunks[0]:
                    self.constant = code
                if code is None or code != self.constant:
                    self.varying = True
                    break
            if not self.varying:
                return None, self.dictionary[known:]
            backfill = np.full(rows_before, self.constant, np.int32)
            return np.concatenate([backfill] + [self.codes(c) for c in chunks]), self.dictionary[known:]
        if not chunks:
            return None, []
        return np.concatenate([self.codes(c) for c in chunks]), self.dictionary[known:]


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
