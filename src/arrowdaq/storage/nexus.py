"""The default layout: one NXdata group per stream, one native dataset per column.

All datasets exist (empty, extendible) before SWMR starts; appends resize and
write whole column arrays. See :mod:`.columns` for the form of each column.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import h5py
import numpy as np
import pyarrow as pa

from ..data.schemas import AXIS_KEY, EXPLICIT, IMAGE, LONG_NAME_KEY, SCALAR, UNIT_KEY, VECTOR, kind_of
from ..errors import StorageError, describe
from ..hub.streams import StreamSpec
from . import columns as C
from . import layout as L
from .forms import TRACE_CHUNK_POINTS, Form, ListForm, forms_of, rows_in
from .writer import RunWriter

#: The plotted field of each canonical kind (NXdata @signal).
SIGNALS = {SCALAR: "value", VECTOR: "values", IMAGE: "pixels"}


def _timed(schema: pa.Schema) -> bool:
    """Whether a stream gets the ``time`` axis (it has timestamps, and no column of that name)."""
    return "timestamp_ns" in schema.names and L.TIME not in schema.names


def signal_of(schema: pa.Schema, forms: Sequence[Form]) -> str | None:
    kind = kind_of(schema)
    if kind in SIGNALS and SIGNALS[kind] in schema.names:
        return SIGNALS[kind]
    for form in forms:
        if form.plottable and form.name != "timestamp_ns":
            return form.name
    return None


#: Added to the rank of a stream whose signal never changed: a setting, not a measurement.
CONSTANT_PENALTY = 4
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


def label(name: str, unit: str | None) -> str:
    """What a viewer prints beside an axis: ``"Optical power (W)"``."""
    return f"{name} ({unit})" if unit else name


def field_attrs(f: pa.Field, name: str | None = None) -> dict[str, str]:
    """``long_name`` (with the unit: viewers show only it) and ``units`` of a column's dataset;
    ``name`` is the label when the field's metadata has none."""
    meta = f.metadata or {}
    if f.name == "timestamp_ns":
        return {"units": "ns", "long_name": "Time since the Unix epoch, UTC (ns)"}
    unit = meta[UNIT_KEY].decode() if UNIT_KEY in meta else None
    attrs = {"long_name": label(meta[LONG_NAME_KEY].decode() if LONG_NAME_KEY in meta else name or f.name, unit)}
    if unit is not None:
        attrs["units"] = unit
    return attrs


#: A trace's x axis by its unit: the axis dataset's name and what it is.
_X_UNITS = {
    ("s", "ms", "us", "µs", "ns", "ps", "fs"): ("trace_time", "Time in trace"),
    ("Hz", "kHz", "MHz", "GHz", "THz"): ("frequency", "Frequency"),
    ("nm", "pm", "Å", "um", "µm"): ("wavelength", "Wavelength"),
    ("m", "mm", "cm"): ("position", "Position"),
    ("1/cm", "cm-1", "cm^-1"): ("wavenumber", "Wavenumber"),
    ("deg", "rad"): ("angle", "Angle"),
    ("eV", "meV", "keV"): ("energy", "Energy"),
}
X_QUANTITIES = {unit: quantity for units, quantity in _X_UNITS.items() for unit in units}


def x_quantity(schema: pa.Schema, field: str) -> tuple[str, str]:
    """The dataset name and label of a trace's x axis (``"frequency"``, ``"Frequency (Hz)"``),
    from the x field's unit and long name (``vector_schema(x_name=...)``)."""
    meta = schema.field(field).metadata or {}
    unit = meta[UNIT_KEY].decode() if UNIT_KEY in meta else None
    name, what = X_QUANTITIES.get(unit or "", ("x", "x"))
    if LONG_NAME_KEY in meta:
        what = meta[LONG_NAME_KEY].decode()
    if name in schema.names or name == L.TIME:
        name = "x"
    return name, label(what, unit)


@dataclass
class _Stream:
    """What the writer keeps per stream between appends."""

    name: str
    key: str  # the NXdata group's name in /entry
    group: h5py.Group
    #: One per column, with what is on disk (a trace's width, a string's dictionary).
    forms: list[Form]
    rows: int = 0
    flushed: int = 0  # rows recorded in FLUSHED_ROWS
    #: Open handles of every dataset, kept so HDF5 never closes one (and flushes its chunks) mid-write.
    datasets: dict[str, h5py.Dataset] = field(default_factory=dict)
    #: Rows the hub published to storage and rows it could not store (set by the storage actor).
    published: int = 0
    lost: int = 0
    counted: tuple[int, int] = (0, 0)  # what the file holds
    schema: pa.Schema = field(default_factory=pa.schema)
    producer: str = ""
    #: The NXdata signal, and the range of its values so far (a constant makes a poor first plot).
    signal: str | None = None
    low: float = np.inf
    high: float = -np.inf
    time: bool = False  # has the ``time`` axis (seconds since the run start)
    x_axis: str | None = None  # the uniform x axis dataset of a trace stream, written with the first trace

    def form(self, name: str) -> Form | None:
        return next((f for f in self.forms if f.name == name), None)


