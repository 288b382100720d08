"""Reading run files: ``arrowdaq.open_run(path)``.

::

    with arrowdaq.open_run("data/alignment_20261124T101500Z-3f2a1c.h5") as run:
        run.streams                          # ['pm1/power', 'cam1/frames']
        run.table("pm1/power")               # pyarrow.Table, the batches as recorded
        run.lazy("pm1/power", time="datetime").filter(pl.col("value") > 0.1).collect()
        run.metadata["sample"], run.events, run.scans

Each call opens the file briefly (as an SWMR reader), so a run can be read
while it is being written: every call sees the rows flushed so far, and streams
added later; between calls nothing holds the file, so a recording is never
blocked. Files left by a crash or ``kill -9`` open without repair (and without
being changed: see :mod:`.unclosed` for the ``arrow_ipc`` layout). Files in the
original ``arrow_ipc`` form written by other programs (Arrow IPC bytes as u8
datasets under ``/arrow_data``, flat or in groups) read as they were written.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import polars as pl
import pyarrow as pa

from ..data.polars import to_polars
from ..data.schemas import UNIT_KEY, encoded_schema
from ..errors import StorageError
from . import eventlog, safeopen
from . import layout as L
from .forms import forms_of, rows_in
from .scan_file import SCAN_ATTR, SCAN_GROUP, read_scan_info
from .unclosed import open_unclosed


@dataclass(frozen=True)
class StreamSummary:
    """What ``arrowdaq inspect`` prints about one stream."""

    name: str
    kind: str
    producer: str
    rows: int
    first_ns: int | None
    last_ns: int | None
    units: dict[str, str]
    #: Rows published to the stream while it was recorded, and rows that could not be stored
    #: (None in files written before arrowdaq counted them).
    published: int | None = None
    lost: int | None = None

    @property
    def span_s(self) -> float:
        return (self.last_ns - self.first_ns) / 1e9 if self.first_ns is not None and self.last_ns is not None else 0.0

    @property
    def rate(self) -> float | None:
        """Rows per second over the stream's time span (None with fewer than two rows)."""
        return (self.rows - 1) / self.span_s if self.rows > 1 and self.span_s > 0 else None


@dataclass(frozen=True)
class RunOverview:
    """:meth:`RunFile.overview`: what a run is, at a glance."""

    metadata: dict[str, Any]
    streams: list[StreamSummary]
    events: pa.Table
    written_by_arrowdaq: bool

    @property
    def problems(self) -> int:
        """Events that are warnings or errors."""
        return eventlog.problems(self.events)


