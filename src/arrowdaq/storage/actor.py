"""The storage actor: a lossless hub subscriber that records a run file.

Spawn it as a sink, subscribed to the streams to record::

    run = RunInfo(name="alignment", operator="Ada", sample="BBO-3")
    ref, path = spawn_storage(hub, ["pm1/*", "cam1/*"], StorageOptions(data_dir="data"), run)
    print("recording to", path)

(or ``hub.spawn("storage", lambda: StorageActor(hub, options, run), role=Role.SINK,
inputs=..., delivery="lossless")``: build ``run`` once, outside the factory, so that
a restarted actor resumes the same file instead of starting a new run).

Small batches are gathered per stream (up to 4 MiB) and written as whole chunks
(one h5py call costs ~40 µs whatever its size); a flush timer writes what is pending
and flushes the file at least every ``flush_interval`` seconds. A write error
(disk full, file gone) is unrecoverable: the actor records the error, closes the
file (what was flushed stays readable) and ends Failed, so the hub releases its
producers and acquisition goes on.
"""

from __future__ import annotations

import asyncio
import errno
import os
import re
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pyarrow as pa

from ..actors import Actor, ActorRef, Command, Role
from ..errors import CommandError, RunFileBusy, StorageError, StorageWriteError, describe
from ..hub import InstrumentManager
from ..hub.events import ERROR, LOST, STORAGE, WARNING, RunEvent, as_run_event
from ..hub.streams import StreamSpec
from ..hub.subscription import LOSSLESS_MAX_BYTES
from .forms import forms_of
from .ipc import ArrowIpcWriter
from .nexus import NexusWriter
from .options import NEXUS, RunInfo, StorageOptions, run_path
from .writer import RunWriter

#: Pending bytes of one stream that trigger a write (the flush timer writes the rest).
WRITE_BYTES = 4 << 20

FLUSH = Command("flush")


def split_rows(batches: list[pa.RecordBatch], n: int) -> tuple[list[pa.RecordBatch], list[pa.RecordBatch]]:
    """The first ``n`` rows of ``batches`` and the rest (zero-copy slices)."""
    head: list[pa.RecordBatch] = []
    for i, batch in enumerate(batches):
        if n >= batch.num_rows:
            head.append(batch)
            n -= batch.num_rows
            continue
        if n:
            head.append(batch.slice(0, n))
        return head, [batch.slice(n)] + batches[i + 1 :]
    return head, []