def seconds_since(timestamps_ns: np.ndarray, start_ns: int) -> np.ndarray:
    """The ``time`` axis: seconds from the run start. A view of the unsigned nanoseconds, not an
    ``astype`` copy: 0.93 M instead of 1.27 M instructions per 100,000 rows (callgrind), same values."""
    if timestamps_ns.dtype.kind in "iu" and timestamps_ns.dtype.itemsize == 8:
        timestamps_ns = timestamps_ns.view(np.int64)  # canonical uint64 (< 2**63 until the year 2262)
    return (timestamps_ns.astype(np.int64, copy=False) - np.int64(start_ns)) / 1e9


def _append(ds: h5py.Dataset, values: np.ndarray) -> int:
    """Append rows with h5py's low-level calls (see :func:`~.layout.write_rows`)."""
    if not len(values):
        return 0
    shape = ds.id.shape  # asks HDF5 each time: once per append
    n0, n1 = shape[0], shape[0] + len(values)
    # the first trace fixes the points per row, a wider one widens them (never narrowed)
    ds.id.set_extent((n1, *(max(a, b) for a, b in zip(shape[1:], values.shape[1:], strict=True))))
    if _whole_row_chunks(ds, values):
        # A frame is one unfiltered chunk: its bytes are the chunk's, written straight to the file.
        # ``ds[n0:n1] = values`` would copy each into a chunk buffer first (3.5 ms of CPU per 8 MiB frame).
        origin = (0,) * (values.ndim - 1)
        for k, row in enumerate(values):
            ds.id.write_direct_chunk((n0 + k, *origin), row)
    else:
        L.write_rows(ds, n0, values)
    return values.nbytes


def _whole_row_chunks(ds: h5py.Dataset, values: np.ndarray) -> bool:
    """Whether each row of ``values`` is exactly one unfiltered chunk of ``ds``, in its byte layout."""
    return (
        values.ndim > 1
        and ds.chunks == (1, *values.shape[1:])
        and values.dtype == ds.dtype
        and values.flags.c_contiguous
        and ds.id.get_create_plist().get_nfilters() == 0
    )