class RunFile:
    """A run file's streams (Arrow tables, Polars LazyFrames), metadata, event log and scans.

    Use it as a context manager or call :meth:`close` when done: closing ends
    :meth:`iter_batches` iterators still reading and makes further use an error.
    Raises :class:`~arrowdaq.errors.StorageError` (one line naming the file) for
    a missing file, a file that is not a run file, or a layout it cannot read.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._held: list[h5py.File] = []  # files open in iterators, closed by close()
        self._closed = False
        with self._open() as f:
            self._check_layout(f)

    def __repr__(self) -> str:
        return f"<RunFile {self.path}{' closed' if self._closed else ''}>"

    def __enter__(self) -> RunFile:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Release the file (iterators still reading end); later calls raise StorageError."""
        self._closed = True
        for f in self._held:
            if f.id.valid:
                f.close()
        self._held.clear()

    @contextmanager
    def _open(self) -> Iterator[h5py.File]:
        """The file, read-only; a damaged file gives one StorageError naming it and what is wrong,
        at once (never a hang: see :mod:`.safeopen`), also when a read fails later."""
        if self._closed:
            raise StorageError(f"{self.path}: the run file was closed (open_run it again)")
        if not self.path.exists():
            raise StorageError(f"{self.path}: no such run file")
        try:
            sb = safeopen.superblock(self.path)
        except OSError as exc:
            raise StorageError(f"{self.path}: cannot read run file: {exc.strerror or exc}") from exc
        if sb is None:
            raise StorageError(f"{self.path}: cannot open run file: {safeopen.damage(self.path)}")
        plain = lambda: h5py.File(self.path, "r")  # noqa: E731
        unlocked = lambda: h5py.File(self.path, "r", locking=False)  # noqa: E731
        swmr = lambda: safeopen.open_swmr(self.path)  # noqa: E731
        swmr_closed = lambda: safeopen.open_swmr(self.path, attempts=1)  # noqa: E731
        # A closed file opens plainly (HDF5 then checks that it is whole); one still written, or left
        # by a crash, as a SWMR reader; a cut file after all as a SWMR reader, to read what is there.
        tries = (plain, swmr_closed, unlocked) if sb.flags == 0 else (swmr, plain, unlocked)
        f = raw = None
        errors: dict[object, OSError] = {}
        for attempt in tries:
            try:
                f = attempt()
                break
            except OSError as exc:
                errors[attempt] = exc
        if f is None and _held_by_writer(self.path):
            raise StorageError(
                f"{self.path}: a writer holds the run file outside SWMR mode (it is laying the file out, adding"
                " a stream, or writing the arrow_ipc layout); readable once it is in SWMR mode or closed"
            )
        if f is None:  # not closed by its writer, and not written in SWMR mode (the arrow_ipc layout)
            try:
                f, raw = open_unclosed(self.path) or (None, None)
            except (OSError, ValueError):
                pass
        if f is None:
            error = errors[plain]  # the plain read's reason: the SWMR attempt's hides it
            hint = (
                f"; the writer did not close this file (a crash?); `h5clear -s {self.path}` lets stock HDF5 tools"
                " open it"
                if "h5clear" in str(error)
                else ""
            )
            reason = safeopen.damage(self.path) or _first_line(error)
            raise StorageError(f"{self.path}: cannot open run file: {reason}{hint}") from error
        try:
            yield f
        except (OSError, RuntimeError, KeyError) as exc:  # h5py's errors on a damaged file
            reason = safeopen.damage(self.path) or "damaged"
            raise StorageError(f"{self.path}: cannot read run file: {reason} ({_first_line(exc)})") from exc
        finally:
            f.close()
            if raw is not None:
                raw.close()

    def _check_layout(self, f: h5py.File) -> None:
        """A file this reader cannot read is an error here, never a run of no streams."""
        if L.ENTRY not in f and L.ARROW_DATA not in f:
            raise StorageError(f"{self.path}: not an arrowdaq run file (no /{L.ENTRY} or /{L.ARROW_DATA})")
        if _written_by_arrowdaq(f) or self._groups(f):  # cheap test first: _groups visits every group
            return  # an arrowdaq run may have recorded no stream
        if L.ARROW_DATA in f:
            raise StorageError(
                f"{self.path}: /{L.ARROW_DATA} holds no Arrow IPC data (expected u8 datasets of Arrow IPC bytes,"
                " directly under it or in groups)"
            )
        raise StorageError(
            f"{self.path}: not an arrowdaq run file (/{L.ENTRY} has no arrowdaq streams and no"
            f" /{L.ENTRY}/{L.ARROWDAQ} record)"
        )

    # --- what is there ------------------------------------------------------------------
    @property
    def layout(self) -> str:
        """``"nexus"`` (one NXdata group per stream) or ``"arrow_ipc"`` (Arrow IPC bytes under /arrow_data)."""
        with self._open() as f:
            return self._layout(f)

    @staticmethod
    def _layout(f: h5py.File) -> str:
        if L.ENTRY in f and L.ARROWDAQ in f[L.ENTRY]:
            return L.attr_text(f[L.ENTRY][L.ARROWDAQ]["layout"][()])
        return "arrow_ipc" if L.ARROW_DATA in f else "nexus"

    def _groups(self, f: h5py.File) -> dict[str, h5py.Group | h5py.Dataset]:
        """Stream name → where it is: an NXdata group, or in the ``arrow_ipc`` form a group of
        u8 datasets (one Arrow IPC file or stream each) or one u8 dataset directly under ``/arrow_data``."""
        found: dict[str, h5py.Group | h5py.Dataset] = {}
        if L.ENTRY in f:
            for g in f[L.ENTRY].values():
                if isinstance(g, h5py.Group) and L.STREAM_ATTR in g.attrs:
                    found[L.attr_text(g.attrs[L.STREAM_ATTR])] = g
        if L.ARROW_DATA in f:
            root = f[L.ARROW_DATA]

            def visit(name: str, item: Any) -> None:
                if isinstance(item, h5py.Group) and (
                    L.STREAM_ATTR in item.attrs or any(_ipc_bytes(v) for v in item.values())
                ):
                    found[L.attr_text(item.attrs.get(L.STREAM_ATTR, name))] = item

            for name, item in root.items():  # flat: each dataset is a stream
                if _ipc_bytes(item):
                    found[L.attr_text(item.attrs.get(L.STREAM_ATTR, name))] = item
            root.visititems(visit)
        return found

    @property
    def streams(self) -> list[str]:
        """The streams recorded so far, e.g. ``['pm1/power', 'cam1/frames']``."""
        with self._open() as f:
            return list(self._groups(f))

    @property
    def damage(self) -> str | None:
        """What is wrong with a file its writer closed but that is not whole (cut short by a copy,
        a download, a full disk), or None. What can be read is still read."""
        try:
            sb = safeopen.superblock(self.path)
        except OSError as exc:
            return f"cannot read it: {exc.strerror or exc}"
        return safeopen.damage(self.path) if sb is not None and sb.flags == 0 else None

    @property
    def complete(self) -> bool:
        """True once arrowdaq closed the run normally; False while it records, after a crash or a
        write error, and for files another program wrote (see :attr:`written_by_arrowdaq`)."""
        with self._open() as f:
            own = f.get(f"{L.ENTRY}/{L.ARROWDAQ}")
            return bool(own is not None and "complete" in own and own["complete"][()])

    @property
    def written_by_arrowdaq(self) -> bool:
        """Whether arrowdaq wrote the file (it then records whether the run completed)."""
        with self._open() as f:
            return _written_by_arrowdaq(f)

    @property
    def metadata(self) -> dict[str, Any]:
        """The run's information as plain values (str, int, float, bool, lists and dicts of them)::

            run_id, name, operator, sample, notes  (str; "" when not given)
            start_time, end_time                   (ISO 8601 str; end_time None until complete)
            complete (bool), layout (str), program, version (str)
            configuration                          (the TOML text that ran, or a dict; None if none)
            instrument                             ({name: {"identity": {...}, "settings": {...}}})

        plus any other group or dataset of the NXentry, read as plain values.
        Empty for an ``arrow_ipc`` file another program wrote without an entry."""
        with self._open() as f:
            return self._metadata(f)

    def _metadata(self, f: h5py.File) -> dict[str, Any]:
        if L.ENTRY not in f:
            return {}
        entry = f[L.ENTRY]
        meta: dict[str, Any] = {}
        for name, item in entry.items():
            if name == L.INSTRUMENT and isinstance(item, h5py.Group):
                meta[name] = L.read_instruments(item)
            elif name == SCAN_GROUP and isinstance(item, h5py.Group):
                meta[name] = read_scan_info(entry)
            elif isinstance(item, h5py.Group):
                if L.STREAM_ATTR not in item.attrs and name not in (L.SCANS, eventlog.EVENTS):
                    meta[name] = L.read_mapping(item)
            else:
                meta[name] = L.read_value(L.refreshed(item))
        version = entry["program_name"].attrs.get("version") if "program_name" in entry else None
        return _plain_metadata(meta, version)

    @property
    def events(self) -> pa.Table:
        """The event log: time (s since the start), timestamp_ns, source, kind, level, message,
        details (JSON). Empty for files written before arrowdaq kept one."""
        with self._open() as f:
            return self._events(f)

    @staticmethod
    def _events(f: h5py.File) -> pa.Table:
        g = f.get(f"{L.ENTRY}/{eventlog.EVENTS}")
        return eventlog.read(g) if g is not None else eventlog.SCHEMA.empty_table()

    @property
    def problems(self) -> int:
        """Events of the run that are warnings or errors."""
        return eventlog.problems(self.events)

    @property
    def scans(self) -> dict[str, pa.Table]:
        """The scan tables in the file (a scan's file has one), by plan name: one row per point
        (setpoints, read-backs, detector means and stds, time, index). The plan, its arguments,
        exit status and peak statistics are in ``metadata["scan"]``."""
        with self._open() as f:
            return {
                L.attr_text(g.attrs[SCAN_ATTR]): _read_nexus(g, self.path, name)
                for name, g in self._groups(f).items()
                if SCAN_ATTR in g.attrs
            }

    # --- data -----------------------------------------------------------------------------
    def _group(self, f: h5py.File, stream: str) -> h5py.Group:
        likely = f.get(f"{L.ENTRY}/{L.stream_key(stream, set())}")  # where the writer puts it, unless taken
        if isinstance(likely, h5py.Group) and L.attr_text(likely.attrs.get(L.STREAM_ATTR, "")) == stream:
            return likely  # without visiting every group and its attributes (~10 ms of a read)
        groups = self._groups(f)
        if stream not in groups:
            known = ", ".join(groups) or "none"
            raise StorageError(f"{self.path}: no stream {stream!r} (streams: {known})")
        return groups[stream]

    def schema(self, stream: str) -> pa.Schema:
        """The schema of the batches :meth:`table` returns (strings dictionary-encoded: decision 0023)."""
        with self._open() as f:
            g = self._group(f, stream)
            if g.name.startswith(f"/{L.ARROW_DATA}") and L.SCHEMA_ATTR not in g.attrs:
                return _read_ipc(g, self.path, stream).schema
            return encoded_schema(_schema_of(g, self.path, stream))

    def table(self, stream: str) -> pa.Table:
        """Every row of ``stream`` flushed so far, as a pyarrow Table of the batches that were
        recorded (same schema; ``channel`` and ``unit`` dictionary-encoded). For a stream too large
        for memory, use :meth:`iter_batches`."""
        with self._open() as f:
            g = self._group(f, stream)
            if g.name.startswith(f"/{L.ARROW_DATA}"):
                return _read_ipc(g, self.path, stream)
            return _read_nexus(g, self.path, stream)

    def iter_batches(self, stream: str, max_rows: int = 65_536) -> Iterator[pa.RecordBatch]:
        """``stream`` in slices of at most ``max_rows`` rows, reading one slice at a time
        (for exports larger than memory). The file stays open while the iterator runs;
        :meth:`close` ends it."""
        with self._open() as f:
            self._held.append(f)
            try:
                g = self._group(f, stream)
                if g.name.startswith(f"/{L.ARROW_DATA}"):
                    yield from _read_ipc(g, self.path, stream).to_batches(max_chunksize=max_rows)
                    return
                schema = encoded_schema(_schema_of(g, self.path, stream))
                rows = _nexus_rows(g, schema, stream)
                for start in range(0, rows, max_rows):
                    if self._closed:
                        return
                    yield from _read_nexus(g, self.path, stream, start, min(rows, start + max_rows)).to_batches()
            finally:
                if f in self._held:
                    self._held.remove(f)

    def counts(self) -> dict[str, tuple[int, int | None, int | None]]:
        """Per stream: rows stored, rows published while it was recorded and rows lost (None in
        files from before arrowdaq counted them). Reads no data."""
        out: dict[str, tuple[int, int | None, int | None]] = {}
        with self._open() as f:
            for name, g in self._groups(f).items():
                if g.name.startswith(f"/{L.ARROW_DATA}"):
                    out[name] = (_read_ipc(g, self.path, name).num_rows, None, None)
                else:
                    out[name] = (_nexus_rows(g, _schema_of(g, self.path, name), name), *_counts(g))
        return out

    def num_rows(self, stream: str) -> int:
        """Rows of ``stream`` flushed so far (reads no data in the ``nexus`` layout)."""
        with self._open() as f:
            g = self._group(f, stream)
            if g.name.startswith(f"/{L.ARROW_DATA}"):
                return _read_ipc(g, self.path, stream).num_rows
            return _nexus_rows(g, encoded_schema(_schema_of(g, self.path, stream)), stream)

    def lazy(self, stream: str, time: str | None = None) -> pl.LazyFrame:
        """``stream`` as a Polars LazyFrame, for analysis (frames as Array columns, constant strings
        Categorical).

        Args:
            stream: a name from :attr:`streams`, e.g. ``"pm1/power"``.
            time: ``"seconds"`` adds a first column ``time`` in seconds since the run start (float,
                what viewers plot), ``"datetime"`` the timestamps as UTC datetimes, None neither.
                ``timestamp_ns`` stays in every case.

        Example: ``run.lazy("pm1/power", time="seconds").filter(pl.col("time") < 60).collect()``."""
        if time not in (None, "datetime", "seconds"):
            raise StorageError(f"lazy({stream!r}, time={time!r}): time is 'datetime', 'seconds' or None")
        df = to_polars(self.table(stream)).lazy()
        if time is None:
            return df
        if "timestamp_ns" not in self.schema(stream).names:
            raise StorageError(f"{self.path}: stream {stream!r} has no timestamp_ns column to give a time")
        ns = pl.col("timestamp_ns").cast(pl.Int64)
        if time == "datetime":
            column = ns.cast(pl.Datetime("ns", "UTC"))
        else:
            column = (ns - self.start_ns) / 1e9
        return df.select(column.alias("time"), pl.all())

    @property
    def start_ns(self) -> int:
        """The run start (``start_time``) in ns since the epoch: the zero of ``time`` axes."""
        start = self.metadata.get("start_time")
        if not start:
            raise StorageError(f"{self.path}: the file records no start_time")
        return L.iso_ns(start)

    def overview(self) -> RunOverview:
        """Metadata, stream summaries and event log, read in one opening of the file
        (what ``arrowdaq inspect`` and the catalogue of runs show)."""
        with self._open() as f:
            return RunOverview(self._metadata(f), self._summary(f), self._events(f), _written_by_arrowdaq(f))

    def summary(self) -> list[StreamSummary]:
        """Rows, time span and units of each stream (reads only the timestamps)."""
        with self._open() as f:
            return self._summary(f)

    def _summary(self, f: h5py.File) -> list[StreamSummary]:
        out = []
        for name, g in self._groups(f).items():
            if g.name.startswith(f"/{L.ARROW_DATA}"):
                table = _read_ipc(g, self.path, name)
                schema, rows = table.schema, table.num_rows
                ts = table.column("timestamp_ns").to_numpy() if "timestamp_ns" in schema.names else None
                published = lost = None
            else:
                schema = _schema_of(g, self.path, name)
                rows = _nexus_rows(g, schema, name)
                ts = g["timestamp_ns"][:rows] if "timestamp_ns" in g else None
                published, lost = _counts(g)
            units = {
                fl.name: fl.metadata[UNIT_KEY].decode() for fl in schema if fl.metadata and UNIT_KEY in fl.metadata
            }
            first = int(ts.min()) if ts is not None and len(ts) else None
            last = int(ts.max()) if ts is not None and len(ts) else None
            out.append(
                StreamSummary(
                    name,
                    L.attr_text(g.attrs.get(L.KIND_ATTR, "")) or "extension",
                    L.attr_text(g.attrs.get(L.PRODUCER_ATTR, "")),
                    rows,
                    first,
                    last,
                    units,
                    published,
                    lost,
                )
            )
        return out


