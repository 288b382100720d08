"""The Python client of the live service: ``arrowdaq.connect()``.

Plain, synchronous pyarrow.flight underneath: no event loop, so it works the
same in a script, a thread of a GUI and a Jupyter cell::

    import arrowdaq
    daq = arrowdaq.connect()                      # the local daemon, found through its address file
    daq.streams()                                 # {'pm1/power': StreamInfo(...), ...}
    daq.set("laser", "wavelength", 780)           # or daq.command("laser", "set_wavelength", nm=780)
    daq.latest("pm1/power")                       # a Polars frame: the newest batch
    for batch in daq.subscribe("pm1/power"):      # live batches (pyarrow RecordBatch)
        print(batch["value"][-1])

Errors are typed and carry the daemon's message: a refused command raises
``arrowdaq.errors.CommandError`` with the same text a local caller gets.
This module imports nothing of the daemon (the GUI imports only this).
"""

from __future__ import annotations

import getpass
import math
import os
import re
import sys
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.flight as flight

from .. import errors
from . import discovery
from .protocol import AUTH_HEADER, CLIENT_HEADER, ERROR_INFO_KEY, EVENTS_STREAM, HEARTBEAT_S, dumps, loads, ticket
from .tls import CERT_ENV, read_certificate

#: Seconds a scan's submit may take (the daemon opens the scan's file and starts its recorder first).
SUBMIT_TIMEOUT_S = 60.0
#: Without data or a heartbeat for this long, a subscription says the daemon is gone.
SILENCE_LIMIT_S = 5 * HEARTBEAT_S

_DETAIL = re.compile(r"\. (?:Detail|gRPC client debug context): .*$", re.DOTALL)  # pyarrow's additions
_UNREACHABLE = "Flight returned unavailable error, with message: "
#: The field whose unit is a stream's unit: a scalar's value, a vector's values, an image's pixels.
_SIGNAL_FIELDS = ("value", "values", "pixels")


@dataclass(frozen=True)
class StreamInfo:
    """One stream of ``streams()``: its Arrow schema (units in field metadata) and what the daemon says of it."""

    name: str
    schema: pa.Schema
    producer: str | None
    kind: str | None
    unit: str | None
    meta: dict[str, Any]


#: gRPC's words when the daemon's TLS certificate is not trusted here (a self-signed one, no --tls-cert).
_UNTRUSTED = re.compile(r"handshake failed.*certificate verify failed:?\s*(?P<why>[^;\n]*)", re.I | re.S)


def _message(exc: flight.FlightError) -> str:
    text = _DETAIL.sub("", str(exc)).strip()
    untrusted = _UNTRUSTED.search(text)
    if untrusted:
        why = untrusted["why"].strip() or "certificate verify failed"
        return (
            f"the daemon's TLS certificate is not trusted here ({why}): give it with --tls-cert PEM, "
            f"ARROWDAQ_TLS_CERT or connect(tls_cert=...) (the daemon's server.tls_cert)"
        )
    return text.removeprefix("arrowdaq: ")


def translate(exc: flight.FlightError) -> errors.ArrowDAQError:
    """A Flight error as the typed arrowdaq error the daemon raised, with its message."""
    message = _message(exc)
    if isinstance(exc, flight.FlightUnauthenticatedError):
        return errors.AuthenticationError(message)
    if isinstance(exc, flight.FlightUnavailableError):
        if message.startswith(_UNREACHABLE):  # gRPC's own words: nothing answered at the address
            message = f"no daemon answers ({message.removeprefix(_UNREACHABLE)}); is it running?"
        return errors.DaemonUnavailable(message)
    info = loads(exc.extra_info) if getattr(exc, "extra_info", None) else None
    info = info if isinstance(info, dict) else {}
    name = info.get(ERROR_INFO_KEY)
    if name == "GapError":
        return errors.GapError(message, int(info.get("seq", -1)))
    cls = getattr(errors, name, None) if isinstance(name, str) else None
    if isinstance(cls, type) and issubclass(cls, errors.ArrowDAQError) and cls is not errors.GapError:
        try:
            return cls(message)
        except TypeError:
            pass
    if isinstance(exc, flight.FlightTimedOutError):
        return errors.LiveServiceError(message)
    return errors.LiveServiceError(message)


