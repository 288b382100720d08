"""Names and metadata shared by the run-file writers and the reader.

A run file (NeXus, readable by silx, h5web, NeXpy, MATLAB and plain h5py)::

    /                       @NX_class=NXroot @default="entry"
    /entry                  NXentry  @default=<the stream a viewer plots first, see nexus.default_rank>
        title, entry_identifier (run id), start_time, end_time (empty until complete),
        program_name @version, user/name (NXuser), sample/name (NXsample),
        notes (NXnote), configuration (NXnote: the configuration that ran),
        instrument/<name>/... (NXinstrument: one NXcollection per instrument)
        instrument/late_info_json  info sent while SWMR ran (JSON lines, see append_instrument_log)
        events/             NXcollection: the event log (see eventlog)
        arrowdaq/           NXcollection: layout, format_version, complete (0/1)
        <instrument>_<stream>/   NXdata, one per stream (layout "nexus"): @signal, @axes=time
            time            seconds since the run start (@start: entry/start_time), the default axis
            timestamp_ns    the recorded UTC nanoseconds (an alternative axis, @timestamp_ns_indices)
            <columns>       one dataset per Arrow column, @long_name "What (unit)", @units
        scan_points/, scan_map/, scan/   a scan's file: see scan_file.py
    /arrow_data/<instrument>/<stream>/batch_NNNNNN   (layout "arrow_ipc": Arrow IPC file bytes)
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import h5py
import numpy as np
import pyarrow as pa
from h5py import h5s

ENTRY = "entry"
ARROWDAQ = "arrowdaq"  # the NXcollection with arrowdaq's own bookkeeping
INSTRUMENT = "instrument"
ARROW_DATA = "arrow_data"
SCANS = "scans"
#: 2: dictionary values may continue over several entries; trace lengths may vary (``_lengths``).
FORMAT_VERSION = 2

STREAM_ATTR = "arrowdaq_stream"
SCHEMA_ATTR = "arrowdaq_schema"
PRODUCER_ATTR = "arrowdaq_producer"
KIND_ATTR = "arrowdaq_kind"
#: Per stream: the rows known to be on disk, written after each flush. Rows past it
#: (a crash or a write error mid-append) may hold fill values, so readers stop there.
FLUSHED_ROWS = "arrowdaq_flushed_rows"
#: Per stream: rows published to it while recording, and of those the rows that could not be
#: stored (each loss is also an event of kind "lost"); as of the last flush.
PUBLISHED_ROWS = "arrowdaq_published_rows"
LOST_ROWS = "arrowdaq_lost_rows"

#: Fixed-length UTF-8 width of dictionary entries (channel names, units). Fixed length
#: because SWMR writers cannot safely append variable-length strings.
DICTIONARY_BYTES = 256
DICTIONARY_DTYPE = h5py.string_dtype("utf-8", DICTIONARY_BYTES)
#: ``end_time`` exists from the start, empty, so that closing writes it in place (in SWMR mode).
END_TIME_DTYPE = h5py.string_dtype("utf-8", 64)

#: Instrument info sent while SWMR runs (no new groups allowed then): ASCII JSON lines
#: ``{"<instrument>": {...}}\n`` cut into fixed-width pieces; join the pieces, split the lines.
#: A complete file turns them into NXcollection groups when no reader holds it at the end.
INSTRUMENT_LOG = "late_info_json"
INSTRUMENT_LOG_PIECE = 1024


def create_instrument_log(group: h5py.Group) -> h5py.Dataset:
    ds = group.create_dataset(INSTRUMENT_LOG, (0,), f"S{INSTRUMENT_LOG_PIECE}", maxshape=(None,), chunks=(16,))
    ds.attrs["description"] = (
        "instrument identities and settings sent during the run: JSON lines"
        " {instrument: info}, cut into pieces; join them; later lines replace earlier ones"
    )
    return ds


def append_instrument_log(ds: h5py.Dataset, name: str, info: Mapping[str, Any]) -> None:
    """Append one instrument's info; resizing an existing dataset is allowed in SWMR mode."""
    text = (json.dumps({name: info}, default=str, ensure_ascii=True) + "\n").encode("ascii")
    pieces = [text[i : i + INSTRUMENT_LOG_PIECE] for i in range(0, len(text), INSTRUMENT_LOG_PIECE)]
    n = ds.shape[0]
    ds.resize(n + len(pieces), axis=0)
    ds[n:] = np.array(pieces, ds.dtype)


def read_instrument_log(ds: h5py.Dataset) -> dict[str, Any]:
    if ds.file.swmr_mode:
        ds.refresh()
    found: dict[str, Any] = {}
    for line in b"".join(ds[()].tolist()).decode("ascii").splitlines():
        if line.strip():
            found.update(json.loads(line))
    return found