def _held_by_writer(path: Path) -> bool:
    """True while another process holds HDF5's exclusive lock: a live writer not in SWMR mode. Its
    file changes under us, so it must not be read as if a crash had left it (``open_unclosed``)."""
    return safeopen.lockable(path, exclusive=False) is False


def _format_version(g: h5py.Group) -> int:
    own = g.file.get(f"{L.ENTRY}/{L.ARROWDAQ}")
    return int(own["format_version"][()]) if own is not None and "format_version" in own else 1


def _counts(g: h5py.Group) -> tuple[int | None, int | None]:
    """Rows published to a stream and rows lost, as of the last flush (None in older files)."""
    if L.PUBLISHED_ROWS not in g:
        return None, None
    return int(L.refreshed(g[L.PUBLISHED_ROWS])[()]), int(L.refreshed(g[L.LOST_ROWS])[()])


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _schema_of(g: h5py.Group, path: Path, stream: str) -> pa.Schema:
    if L.SCHEMA_ATTR not in g.attrs:
        raise StorageError(f"{path}: stream {stream!r} has no stored Arrow schema ({L.SCHEMA_ATTR})")
    return L.decode_schema(g.attrs[L.SCHEMA_ATTR])


def _nexus_rows(g: h5py.Group, schema: pa.Schema, stream: str) -> int:
    """Whole rows on disk: the shortest per-row column (a writer may be mid-append)."""
    rows_of = rows_in(g)
    lengths = [rows_of(name) for form in forms_of(schema, stream) for name in form.row_datasets(rows_of)]
    if L.FLUSHED_ROWS in g:
        lengths.append(int(L.refreshed(g[L.FLUSHED_ROWS])[()]))
    return min(lengths, default=0)