def connect(
    address: str | None = None,
    token: str | None = None,
    *,
    name: str | None = None,
    timeout: float = 10.0,
    tls_cert: str | Path | None = None,
) -> Client:
    """Connect to a running daemon (``arrowdaq run``, ``arrowdaq demo``) from a script or a notebook.

    Without arguments this finds the local daemon through ``ARROWDAQ_ADDRESS``/``ARROWDAQ_TOKEN`` or
    the address file it wrote (readable only by you), so nothing needs to be copied.

    Args:
        address: ``grpc://HOST:PORT``, ``grpc+tls://HOST:PORT`` or ``grpc+unix://PATH``; default: the local one.
        token: the daemon's token (its address file or ``[server] token``); default: found with the address.
        name: how the daemon's command log names this client (default: program, pid and user).
        timeout: seconds each call may take before it fails.
        tls_cert: a PEM certificate to trust for ``grpc+tls`` (a self-signed server's ``tls_cert``);
            default: ``ARROWDAQ_TLS_CERT``, else the one the local daemon's address file names, else the
            system's trusted roots.

    Returns:
        A thread-safe :class:`Client`; close it when done, or use it in a ``with`` block.

    Raises:
        DaemonUnavailable: no local daemon was found, or the address cannot be used.
        AuthenticationError: no token was given or found for the address.
        ConfigError: ``tls_cert`` does not exist or is not a PEM certificate (the message names the file).

    Example::

        daq = arrowdaq.connect()
        daq.latest("pm1/power")            # the newest batch, as a Polars DataFrame
        for batch in daq.subscribe("pm1/power"):
            print(batch["value"][-1])
    """
    info: dict[str, Any] = {}
    address = address or os.environ.get("ARROWDAQ_ADDRESS")
    token = token or os.environ.get("ARROWDAQ_TOKEN")
    cert = tls_cert or os.environ.get(CERT_ENV) or None
    if address is None or token is None or (cert is None and address.startswith("grpc+tls:")):
        found = discovery.read_address_file()
        if found is None and address is None:
            raise errors.DaemonUnavailable(
                f"no local arrowdaq daemon: {discovery.address_file()} does not exist "
                "(start one with `arrowdaq run CONFIG` or `arrowdaq demo`, or give the address)"
            )
        if found is not None and address is None and not discovery.process_running(found.get("pid")):
            raise errors.DaemonUnavailable(
                f"no local arrowdaq daemon: {discovery.address_file()} names pid {found.get('pid')}, which is not "
                "running (the daemon ended without removing it, e.g. killed); start one with `arrowdaq run CONFIG` "
                "or `arrowdaq demo`"
            )
        if found is not None and (address is None or address == found.get("address")):
            info = found
            address = address or found["address"]
            token = token or found.get("token")
    if token is None:
        raise errors.AuthenticationError(f"no token for {address}: give token=..., or set ARROWDAQ_TOKEN")
    assert address is not None
    cert = cert or info.get("tls_cert")
    return Client(address, token, name=name, timeout=timeout, tls_cert=cert)


