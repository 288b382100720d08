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
import os
import queue
import re
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.flight as flight

from .. import errors
from . import discovery
from .protocol import AUTH_HEADER, CLIENT_HEADER, EVENTS_STREAM, HEARTBEAT_S, dumps, loads, ticket

#: Without data or a heartbeat for this long, a subscription says the daemon is gone.
SILENCE_LIMIT_S = 5 * HEARTBEAT_S

_DETAIL = re.compile(r"\. Detail: .*$", re.DOTALL)
_END = object()


@dataclass(frozen=True)
class StreamInfo:
    """One stream of ``streams()``: its Arrow schema (units in field metadata) and what the daemon says of it."""

    name: str
    schema: pa.Schema
    producer: str | None
    kind: str | None
    unit: str | None
    meta: dict[str, Any]


def _message(exc: flight.FlightError) -> str:
    text = _DETAIL.sub("", str(exc)).strip()
    return text.removeprefix("arrowdaq: ")


def translate(exc: flight.FlightError) -> errors.ArrowDAQError:
    """A Flight error as the typed arrowdaq error the daemon raised, with its message."""
    message = _message(exc)
    if isinstance(exc, flight.FlightUnauthenticatedError):
        return errors.AuthenticationError(message)
    if isinstance(exc, flight.FlightUnavailableError):
        return errors.DaemonUnavailable(message)
    info = loads(exc.extra_info) if getattr(exc, "extra_info", None) else None
    info = info if isinstance(info, dict) else {}
    name = info.get("error")
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
    address: str | None = None, token: str | None = None, *, name: str | None = None, timeout: float = 10.0
) -> Client:
    """Connect to a daemon; without arguments, the local one (``ARROWDAQ_ADDRESS``/``ARROWDAQ_TOKEN``
    or its address file). ``name`` is how the command log names this client."""
    info: dict[str, Any] = {}
    address = address or os.environ.get("ARROWDAQ_ADDRESS")
    token = token or os.environ.get("ARROWDAQ_TOKEN")
    if address is None or token is None:
        found = discovery.read_address_file()
        if found is None and address is None:
            raise errors.DaemonUnavailable(
                f"no local arrowdaq daemon: {discovery.address_file()} does not exist "
                "(start one with `arrowdaq run CONFIG` or `arrowdaq demo`, or give the address)"
            )
        if found is not None and (address is None or address == found.get("address")):
            info = found
            address = address or found["address"]
            token = token or found.get("token")
    if token is None:
        raise errors.AuthenticationError(f"no token for {address}: give token=..., or set ARROWDAQ_TOKEN")
    assert address is not None
    return Client(address, token, name=name, timeout=timeout, tls_cert=info.get("tls_cert"))


class Client:
    """A connection to one daemon; see the module docstring. Thread-safe; close() when done (or use ``with``)."""

    def __init__(
        self,
        address: str,
        token: str,
        *,
        name: str | None = None,
        timeout: float = 10.0,
        tls_cert: str | None = None,
    ) -> None:
        self.address = address
        self.timeout = timeout
        name = name or f"{Path(sys.argv[0]).name or 'python'} pid {os.getpid()} ({_user()})"
        self.name = name
        self._headers = [(AUTH_HEADER.encode(), f"Bearer {token}".encode()), (CLIENT_HEADER.encode(), name.encode())]
        kwargs: dict[str, Any] = {}
        if tls_cert:
            kwargs["tls_root_certs"] = Path(tls_cert).read_bytes()
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
            unit = (info.schema.field("value").metadata or {}).get(b"unit") if "value" in info.schema.names else None
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

    A reader thread receives, so that a daemon that goes silent (no batch, no
    heartbeat for SILENCE_LIMIT_S) raises DaemonUnavailable instead of hanging.
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
        self.batches = 0
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
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=4)
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._receive, name=f"arrowdaq-subscribe-{stream}", daemon=True)
        self._thread.start()

    def _receive(self) -> None:
        try:
            while not self._closed.is_set():
                chunk = self._reader.read_chunk()
                self._put((chunk.data, loads(chunk.app_metadata) or {}))
        except StopIteration:
            self._put(_END)
        except flight.FlightError as exc:
            self._put(translate(exc) if not self._closed.is_set() else _END)
        except Exception as exc:  # the connection broke
            self._put(errors.DaemonUnavailable(f"stream {self.stream!r}: {exc}") if not self._closed.is_set() else _END)

    def _put(self, item: Any) -> None:
        while not self._closed.is_set():
            try:
                self._queue.put(item, timeout=0.2)
                return
            except queue.Full:
                continue

    def __iter__(self) -> Subscription:
        return self

    def __next__(self) -> pa.RecordBatch:
        while True:
            if self._closed.is_set():
                raise StopIteration
            try:
                item = self._queue.get(timeout=SILENCE_LIMIT_S)
            except queue.Empty:
                item = None
            if item is None:  # silence; or this process was suspended (SIGSTOP, a laptop asleep): look again
                try:
                    item = self._queue.get(timeout=2 * HEARTBEAT_S)
                except queue.Empty:
                    item = None
            if item is None:
                self.close()
                raise errors.DaemonUnavailable(
                    f"stream {self.stream!r}: no data nor heartbeat for {SILENCE_LIMIT_S:g} s; is the daemon running?"
                ) from None
            if item is _END:
                self._closed.set()
                raise StopIteration
            if isinstance(item, BaseException):
                self._closed.set()
                raise item
            batch, meta = item
            if meta.get("heartbeat"):
                self.heartbeats_seen += 1
                if self.heartbeats:
                    return batch
                continue
            self.seq = int(meta.get("seq", self.seq))
            self.dropped += int(meta.get("dropped", 0))
            self.batches += 1
            return batch

    def close(self) -> None:
        """End the subscription (from any thread)."""
        if self._closed.is_set():
            return
        self._closed.set()
        try:
            self._reader.cancel()
        except Exception:
            pass

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _user() -> str:
    try:
        return getpass.getuser()
    except Exception:
        return "?"
