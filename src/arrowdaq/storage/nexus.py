"""The default layout: one NXdata group per stream, one native dataset per column.

All datasets exist (empty, extendible) before SWMR starts; appends resize and
write whole column arrays. See :mod:`.columns` for the form of each column.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import h5py
import numpy as np
import pyarrow as pa

from ..data.schemas import AXIS_KEY, EXPLICIT, IMAGE, LONG_NAME_KEY, SCALAR, UNIT_KEY, VECTOR, kind_of
from ..errors import StorageError, describe
from ..hub.streams import StreamSpec
from . import columns as C
from . import layout as L
from .writer import RunWriter

#: The plotted field of each canonical kind (NXdata @signal).
SIGNALS = {SCALAR: "value", VECTOR: "values", IMAGE: "pixels"}
#: Columns of points per chunk of a trace column (its length is unknown until data comes).
TRACE_CHUNK_POINTS = 512
#: Target bytes of a trace or frame chunk.
CHUNK_BYTES = 1 << 20


def signal_of(schema: pa.Schema, plans: Sequence[C.ColumnPlan]) -> str | None:
    kind = kind_of(schema)
    if kind in SIGNALS and SIGNALS[kind] in schema.names:
        return SIGNALS[kind]
    for plan in plans:
        if plan.form != C.STRING and plan.name != "timestamp_ns":
            return plan.name
    return None


#: The entry attribute remembering how good a plot the current ``@default`` stream is.
DEFAULT_RANK_ATTR = "arrowdaq_default_rank"


def default_rank(schema: pa.Schema, from_processor: bool) -> int:
    """How good a first plot the stream makes (lower is better): what silx, h5web and NeXpy
    show on opening the file. A measured number over time first, then traces, frames,
    other numbers, flags; an instrument's stream before a processor's (derived) one."""
    kind = kind_of(schema)
    if kind == SCALAR and "value" in schema.names and pa.types.is_floating(schema.field("value").type):
        rank = 0
    elif kind == VECTOR:
        rank = 1
    elif kind == IMAGE:
        rank = 2
    else:
        numbers = [
            f
            for f in schema
            if f.name != "timestamp_ns" and (pa.types.is_integer(f.type) or pa.types.is_floating(f.type))
        ]
        rank = 3 if numbers else 4
    return rank + (10 if from_processor else 0)


def field_attrs(f: pa.Field) -> dict[str, str]:
    meta = f.metadata or {}
    attrs = {"long_name": meta.get(LONG_NAME_KEY, f.name.encode()).decode()}
    if UNIT_KEY in meta:
        attrs["units"] = meta[UNIT_KEY].decode()
    elif f.name == "timestamp_ns":
        attrs["units"] = "ns"
        attrs["long_name"] = "time since the Unix epoch (UTC)"
    return attrs


@dataclass
class _Stream:
    """What the writer keeps per stream between appends."""

    name: str
    key: str  # the NXdata group's name in /entry
    group: h5py.Group
    plans: list[C.ColumnPlan]
    rows: int = 0
    flushed: int = 0  # rows recorded in FLUSHED_ROWS
    strings: dict[str, C.StringColumn] = field(default_factory=dict)
    #: Open handles of every dataset, kept so HDF5 never closes one (and flushes its chunks) mid-write.
    datasets: dict[str, h5py.Dataset] = field(default_factory=dict)
    widths: dict[str, int | None] = field(default_factory=dict)


def _append(ds: h5py.Dataset, values: np.ndarray) -> int:
    n0 = ds.shape[0]
    if ds.shape[1:] != values.shape[1:]:  # the first trace fixes the points per row
        ds.resize((n0 + len(values), *values.shape[1:]))
    else:
        ds.resize(n0 + len(values), axis=0)
    ds[n0:] = values
    return values.nbytes


class NexusWriter(RunWriter):
    layout = "nexus"
    swmr = True

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._streams: dict[str, _Stream] = {}
        #: Producers that are processors (their streams are derived); set by the storage actor.
        self.processors: set[str] = set()

    @property
    def streams(self) -> list[str]:
        return list(self._streams)

    def rows(self, stream: str) -> int:
        return self._streams[stream].rows

    # --- structure -----------------------------------------------------------------------
    def _add_streams(self, streams: Sequence[StreamSpec]) -> None:
        entry = self.file[L.ENTRY]
        existing = {L.attr_text(g.attrs[L.STREAM_ATTR]) for g in entry.values() if L.STREAM_ATTR in g.attrs}
        for spec in streams:
            if spec.name not in existing:
                self._create(entry, spec)
                existing.add(spec.name)

    def _create(self, entry: h5py.Group, spec: StreamSpec) -> None:
        """A stream's group, created completely or not at all (a half group would confuse resuming)."""
        plans = C.plan_columns(spec.schema, spec.name)
        key = L.stream_key(spec.name, set(entry))
        try:
            self._create_group(entry, key, spec, plans)
        except Exception as exc:
            if key in entry:
                del entry[key]
            raise StorageError(
                f"{self.path}: stream {spec.name!r}: cannot create its datasets: {describe(exc)}"
            ) from exc

    def _create_group(self, entry: h5py.Group, key: str, spec: StreamSpec, plans: list[C.ColumnPlan]) -> None:
        g = L.set_nx(entry.create_group(key), "NXdata")
        g.attrs[L.STREAM_ATTR] = spec.name
        g.attrs[L.SCHEMA_ATTR] = L.encode_schema(spec.schema)
        g.attrs[L.PRODUCER_ATTR] = spec.producer or ""
        g.attrs[L.KIND_ATTR] = spec.kind or "extension"
        signal = signal_of(spec.schema, plans)
        if signal is not None:
            g.attrs["signal"] = signal
            ndim = 1 + len(next(p for p in plans if p.name == signal).row_shape)
            if "timestamp_ns" in spec.schema.names:
                axes = ["timestamp_ns"] + ["."] * (ndim - 1)
                if self._trace_x(spec.schema, signal) is not None:
                    axes[1] = "x"
                    g.attrs["x_indices"] = [0, 1] if "x" in spec.schema.names else 1
                g.attrs["axes"] = axes
                g.attrs["timestamp_ns_indices"] = 0
        g.create_dataset(L.FLUSHED_ROWS, data=0, dtype="i8")
        rows = self.options.chunk_rows
        for plan in plans:
            attrs = field_attrs(spec.schema.field(plan.name))
            if plan.form == C.NUMERIC:
                ds = g.create_dataset(
                    plan.name, (0,), plan.dtype, maxshape=(None,), chunks=(rows,), **self.options.filter_args()
                )
                if plan.nullable:
                    g.create_dataset(
                        plan.name + C.VALID_SUFFIX,
                        (0,),
                        "u1",
                        maxshape=(None,),
                        chunks=(rows,),
                        **self.options.filter_args(),
                    )
            elif plan.form == C.LIST:
                trace_rows = max(1, CHUNK_BYTES // (TRACE_CHUNK_POINTS * plan.dtype.itemsize))
                ds = g.create_dataset(
                    plan.name,
                    (0, 0),
                    plan.dtype,
                    maxshape=(None, None),
                    chunks=(trace_rows, TRACE_CHUNK_POINTS),
                    **self.options.filter_args(),
                )
            elif plan.form == C.TENSOR:
                frame = int(np.prod(plan.row_shape)) * plan.dtype.itemsize
                ds = g.create_dataset(
                    plan.name,
                    (0, *plan.row_shape),
                    plan.dtype,
                    maxshape=(None, *plan.row_shape),
                    chunks=(max(1, CHUNK_BYTES // max(frame, 1)), *plan.row_shape),
                    **self.options.filter_args(images=True),
                )
            else:
                ds = g.create_dataset(
                    plan.name + C.CODES_SUFFIX,
                    (0,),
                    "i4",
                    maxshape=(None,),
                    chunks=(rows,),
                    **self.options.filter_args(),
                )
                g.create_dataset(
                    plan.name + C.DICTIONARY_SUFFIX, (0,), L.DICTIONARY_DTYPE, maxshape=(None,), chunks=(64,)
                )
                attrs["description"] = (
                    f"codes into {plan.name}{C.DICTIONARY_SUFFIX} (-1 = null); empty while every row"
                    f" has the same value: {plan.name}{C.DICTIONARY_SUFFIX}[0], or null if that is empty"
                )
            for k, v in attrs.items():
                ds.attrs[k] = v
        if self._trace_x(spec.schema, signal) == "uniform":  # x of the first trace, written with it
            x = g.create_dataset("x", (0,), "f8", maxshape=(None,), chunks=(TRACE_CHUNK_POINTS,))
            for k, v in field_attrs(spec.schema.field("x0")).items():
                x.attrs[k] = v
            x.attrs["description"] = "x0 + i*dx of the first trace; every row's own x0 and dx are in x0, dx"
        rank = default_rank(spec.schema, spec.producer in self.processors)
        if "default" not in entry.attrs or rank < entry.attrs.get(DEFAULT_RANK_ATTR, 99):
            entry.attrs["default"] = key
            entry.attrs[DEFAULT_RANK_ATTR] = rank

    @staticmethod
    def _trace_x(schema: pa.Schema, signal: str | None) -> str | None:
        """``"uniform"``/``"explicit"`` for a trace stream whose x axis a viewer can plot against."""
        if kind_of(schema) != VECTOR or signal != "values":
            return None
        if "x" in schema.names:
            return "explicit" if (schema.metadata or {}).get(AXIS_KEY, EXPLICIT.encode()) == EXPLICIT.encode() else None
        return "uniform" if "x0" in schema.names and "dx" in schema.names else None

    def _load(self) -> None:
        """Rebuild stream state and dataset handles; cut columns a crash left longer than the rest."""
        self._streams = {}
        for g in self.file[L.ENTRY].values():
            if not isinstance(g, h5py.Group) or L.STREAM_ATTR not in g.attrs:
                continue
            name = L.attr_text(g.attrs[L.STREAM_ATTR])
            schema = L.decode_schema(g.attrs[L.SCHEMA_ATTR])
            st = _Stream(name, g.name.rsplit("/", 1)[1], g, C.plan_columns(schema, name))
            for p in st.plans:
                if p.form == C.STRING:
                    dictionary = [L.attr_text(v) for v in g[p.name + C.DICTIONARY_SUFFIX][()]]
                    varying = g[p.name + C.CODES_SUFFIX].shape[0] > 0
                    st.strings[p.name] = C.StringColumn(p.name, dictionary, varying, 0 if dictionary else -1)
                elif p.form == C.LIST:
                    ds = g[p.name]
                    st.widths[p.name] = ds.shape[1] if ds.shape[0] else None
            st.datasets = {n: ds for n, ds in g.items() if isinstance(ds, h5py.Dataset)}
            row_datasets = self._row_datasets(st)
            st.rows = min([g[n].shape[0] for n in row_datasets] + [int(g[L.FLUSHED_ROWS][()])])
            st.flushed = st.rows
            for n in row_datasets:  # a crash between column writes: keep whole rows only
                if g[n].shape[0] > st.rows:
                    g[n].resize(st.rows, axis=0)
            self._streams[name] = st

    @staticmethod
    def _row_datasets(st: _Stream) -> list[str]:
        names = []
        for p in st.plans:
            if p.form == C.STRING:
                if st.strings[p.name].varying:
                    names.append(p.name + C.CODES_SUFFIX)
            else:
                names.append(p.name)
                if p.form == C.NUMERIC and p.nullable:
                    names.append(p.name + C.VALID_SUFFIX)
        return names

    # --- data ------------------------------------------------------------------------------
    def append(self, stream: str, batches: Sequence[pa.RecordBatch]) -> int:
        st = self._streams[stream]
        n = sum(b.num_rows for b in batches)
        if n == 0:
            return 0
        # Convert and check every column first, so a refused batch leaves no column longer than the others.
        writes: list[tuple[str, np.ndarray]] = []
        widths = dict(st.widths)
        for plan in st.plans:
            if plan.form == C.NUMERIC:
                values, valid = C.numeric_values(C.column_of(batches, plan.name), plan)
                writes.append((plan.name, values))
                if valid is not None:
                    writes.append((plan.name + C.VALID_SUFFIX, valid))
            elif plan.form == C.LIST:
                values = C.list_values(C.column_of(batches, plan.name), plan, stream, widths[plan.name])
                widths[plan.name] = values.shape[1]
                writes.append((plan.name, values))
            elif plan.form == C.TENSOR:
                writes.append((plan.name, C.tensor_values(batches, plan)))
        saved = {name: strings.snapshot() for name, strings in st.strings.items()}
        try:
            for plan in st.plans:
                if plan.form == C.STRING:
                    writes += self._string_writes(stream, st.strings[plan.name], batches, st.rows)
        except Exception:
            for name, state in saved.items():  # a refused batch leaves the dictionaries as they were
                st.strings[name].restore(state)
            raise
        if "x" in st.datasets and "x" not in st.widths and st.datasets["x"].shape[0] == 0:  # uniform axis, first trace
            x0, dx = batches[0].column("x0")[0].as_py(), batches[0].column("dx")[0].as_py()
            writes.append(("x", x0 + dx * np.arange(widths["values"], dtype=np.float64)))
        st.widths = widths
        written = sum(_append(st.datasets[name], values) for name, values in writes)
        st.rows += n
        return written

    @staticmethod
    def _string_writes(
        stream: str, strings: C.StringColumn, batches: Sequence[pa.RecordBatch], rows_before: int
    ) -> list[tuple[str, np.ndarray]]:
        name = strings.name
        codes, new = strings.encode([b.column(name) for b in batches], rows_before)
        too_long = [v for v in new if len(v.encode()) > L.DICTIONARY_BYTES]
        if too_long:
            raise StorageError(
                f"stream {stream!r}: field {name!r}: value {too_long[0][:40]!r}... is longer"
                f" than {L.DICTIONARY_BYTES} bytes"
            )
        writes = []
        # Codes before new dictionary entries: if a crash falls between the two, the codes on disk
        # already say "varying", so rows from before a null unit got a value still read as null.
        if codes is not None:
            writes.append((name + C.CODES_SUFFIX, codes))
        if new:
            writes.append((name + C.DICTIONARY_SUFFIX, np.array([v.encode() for v in new], L.DICTIONARY_DTYPE)))
        return writes

    def flush(self) -> None:
        """Flush the data, then record how many rows it holds, then flush that."""
        if self.file is None:
            return
        self.file.flush()
        for st in self._streams.values():
            if st.flushed != st.rows:
                st.datasets[L.FLUSHED_ROWS][()] = st.rows
                st.flushed = st.rows
        super().flush()

    def close(self, complete: bool = True) -> None:
        if self.file is not None and not self.broken:
            self.flush()
        super().close(complete)

    def _forget(self) -> None:
        self._streams = {}

    def _finish(self, f: h5py.File) -> None:
        """A complete file also names each constant string value in an attribute (``@channel``)."""
        super()._finish(f)
        for st in self._streams.values():
            g = f[L.ENTRY][st.key]
            for name, strings in st.strings.items():
                if not strings.varying and strings.dictionary:
                    g.attrs[name] = strings.dictionary[0]