def _read_nexus(g: h5py.Group, path: Path, stream: str, start: int = 0, stop: int | None = None) -> pa.Table:
    """Rows ``start:stop`` of a stream (stop defaults to every whole row on disk)."""
    schema = encoded_schema(_schema_of(g, path, stream))
    rows = _nexus_rows(g, schema, stream)
    stop = rows if stop is None else min(stop, rows)
    forms = forms_of(schema, stream, _format_version(g))
    return pa.Table.from_arrays([form.read(g, start, stop) for form in forms], schema=schema)


def _written_by_arrowdaq(f: h5py.File) -> bool:
    return f.get(f"{L.ENTRY}/{L.ARROWDAQ}") is not None


def _ipc_bytes(item: Any) -> bool:
    """A 1-D dataset of bytes (u8/i8): what the original design stores Arrow IPC data in."""
    return isinstance(item, h5py.Dataset) and item.ndim == 1 and item.dtype.kind in "ui" and item.dtype.itemsize == 1


def _ipc_table(raw: np.ndarray) -> pa.Table:
    """Arrow IPC bytes in the file format (``pyarrow.ipc.new_file``) or the stream format."""
    buffer = pa.py_buffer(np.ascontiguousarray(raw).tobytes())
    try:
        return pa.ipc.open_file(buffer).read_all()
    except pa.ArrowInvalid:
        return pa.ipc.open_stream(buffer).read_all()


