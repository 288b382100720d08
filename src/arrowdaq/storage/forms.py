"""The stored form of each column: one class per form, with everything that differs between them.

A form knows its datasets in a stream's NXdata group: how to create them, which
of them hold one entry per row, how a run of batches becomes the arrays to
append, how to rebuild its state from the file after a restart, and how to read
rows back as an Arrow array. The writer keeps one form object per column of a
stream (it carries what is on disk: a trace's width, a string's dictionary); a
reader makes them afresh. See :mod:`.columns` for the conversions themselves.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import h5py
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..errors import StorageError
from . import columns as C
from . import layout as L
from .options import StorageOptions

#: Arrays to append, by dataset name, in the order they are written.
Writes = list[tuple[str, np.ndarray]]
#: A dataset's rows on disk, by name (0 for one that does not exist).
RowsOf = Callable[[str], int]

#: Columns of points per chunk of a trace column (its length is unknown until data comes).
TRACE_CHUNK_POINTS = 512
#: Target bytes of a trace or frame chunk.
CHUNK_BYTES = 1 << 20


class Form:
    """One Arrow field as native HDF5 datasets (this base: the part every form shares)."""

    #: Whether the column can be a plot's signal (strings cannot).
    plottable = True

    def __init__(self, field: pa.Field, dtype: np.dtype, row_shape: tuple[int, ...] = ()) -> None:
        self.name = field.name
        self.type = field.type
        self.nullable = field.nullable
        self.dtype = dtype  # of the stored values (int32 codes for strings)
        self.row_shape = row_shape  # () one value per row, (0,) a trace of yet unknown length, a frame's shape

    def create(self, g: h5py.Group, options: StorageOptions, attrs: dict[str, str]) -> None:
        """The empty, extendible datasets (before SWMR starts); ``attrs`` go on the main one."""
        raise NotImplementedError

    def load(self, g: h5py.Group, options: StorageOptions) -> None:
        """Rebuild the writer's state from the file (after opening or reopening it)."""

    def row_datasets(self, rows_of: RowsOf) -> list[str]:
        """The datasets that hold one entry per row (those stored only once values vary, once they do)."""
        return [self.name]

    def writes(self, batches: Sequence[pa.RecordBatch], rows_before: int) -> Writes:
        """The arrays to append for ``batches``; may change the state :meth:`snapshot` saves."""
        raise NotImplementedError

    def snapshot(self) -> Any:
        """The state :meth:`restore` returns to when a batch is refused after :meth:`writes`."""
        return None

    def restore(self, state: Any) -> None:
        pass

    def value_range(self, written: dict[str, np.ndarray]) -> tuple[float, float] | None:
        """The lowest and highest value in what :meth:`writes` gave (numbers only), or None."""
        return None

    def constant_text(self) -> str | None:
        """The one value every row has so far, for a string column stored once; None otherwise."""
        return None

    def read(self, g: h5py.Group, start: int, stop: int) -> pa.Array:
        """Rows ``start:stop`` as an Arrow array of the field's type."""
        raise NotImplementedError

    def _create(self, g: h5py.Group, name: str, rows: int, dtype: Any, **filters: Any) -> h5py.Dataset:
        """A 1-D per-row dataset of ``rows`` rows per chunk."""
        return g.create_dataset(name, (0,), dtype, maxshape=(None,), chunks=(rows,), **filters)


class NumericForm(Form):
    """Numbers and booleans: one value per row; ``<name>_valid`` (uint8) beside a nullable field."""

    def create(self, g: h5py.Group, options: StorageOptions, attrs: dict[str, str]) -> None:
        floating = self.dtype.kind == "f"
        ds = self._create(g, self.name, options.chunk_rows, self.dtype, **options.filter_args(floating=floating))
        ds.attrs.update(attrs)
        if self.nullable:
            self._create(g, self.name + C.VALID_SUFFIX, options.chunk_rows, "u1", **options.filter_args())

    def row_datasets(self, rows_of: RowsOf) -> list[str]:
        return [self.name, self.name + C.VALID_SUFFIX] if self.nullable else [self.name]

    def writes(self, batches: Sequence[pa.RecordBatch], rows_before: int) -> Writes:
        values, valid = C.numeric_values(C.column_of(batches, self.name), self.dtype, self.nullable)
        return [(self.name, values)] if valid is None else [(self.name, values), (self.name + C.VALID_SUFFIX, valid)]

    def value_range(self, written: dict[str, np.ndarray]) -> tuple[float, float] | None:
        values, valid = written[self.name], written.get(self.name + C.VALID_SUFFIX)
        measured = values if valid is None else values[valid.view(bool)]
        return (float(measured.min()), float(measured.max())) if len(measured) else None

    def read(self, g: h5py.Group, start: int, stop: int) -> pa.Array:
        valid = g[self.name + C.VALID_SUFFIX][start:stop] if self.nullable else None
        return C.numeric_array(g[self.name][start:stop], valid, self.type)