class NexusWriter(RunWriter):
    layout = "nexus"
    swmr = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
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
        entry = self._open_file[L.ENTRY]
        existing = {L.attr_text(g.attrs[L.STREAM_ATTR]) for g in entry.values() if L.STREAM_ATTR in g.attrs}
        for spec in streams:
            if spec.name not in existing:
                self._create(entry, spec)
                existing.add(spec.name)

    def _create(self, entry: h5py.Group, spec: StreamSpec) -> None:
        """A stream's group, created completely or not at all (a half group would confuse resuming)."""
        forms = forms_of(spec.schema, spec.name)
        key = L.stream_key(spec.name, set(entry))
        try:
            self._create_group(entry, key, spec, forms)
        except Exception as exc:
            if key in entry:
                del entry[key]
            raise StorageError(
                f"{self.path}: stream {spec.name!r}: cannot create its datasets: {describe(exc)}"
            ) from exc

    def _create_group(self, entry: h5py.Group, key: str, spec: StreamSpec, forms: list[Form]) -> None:
        schema = spec.schema
        g = L.set_nx(entry.create_group(key), "NXdata")
        g.attrs[L.STREAM_ATTR] = spec.name
        g.attrs[L.SCHEMA_ATTR] = L.encode_schema(schema)
        g.attrs[L.PRODUCER_ATTR] = spec.producer or ""
        g.attrs[L.KIND_ATTR] = spec.kind or "extension"
        g.attrs["title"] = spec.name
        timed = _timed(schema) and self.options.time_axis
        signal = signal_of(schema, forms)
        trace_x = self._trace_x(schema, signal)
        x_axis = "x" if trace_x == "explicit" else x_quantity(schema, "x0")[0] if trace_x == "uniform" else None
        if signal is not None:
            g.attrs["signal"] = signal
            axes = ["."] * (1 + len(next(f for f in forms if f.name == signal).row_shape))
            if timed:
                axes[0] = L.TIME
            if x_axis is not None:
                axes[1] = x_axis
                g.attrs[f"{x_axis}_indices"] = [0, 1] if trace_x == "explicit" else 1
            if timed or x_axis is not None:
                g.attrs["axes"] = axes
        if "timestamp_ns" in schema.names:
            g.attrs["timestamp_ns_indices"] = 0  # an alternative axis: the raw UTC nanoseconds
        if timed:
            g.attrs[f"{L.TIME}_indices"] = 0
        g.create_dataset(L.FLUSHED_ROWS, data=0, dtype="i8")
        self._create_counts(g)
        rows = self.options.chunk_rows
        if timed:
            t = g.create_dataset(
                L.TIME, (0,), "f8", maxshape=(None,), chunks=(rows,), **self.options.filter_args(floating=True)
            )
            t.attrs["units"] = "s"
            t.attrs["long_name"] = "Time since run start (s)"
            t.attrs["start"] = L.start_iso(self.start_ns)
        for form in forms:
            attrs = field_attrs(schema.field(form.name), spec.name if form.name == signal else None)
            if form.name == x_axis:  # an explicit x axis: one per trace
                attrs["long_name"] = x_quantity(schema, "x")[1]
            form.create(g, self.options, attrs)
        if trace_x == "uniform":  # x of the first trace, written with it
            x = g.create_dataset(x_axis, (0,), "f8", maxshape=(None,), chunks=(TRACE_CHUNK_POINTS,))
            x.attrs["long_name"] = x_quantity(schema, "x0")[1]
            if "units" in field_attrs(schema.field("x0")):
                x.attrs["units"] = field_attrs(schema.field("x0"))["units"]
            x.attrs["description"] = "x0 + i*dx of the first trace; every row's own x0 and dx are in x0, dx"
        if spec.name == self.options.default_plot:
            rank = -1
        else:
            rank = default_rank(schema, spec.producer in self.processors)
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
        for g in self._open_file[L.ENTRY].values():
            if not isinstance(g, h5py.Group) or L.STREAM_ATTR not in g.attrs:
                continue
            name = L.attr_text(g.attrs[L.STREAM_ATTR])
            schema = L.decode_schema(g.attrs[L.SCHEMA_ATTR])
            st = _Stream(name, g.name.rsplit("/", 1)[1], g, forms_of(schema, name), schema=schema)
            st.producer = L.attr_text(g.attrs.get(L.PRODUCER_ATTR, ""))
            st.signal = signal_of(schema, st.forms)
            st.time = _timed(schema) and L.TIME in g
            if self._trace_x(schema, st.signal) == "uniform":
                x_axis = x_quantity(schema, "x0")[0]
                st.x_axis = x_axis if x_axis in g else None
            for form in st.forms:
                form.load(g, self.options)
            if L.PUBLISHED_ROWS not in g:
                self._create_counts(g)
            st.published, st.lost = int(g[L.PUBLISHED_ROWS][()]), int(g[L.LOST_ROWS][()])
            st.counted = (st.published, st.lost)
            st.datasets = {n: ds for n, ds in g.items() if isinstance(ds, h5py.Dataset)}
            rows_of = rows_in(g)
            row_datasets = [n for form in st.forms for n in form.row_datasets(rows_of)]
            if st.time:
                row_datasets.append(L.TIME)
            st.rows = min([g[n].shape[0] for n in row_datasets] + [int(g[L.FLUSHED_ROWS][()])])
            st.flushed = st.rows
            for n in row_datasets:  # a crash between column writes: keep whole rows only
                if g[n].shape[0] > st.rows:
                    g[n].resize(st.rows, axis=0)
            self._streams[name] = st

    # --- data ------------------------------------------------------------------------------
    def append(self, stream: str, batches: Sequence[pa.RecordBatch]) -> int:
        st = self._streams[stream]
        n = sum(b.num_rows for b in batches)
        if n == 0:
            return 0
        batches = C.one_batch(batches)
        # Convert and check every column first, so a refused batch leaves no column longer than the others
        # (and every form's state as it was).
        saved = [form.snapshot() for form in st.forms]
        try:
            writes = [w for form in st.forms for w in form.writes(batches, st.rows)]
        except Exception:
            for form, state in zip(st.forms, saved, strict=True):
                form.restore(state)
            raise
        written = dict(writes)
        if st.time:
            writes.append((L.TIME, seconds_since(written["timestamp_ns"], self.start_ns)))
        # Whether the signal is a constant setting: known for good once it has varied (no more passes over it).
        signal = st.form(st.signal) if st.signal is not None and not st.low < st.high else None
        span = signal.value_range(written) if signal is not None else None
        if span is not None:
            st.low, st.high = min(st.low, span[0]), max(st.high, span[1])
        if st.x_axis is not None:  # the uniform axis of the first trace, grown with the widest trace
            trace = st.form("values")
            writes += self._x_writes(st, batches, trace.width if isinstance(trace, ListForm) else None)
        nbytes = sum(_append(st.datasets[name], values) for name, values in writes)
        st.rows += n
        return nbytes

    @staticmethod
    def _x_writes(st: _Stream, batches: Sequence[pa.RecordBatch], points: int | None) -> list[tuple[str, np.ndarray]]:
        assert st.x_axis is not None  # called for streams with an explicit x axis
        x = st.datasets[st.x_axis]
        have = x.shape[0]
        if points is None or points <= have:
            return []
        if have >= 2:
            x0, dx = float(x[0]), float(x[1] - x[0])
        else:
            x0, dx = batches[0].column("x0")[0].as_py(), batches[0].column("dx")[0].as_py()
            x0 = float(x[0]) if have else x0
        return [(st.x_axis, x0 + dx * np.arange(have, points, dtype=np.float64))]

    def flush(self) -> None:
        """Flush the data, then record how many rows it holds, then flush that."""
        if self.file is None:
            return
        self.file.flush()
        for st in self._streams.values():
            if st.flushed != st.rows:
                st.datasets[L.FLUSHED_ROWS][()] = st.rows
                st.flushed = st.rows
            if st.counted != (st.published, st.lost):
                st.datasets[L.PUBLISHED_ROWS][()] = st.published
                st.datasets[L.LOST_ROWS][()] = st.lost
                st.counted = (st.published, st.lost)
        super().flush()

    def close(self, complete: bool = True) -> None:
        if self.file is not None and not self.broken:
            self.flush()
        super().close(complete)

    def counts(self, stream: str) -> tuple[int, int]:
        st = self._streams[stream]
        return st.published, st.lost

    def set_counts(self, stream: str, published: int, lost: int) -> None:
        """Rows the hub published to storage and rows storage could not store: written at the next flush."""
        st = self._streams.get(stream)
        if st is not None:
            st.published, st.lost = published, lost

    @staticmethod
    def _create_counts(g: h5py.Group) -> None:
        g.create_dataset(L.PUBLISHED_ROWS, data=0, dtype="i8").attrs["description"] = (
            "rows published to this stream while it was recorded (as of the last flush)"
        )
        g.create_dataset(L.LOST_ROWS, data=0, dtype="i8").attrs["description"] = (
            "published rows that could not be stored (see /entry/events, kind 'lost')"
        )

    def _forget(self) -> None:
        self._streams = {}

    def _finish(self, f: h5py.File) -> None:
        """A complete file also names each constant string value in an attribute (``@channel``),
        labels a signal whose unit came only in the ``unit`` column, and gets its final ``@default``."""
        super()._finish(f)
        entry = f[L.ENTRY]
        for st in self._streams.values():
            g = entry[st.key]
            constants = {form.name: form.constant_text() for form in st.forms}
            for name, text in constants.items():
                if text is not None:
                    g.attrs[name] = text
            unit = constants.get("unit")
            signal = g.get(st.signal) if st.signal is not None else None
            if unit is not None and signal is not None and "units" not in signal.attrs:
                signal.attrs["units"] = unit
                signal.attrs["long_name"] = label(L.attr_text(signal.attrs.get("long_name", st.name)), unit)
        best = self._best_plot()
        if best is not None:
            entry.attrs["default"] = best

    def _best_plot(self) -> str | None:
        """The NXdata a viewer opens, now that the data is known: ``[storage] default_plot`` if given,
        else by :func:`default_rank`, a constant (a setting such as a laser's wavelength) after anything
        that varies, an empty stream last, then the stream with the most rows."""
        by_name = {st.name: st for st in self._streams.values()}
        if self.options.default_plot in by_name:
            return by_name[self.options.default_plot].key
        ranked = []
        for st in self._streams.values():
            if st.signal is None:
                continue
            rank = default_rank(st.schema, st.producer in self.processors)
            if st.rows == 0:
                rank += 100
            elif st.rows > 1 and st.low == st.high:  # one row tells nothing yet
                rank += CONSTANT_PENALTY
            ranked.append((rank, -st.rows, st.key))
        return min(ranked)[2] if ranked else None