class Client:
    """A connection to one daemon; see the module docstring. Thread-safe; close() when done (or use ``with``)."""

    def __init__(
        self,
        address: str,
        token: str,
        *,
        name: str | None = None,
        timeout: float = 10.0,
        tls_cert: str | os.PathLike[str] | None = None,
    ) -> None:
        self.address = address
        self.timeout = timeout
        name = name or f"{Path(sys.argv[0]).name or 'python'} pid {os.getpid()} ({_user()})"
        self.name = name
        self._headers = [(AUTH_HEADER.encode(), f"Bearer {token}".encode()), (CLIENT_HEADER.encode(), name.encode())]
        kwargs: dict[str, Any] = {}
        if tls_cert:
            kwargs["tls_root_certs"] = read_certificate(tls_cert)
        try:
            self._flight = flight.FlightClient(address, **kwargs)
        except (pa.ArrowException, OSError) as exc:
            raise errors.DaemonUnavailable(f"cannot use address {address!r}: {exc}") from None

    def __repr__(self) -> str:
        return f"<arrowdaq.live.Client {self.address}>"

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._flight.close()

    def _options(self, timeout: float | None) -> flight.FlightCallOptions:
        return flight.FlightCallOptions(headers=self._headers, timeout=timeout)

    # --- control -----------------------------------------------------------------------
    def action(self, kind: str, body: dict[str, Any] | None = None, timeout: float | None = None) -> Any:
        """Any ``do_action`` of the contract; the JSON reply."""
        body = dict(body or {})
        limit = timeout if timeout is not None else self.timeout
        if kind in ("command", "get", "set"):
            body.setdefault("timeout", limit)
            limit += 5.0  # the daemon answers a command that timed out itself, with its message
        try:
            results = list(self._flight.do_action(flight.Action(kind, dumps(body)), self._options(limit)))
        except flight.FlightError as exc:
            raise translate(exc) from None
        except pa.ArrowException as exc:
            raise errors.DaemonUnavailable(f"{self.address}: {exc}") from None
        return loads(results[0].body) if results else None

    def ping(self) -> dict[str, Any]:
        return self.action("ping")

    def describe(self) -> dict[str, Any]:
        """Instruments (capabilities, controls with unit/limits/choices/read-only, commands, streams), streams, processors."""
        return self.action("describe")

    def status(self) -> dict[str, Any]:
        """Actors, streams (rates), subscribers (drops), live clients, recording."""
        return self.action("status")

    def command(self, instrument: str, command: str, timeout: float | None = None, **args: Any) -> Any:
        """Run an instrument command: ``command("laser", "set_wavelength", nm=780)``; returns its result."""
        body = {"instrument": instrument, "command": command, "args": args}
        return self.action("command", body, timeout)["result"]

    def get(self, instrument: str, name: str, timeout: float | None = None) -> Any:
        return self.action("get", {"instrument": instrument, "name": name}, timeout)["value"]

    def set(self, instrument: str, name: str, value: Any, timeout: float | None = None) -> Any:
        """Change a setting; returns the value read back from the device."""
        return self.action("set", {"instrument": instrument, "name": name, "value": value}, timeout)["value"]

    def record(self, action: str = "state", **meta: Any) -> dict[str, Any]:
        """``record("start", name=..., operator=..., sample=..., notes=...)``, ``record("stop")``, ``record()``."""
        return self.action("record", {"action": action, **meta})

    def scan(
        self,
        plan: str,
        *args: Any,
        detectors: str | list[str] | tuple[str, ...] = (),
        settle: float | None = None,
        reads: int | None = None,
        name: str | None = None,
        wait: bool = True,
        progress: Callable[[ScanProgress], None] | None = None,
        **kwargs: Any,
    ) -> Any:
        """Run a scan in the daemon: ``scan("scan", "hwp", 0, 90, 46, detectors=["pm1"])``, or a scan the
        daemon's configuration names (``[[scans]]``): ``scan("knife")``.

        Blocks until the scan ends and returns its :class:`ScanOutcome` (exit status, scan file, peak
        statistics, the points); ``progress(update)`` is called with each :class:`ScanProgress`
        (new points, state, ETA). KeyboardInterrupt (Ctrl-C, a notebook's interrupt) aborts the scan,
        waits for its file to be closed, and is raised again. ``wait=False`` returns the
        :class:`RemoteScan` at once (iterate it for the points; ``pause()``, ``resume()``, ``abort()``,
        ``wait()``)."""
        body: dict[str, Any] = {"action": "submit", "plan": plan, "args": list(args), "kwargs": kwargs}
        if detectors:
            body["detectors"] = [detectors] if isinstance(detectors, str) else list(detectors)
        body |= {k: v for k, v in (("settle", settle), ("reads", reads), ("name", name)) if v is not None}
        # the daemon answers once the scan's file is open and its axes reserved: slower than a command
        remote = RemoteScan(self, self.action("scan", body, timeout=max(self.timeout, SUBMIT_TIMEOUT_S)))
        return remote.wait(progress) if wait else remote

    def plans(self) -> dict[str, Any]:
        """What :meth:`scan` runs: ``{"plans": [plans with their parameters], "scans": [the scans the
        daemon's configuration names ([[scans]]): name, plan, args, detectors, ...]}``."""
        description = self.describe()
        return {"plans": description.get("plans", []), "scans": description.get("scans", [])}

    # --- data ------------------------------------------------------------------------------
    def streams(self) -> dict[str, StreamInfo]:
        try:
            infos = list(self._flight.list_flights(b"", self._options(self.timeout)))
        except flight.FlightError as exc:
            raise translate(exc) from None
        except pa.ArrowException as exc:
            raise errors.DaemonUnavailable(f"{self.address}: {exc}") from None
        found = {}
        for info in infos:
            name = "/".join(p.decode() for p in info.descriptor.path)
            meta = loads(info.app_metadata) or {}
            signal = next((f for f in _SIGNAL_FIELDS if f in info.schema.names), None)  # value, trace or pixels
            unit = (info.schema.field(signal).metadata or {}).get(b"unit") if signal else None
            found[name] = StreamInfo(
                name, info.schema, meta.get("producer"), meta.get("kind"), unit.decode() if unit else None, meta
            )
        return found

    def subscribe(
        self, stream: str, mode: str = "latest", *, heartbeats: bool = False, max_batches: int | None = None
    ) -> Subscription:
        """Live batches of ``stream`` as they come (``latest``: the newest kept if you fall behind, drops
        counted; ``lossless``: every batch, or GapError when you fall too far behind). ``heartbeats``:
        also yield the empty batch the daemon sends each idle second; ``max_batches``: the daemon's
        buffer for this subscription (default 16 latest, 1024 lossless)."""
        return Subscription(self, stream, mode, heartbeats=heartbeats, max_batches=max_batches)

    def latest(self, stream: str) -> Any:
        """The newest batch of ``stream`` as a Polars frame (empty if the stream has no data yet)."""
        import polars as pl

        try:
            reader = self._flight.do_get(flight.Ticket(ticket(stream, "snapshot")), self._options(self.timeout))
            table = reader.read_all()
        except flight.FlightError as exc:
            raise translate(exc) from None
        return pl.from_arrow(_plain(table))

    def events(self, history: int = 0) -> Iterator[dict[str, Any]]:
        """Status changes, alarms and the command log as dicts, as they happen (the last ``history`` first)."""
        sub = Subscription(self, EVENTS_STREAM, "latest", history=history)
        try:
            for batch in sub:
                for row in batch.to_pylist():
                    row["detail"] = loads(row["detail"].encode()) if row.get("detail") else None
                    yield row
        finally:
            sub.close()