def _read_ipc(g: h5py.Group | h5py.Dataset, path: Path, stream: str) -> pa.Table:
    """The original layout: Arrow IPC data in u8 datasets (a group's in name order). arrowdaq's
    own streams come back with the declared schema; another program's exactly as it wrote them."""
    datasets = [g] if isinstance(g, h5py.Dataset) else [g[k] for k in sorted(g) if _ipc_bytes(g[k])]
    tables = []
    for ds in datasets:
        try:
            tables.append(_ipc_table(L.refreshed(ds)[()]))
        except pa.ArrowInvalid as exc:
            raise StorageError(f"{path}: stream {stream!r}: {ds.name} is not Arrow IPC data: {exc}") from exc
    if L.SCHEMA_ATTR in g.attrs:
        schema = encoded_schema(_schema_of(g, path, stream))
    elif tables:
        schema = tables[0].schema
        for ds, t in zip(datasets, tables, strict=True):
            if not t.schema.equals(schema):
                raise StorageError(
                    f"{path}: stream {stream!r}: {ds.name} has another schema than {datasets[0].name}:"
                    f" {t.schema.to_string(show_schema_metadata=False)!r}"
                )
    else:
        raise StorageError(f"{path}: stream {stream!r} has no batches and no stored schema")
    if not tables:
        return schema.empty_table()
    return pa.concat_tables([t.cast(schema) for t in tables])