class StorageActor(Actor):
    """Records the streams it is subscribed to into one run file; see the module docstring.

    Commands: ``status`` (path, rows per stream, bytes, last flush, error),
    ``flush``, ``instrument_info`` with ``{instrument: {"identity": {...}, "settings": {...}}}``.
    """

    role = Role.SINK

    def __init__(
        self,
        hub: InstrumentManager,
        options: StorageOptions = StorageOptions(),
        run: RunInfo | None = None,
        instruments: Mapping[str, Mapping[str, Any]] | None = None,
        writer: Callable[..., RunWriter] | None = None,
    ) -> None:
        """``writer``: builds the writer instead of the layout's (a scan's file: ``ScanWriter``)."""
        self.hub = hub
        self.writer_class = writer
        self.options = options
        self.run = run or RunInfo()
        self.instruments: dict[str, Mapping[str, Any]] = dict(instruments or {})
        #: The run file, known before recording starts.
        self.path = run_path(options, self.run)
        self.writer: RunWriter | None = None
        self.error: str | None = None
        self.rows_written: dict[str, int] = {}
        self.bytes_written = 0
        self.last_flush: float | None = None  # time.time() of the last flush
        self.skipped: dict[str, str] = {}  # streams that cannot be stored, and why (their batches count as lost)
        self.received: dict[str, int] = {}  # rows the hub published to storage, per stream
        self.lost: dict[str, int] = {}  # of those, rows that could not be stored
        self._unreported: dict[str, list] = {}  # losses not yet in the event log: [rows, batches, reason]
        self.warnings: list[str] = []  # metadata that could not be recorded (data recording went on)
        self._pending: dict[str, list[pa.RecordBatch]] = {}
        self._pending_rows: dict[str, int] = {}
        self._pending_bytes: dict[str, int] = {}
        self._pending_large: dict[str, bool] = {}  # every pending batch has chunk_rows rows or more
        #: The write a stuck stop interrupted (stream, rows, batches, its worker-thread task): on_stop waits for it.
        self._in_flight: tuple[str, int, int, asyncio.Future[tuple[int, list[tuple[pa.RecordBatch, str]]]]] | None = (
            None
        )
        self._events: list[RunEvent] = []  # heard from the hub, not yet in the file
        self.events_written = 0
        self.problems = 0  # events that are warnings or errors

    # --- life cycle ------------------------------------------------------------------------
    async def on_start(self) -> None:
        self.hub.add_listener(self._on_event)
        cls = self.writer_class or (NexusWriter if self.options.layout == NEXUS else ArrowIpcWriter)
        self.writer = cls(self.path, self.options, self.run, self.instruments)
        specs = [spec for spec in self._subscribed() if self._storable(spec)]
        self._tell_processors()
        try:
            await self.blocking(self.writer.open, specs)
        except (StorageError, OSError) as exc:
            self._fail_text(exc, "cannot start recording")
            raise StorageWriteError(self.error) from exc
        for name in self.writer.streams:
            self.rows_written[name] = self.writer.rows(name)
            self.received[name], self.lost[name] = self.writer.counts(name)
        self.last_flush = time.time()
        self.every(self.options.flush_interval, FLUSH)
        self.log.info(f"recording {len(specs)} stream(s) to {self.path}")

    async def on_stop(self) -> None:
        if self.writer is None:
            return
        try:
            if self.error is None:
                await self._finish_in_flight()
                await self._write_all()
                self._report_losses()
                self._set_counts()
                await self._write_events()
        except StorageWriteError:
            self.log.error(self.error)  # nobody else will: the actor is stopping anyway
        except asyncio.CancelledError:  # the disk did not answer within close_timeout: the worker thread is stuck
            self._lose_unwritten(f"the disk did not answer within {self.close_timeout:g} s of the stop")
            self.hub.remove_listener(self._on_event)
            self.writer = None  # left to the stuck worker thread: closing it would wait on the same disk
            # the worker thread holds HDF5's lock for as long as the disk hangs: nobody should read the file now
            self._report(ERROR, f"{self.path}: left unclosed: the disk does not answer", unclosed=str(self.path))
            raise
        finally:
            if self.writer is not None:
                self.hub.remove_listener(self._on_event)
                try:
                    await self.blocking(self.writer.close if self.error is None else self.writer.abandon)
                except Exception as exc:
                    self.log.warning(f"{self.path}: error while closing: {describe(exc)}")
                self.writer = None
        if self.error is None:
            self.log.info(f"run file complete: {self.path}")

    async def on_drained(self) -> None:
        """At a stop, with the queue written: what was gathered is written and the file flushed (HDF5
        compresses cached chunks then: seconds for many streams of frames). In the drain, which waits
        while the file grows, not in ``on_stop``, which a fixed ``close_timeout`` bounds (decision 0201)."""
        if self.writer is not None and self.error is None:
            await self.flush()

    def progress(self) -> Any:
        """The run file's size: it grows chunk by chunk while one big write goes on (a slow disk, large frames)."""
        try:
            return os.path.getsize(self.path)
        except OSError:
            return None

    def on_abandoned(self, items: list[tuple[str, Any]], why: str) -> None:
        """The stop gave up (storage made no progress, a stuck disk): the batches still queued are lost.
        Each stream's rows and batches go into the event log (``lost`` events), the total into the status."""
        by_stream: dict[str, list[pa.RecordBatch]] = {}
        for stream, batch in items:
            if batch.num_rows:
                by_stream.setdefault(stream, []).append(batch)
        if not by_stream:
            return
        for stream, batches in by_stream.items():
            self.received[stream] = self.received.get(stream, 0) + sum(b.num_rows for b in batches)
            self._lose(stream, batches, f"still queued when the stop gave up: {why}")
        self._report_losses()
        rows = sum(b.num_rows for lost in by_stream.values() for b in lost)
        count = sum(len(lost) for lost in by_stream.values())
        self.report(
            f"{rows} row(s) in {count} batch(es) of {', '.join(sorted(by_stream))} not stored: "
            f"still queued when the stop gave up: {why}"
        )

    async def _finish_in_flight(self) -> None:
        """The write the stop interrupted goes on in the worker thread: wait for it and count it."""
        if self._in_flight is None:
            return
        stream, rows, batches, task = self._in_flight
        try:
            nbytes, refused = await task
        except Exception as exc:
            self._in_flight = None
            self._lose_rows(stream, rows, batches, f"its write failed: {describe(exc)}")
            self._fail_text(exc, f"writing stream {stream!r} failed")
            raise StorageWriteError(self.error) from exc
        self._in_flight = None
        self._written(stream, rows, nbytes, refused)

    def _lose_unwritten(self, why: str) -> None:
        """On a stop cut short: the rows being written and those gathered but not written count as lost."""
        if self._in_flight is not None:
            stream, rows, batches, _ = self._in_flight
            self._in_flight = None
            self._lose_rows(stream, rows, batches, f"being written when {why}")
        for stream in list(self._pending):
            pending = self._pending.pop(stream)
            self._pending_rows[stream] = self._pending_bytes[stream] = 0
            if pending:
                self._lose(stream, pending, f"not written: {why}")
        self._report_losses()

    # --- data ----------------------------------------------------------------------------------
    async def on_batch(self, stream: str, batch: pa.RecordBatch) -> None:
        if batch.num_rows == 0:
            return
        self.received[stream] = self.received.get(stream, 0) + batch.num_rows
        if stream not in self.skipped and stream not in self.rows_written:
            await self._add_late(stream)
        if stream in self.skipped:
            self._lose(stream, [batch], self.skipped[stream])
            return
        pending = self._pending.setdefault(stream, [])
        pending.append(batch)
        rows = self._pending_rows[stream] = self._pending_rows.get(stream, 0) + batch.num_rows
        nbytes = self._pending_bytes[stream] = self._pending_bytes.get(stream, 0) + batch.get_total_buffer_size()
        large = self._pending_large.get(stream, True) and batch.num_rows >= self.options.chunk_rows
        self._pending_large[stream] = large
        if large and (nbytes >= WRITE_BYTES or not self._more_queued()):
            # large batches alone are written as they are: no copy into a coalesced array (a chunk one
            # leaves partial waits in HDF5's chunk cache for the next, not written twice); those queued
            # behind one go along in the same hand-off to the worker thread
            await self._write(stream, rows)
        elif nbytes >= WRITE_BYTES:  # few, large writes: each h5py call and thread hand-off costs ~50 µs
            whole_chunks = rows - rows % self.options.chunk_rows  # no compressed chunk written twice
            await self._write(stream, whole_chunks or rows)

    async def _write(self, stream: str, rows: int) -> None:
        head, tail = split_rows(self._pending.pop(stream, []), rows)
        if tail:
            self._pending[stream] = tail
        self._pending_rows[stream] = self._pending_rows.get(stream, 0) - rows
        self._pending_bytes[stream] = sum(b.get_total_buffer_size() for b in tail)
        self._pending_large[stream] = all(b.num_rows >= self.options.chunk_rows for b in tail)
        task = asyncio.ensure_future(self.blocking(self._store, stream, head))
        try:
            nbytes, refused = await asyncio.shield(task)  # a stop that gives up does not cut the write short
        except asyncio.CancelledError:
            self._in_flight = (stream, rows, len(head), task)  # on_stop waits for it and counts it
            raise
        except Exception as exc:
            self._fail_text(exc, f"writing stream {stream!r} failed")
            raise StorageWriteError(self.error) from exc
        self._written(stream, rows, nbytes, refused)

    def _store(self, stream: str, head: list[pa.RecordBatch]) -> tuple[int, list[tuple[pa.RecordBatch, str]]]:
        """In the worker thread: write ``head``; bytes written and the batches refused (StorageError), with why."""
        if len(head) > 1 and min(b.num_rows for b in head) >= self.options.chunk_rows:
            return self._append_each(stream, head)  # large: no concatenation
        try:
            return self._writer.append(stream, head), []
        except StorageError:  # a batch that cannot be stored: store the others, count it lost
            return self._append_each(stream, head)

    def _written(self, stream: str, rows: int, nbytes: int, refused: list[tuple[pa.RecordBatch, str]]) -> None:
        self.bytes_written += nbytes
        for batch, reason in refused:
            self._lose(stream, [batch], reason)
        stored = rows - sum(batch.num_rows for batch, _ in refused)
        self.rows_written[stream] = self.rows_written.get(stream, 0) + stored

    def _append_each(self, stream: str, batches: list[pa.RecordBatch]) -> tuple[int, list[tuple[pa.RecordBatch, str]]]:
        """In the worker thread: the batches one after the other; those refused (StorageError) with why."""
        nbytes, refused = 0, []
        for batch in batches:
            try:
                nbytes += self._writer.append(stream, [batch])
            except StorageError as exc:
                refused.append((batch, str(exc)))
        return nbytes, refused

    def _more_queued(self) -> bool:
        """Whether batches wait in this actor's inboxes (they will come to ``on_batch`` next)."""
        return any(len(inbox) for inbox in self.ref.inboxes)

    def _skip(self, stream: str, exc: Exception) -> None:
        """Stop recording a stream that cannot be stored at all; its batches are counted as lost."""
        self.skipped[stream] = str(exc)
        self._report(ERROR, f"not recording {stream!r}: {exc}; its batches are counted as lost", stream=stream)
        pending = self._pending.pop(stream, [])
        self._pending_rows[stream] = self._pending_bytes[stream] = 0
        self._pending_large.pop(stream, None)
        if pending:
            self._lose(stream, pending, str(exc))

    def _lose(self, stream: str, batches: list[pa.RecordBatch], reason: str) -> None:
        """Count batches that cannot be stored. The first loss of a stream is reported at once,
        later ones summed per flush: the ``lost`` events' ``rows`` add up to every row lost."""
        self._lose_rows(stream, sum(b.num_rows for b in batches), len(batches), reason)

    def _lose_rows(self, stream: str, rows: int, batches: int, reason: str) -> None:
        first = not self.lost.get(stream)
        self.lost[stream] = self.lost.get(stream, 0) + rows
        pending = self._unreported.setdefault(stream, [0, 0, reason])
        pending[0] += rows
        pending[1] += batches
        pending[2] = reason
        if first:
            self._report_losses(stream)

    def _report_losses(self, only: str | None = None) -> None:
        for stream in [only] if only is not None else list(self._unreported):
            rows, batches, reason = self._unreported.pop(stream)
            message = f"{stream}: {rows} row(s) in {batches} batch(es) not stored: {reason}"
            self.log.error(message, extra={"stream": stream})
            self.hub.record_event(
                self.name, LOST, message, ERROR, stream=stream, rows=rows, batches=batches, reason=reason
            )

    @property
    def _writer(self) -> RunWriter:
        """The writer of the run file being recorded."""
        if self.writer is None:
            raise StorageError(f"{self.name}: not recording (no run file open)")
        return self.writer

    def _set_counts(self) -> None:
        """Rows published and lost per stream, for the file (written with the next flush)."""
        for stream in self._writer.streams:
            self._writer.set_counts(stream, self.received.get(stream, 0), self.lost.get(stream, 0))

    async def _write_all(self) -> None:
        for stream in list(self._pending):
            if self._pending_rows.get(stream):
                await self._write(stream, self._pending_rows[stream])

    async def flush(self) -> None:
        """Write and flush everything published to this actor before now."""
        for inbox in self.ref.inboxes:  # the mailbox goes first: take what is queued behind it too
            for _ in range(len(inbox)):  # what is there now, not what producers add meanwhile
                item = inbox.pop()
                if item is None:
                    break
                await self.on_batch(*item)
        await self._write_all()
        self._report_losses()
        self._set_counts()
        await self._write_events()
        try:
            await self.blocking(self._writer.flush)
        except Exception as exc:
            self._fail_text(exc, "flush failed")
            raise StorageWriteError(self.error) from exc
        self.last_flush = time.time()

    # --- commands ---------------------------------------------------------------------------
    async def handle(self, message: Any) -> Any:
        if not isinstance(message, Command):
            raise CommandError(f"storage actor {self.name!r}: expected a Command, got {type(message).__name__}")
        if message.action == "flush":
            await self.flush()
            return self.status()
        if message.action == "status":
            return self.status()
        if message.action == "instrument_info":
            await self._instrument_info(message.args)
            return self.status()
        if message.action in getattr(self.writer, "commands", ()):  # the writer's own (a scan's outcome)
            await self.flush()  # every row published before the command is written first
            return await self.blocking(getattr(self.writer, message.action), **message.args)
        raise CommandError(
            f"storage actor {self.name!r}: unknown command {message.action!r} (known: status, flush, instrument_info)"
        )

    def status(self) -> dict[str, Any]:
        """Where and how much is recorded; ``error`` is set once recording stopped on a write error."""
        try:
            file_bytes = os.path.getsize(self.path)
        except OSError:
            file_bytes = None
        return {
            "path": str(self.path),
            "layout": self.options.layout,
            "run_id": self.run.run_id,
            "recording": self.writer is not None and self.error is None,
            "rows": dict(self.rows_written),
            "streams": self._stream_counts(),
            "pending_rows": sum(self._pending_rows.values()),
            "bytes": self.bytes_written,
            "file_bytes": file_bytes,
            "last_flush": self.last_flush,
            "skipped": dict(self.skipped),
            "warnings": list(self.warnings),
            "events": self.events_written + len(self._events),
            "problems": self.problems,
            "error": self.error,
        }

    async def _instrument_info(self, args: Mapping[str, Any]) -> None:
        bad = [k for k, v in args.items() if not isinstance(v, Mapping)]
        if not args or bad:
            raise CommandError(
                "instrument_info: expected {instrument: {identity/settings dict}}, "
                f"got {', '.join(map(repr, bad)) or 'nothing'}"
            )
        for name, info in args.items():
            self.instruments[name] = info
            try:
                await self.blocking(self._writer.set_instrument, name, info)
            except Exception as exc:
                self.warnings.append(f"instrument info of {name!r} not recorded: {describe(exc)}")
                self._report(WARNING, f"{self.path}: {self.warnings[-1]}")

    def _stream_counts(self) -> dict[str, dict[str, int]]:
        """Per stream: rows the hub published, rows storage received, stored, pending, lost."""
        out = {}
        for name in sorted(set(self.received) | set(self.rows_written) | set(self.skipped)):
            spec = self.hub.streams.get(name)
            out[name] = {
                "published": spec.meter.rows if spec is not None else self.received.get(name, 0),
                "received": self.received.get(name, 0),
                "stored": self.rows_written.get(name, 0),
                "pending": self._pending_rows.get(name, 0),
                "lost": self.lost.get(name, 0),
            }
        return out

    # --- the event log ---------------------------------------------------------------------------
    def _on_event(self, event: Any) -> None:
        """Every StatusEvent, Alarm and RunEvent of the hub: kept for the file's event log."""
        event = as_run_event(event)
        self._events.append(event)
        self.problems += event.problem

    def _report(self, level: str, message: str, kind: str = STORAGE, **details: Any) -> None:
        """A storage problem: logged, and in the event log (through the hub, so every listener sees it)."""
        log = self.log.error if level == ERROR else self.log.warning
        log(message, extra={"stream": details["stream"]} if "stream" in details else None)
        self.hub.record_event(self.name, kind, message, level, **details)

    async def _write_events(self) -> None:
        if not self._events or self.writer is None or self.writer.file is None:
            return
        events, self._events = self._events, []
        try:
            await self.blocking(self.writer.append_events, events)
        except Exception as exc:
            self._fail_text(exc, "writing the event log failed")
            raise StorageWriteError(self.error) from exc
        self.events_written += len(events)

    # --- helpers -----------------------------------------------------------------------------
    def _subscribed(self) -> list[StreamSpec]:
        names: list[str] = []
        for inbox in self.ref.inboxes:
            names += [n for n in getattr(inbox, "streams", []) if n not in names]
        return [self.hub.streams[n] for n in names if n in self.hub.streams]

    def _tell_processors(self) -> None:
        """Which producers are processors (their streams are derived, declared so on the hub): their
        streams are not the file's default plot."""
        if isinstance(self.writer, NexusWriter):
            self.writer.processors = {s.producer for s in self.hub.streams.values() if s.derived and s.producer}

    def _storable(self, spec: StreamSpec) -> bool:
        if self.options.layout != NEXUS:
            return True
        try:
            forms_of(spec.schema, spec.name)
            return True
        except StorageError as exc:
            self.skipped[spec.name] = f"{exc} (the arrow_ipc layout stores any schema)"
            self._report(ERROR, f"not recording {spec.name!r}: {self.skipped[spec.name]}", stream=spec.name)
            return False

    async def _add_late(self, stream: str) -> bool:
        """A stream declared after recording started: add its datasets (a brief SWMR pause)."""
        spec = self.hub.streams.get(stream)
        if spec is None or not self._storable(spec):
            self.skipped.setdefault(stream, "stream is not declared in the hub")
            return False
        await self._write_all()
        self._tell_processors()
        try:
            await self.blocking(self._writer.add_streams, [spec])
        except RunFileBusy as exc:  # a viewer holds the file: keep recording the streams it has
            self._skip(stream, exc)
            return False
        except Exception as exc:
            self._fail_text(exc, "changing the file's structure failed")
            raise StorageWriteError(self.error) from exc
        self.rows_written[stream] = self._writer.rows(stream)
        return True

    def _fail_text(self, exc: BaseException, what: str) -> None:
        """Record why recording stops, in one line (the caller raises it: the supervisor logs it)."""
        if self.writer is not None:
            self.writer.broken = True
        text = (
            str(exc)
            if isinstance(exc, StorageError) and str(self.path) in str(exc)
            else f"{self.path}: {io_reason(exc)}"
        )
        self.error = f"{what}: {text}; recording stopped"