@dataclass
class ScanProgress:
    """One step of a remote scan as :meth:`RemoteScan.updates` sees it: the points new since the last
    update (rows as dicts: index, setpoints, read-backs, detector means and stds), state and timing."""

    state: str
    done: int
    total: int | None
    elapsed_s: float
    eta_s: float | None
    points: list[dict[str, Any]]


@dataclass
class ScanOutcome:
    """What a scan found (the same names as the engine's ScanResult): exit status (success, aborted,
    failed) and why, the scan file, the points, each detector's peak statistics (max, max_at, min,
    min_at, com, fwhm, derivative; NaN where a statistic does not exist) and the Malus fit, if any."""

    scan_id: str
    plan: str
    exit_status: str
    reason: str
    num_points: int
    duration_s: float
    run_file: str | None
    statistics: dict[str, Any] = dataclass_field(default_factory=dict)
    fit: dict[str, float] | None = None
    points: list[dict[str, Any]] = dataclass_field(default_factory=list)

    @classmethod
    def from_reply(cls, outcome: dict[str, Any], points: list[dict[str, Any]]) -> ScanOutcome:
        return cls(
            scan_id=outcome["scan_id"],
            plan=outcome["plan"],
            exit_status=outcome["exit_status"],
            reason=outcome["reason"],
            num_points=int(outcome["points"]),
            duration_s=float(outcome.get("duration_s") or 0.0),
            run_file=outcome.get("run_file"),
            statistics=_nan_for_null(outcome.get("statistics") or {}),
            fit=_nan_for_null(outcome["fit"]) if outcome.get("fit") else None,
            points=points,
        )


def _nan_for_null(value: Any) -> Any:
    """JSON's null back to NaN in statistics (NaN: the statistic does not exist, e.g. an open peak's FWHM)."""
    if value is None:
        return math.nan
    if isinstance(value, dict):
        return {k: _nan_for_null(v) for k, v in value.items()}
    return value


