"""The run-file writer base: file life cycle, run metadata, SWMR, completion.

Every method is blocking (h5py) and runs in the storage actor's worker thread.
HDF5's SWMR mode forbids new objects once it has started, so anything that adds
structure after the start (a stream declared late, instrument info sent later)
goes through :meth:`RunWriter._restructure`: flush, close, reopen, add, resume
SWMR. A reader following the file sees the new parts after it reopens it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import h5py
import pyarrow as pa

from ..errors import StorageError
from ..hub.streams import StreamSpec
from . import layout as L
from .options import RunInfo, StorageOptions


#: HDF5 file-format bounds: 1.10 is the oldest format with SWMR, and capping it there keeps
#: run files readable by HDF5 1.10+ tools (h5dump, HDFView, MATLAB), not only by the HDF5 h5py bundles.
FILE_FORMAT = ("v110", "v110")


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

    # --- life cycle ------------------------------------------------------------------
    def open(self, streams: Sequence[StreamSpec]) -> None:
        """Create the file (or resume it after an actor restart), add ``streams``, start SWMR."""
        if self.path.exists():
            self.file = self._reopen()
            found = L.attr_text(self.file[L.ENTRY]["entry_identifier"][()]) if L.ENTRY in self.file else None
            if found != self.run.run_id:
                self.file.close()
                self.file = None
                raise StorageError(f"{self.path}: exists and holds run {found!r}, not {self.run.run_id!r}")
            own = self.file[L.ENTRY][L.ARROWDAQ]
            own["complete"][()] = 0  # resumed after a restart: running again
            if "end_time" in self.file[L.ENTRY]:
                del self.file[L.ENTRY]["end_time"]
        else:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self.file = h5py.File(self.path, "w-", libver=FILE_FORMAT)
            except OSError as exc:
                raise StorageError(f"{self.path}: cannot create run file: {exc}") from exc
            self._write_entry()
        self._add_streams(streams)
        self._load()
        self._start_swmr()

    def add_streams(self, streams: Sequence[StreamSpec]) -> None:
        """Add streams declared after recording started."""
        self._restructure(lambda: self._add_streams(streams))

    def set_instrument(self, name: str, info: Mapping[str, Any]) -> None:
        """Record (or replace) an instrument's identity and settings."""
        self.instruments[name] = info
        self._restructure(lambda: self._write_instrument(name, info))

    def flush(self) -> None:
        if self.file is not None:
            self.file.flush()
            self._check_present()

    def _check_present(self) -> None:
        """The file may be deleted or moved while open; writes would then go nowhere."""
        if not self.path.exists():
            raise StorageError(f"{self.path}: the run file vanished (deleted or moved) while recording")

    def close(self, complete: bool = True) -> None:
        """Close; a complete run gets its end time and ``complete = 1`` (not after a write error)."""
        if self.file is None:
            return
        file, self.file = self.file, None
        file.close()
        if complete and not self.broken:
            self._check_present()
            with h5py.File(self.path, "a", libver=FILE_FORMAT) as f:
                entry = f[L.ENTRY]
                L.write_text(entry, "end_time", L.now_iso())
                entry[L.ARROWDAQ]["complete"][()] = 1
                self._finish(f)

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
        except Exception:  # noqa: BLE001 - not the sec2 driver: close as usual
            pass
        self._forget()  # only now: closing a dataset flushes its cached chunks
        try:
            file.close()
        except Exception:  # noqa: BLE001 - the file is already known to be broken
            pass

    # --- for subclasses ---------------------------------------------------------------
    def _add_streams(self, streams: Sequence[StreamSpec]) -> None:
        raise NotImplementedError

    def _load(self) -> None:
        """Rebuild per-stream state from the file (after open and every reopen)."""

    def _finish(self, f: h5py.File) -> None:
        """Last touches on a complete file, outside SWMR."""

    def _forget(self) -> None:
        """Drop every handle into the file (before it is closed abnormally)."""

    def append(self, stream: str, batches: Sequence[pa.RecordBatch]) -> int:
        """Store the batches of one stream; returns the bytes written."""
        raise NotImplementedError

    @property
    def streams(self) -> list[str]:
        raise NotImplementedError

    # --- internals ---------------------------------------------------------------------
    def _reopen(self) -> h5py.File:
        try:
            return h5py.File(self.path, "a", libver=FILE_FORMAT)
        except OSError as exc:
            raise StorageError(f"{self.path}: cannot reopen run file: {exc}") from exc

    def _start_swmr(self) -> None:
        if self.swmr:
            self.file.swmr_mode = True
        self.file.flush()

    def _restructure(self, change: Callable[[], None]) -> None:
        if self.broken:
            raise StorageError(f"{self.path}: a write failed earlier; not changing the file")
        if self.swmr:
            self.flush()  # every row so far is counted as on disk before the reopen reloads the counts
            self.file.close()
            self.file = self._reopen()
        change()
        self._load()
        self._start_swmr()

    def _write_entry(self) -> None:
        f, run = self.file, self.run
        L.set_nx(f, "NXroot")
        f.attrs["default"] = L.ENTRY
        f.attrs["file_name"] = os.fspath(self.path.name)
        f.attrs["file_time"] = L.now_iso()
        f.attrs["creator"] = f"arrowdaq {_version()}"
        f.attrs["HDF5_Version"] = h5py.version.hdf5_version
        entry = L.set_nx(f.create_group(L.ENTRY), "NXentry")
        L.write_text(entry, "title", run.name)
        L.write_text(entry, "entry_identifier", run.run_id)
        L.write_text(entry, "start_time", L.now_iso())
        L.write_text(entry, "program_name", "arrowdaq").attrs["version"] = _version()
        L.write_text(L.set_nx(entry.create_group("user"), "NXuser"), "name", run.operator)
        L.write_text(L.set_nx(entry.create_group("sample"), "NXsample"), "name", run.sample)
        if run.notes:
            note = L.set_nx(entry.create_group("notes"), "NXnote")
            L.write_text(note, "type", "text/plain")
            L.write_text(note, "data", run.notes)
        if run.config is not None:
            note = L.set_nx(entry.create_group("configuration"), "NXnote")
            is_text = isinstance(run.config, str)
            L.write_text(note, "type", "text/x-toml" if is_text else "application/json")
            L.write_text(note, "data", run.config if is_text else json.dumps(run.config, indent=1, default=str))
        L.set_nx(entry.create_group(L.INSTRUMENT), "NXinstrument")
        for name, info in self.instruments.items():
            self._write_instrument(name, info)
        own = L.set_nx(entry.create_group(L.ARROWDAQ), "NXcollection")
        L.write_text(own, "layout", self.layout)
        own.create_dataset("format_version", data=L.FORMAT_VERSION)
        own.create_dataset("complete", data=0, dtype="u1")

    def _write_instrument(self, name: str, info: Mapping[str, Any]) -> None:
        group = self.file[L.ENTRY][L.INSTRUMENT]
        if name in group:
            del group[name]
        L.write_mapping(L.set_nx(group.create_group(name), "NXcollection"), info)