def _plain_metadata(meta: dict[str, Any], version: Any) -> dict[str, Any]:
    """The NXentry as read (NeXus wrappers: ``sample/name``, ``notes/data``...) as plain values."""

    def text(name: str, field: str) -> Any:
        item = meta.pop(name, None)
        return item.get(field) if isinstance(item, dict) else item

    own = meta.pop(L.ARROWDAQ, {}) or {}
    configuration = meta.pop("configuration", None)
    if isinstance(configuration, dict):
        data = configuration.get("data")
        if configuration.get("type") == "application/json" and isinstance(data, str):
            data = json.loads(data)
        configuration = data
    plain: dict[str, Any] = {
        "run_id": meta.pop("entry_identifier", ""),
        "name": meta.pop("title", ""),
        "operator": text("user", "name") or "",
        "sample": text("sample", "name") or "",
        "notes": text("notes", "data") or "",
        "start_time": meta.pop("start_time", None),
        "end_time": meta.pop("end_time", None) or None,  # empty until the run is complete
        "complete": bool(own.get("complete", 0)),
        "layout": own.get("layout", ""),
        "program": meta.pop("program_name", ""),
        "version": L.attr_text(version) if version is not None else "",
        "configuration": configuration,
        "instrument": meta.pop(L.INSTRUMENT, {}),
    }
    plain.update(meta)  # anything else in the entry, as read
    return plain


def open_run(path: str | Path) -> RunFile:
    """Open a run file to analyse what was recorded: complete, still being written, or left by a crash.

    Nothing needs repairing first: a file being written is read up to its last flush, one left by
    a crash holds every row flushed before it (``run.complete`` is then False).

    Args:
        path: an HDF5 run file written by arrowdaq (``nexus`` or ``arrow_ipc`` layout), or one in
            the original ``arrow_ipc`` form written by another program.

    Returns:
        An open :class:`RunFile` with ``streams``, ``table(stream)`` (pyarrow), ``lazy(stream,
        time=...)`` (Polars), ``metadata``, ``events``, ``scans`` and ``summary()``; close it, or
        use ``with``.

    Raises:
        StorageError: the file is missing, is not a run file, is damaged beyond
            reading, or holds Arrow data in a layout it cannot read (one line naming the file).

    Example::

        from arrowdaq import open_run

        path = "data/alignment_20261124T101500Z-3f2a1c.h5"
        with open_run(path) as run:
            power = run.lazy("pm1/power", time="seconds").collect()   # time, timestamp_ns, channel, value, unit
            run.metadata["instrument"]["pm1"]["settings"]             # the settings the run used
    """
    return RunFile(path)