class RemoteScan:
    """A scan submitted to a daemon: follow it (``for row in scan``, :meth:`updates`), control it
    (:meth:`pause`, :meth:`resume`, :meth:`stop`, :meth:`abort`) and :meth:`wait` for its outcome.

    Points come through the ``scan`` action's ``state`` with ``since``: every point once, in order,
    even those measured before the first call (a subscription to ``scan/points`` would miss them).
    """

    #: Seconds one ``state`` call waits for something new (Ctrl-C is seen between calls).
    POLL_S = 1.0

    def __init__(self, client: Client, reply: dict[str, Any]) -> None:
        self.client = client
        self.scan_id: str = reply["scan_id"]
        self.plan: str = reply.get("plan") or ""
        self.total: int | None = reply.get("total")
        self.run_file: str | None = reply.get("run_file")
        self.state: str = reply.get("state") or "running"
        self.points: list[dict[str, Any]] = []
        self.outcome: ScanOutcome | None = None

    def __repr__(self) -> str:
        return f"<RemoteScan {self.plan} {self.scan_id}: {self.state}, {len(self.points)} points>"

    def _control(self, action: str, **body: Any) -> dict[str, Any]:
        reply = self.client.action("scan", {"action": action, **body})
        self.state = reply.get("state", self.state)
        return reply

    def pause(self, immediate: bool = False) -> dict[str, Any]:
        """Pause after the current point (``immediate``: stop motion now; that point is measured again)."""
        return self._control("pause", immediate=immediate)

    def resume(self) -> dict[str, Any]:
        """Move the axes back to where they stood at the pause, then go on from that point."""
        return self._control("resume")

    def stop(self) -> dict[str, Any]:
        """End after the current point (exit status success)."""
        return self._control("stop")

    def abort(self) -> dict[str, Any]:
        """Stop motion at once and end (exit status aborted; the file keeps the points measured)."""
        return self._control("abort")

    def updates(self) -> Iterator[ScanProgress]:
        """Each change (new points, a new state) until the scan has ended; then ``outcome`` is set."""
        last_state = None
        while self.outcome is None:
            body = {"action": "state", "scan_id": self.scan_id, "since": len(self.points), "wait": self.POLL_S}
            reply = self.client.action("scan", body, timeout=self.POLL_S + self.client.timeout)
            new = reply.get("points") or []
            self.points += new
            if "outcome" in reply:
                self.state = "idle"
                self.outcome = ScanOutcome.from_reply(reply["outcome"], self.points)
            elif reply.get("scan_id") == self.scan_id and reply["state"] != "idle":  # idle: the outcome comes next
                self.state = reply["state"]
            if new or self.state != last_state or self.outcome is not None:
                last_state = self.state
                yield ScanProgress(
                    self.state,
                    len(self.points),
                    self.total,
                    float(reply.get("elapsed_s") or 0.0),
                    reply.get("eta_s"),
                    new,
                )

    def __iter__(self) -> Iterator[dict[str, Any]]:
        """The points as they are measured (rows as dicts), until the scan ends."""
        for update in self.updates():
            yield from update.points

    def wait(self, progress: Callable[[ScanProgress], None] | None = None) -> ScanOutcome:
        """Follow the scan to its end and return the outcome; Ctrl-C aborts it (then is raised again)."""
        try:
            for update in self.updates():
                if progress is not None:
                    progress(update)
        except KeyboardInterrupt:
            self.abort_and_wait()
            raise
        assert self.outcome is not None
        return self.outcome

    def abort_and_wait(self) -> ScanOutcome:
        """Abort (if it still runs) and wait until its file is closed."""
        if self.outcome is None:
            try:
                self.abort()
            except errors.CommandError:
                pass  # it ended meanwhile
        for _ in self.updates():
            pass
        assert self.outcome is not None
        return self.outcome


def _plain(table: pa.Table) -> pa.Table:
    """Dictionary-encoded string columns as plain strings (what a reader of the run file gets)."""
    for i, field in enumerate(table.schema):
        if pa.types.is_dictionary(field.type):
            table = table.set_column(
                i, field.with_type(field.type.value_type), table.column(i).cast(field.type.value_type)
            )
    return table