#: What a write error means for the user, by errno.
IO_HINTS = {
    errno.ENOSPC: "the disk is full",
    errno.EFBIG: "the file size limit is reached",
    errno.EDQUOT: "the disk quota is used up",
}


def io_reason(exc: BaseException) -> str:
    """A write error in one line: HDF5's multi-line report reduced to its errno, e.g.
    "No space left on device (the disk is full)"."""
    found = re.search(r"errno = (\d+)", str(exc))
    code = int(found.group(1)) if found else getattr(exc, "errno", None)
    if isinstance(code, int) and code > 0:
        hint = IO_HINTS.get(code)
        return os.strerror(code) + (f" ({hint})" if hint else "")
    return " ".join(describe(exc).split())


def spawn_storage(
    hub: InstrumentManager,
    inputs: str | list[str],
    options: StorageOptions = StorageOptions(),
    run: RunInfo | None = None,
    instruments: Mapping[str, Mapping[str, Any]] | None = None,
    *,
    name: str = "storage",
    max_bytes: int = LOSSLESS_MAX_BYTES,
    writer: Callable[..., RunWriter] | None = None,
) -> tuple[ActorRef, Path]:
    """Start recording ``inputs`` (stream names or globs); returns the actor and the run file's path.

    ``max_bytes`` bounds the memory of the batches queued for storage; beyond it producers wait."""
    run = run or RunInfo()
    ref = hub.spawn(
        name,
        lambda: StorageActor(hub, options, run, instruments, writer),
        role=Role.SINK,
        inputs=inputs,
        delivery="lossless",
        max_bytes=max_bytes,
    )
    return ref, run_path(options, run)