def read_instruments(group: h5py.Group) -> dict[str, Any]:
    """``/entry/instrument``: the NXcollection groups, then the info sent later (it replaces them)."""
    found = {name: read_mapping(item) for name, item in group.items() if isinstance(item, h5py.Group)}
    if INSTRUMENT_LOG in group:
        found.update(read_instrument_log(group[INSTRUMENT_LOG]))
    return found


def now_iso() -> str:
    return datetime.now(UTC).isoformat()


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
#: The NXdata axis of every stream with timestamps: seconds since the run started.
TIME = "time"


def start_iso(ns: int) -> str:
    """The run start for ``start_time`` (and ``time@start``): UTC, to the microsecond, so that
    :func:`iso_ns` of it gives back the ``ns`` the ``time`` axes count from."""
    return (EPOCH + timedelta(microseconds=ns // 1000)).isoformat(timespec="microseconds")


def iso_ns(text: str) -> int:
    """Nanoseconds since the epoch of an ISO 8601 time (microsecond resolution)."""
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    delta = moment - EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1000


def encode_schema(schema: pa.Schema) -> str:
    """The Arrow schema (with its metadata) as ASCII text for an HDF5 attribute."""
    return base64.b64encode(schema.serialize().to_pybytes()).decode("ascii")


def decode_schema(text: str | bytes) -> pa.Schema:
    raw = base64.b64decode(text)
    return pa.ipc.read_schema(pa.py_buffer(raw))


def attr_text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def refreshed(ds: h5py.Dataset) -> h5py.Dataset:
    """``ds`` with what a SWMR writer appended since it was opened (a no-op outside SWMR)."""
    if ds.file.swmr_mode:
        ds.refresh()
    return ds


def set_nx(group: h5py.Group, nx_class: str) -> h5py.Group:
    group.attrs["NX_class"] = nx_class
    return group


def write_text(group: h5py.Group, name: str, text: str) -> h5py.Dataset:
    if name in group:
        del group[name]
    return group.create_dataset(name, data=text, dtype=h5py.string_dtype("utf-8"))


#: Attribute of a dataset holding a value as JSON text (one HDF5 has no form for, e.g. a list of dicts).
JSON_ATTR = "arrowdaq_json"


def write_mapping(group: h5py.Group, values: Mapping[str, Any]) -> None:
    """A nested dict as groups (NXcollection) and datasets: identities, settings.
    Lists of strings become string arrays; what HDF5 cannot hold is JSON text marked ``@arrowdaq_json``."""
    for key, value in values.items():
        name = str(key).replace("/", "_")
        if name in group:
            del group[name]
        if isinstance(value, Mapping):
            write_mapping(set_nx(group.create_group(name), "NXcollection"), value)
        elif value is None:
            continue
        elif isinstance(value, str):
            write_text(group, name, value)
        elif isinstance(value, (list, tuple)) and value and all(isinstance(v, str) for v in value):
            group.create_dataset(name, data=list(value), dtype=h5py.string_dtype("utf-8"))
        else:
            try:
                group.create_dataset(name, data=np.asarray(value))
            except (TypeError, ValueError):
                write_text(group, name, json.dumps(value, default=str)).attrs[JSON_ATTR] = 1


def read_value(ds: h5py.Dataset) -> Any:
    """A small dataset as a plain Python value: str, int, float, bool, or lists of them."""
    if h5py.check_string_dtype(ds.dtype) is not None:
        value = ds.asstr()[()]
        if JSON_ATTR in ds.attrs:
            return json.loads(value)
    else:
        value = ds[()]
        if isinstance(value, bytes):  # opaque or old-style byte strings
            return value.decode(errors="replace")
    return value.tolist() if isinstance(value, (np.ndarray, np.generic)) else value


def read_mapping(group: h5py.Group) -> dict[str, Any]:
    """The inverse of :func:`write_mapping`."""
    return {
        name: read_mapping(item) if isinstance(item, h5py.Group) else read_value(item) for name, item in group.items()
    }


def write_rows(ds: h5py.Dataset, n0: int, values: np.ndarray) -> None:
    """Write ``values`` as rows ``n0:n0+len(values)`` of ``ds`` (already that long) with h5py's
    low-level calls: ``ds[a:b] = v`` costs ~3x the CPU for a 1,000-row write and ~1.3x for a
    100,000-row one (selection objects, shape queries). Values of another dtype go through h5py's
    conversion."""
    if values.dtype != ds.dtype:
        ds[n0 : n0 + len(values)] = values
        return
    rows = ds.id.get_space()
    rows.select_hyperslab((n0, *(0,) * (values.ndim - 1)), values.shape)
    ds.id.write(h5s.create_simple(values.shape), rows, np.ascontiguousarray(values))


def stream_key(stream: str, taken: set[str]) -> str:
    """The NXdata group name of a stream: ``pm1/power`` → ``pm1_power`` (suffixed if taken)."""
    base = stream.replace("/", "_")
    key, n = base, 1
    while key in taken:
        n += 1
        key = f"{base}_{n}"
    return key
