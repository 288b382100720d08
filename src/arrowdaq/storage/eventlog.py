"""The run file's event log: ``/entry/events``, a table of what happened during the run.

An NXcollection of equally long 1-D datasets, one row per event, so that h5py,
MATLAB and h5web show it as a table::

    /entry/events           NXcollection
        time                float64, s since the run start (@start: ISO 8601)
        timestamp_ns        int64, ns since the Unix epoch (UTC)
        source, kind, level fixed-length UTF-8 (64, 32, 16 bytes)
        message             fixed-length UTF-8 (1024 bytes)
        details             JSON text (2048 bytes): the fields of the event's kind

Fixed-length strings, because a SWMR writer cannot append variable-length ones;
a longer text is cut at a character boundary and ends with "…". ``timestamp_ns``
is written last: a row a crash left half written has 0 there and is not read.
The datasets exist before SWMR starts, so events are appended all run long.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import h5py
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..hub.events import PROBLEMS, RunEvent
from . import layout as L

EVENTS = "events"
#: Bytes of each text column.
TEXT_BYTES = {"source": 64, "kind": 32, "level": 16, "message": 1024, "details": 2048}
#: Rows per chunk, gzip-compressed whatever the run's options (stock HDF5 reads it; the
#: padding of fixed-length strings then costs little).
CHUNK_ROWS = 64
FILTERS = {"compression": "gzip", "compression_opts": 4}

#: What ``RunFile.events`` returns.
SCHEMA = pa.schema(
    [
        pa.field("time", pa.float64(), metadata={"unit": "s", "long_name": "time since the run start"}),
        pa.field("timestamp_ns", pa.int64()),
        *(pa.field(name, pa.string()) for name in TEXT_BYTES),
    ]
)


def create(entry: h5py.Group, start_time: str) -> h5py.Group:
    """The empty event log (before SWMR starts)."""
    g = L.set_nx(entry.create_group(EVENTS), "NXcollection")
    g.attrs["description"] = (
        "the run's event log, one row per event: instrument status changes, reconnects, alarms,"
        " storage problems, lost batches, commands; details holds JSON"
    )
    t = g.create_dataset("time", (0,), "f8", maxshape=(None,), chunks=(CHUNK_ROWS,), **FILTERS)
    t.attrs.update({"units": "s", "start": start_time, "long_name": "time since the run start (s)"})
    ns = g.create_dataset("timestamp_ns", (0,), "i8", maxshape=(None,), chunks=(CHUNK_ROWS,), **FILTERS)
    ns.attrs.update({"units": "ns", "long_name": "time since the Unix epoch (UTC)"})
    for name, width in TEXT_BYTES.items():
        g.create_dataset(
            name, (0,), h5py.string_dtype("utf-8", width), maxshape=(None,), chunks=(CHUNK_ROWS,), **FILTERS
        )
    return g


def fit(text: str, width: int) -> bytes:
    """``text`` as UTF-8 of at most ``width`` bytes, cut at a character boundary with "…"."""
    raw = text.encode()
    if len(raw) <= width:
        return raw
    return raw[: width - 3].decode(errors="ignore").encode() + "…".encode()


def append(g: h5py.Group, events: Sequence[RunEvent], run_start_ns: int) -> None:
    """Append events (resizing is allowed in SWMR mode); ``timestamp_ns`` last."""
    if not events:
        return
    n0 = min(g[name].shape[0] for name in SCHEMA.names)  # after a crash mid-append: overwrite the half row
    columns = {
        "source": [e.source for e in events],
        "kind": [e.kind for e in events],
        "level": [e.level for e in events],
        "message": [e.message for e in events],
        "details": [json.dumps(dict(e.details), default=str, ensure_ascii=False) for e in events],
    }
    for name, width in TEXT_BYTES.items():
        ds = g[name]
        _append(ds, n0, np.array([fit(v, width) for v in columns[name]], ds.dtype))
    ns = np.array([e.time_ns for e in events], np.int64)
    _append(g["time"], n0, (ns - run_start_ns) / 1e9)
    _append(g["timestamp_ns"], n0, ns)


def _append(ds: h5py.Dataset, n0: int, values: np.ndarray) -> None:
    ds.id.set_extent((n0 + len(values),))
    L.write_rows(ds, n0, values)


def read(g: h5py.Group) -> pa.Table:
    """The event log as a table (rows a crash left half written are left out)."""
    cols = {}
    for name in SCHEMA.names:
        ds = g[name]
        if ds.file.swmr_mode:
            ds.refresh()
        cols[name] = ds
    rows = min(ds.shape[0] for ds in cols.values())
    ns = cols["timestamp_ns"][:rows]
    whole = ns != 0
    arrays = [pa.array(cols["time"][:rows][whole]), pa.array(ns[whole])]
    for name in TEXT_BYTES:
        arrays.append(pa.array([v.decode(errors="replace") for v in cols[name][:rows][whole]], pa.string()))
    return pa.Table.from_arrays(arrays, schema=SCHEMA)


def problems(table: pa.Table) -> int:
    """Events that are warnings or errors."""
    return pc.sum(pc.is_in(table.column("level"), pa.array(PROBLEMS))).as_py() or 0