class ListForm(Form):
    """Traces: ``(rows, points)``, as wide as the widest so far; ``<name>_lengths`` once lengths vary."""

    def __init__(self, field: pa.Field, dtype: np.dtype) -> None:
        super().__init__(field, dtype, (0,))
        self.width: int | None = None  # points per row on disk (None before the first trace)
        self.varying = False  # each row's length is stored in <name>_lengths

    def create(self, g: h5py.Group, options: StorageOptions, attrs: dict[str, str]) -> None:
        floating = self.dtype.kind == "f"
        ds = g.create_dataset(
            self.name,
            (0, 0),
            self.dtype,
            maxshape=(None, None),
            chunks=(max(1, CHUNK_BYTES // (TRACE_CHUNK_POINTS * self.dtype.itemsize)), TRACE_CHUNK_POINTS),
            fillvalue=np.nan if floating else 0,
            **options.filter_args(floating=floating),
        )
        ds.attrs.update(attrs)
        self._create_lengths(g, options)

    def _create_lengths(self, g: h5py.Group, options: StorageOptions) -> h5py.Dataset:
        ds = self._create(g, self.name + C.LENGTHS_SUFFIX, options.chunk_rows, "i4", **options.filter_args())
        ds.attrs["description"] = (
            f"points of each row of {self.name} (-1 = null; shorter rows are padded); empty while"
            f" every row has all {self.name}.shape[1] points"
        )
        return ds

    def load(self, g: h5py.Group, options: StorageOptions) -> None:
        ds = g[self.name]
        self.width = ds.shape[1] if ds.shape[0] else None
        lengths = g.get(self.name + C.LENGTHS_SUFFIX)
        if lengths is None:  # a file from before: added while SWMR has not started
            lengths = self._create_lengths(g, options)
        self.varying = lengths.shape[0] > 0

    def row_datasets(self, rows_of: RowsOf) -> list[str]:
        lengths = self.name + C.LENGTHS_SUFFIX
        return [self.name, lengths] if rows_of(lengths) else [self.name]

    def writes(self, batches: Sequence[pa.RecordBatch], rows_before: int) -> Writes:
        before = self.width
        values, lengths = C.list_rows(C.column_of(batches, self.name), self.dtype, before)
        self.width = values.shape[1]
        out: Writes = []
        if self.varying:  # lengths before values: a crash between them leaves no row unexplained
            out.append((self.name + C.LENGTHS_SUFFIX, lengths))
        elif (lengths != values.shape[1]).any() or (before is not None and values.shape[1] != before):
            self.varying = True  # the rows before all had the old width
            backfill = np.full(rows_before, before or 0, np.int32)
            out.append((self.name + C.LENGTHS_SUFFIX, np.concatenate([backfill, lengths])))
        out.append((self.name, values))
        return out

    def snapshot(self) -> Any:
        return self.width, self.varying

    def restore(self, state: Any) -> None:
        self.width, self.varying = state

    def read(self, g: h5py.Group, start: int, stop: int) -> pa.Array:
        lengths = g.get(self.name + C.LENGTHS_SUFFIX)
        lengths = lengths[start:stop] if lengths is not None and lengths.shape[0] else None
        return C.list_array(g[self.name][start:stop], self.type, lengths)


class TensorForm(Form):
    """Camera frames: ``(rows, *shape)``, chunks of about :data:`CHUNK_BYTES`."""

    def create(self, g: h5py.Group, options: StorageOptions, attrs: dict[str, str]) -> None:
        frame = int(np.prod(self.row_shape)) * self.dtype.itemsize
        ds = g.create_dataset(
            self.name,
            (0, *self.row_shape),
            self.dtype,
            maxshape=(None, *self.row_shape),
            chunks=(max(1, CHUNK_BYTES // max(frame, 1)), *self.row_shape),
            **options.filter_args(images=True),
        )
        ds.attrs.update(attrs)

    def writes(self, batches: Sequence[pa.RecordBatch], rows_before: int) -> Writes:
        return [(self.name, C.tensor_values(batches, self.name))]

    def read(self, g: h5py.Group, start: int, stop: int) -> pa.Array:
        return C.tensor_array(read_rows(g[self.name], start, stop), self.type)


def read_rows(ds: h5py.Dataset, start: int, stop: int) -> np.ndarray:
    """Rows ``start:stop``. Where each row is one unfiltered chunk (frames of 1 MiB or more), its bytes
    are read straight into the result (``ds[start:stop]`` would pass each through a chunk buffer: one
    more copy of every frame); otherwise, or if a chunk is missing (a crash), by HDF5's usual path."""
    row = ds.shape[1:]
    if stop <= start or ds.chunks != (1, *row) or ds.id.get_create_plist().get_nfilters():
        return ds[start:stop]
    out = np.empty((stop - start, *row), ds.dtype)
    origin = (0,) * len(row)
    try:
        for k in range(stop - start):
            ds.id.read_direct_chunk((start + k, *origin), out=out[k].reshape(-1).view(np.uint8))
    except (KeyError, OSError, RuntimeError, TypeError, ValueError):  # not written, or an older h5py
        return ds[start:stop]
    return out


class StringForm(Form):
    """``channel``, ``unit``: stored once per stream while constant, as per-row codes once they vary.

    On disk: ``<name>_dictionary`` (the distinct values, in order of first use,
    each in one or more entries: see :func:`~.columns.pieces`) and ``<name>_codes``
    (int32 per row: the index of the value's first entry, -1 = null). While every
    row carries the same value the codes stay empty: the dictionary's first value
    (or, with an empty dictionary, null) holds for every row. The first batch with
    another value back-fills the codes of the rows before it.

    ``dictionary`` mirrors the entries on disk: a value at its first entry, None at
    its continuations.
    """

    plottable = False

    def __init__(self, field: pa.Field, format_version: int = L.FORMAT_VERSION) -> None:
        super().__init__(field, np.dtype(np.int32))
        #: Version 1 files hold one value per dictionary entry (no continuations).
        self.continued = format_version >= 2
        self._known([], varying=False)

    def _known(self, dictionary: list[str | None], varying: bool) -> None:
        self.dictionary = dictionary
        self.index = {v: i for i, v in enumerate(dictionary) if v is not None}
        self.varying = varying
        self.constant = 0 if dictionary else -1  # the code every row has while not varying (-1 = null)

    def create(self, g: h5py.Group, options: StorageOptions, attrs: dict[str, str]) -> None:
        codes = self._create(g, self.name + C.CODES_SUFFIX, options.chunk_rows, "i4", **options.filter_args())
        g.create_dataset(self.name + C.DICTIONARY_SUFFIX, (0,), L.DICTIONARY_DTYPE, maxshape=(None,), chunks=(64,))
        codes.attrs.update(attrs)
        codes.attrs["description"] = (
            f"codes into {self.name}{C.DICTIONARY_SUFFIX} (-1 = null); empty while every row"
            f" has the same value: {self.name}{C.DICTIONARY_SUFFIX}[0], or null if that is empty"
        )

    def load(self, g: h5py.Group, options: StorageOptions) -> None:
        dictionary = C.join_pieces(g[self.name + C.DICTIONARY_SUFFIX][()].tolist())
        self._known(dictionary, varying=g[self.name + C.CODES_SUFFIX].shape[0] > 0)

    def row_datasets(self, rows_of: RowsOf) -> list[str]:
        codes = self.name + C.CODES_SUFFIX
        return [codes] if rows_of(codes) else []

    def writes(self, batches: Sequence[pa.RecordBatch], rows_before: int) -> Writes:
        codes, new = self.encode([b.column(self.name) for b in batches], rows_before)
        out: Writes = []
        # Codes before new dictionary entries: if a crash falls between the two, the codes on disk
        # already say "varying", so rows from before a null unit got a value still read as null.
        if codes is not None:
            out.append((self.name + C.CODES_SUFFIX, codes))
        if new:
            entries = [piece for v in new if v is not None for piece in C.pieces(v)]
            out.append((self.name + C.DICTIONARY_SUFFIX, np.array(entries, L.DICTIONARY_DTYPE)))
        return out

    def encode(self, chunks: Sequence[pa.Array], rows_before: int) -> tuple[np.ndarray | None, list[str | None]]:
        """The codes to append (None while constant) and the dictionary entries new since last time
        (None for continuations: :func:`~.columns.pieces` of the value before them fill those).

        Takes the column of each batch separately: while constant, each is checked
        by its dictionary alone, and nothing is concatenated.
        """
        known = len(self.dictionary)
        chunks = [c for c in chunks if len(c)]
        if not self.varying:
            for chunk in chunks:
                code = self._single_code(chunk)
                if rows_before == 0 and code is not None and chunk is chunks[0]:
                    self.constant = code
                if code is None or code != self.constant:
                    self.varying = True
                    break
            if not self.varying:
                return None, self.dictionary[known:]
            backfill = np.full(rows_before, self.constant, np.int32)
            return np.concatenate([backfill] + [self._codes(c) for c in chunks]), self.dictionary[known:]
        if not chunks:
            return None, []
        return np.concatenate([self._codes(c) for c in chunks]), self.dictionary[known:]

    def _code(self, value: str) -> int:
        code = self.index.get(value)
        if code is None:
            code = self.index[value] = len(self.dictionary)
            self.dictionary += [value] + [None] * (len(value.encode()) // C.PIECE_BYTES)
        return code

    def _codes(self, col: pa.Array) -> np.ndarray:
        """Per-row codes of a column (one NumPy take; a loop only over distinct values)."""
        if not pa.types.is_dictionary(col.type):
            col = pc.dictionary_encode(col)
        values = col.dictionary.to_pylist()
        mapping = np.array([self._code(v) for v in values] + [-1], np.int32)
        indices = col.indices.fill_null(len(values)).to_numpy(zero_copy_only=False)
        return mapping[indices]

    def _single_code(self, col: pa.Array) -> int | None:
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

    def snapshot(self) -> tuple[int, bool, int]:
        return len(self.dictionary), self.varying, self.constant

    def restore(self, state: tuple[int, bool, int]) -> None:
        known, self.varying, self.constant = state
        for value in self.dictionary[known:]:
            if value is not None:
                del self.index[value]
        del self.dictionary[known:]

    def constant_text(self) -> str | None:
        return self.dictionary[0] if not self.varying and self.dictionary else None

    def read(self, g: h5py.Group, start: int, stop: int) -> pa.Array:
        entries = L.refreshed(g[self.name + C.DICTIONARY_SUFFIX])[()].tolist()
        dictionary = C.join_pieces(entries, self.continued)
        codes = g[self.name + C.CODES_SUFFIX]
        if codes.shape[0]:
            return C.string_array(codes[start:stop], dictionary)
        return C.constant_string_array(dictionary[0] if dictionary else None, max(0, stop - start))  # stored once


def rows_in(g: h5py.Group) -> RowsOf:
    """The rows of each dataset of ``g`` on disk (as a SWMR reader sees them now), 0 for one it lacks."""

    def rows_of(name: str) -> int:
        return L.refreshed(g[name]).shape[0] if name in g else 0

    return rows_of


def _is_string(t: pa.DataType) -> bool:
    if pa.types.is_dictionary(t):
        t = t.value_type
    return pa.types.is_string(t) or pa.types.is_large_string(t)


def _numeric_dtype(t: pa.DataType) -> np.dtype | None:
    if pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t):
        return np.dtype(t.to_pandas_dtype())
    return None


def form_of(field: pa.Field, stream: str, format_version: int = L.FORMAT_VERSION) -> Form:
    """The stored form of ``field``; StorageError names a type HDF5 columns cannot hold."""
    t = field.type
    if _is_string(t):
        return StringForm(field, format_version)
    if isinstance(t, pa.FixedShapeTensorType):
        dtype = _numeric_dtype(t.value_type)
        if dtype is not None:
            return TensorForm(field, dtype, tuple(t.shape))
    elif pa.types.is_list(t) or pa.types.is_large_list(t):
        dtype = _numeric_dtype(t.value_type)
        if dtype is not None:
            return ListForm(field, dtype)
    else:
        dtype = _numeric_dtype(t)
        if dtype is not None:
            return NumericForm(field, dtype)
    raise StorageError(f"stream {stream!r}: field {field.name!r} of type {t} has no native HDF5 column form")


def forms_of(schema: pa.Schema, stream: str, format_version: int = L.FORMAT_VERSION) -> list[Form]:
    return [form_of(field, stream, format_version) for field in schema]
