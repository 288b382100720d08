"""The run-file writer base: file life cycle, run metadata, SWMR, completion.

Every method is blocking (h5py) and runs in the storage actor's worker thread.
HDF5's SWMR mode forbids new objects once it has started, and a reader holding
the file (``open_run``, silx, h5web) keeps the writer from reopening it. So
everything the run writes later exists before SWMR starts: ``end_time`` and
``complete`` are written in place at the end, and instrument info sent later is
appended as JSON text (see :mod:`.layout`). Only a stream declared late needs
:meth:`RunWriter._restructure` (flush, close, reopen, add, resume SWMR), and it
is refused (:class:`RunFileBusy`) while another process holds the file.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import h5py
import pyarrow as pa

from ..errors import RunFileBusy, StorageError
from ..hub.events import RunEvent
from ..hub.streams import StreamSpec
from . import eventlog, safeopen
from . import layout as L
from .options import RunInfo, StorageOptions

log = logging.getLogger(__name__)

#: HDF5 file-format bounds: 1.10 is the oldest format with SWMR, and capping it there keeps
#: run files readable by HDF5 1.10+ tools (h5dump, HDFView, MATLAB), not only by the HDF5 h5py bundles.
FILE_FORMAT = ("v110", "v110")
#: Age (s) after which an unlocked ``.NAME.creating`` file is a killed run's leftover: creating
#: a file takes milliseconds.
ABANDONED_AFTER = 60.0
#: Seconds a late stream waits for readers to release the file before it is skipped.
BUSY_WAIT = 2.0


def remove_abandoned_creations(data_dir: Path, older_than: float = ABANDONED_AFTER) -> list[Path]:
    """Delete the ``.NAME.creating`` files that runs killed while creating their file left behind.

    Such a file never holds readings (rows are written only after the rename), only the
    run's metadata; one still held by a live writer, or younger than ``older_than`` seconds,
    is left alone. Each removal is logged: it is the only trace of the killed run."""
    removed = []
    for path in data_dir.glob(".*.creating"):
        try:
            age = time.time() - path.stat().st_mtime
        except OSError:
            continue
        if age >= older_than and safeopen.lockable(path, exclusive=True):
            try:
                path.unlink()
            except OSError as exc:
                log.warning("%s: left by a run killed while creating its file; cannot remove it: %s", path, exc)
                continue
            log.warning("removed %s: left by a run killed while creating its file (it held no readings)", path)
            removed.append(path)
    return removed


def _version() -> str:
    from .. import __version__

    return __version__


class RunWriter:
    """Opens, structures and completes one run file; subclasses store the batches."""

    layout: str = ""
    swmr: bool = True

    def __init__(
        self,
        path: Path,
        options: StorageOptions,
        run: RunInfo,
        instruments: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> None:
        self.path = Path(path)
        self.options = options
        self.run = run
        self.instruments: dict[str, Mapping[str, Any]] = dict(instruments or {})
        self.file: h5py.File | None = None
        self.broken = False  # a write failed: never touch the file's structure again
        #: The run start (UTC ns, to the microsecond): ``entry/start_time``, the zero of every ``time``
        #: axis (the streams' and the event log's).
        self.start_ns = time.time_ns() // 1000 * 1000

    # --- life cycle ------------------------------------------------------------------
    def open(self, streams: Sequence[StreamSpec]) -> None:
        """Create the file (or resume it after an actor restart), add ``streams``, start SWMR.

        A new file is laid out under a hidden name (``.NAME.creating``) and renamed once SWMR
        runs: until then HDF5 has written only part of its metadata, and a process killed
        then would leave a file nobody can read. So the run file appears readable."""
        creating: Path | None = None
        if self.path.exists():
            self.file = self._reopen()
            found = L.attr_text(self.file[L.ENTRY]["entry_identifier"][()]) if L.ENTRY in self.file else None
            if found != self.run.run_id:
                self.file.close()
                self.file = None
                raise StorageError(f"{self.path}: exists and holds run {found!r}, not {self.run.run_id!r}")
            self._write_end(self.file, "", 0)  # resumed after a restart: running again
            self.start_ns = L.iso_ns(L.attr_text(self.file[L.ENTRY]["start_time"][()]))
            if L.INSTRUMENT_LOG not in self.file[L.ENTRY][L.INSTRUMENT]:  # a file of an older version
                L.create_instrument_log(self.file[L.ENTRY][L.INSTRUMENT])
            if eventlog.EVENTS not in self.file[L.ENTRY]:
                entry = self.file[L.ENTRY]
                eventlog.create(entry, L.attr_text(entry["start_time"][()]))
        else:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                remove_abandoned_creations(self.path.parent)
                creating = self.path.with_name(f".{self.path.name}.creating")
                self.file = h5py.File(creating, "w", libver=FILE_FORMAT)
            except OSError as exc:
                raise StorageError(f"{self.path}: cannot create run file: {exc}") from exc
            self.start_ns = time.time_ns() // 1000 * 1000
            self._write_entry()
        try:
            self._add_streams(streams)
            self._load()
            self._start_swmr()
        except Exception:
            self.file.close()  # the file keeps its run metadata and the streams created completely
            self.file = None
            if creating is not None:
                os.rename(creating, self.path)
            raise
        if creating is not None:
            os.rename(creating, self.path)

    def add_streams(self, streams: Sequence[StreamSpec], wait: float = BUSY_WAIT) -> None:
        """Add streams declared after recording started.

        Raises :class:`RunFileBusy` (file still open and recording) if another
        process holds the file for more than ``wait`` seconds."""
        self._restructure(lambda: self._add_streams(streams), wait)

    def set_instrument(self, name: str, info: Mapping[str, Any]) -> None:
        """Record (or replace) an instrument's identity and settings; never reopens the file."""
        if self.broken:
            raise StorageError(f"{self.path}: a write failed earlier; not changing the file")
        self.instruments[name] = info
        if self.swmr:
            L.append_instrument_log(self._open_file[L.ENTRY][L.INSTRUMENT][L.INSTRUMENT_LOG], name, info)
        else:
            self._write_instrument(name, info)

    def append_events(self, events: Sequence[RunEvent]) -> None:
        """Append to the event log (``/entry/events``, see :mod:`.eventlog`); never reopens the file."""
        if self.broken:
            raise StorageError(f"{self.path}: a write failed earlier; not changing the file")
        eventlog.append(self._open_file[L.ENTRY][eventlog.EVENTS], events, self.start_ns)

    def flush(self) -> None:
        if self.file is not None:
            self.file.flush()
            self._check_present()

    def _check_present(self) -> None:
        """The file may be deleted or moved while open; writes would then go nowhere."""
        if not self.path.exists():
            raise StorageError(f"{self.path}: the run file vanished (deleted or moved) while recording")

    def close(self, complete: bool = True) -> None:
        """Close; a complete run gets its end time and ``complete = 1`` (not after a write error).

        Both are written in place, in SWMR mode, so readers holding the file do
        not matter. If no reader holds it afterwards, the file is reopened once
        for :meth:`_finish` (tidy-ups a viewer shows nicer; skipped otherwise)."""
        if self.file is None:
            return
        finished = complete and not self.broken
        try:
            if finished:
                self._check_present()
                self._write_end(self.file, L.now_iso(), 1)
                self.file.flush()
        finally:
            file, self.file = self.file, None
            file.close()
        if finished and self._unlocked():
            try:
                with h5py.File(self.path, "a", libver=FILE_FORMAT) as f:
                    self._finish(f)
            except OSError:  # a reader came in between: the run is complete all the same
                pass

    def abandon(self) -> None:
        """After a write error: close without writing anything more into the file.

        HDF5 retries the failed writes when it closes the file (and, if that
        fails, again at interpreter exit, where it crashed the process in our
        disk-full test). Pointing its file descriptor at /dev/null first lets it
        close cleanly while the file on disk keeps its last flushed, consistent state.
        """
        self.broken = True
        if self.file is None:
            return
        file, self.file = self.file, None
        try:
            fd = file.id.get_vfd_handle()
            null = os.open(os.devnull, os.O_RDWR)
            try:
                os.dup2(null, fd)
            finally:
                os.close(null)
        except Exception:
            pass
        self._forget()  # only now: closing a dataset flushes its cached chunks
        try:
            file.close()
        except Exception:
            pass

    # --- for subclasses ---------------------------------------------------------------
    def _add_streams(self, streams: Sequence[StreamSpec]) -> None:
        raise NotImplementedError

    def _load(self) -> None:
        """Rebuild per-stream state from the file (after open and every reopen)."""

    def _finish(self, f: h5py.File) -> None:
        """Last touches on a complete file, outside SWMR: instrument info sent during the
        run becomes NXcollection groups, like info known at the start."""
        group = f[L.ENTRY][L.INSTRUMENT]
        log = group.get(L.INSTRUMENT_LOG)
        if log is not None and log.shape[0]:
            for name, info in L.read_instrument_log(log).items():
                self._write_instrument(name, info, group)
            log.resize(0, axis=0)

    def _forget(self) -> None:
        """Drop every handle into the file (before it is closed abnormally)."""

    def append(self, stream: str, batches: Sequence[pa.RecordBatch]) -> int:
        """Store the batches of one stream; returns the bytes written."""
        raise NotImplementedError

    def counts(self, stream: str) -> tuple[int, int]:
        """Rows published to ``stream`` and rows lost, as the file records them."""
        return self.rows(stream), 0

    def set_counts(self, stream: str, published: int, lost: int) -> None:
        """Record rows published and lost (layouts that can; written at the next flush)."""

    def rows(self, stream: str) -> int:
        raise NotImplementedError

    @property
    def streams(self) -> list[str]:
        raise NotImplementedError

    # --- internals ---------------------------------------------------------------------
    def _unlocked(self) -> bool:
        """True if no other process holds the file (HDF5 readers and writers take a flock)."""
        return safeopen.lockable(self.path, exclusive=True) is True

    def _wait_unlocked(self, wait: float) -> bool:
        """Poll (with backoff) up to ``wait`` seconds for the other processes to let go of the file."""
        deadline, pause = time.monotonic() + wait, 0.01
        while not self._unlocked():
            if time.monotonic() >= deadline:
                return False
            time.sleep(min(pause, max(0.0, deadline - time.monotonic())))
            pause = min(pause * 2, 0.25)
        return True

    def _reopen(self, wait: float = BUSY_WAIT) -> h5py.File:
        """Reopen for writing. A reader still holding the file after ``wait`` seconds
        does not stop recording: the file is then opened without HDF5's lock."""
        self._wait_unlocked(wait)
        try:
            return h5py.File(self.path, "a", libver=FILE_FORMAT)
        except OSError as first:
            try:
                return h5py.File(self.path, "a", libver=FILE_FORMAT, locking=False)
            except OSError as exc:
                raise StorageError(f"{self.path}: cannot reopen run file: {first}") from exc

    @property
    def _open_file(self) -> h5py.File:
        """The run file, which every write needs open."""
        if self.file is None:
            raise StorageError(f"{self.path}: the run file is closed")
        return self.file

    def _start_swmr(self) -> None:
        if self.swmr:
            self._open_file.swmr_mode = True
        self._open_file.flush()

    def _restructure(self, change: Callable[[], None], wait: float = BUSY_WAIT) -> None:
        if self.broken:
            raise StorageError(f"{self.path}: a write failed earlier; not changing the file")
        if self.swmr:
            self.flush()  # every row so far is counted as on disk before the reopen reloads the counts
            if not self._wait_unlocked(wait):
                raise RunFileBusy(
                    f"{self.path}: another process (a viewer, open_run) holds the run file open;"
                    " cannot add structure while it does"
                )
            self._open_file.close()
            self.file = self._reopen()
        change()
        self._load()
        self._start_swmr()

    def _write_entry(self) -> None:
        f, run = self._open_file, self.run
        L.set_nx(f, "NXroot")
        f.attrs["default"] = L.ENTRY
        f.attrs["file_name"] = os.fspath(self.path.name)
        f.attrs["file_time"] = L.now_iso()
        f.attrs["creator"] = f"arrowdaq {_version()}"
        f.attrs["HDF5_Version"] = h5py.version.hdf5_version
        entry = L.set_nx(f.create_group(L.ENTRY), "NXentry")
        L.write_text(entry, "title", run.name)
        L.write_text(entry, "entry_identifier", run.run_id)
        start_time = L.start_iso(self.start_ns)
        L.write_text(entry, "start_time", start_time)
        L.write_text(entry, "program_name", "arrowdaq").attrs["version"] = _version()
        L.write_text(L.set_nx(entry.create_group("user"), "NXuser"), "name", run.operator)
        L.write_text(L.set_nx(entry.create_group("sample"), "NXsample"), "name", run.sample)
        if run.notes:
            note = L.set_nx(entry.create_group("notes"), "NXnote")
            L.write_text(note, "type", "text/plain")
            L.write_text(note, "data", run.notes)
        if run.config is not None:
            note = L.set_nx(entry.create_group("configuration"), "NXnote")
            text = run.config if isinstance(run.config, str) else None
            L.write_text(note, "type", "text/x-toml" if text is not None else "application/json")
            L.write_text(note, "data", text if text is not None else json.dumps(run.config, indent=1, default=str))
        L.create_instrument_log(L.set_nx(entry.create_group(L.INSTRUMENT), "NXinstrument"))
        eventlog.create(entry, start_time)
        for name, info in self.instruments.items():
            self._write_instrument(name, info)
        own = L.set_nx(entry.create_group(L.ARROWDAQ), "NXcollection")
        L.write_text(own, "layout", self.layout)
        own.create_dataset("format_version", data=L.FORMAT_VERSION)
        own.create_dataset("complete", data=0, dtype="u1")
        entry.create_dataset("end_time", data="", dtype=L.END_TIME_DTYPE)  # written in place at the end

    @staticmethod
    def _write_end(f: h5py.File, end_time: str, complete: int) -> None:
        entry = f[L.ENTRY]
        if "end_time" in entry and entry["end_time"].dtype == L.END_TIME_DTYPE:
            entry["end_time"][()] = end_time.encode()
        else:  # a file of an older version (only ever resumed outside SWMR)
            if "end_time" in entry:
                del entry["end_time"]
            entry.create_dataset("end_time", data=end_time, dtype=L.END_TIME_DTYPE)
        entry[L.ARROWDAQ]["complete"][()] = complete

    def _write_instrument(self, name: str, info: Mapping[str, Any], group: h5py.Group | None = None) -> None:
        group = self._open_file[L.ENTRY][L.INSTRUMENT] if group is None else group
        if name in group:
            del group[name]
        L.write_mapping(L.set_nx(group.create_group(name), "NXcollection"), info)