class Subscription:
    """An iterator of a stream's batches; ``seq`` and ``dropped`` say what was missed. ``close()`` ends it.

    The iterating thread reads the Flight stream itself (no reader thread in between: a hand-off per
    batch cost a second thread wake-up and ~40 us, and doubled the latency on a busy machine). A
    watchdog thread cancels a read that has waited SILENCE_LIMIT_S without data or a heartbeat, which
    then raises DaemonUnavailable instead of hanging. Ctrl-C takes effect when the next batch or
    heartbeat arrives (within a second).
    """

    def __init__(
        self,
        client: Client,
        stream: str,
        mode: str = "latest",
        *,
        heartbeats: bool = False,
        history: int = 0,
        max_batches: int | None = None,
    ) -> None:
        self.stream = stream
        self.mode = mode
        self.heartbeats = heartbeats
        self.seq = -1  # of the last batch received
        self.dropped = 0  # batches the daemon dropped for this subscription (counted, never silent)
        self.batches = 0  # published batches received (small ones may come in one message)
        self.heartbeats_seen = 0
        options: dict[str, Any] = {"history": history} if history else {}
        if max_batches is not None:
            options["max_batches"] = max_batches
        try:
            self._reader = client._flight.do_get(flight.Ticket(ticket(stream, mode, **options)), client._options(None))
            self.schema = self._reader.schema
        except flight.FlightError as exc:
            raise translate(exc) from None
        except pa.ArrowException as exc:
            raise errors.DaemonUnavailable(f"{client.address}: {exc}") from None
        self._closed = threading.Event()
        self._silent = False  # the watchdog cancelled the read: the daemon said nothing for too long
        self.waiting_since: float | None = None  # monotonic time the current read began (for the watchdog)
        _WATCHDOG.watch(self)

    def __iter__(self) -> Subscription:
        return self

    def __next__(self) -> pa.RecordBatch:
        while True:
            if self._closed.is_set():
                raise StopIteration
            self.waiting_since = time.monotonic()
            try:
                chunk = self._reader.read_chunk()
            except StopIteration:
                self._end()
                raise
            except flight.FlightError as exc:
                raise self._failure(translate(exc)) from None
            except Exception as exc:  # the connection broke
                raise self._failure(errors.DaemonUnavailable(f"stream {self.stream!r}: {exc}")) from None
            finally:
                self.waiting_since = None
            raw = chunk.app_metadata
            if raw is None:  # one of a run: the published batch after the last one (seq + 1, none dropped)
                self.seq += 1
                self.batches += 1
                return chunk.data
            meta = loads(raw)
            meta = meta if isinstance(meta, dict) else {}
            if meta.get("heartbeat"):
                self.heartbeats_seen += 1
                if self.heartbeats:
                    return chunk.data
                continue
            self.seq = int(meta.get("seq", self.seq))
            self.dropped += int(meta.get("dropped", 0))
            self.batches += int(meta.get("batches", 1))
            return chunk.data

    def _failure(self, error: errors.ArrowDAQError) -> BaseException:
        """What a failed read raises: StopIteration after close(), DaemonUnavailable after silence, else ``error``."""
        closed = self._closed.is_set()
        self._end()
        if self._silent:
            return errors.DaemonUnavailable(
                f"stream {self.stream!r}: no data nor heartbeat for {SILENCE_LIMIT_S:g} s; is the daemon running?"
            )
        return StopIteration() if closed else error

    def _end(self) -> None:
        self._closed.set()
        _WATCHDOG.forget(self)

    def silenced(self) -> None:
        """The watchdog's verdict: nothing came for SILENCE_LIMIT_S while this subscription waited."""
        self._silent = True
        self._cancel()

    def close(self) -> None:
        """End the subscription (from any thread)."""
        if self._closed.is_set():
            return
        self._end()
        self._cancel()

    def _cancel(self) -> None:
        try:
            self._reader.cancel()
        except Exception:
            pass

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _SilenceWatch:
    """One thread for all of a process's subscriptions: cancels a read that waited SILENCE_LIMIT_S.

    It runs while a subscription is open. When its own tick comes late by seconds, this process was
    suspended (SIGSTOP, a laptop asleep): the waits restart instead of counting the pause as silence."""

    TICK_S = 0.5

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._subscriptions: weakref.WeakSet[Subscription] = weakref.WeakSet()
        self._thread: threading.Thread | None = None

    def watch(self, subscription: Subscription) -> None:
        with self._lock:
            self._subscriptions.add(subscription)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="arrowdaq-silence-watch", daemon=True)
                self._thread.start()

    def forget(self, subscription: Subscription) -> None:
        with self._lock:
            self._subscriptions.discard(subscription)

    def _run(self) -> None:
        last = resumed = time.monotonic()
        while True:
            time.sleep(self.TICK_S)
            with self._lock:
                subscriptions = list(self._subscriptions)
                if not subscriptions:
                    self._thread = None
                    return
            now = time.monotonic()
            if now - last > self.TICK_S + 2 * HEARTBEAT_S:
                resumed = now  # this process was suspended: every wait counts from now
            last = now
            for sub in subscriptions:
                since = sub.waiting_since
                if since is not None and now - max(since, resumed) > SILENCE_LIMIT_S:
                    sub.silenced()


_WATCHDOG = _SilenceWatch()


def _user() -> str:
    try:
        return getpass.getuser()
    except Exception:
        return "?"
