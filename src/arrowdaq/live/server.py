"""The live service: Arrow Flight in the daemon (DESIGN section 8, docs/live-service.md).

Flight calls run in gRPC threads; the hub lives on the asyncio loop. So:

* data: each ``do_get`` owns a :class:`~.feeds.ClientFeed`, a thread-safe hub
  subscription that never refuses a batch (the producer never waits on a
  client). The handler's generator drains it, sends a heartbeat when idle and
  polls the stop flag, so shutdown never waits for a stream to end by itself;
* control: ``do_action`` runs its handler on the loop
  (``run_coroutine_threadsafe``) and answers JSON.

pyarrow.flight pitfalls handled here: the server serves as soon as it is
constructed (everything it uses exists before); ``shutdown()`` waits for running
handlers (streams poll a stop flag) and a handler blocked writing to a client
that stopped reading never returns by itself (its connection is severed after a
grace period, decision 0072); the number of concurrent streams is capped.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import os
import secrets
import socket
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.flight as flight

from .. import __version__
from ..errors import ArrowDAQError, CommandError, ConfigError
from ..hub import InstrumentManager
from ..hub.metrics import FlowMeter
from ..log import get_logger
from . import discovery
from .actions import ACTION_HANDLERS, ActionContext, error_for_flight
from .events import event_batch
from .feeds import MERGE_BATCH_BYTES, ClientFeed, FeedBroken, LastBatches, Redeclared
from .protocol import (
    ACTIONS,
    AUTH_HEADER,
    CLIENT_HEADER,
    EVENT_SCHEMA,
    EVENTS_STREAM,
    HEARTBEAT_S,
    MODES,
    SNAPSHOT,
    dumps,
    error_info,
    loads,
)
from .wire import WireFormat

log = get_logger("arrowdaq.live")

#: How often a stream's handler looks at the stop flag while it waits for data.
STOP_POLL_S = 0.2
#: Small batches queued for a client go out together up to this many bytes (``merge`` in the ticket).
MERGE_BYTES = 2**20
#: Batches queued for a client go out as a run of up to this many bytes: one step of Python, then C++ (0076).
RUN_BYTES = 4 * 2**20
#: Python's thread switch interval while the service runs. A Flight thread woken by a new batch waits
#: for the GIL until the running thread (the event loop, a driver's worker) lets go: at most 5 ms by
#: default, which was the p50/p99 latency of a 1-row batch on a busy daemon (decision 0024).
SWITCH_INTERVAL_S = 0.0005


@dataclass
class ServiceSettings:
    """The ``[server]`` table, as the service needs it."""

    host: str = "127.0.0.1"
    port: int = 0
    token: str | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None
    allow_insecure_remote: bool = False
    max_streams: int = 64
    latest_batches: int = 16
    lossless_batches: int = 1024
    #: Seconds shutdown waits for streams to end before it severs the connections of stalled clients.
    shutdown_grace_s: float = 1.0
    #: Serve on this Unix socket (``grpc+unix://PATH``, mode 0600) instead of host and port.
    socket: Path | None = None


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


def check_bind(host: str, tls: bool, allow_insecure_remote: bool) -> None:
    """A service reachable from the network needs TLS, unless the configuration says otherwise explicitly."""
    if not is_loopback(host) and not tls and not allow_insecure_remote:
        raise ConfigError(
            f"server: host {host!r} is not a loopback address and the service would run without TLS "
            "(anyone on the network could read the token); give server.tls_cert and server.tls_key, "
            "or set server.allow_insecure_remote = true"
        )


def _claim_socket(path: Path) -> Path:
    """An absolute path for the service's Unix socket, its directory made (0700); a socket left by a
    daemon that died is removed, one a running daemon answers on is refused."""
    path = path.expanduser().absolute()
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    if path.exists() or path.is_symlink():
        if not path.is_socket():
            raise ConfigError(f"server.socket: {path} exists and is not a socket; name another path")
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
            try:
                probe.connect(str(path))
            except OSError:
                path.unlink()  # nobody listens: left by a daemon that died
            else:
                raise ConfigError(f"server.socket: {path} is in use (another arrowdaq daemon?); name another path")
    return path


def _check_port_free(host: str, port: int) -> None:
    """gRPC binds with SO_REUSEPORT: a second daemon on the same port would share it silently. Refuse instead."""
    if port == 0:
        return
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise ConfigError(
                f"server.port: {host}:{port} is in use ({exc.strerror}); another arrowdaq daemon? "
                "Use port = 0 for any free port (local clients find it through the address file)"
            ) from None


class TokenAuth(flight.ServerMiddlewareFactory):
    """Every call carries ``authorization: Bearer <token>``; anything else is refused with a clear message."""

    def __init__(self, token: str) -> None:
        super().__init__()
        self._token = token.encode()

    def start_call(self, info: flight.CallInfo, headers: dict[str, list[str]]) -> CallerMiddleware:
        values = headers.get(AUTH_HEADER) or headers.get(AUTH_HEADER.title()) or []
        if not values:
            raise flight.FlightUnauthenticatedError(
                "arrowdaq: no token: send the header 'authorization: Bearer <token>' "
                f"(a local daemon writes its token to {discovery.address_file()})"
            )
        scheme, space, token = values[0].partition(" ")
        if scheme.lower() != "bearer":  # e.g. pyarrow's authenticate_basic_token: 'Basic ...'
            got = f"a {scheme!r} one" if space else "a value without 'Bearer '"
            raise flight.FlightUnauthenticatedError(
                f"arrowdaq: the header must be 'authorization: Bearer <token>', got {got} (there is no "
                "Flight handshake: send the header with every call)"
            )
        if not hmac.compare_digest(token.strip().encode(), self._token):
            raise flight.FlightUnauthenticatedError(
                "arrowdaq: wrong token: the daemon's token is in its address file "
                f"({discovery.address_file()}) or in the configuration's server.token"
            )
        client = (headers.get(CLIENT_HEADER) or [""])[0]
        return CallerMiddleware(client)


class CallerMiddleware(flight.ServerMiddleware):
    def __init__(self, client: str) -> None:
        super().__init__()
        self.client = client


class FlightEndpoint(flight.FlightServerBase):
    """The Flight methods; everything they do is the service's."""

    def __init__(self, service: LiveService, location: str, **kwargs: Any) -> None:
        self.service = service  # before the base constructor: the server serves as soon as it exists
        super().__init__(location, **kwargs)

    def list_flights(self, context: flight.ServerCallContext, criteria: bytes) -> Iterator[flight.FlightInfo]:
        return iter(self.service.flight_infos())

    def get_flight_info(
        self, context: flight.ServerCallContext, descriptor: flight.FlightDescriptor
    ) -> flight.FlightInfo:
        name = self.service.descriptor_stream(descriptor)
        for info in self.service.flight_infos():
            if info.descriptor.path[0].decode() == name:
                return info
        raise self.service.unknown_stream(name)

    def get_schema(self, context: flight.ServerCallContext, descriptor: flight.FlightDescriptor) -> flight.SchemaResult:
        return flight.SchemaResult(self.service.schema_of(self.service.descriptor_stream(descriptor)))

    def do_get(self, context: flight.ServerCallContext, ticket: flight.Ticket) -> flight.FlightDataStream:
        return self.service.open_stream(ticket.ticket, self.service.caller(context), context)

    def do_action(self, context: flight.ServerCallContext, action: flight.Action) -> Iterator[bytes]:
        reply = self.service.run_action(action.type, action.body, self.service.caller(context))
        return iter([dumps(reply)])

    def list_actions(self, context: flight.ServerCallContext) -> list[tuple[str, str]]:
        return list(ACTIONS.items())


def refused(message: str) -> flight.FlightServerError:
    """An action the daemon refuses before running it: a CommandError for the client."""
    return error_for_flight(CommandError(message))


class LiveService:
    """The live service of one daemon: start it on the hub's loop, stop it before the hub."""

    def __init__(self, hub: InstrumentManager, settings: ServiceSettings | None = None, daemon: Any = None) -> None:
        self.hub = hub
        self.settings = settings or ServiceSettings()
        self.daemon = daemon  # the Application: describe cache, recording (see actions.py)
        self.token = self.settings.token or secrets.token_urlsafe(32)
        self.address = ""
        self.address_file: Path | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.server: FlightEndpoint | None = None
        self.last = LastBatches(hub.streams)
        self.instruments: dict[str, dict[str, Any]] = {}  # describe() of each instrument, refreshed by commands
        self._stopping = threading.Event()
        self._feeds: set[ClientFeed] = set()
        self._event_feeds: set[ClientFeed] = set()
        self._events_meter = FlowMeter()
        self._recent_events: deque[tuple[int, pa.RecordBatch]] = deque(maxlen=500)
        self._lock = threading.Lock()
        self._clients = 0
        #: How the last stop went: {"stopped": the server stopped, "severed": connections closed at the grace period}
        self.shutdown_report: dict[str, Any] = {}
        self.actions = dict(ACTION_HANDLERS)
        #: What added actions contribute to ``describe`` (the scan engine: its plans with their parameters).
        self.describers: list[Callable[[], dict[str, Any]]] = []
        self._wire: dict[str, WireFormat] = {}
        self._switch_interval: float | None = None  # the interpreter's, restored at stop

    def add_action(self, name: str, handler: Any, describe: Callable[[], dict[str, Any]] | None = None) -> None:
        """Serve another action type (the scan engine adds ``scan``): ``async handler(context, body) -> reply``;
        ``describe()`` returns keys added to the ``describe`` answer (e.g. ``{"plans": [...]}``)."""
        if name not in ACTIONS:
            raise ValueError(f"action {name!r} is not in the contract (live.protocol.ACTIONS)")
        self.actions[name] = handler
        if describe is not None:
            self.describers.append(describe)

    # --- lifecycle (on the loop) ---------------------------------------------------------
    def start(self) -> str:
        """Bind, write the address file, return the address. Raises ConfigError for an unsafe or taken address."""
        s = self.settings
        tls = s.tls_cert is not None or s.tls_key is not None
        if tls and (s.tls_cert is None or s.tls_key is None):
            raise ConfigError("server: give both tls_cert and tls_key (or neither)")
        unix = _claim_socket(s.socket) if s.socket is not None else None
        if unix is not None and tls:
            raise ConfigError("server: a Unix socket is local: give socket or tls_cert/tls_key, not both")
        if unix is None:
            check_bind(s.host, tls, s.allow_insecure_remote)
            _check_port_free(s.host, s.port)
        self.loop = asyncio.get_running_loop()
        self.hub.add_subscription(self.last)
        for event in list(self.hub.recent_events):
            self._on_event(event)
        self.hub.add_listener(self._on_event)
        scheme = "grpc+tls" if tls else "grpc"
        host = f"[{s.host}]" if ":" in s.host else s.host
        kwargs: dict[str, Any] = {"middleware": {"auth": TokenAuth(self.token)}}
        if tls:
            assert s.tls_cert is not None and s.tls_key is not None
            try:
                kwargs["tls_certificates"] = [(s.tls_cert.read_bytes(), s.tls_key.read_bytes())]
            except OSError as exc:
                raise ConfigError(f"server.tls_cert/tls_key: cannot read {exc.filename}: {exc.strerror}") from None
        location = f"grpc+unix://{unix}" if unix is not None else f"{scheme}://{host}:{s.port}"
        try:
            self.server = FlightEndpoint(self, location, **kwargs)
        except (pa.ArrowException, OSError) as exc:
            where = unix if unix is not None else f"{s.host}:{s.port}"
            raise ConfigError(f"server: cannot serve on {where}: {exc}") from None
        if unix is not None:
            os.chmod(unix, 0o600)  # only this user may connect (the token is checked as well)
            self.address = location
        else:
            local = "127.0.0.1" if s.host in ("0.0.0.0", "::", "") else host
            self.address = f"{scheme}://{local}:{self.server.port}"
        info = {"address": self.address, "token": self.token, "pid": os.getpid(), "version": __version__}
        if s.tls_cert is not None:
            info["tls_cert"] = str(Path(s.tls_cert).absolute())  # clients read it from anywhere
        try:
            self.address_file = discovery.write_address_file(info)
        except OSError as exc:
            log.warning(f"live service: cannot write the address file: {exc}; clients need the address and token")
        if sys.getswitchinterval() > SWITCH_INTERVAL_S:
            self._switch_interval = sys.getswitchinterval()
            sys.setswitchinterval(SWITCH_INTERVAL_S)
        log.info(f"live service on {self.address}")
        return self.address

    async def stop(self) -> None:
        """End every stream, stop serving; never waits on a client beyond the grace period."""
        if self.server is None:
            return
        self._stopping.set()
        with self._lock:
            feeds = list(self._feeds | self._event_feeds)
        for feed in feeds:
            feed.close()
        await asyncio.to_thread(self._shutdown, self.server)
        self.hub.unsubscribe(self.last)
        for feed in feeds:
            self.hub.unsubscribe(feed)
        if self.address_file is not None:
            discovery.remove_address_file(os.getpid(), self.address_file)
        if self._switch_interval is not None:
            sys.setswitchinterval(self._switch_interval)
            self._switch_interval = None
        self.server = None

    def _shutdown(self, server: FlightEndpoint) -> None:
        done = threading.Thread(target=server.shutdown, name="live-shutdown", daemon=True)
        done.start()
        done.join(self.settings.shutdown_grace_s)
        severed = 0
        if done.is_alive():
            socket_path = self.address.removeprefix("grpc+unix://") if self.address.startswith("grpc+unix") else None
            severed = sever_connections(server.port, socket_path)
            log.warning(f"live service: {severed} client connection(s) did not end their streams; closed them")
            done.join(5.0)
        if done.is_alive():
            log.error("live service: the Flight server did not stop; leaving it behind")
        if self.address.startswith("grpc+unix://"):  # gRPC removes it; a severed shutdown may not
            Path(self.address.removeprefix("grpc+unix://")).unlink(missing_ok=True)
        self.shutdown_report = {"stopped": not done.is_alive(), "severed": severed}

    # --- catalogue --------------------------------------------------------------------------------
    def caller(self, context: flight.ServerCallContext) -> str:
        middleware = context.get_middleware("auth")
        name = getattr(middleware, "client", "") or ""
        peer = context.peer()
        return f"{name} ({peer})" if name else peer

    def descriptor_stream(self, descriptor: flight.FlightDescriptor) -> str:
        if descriptor.descriptor_type == flight.DescriptorType.PATH and descriptor.path:
            return "/".join(p.decode() for p in descriptor.path)
        return (descriptor.command or b"").decode()

    def unknown_stream(self, name: str) -> flight.FlightServerError:
        """The error for a stream the daemon does not have: a StreamError, as the hub's own."""
        known = ", ".join([*sorted(self.hub.streams), EVENTS_STREAM])
        message = f"arrowdaq: unknown stream {name!r} (streams: {known})"
        return flight.FlightServerError(message, extra_info=error_info("StreamError"))

    def schema_of(self, name: str) -> pa.Schema:
        """The stream's schema on the wire (string columns plain; units in field metadata)."""
        return self.wire(name).schema

    def wire(self, name: str, schema: pa.Schema | None = None) -> WireFormat:
        """The stream's wire format, for its current declaration (or ``schema``, a declaration a feed holds).

        Kept per stream and made again when the stream is declared again with another schema (each
        scan's ``scan/points`` has its own columns)."""
        if schema is None:
            if name == EVENTS_STREAM:
                schema = EVENT_SCHEMA
            elif (spec := self.hub.streams.get(name)) is not None:
                schema = spec.schema
            else:
                raise self.unknown_stream(name)
        wire = self._wire.get(name)
        if wire is None or wire.source is not schema:
            wire = self._wire[name] = WireFormat(schema)
        return wire

    def flight_infos(self) -> list[flight.FlightInfo]:
        status = self.call(lambda: self.hub.status()["streams"])
        infos = []
        for name, spec in list(self.hub.streams.items()):
            meta = {"stream": name, "producer": spec.producer, "kind": spec.kind, **status.get(name, {})}
            infos.append(self._info(name, self.schema_of(name), meta, status.get(name, {}).get("rows", -1)))
        events = {"stream": EVENTS_STREAM, "producer": "daemon", "kind": "events", "rows": self._events_meter.rows}
        infos.append(self._info(EVENTS_STREAM, EVENT_SCHEMA, events, self._events_meter.rows))
        return infos

    def _info(self, name: str, schema: pa.Schema, meta: dict[str, Any], rows: int) -> flight.FlightInfo:
        descriptor = flight.FlightDescriptor.for_path(name)
        endpoint = flight.FlightEndpoint(dumps({"stream": name, "mode": "latest"}), [])
        return flight.FlightInfo(schema, descriptor, [endpoint], rows, -1, app_metadata=dumps(meta))

    # --- streams ------------------------------------------------------------------------------------
    def open_stream(self, raw: bytes, client: str, context: flight.ServerCallContext) -> flight.FlightDataStream:
        try:
            request = loads(raw)
        except ValueError:
            request = None
        if not isinstance(request, dict) or not isinstance(request.get("stream"), str):
            raise flight.FlightServerError(
                'arrowdaq: the ticket must be JSON {"stream": "pm1/power", "mode": "latest" | "lossless"}, '
                f"got {raw[:100]!r}"
            )
        name, mode = request["stream"], request.get("mode", "latest")
        if mode not in (*MODES, SNAPSHOT):
            raise flight.FlightServerError(f"arrowdaq: unknown mode {mode!r} (modes: {', '.join((*MODES, SNAPSHOT))})")
        wire = self.wire(name)
        if mode == SNAPSHOT:
            seq, last = self.last.last.get(name, (-1, None))
            if last is not None and not last.schema.equals(wire.source):
                last = None  # of the stream's previous declaration (the last scan's points)
            if last is None:
                return flight.RecordBatchStream(pa.Table.from_batches([], schema=wire.schema))
            meta = arrow_bytes(dumps({"seq": seq, "dropped": 0}))  # as the first message of any call
            return flight.GeneratorStream(wire.schema, iter([(wire(last), meta)]))
        if self._stopping.is_set():
            raise flight.FlightUnavailableError("arrowdaq: the daemon is stopping")
        size = self.settings.latest_batches if mode == "latest" else self.settings.lossless_batches
        size = int(request.get("max_batches", size))
        with self._lock:
            if len(self._feeds) + len(self._event_feeds) >= self.settings.max_streams:
                raise flight.FlightServerError(
                    f"arrowdaq: too many live streams ({self.settings.max_streams}, server.max_streams); "
                    "close one or raise the limit"
                )
            self._clients += 1
            feed_name = f"live:{name}#{self._clients}"
        if name == EVENTS_STREAM:
            feed = ClientFeed(feed_name, name, self._events_meter, mode, max_batches=size)
            history = int(request.get("history", 0))
            with self._lock:
                recent = list(self._recent_events)
                shown = recent[-history:] if history > 0 else []
                feed.mark_start(shown[0][0] - 1 if shown else recent[-1][0] if recent else -1)
                for seq, batch in shown:
                    feed.offer(name, batch, batch.nbytes, time.monotonic(), seq=seq)
                self._event_feeds.add(feed)
        else:
            streams = self.hub.streams
            feed = ClientFeed(feed_name, name, streams[name].meter, mode, max_batches=size, streams=streams)
            if feed.declared is not None:
                wire = self.wire(name, feed.declared.schema)  # the declaration the feed holds, however recent
            with self._lock:
                self._feeds.add(feed)

            def subscribe() -> None:  # on the loop: no batch is published between the two
                feed.mark_start()
                self.hub.add_subscription(feed)

            self.call(subscribe)
        feed.client = client
        log.info(f"live: {client} subscribed to {name} ({mode})")
        merge = request.get("merge", True) is not False
        return flight.GeneratorStream(wire.schema, self._serve(feed, wire, context, client, merge))

    def _serve(
        self, feed: ClientFeed, wire: WireFormat, context: flight.ServerCallContext, client: str, merge: bool = True
    ) -> Iterator[tuple[pa.RecordBatch, pa.Buffer] | pa.Table]:
        """The stream's generator (a gRPC thread): batches with their seq, heartbeats, the stop flag.

        Small batches that queued while the client took the last message go out as one (``merge``):
        one message, one conversion, one pass through Python and gRPC for all of them instead of one
        each, so a client that fell behind a fast stream of small batches catches up. Large batches
        that queued go out as a run (decision 0076): one Table that Arrow's C++ sends a message per
        batch without a step of this generator each. A large batch that is simply the one after the
        last sent (not the first of the call, nothing dropped) needs no metadata, so it heads the run
        itself (decision 0077): one step of this generator per run, not two."""
        merge_bytes = MERGE_BYTES if merge else 0
        empty = pa.RecordBatch.from_pylist([], schema=wire.schema)
        last_seq = feed.start_seq
        sent = False  # the first batch of a call carries its metadata, whatever its seq
        next_beat = time.monotonic() + HEARTBEAT_S
        try:
            while not self._stopping.is_set():
                wait = min(STOP_POLL_S, max(0.0, next_beat - time.monotonic()))
                try:
                    item = feed.next(wait, merge_bytes, RUN_BYTES)
                except FeedBroken as gap:
                    raise flight.FlightServerError(
                        f"arrowdaq: gap at seq {gap.seq}: {client} fell more than {gap.queued} batches behind "
                        f"on {feed.stream!r} (lossless); subscribe again, or use mode 'latest'",
                        extra_info=error_info("GapError", seq=gap.seq),
                    ) from None
                except Redeclared:
                    raise flight.FlightServerError(
                        f"arrowdaq: stream {feed.stream!r} was declared again with another schema (each scan's "
                        "scan/points has its own columns); subscribe again for the new one",
                        extra_info=dumps({"error": "StreamError"}),
                    ) from None
                if item is None:
                    # idle: has the client gone? (is_cancelled costs 16 us, so it is not asked per batch:
                    # while batches flow, the write to a client that has gone fails and ends the call)
                    if feed.closed or context.is_cancelled():
                        return
                    if time.monotonic() >= next_beat:
                        yield empty, arrow_bytes(dumps({"seq": last_seq, "dropped": 0, "heartbeat": True}))
                        next_beat = time.monotonic() + HEARTBEAT_S
                    continue
                seq, batches, dropped, following = item
                first = batches[0]
                if (
                    sent
                    and seq == last_seq + 1
                    and not dropped
                    and len(batches) == 1
                    and first.num_rows
                    and (following or first.get_total_buffer_size() > MERGE_BATCH_BYTES)
                ):
                    # a large batch right after the last one sent, nothing dropped: no metadata needed, so it
                    # goes as the head of a run, one step of this generator for all (decision 0077). Not an
                    # empty batch (it would vanish from a Table), nor a lone small one (its message is
                    # cheaper with the metadata than as a Table: the latency path stays as it was)
                    run = [first, *following]
                else:
                    if len(batches) == 1:  # the metadata by hand: 1 us, not 17 for json.dumps
                        yield wire(first), arrow_bytes(b'{"seq":%d,"dropped":%d}' % (seq, dropped))
                    else:
                        meta = b'{"seq":%d,"dropped":%d,"batches":%d}' % (seq, dropped, len(batches))
                        yield wire.merged(batches), arrow_bytes(meta)
                    run = following
                if run:  # a message without metadata is the batch after the last (seq + 1)
                    yield wire.table(run)
                last_seq = seq + len(following)
                sent = True
                next_beat = time.monotonic() + HEARTBEAT_S
        finally:
            self._release(feed)

    def _release(self, feed: ClientFeed) -> None:
        feed.close()
        with self._lock:
            self._feeds.discard(feed)
            self._event_feeds.discard(feed)
        loop = self.loop
        if loop is not None and not loop.is_closed() and feed.stream != EVENTS_STREAM:
            try:
                loop.call_soon_threadsafe(self.hub.unsubscribe, feed)
            except RuntimeError:
                pass  # the loop closed meanwhile: the hub is gone too

    # --- events ---------------------------------------------------------------------------------------
    def _on_event(self, event: Any) -> None:
        """A hub event (on the loop): into the ``_events`` stream of every subscribed client."""
        batch = event_batch(event)
        now = time.monotonic()
        self._events_meter.add(batch.num_rows, batch.nbytes, now)
        seq = self._events_meter.batches - 1
        with self._lock:
            self._recent_events.append((seq, batch))
            feeds = list(self._event_feeds)
        for feed in feeds:
            feed.offer(EVENTS_STREAM, batch, batch.nbytes, now, seq=seq)
        self._note_settings(event)

    def _note_settings(self, event: Any) -> None:
        """A command record carries the settings read back after it: keep describe() current."""
        details = getattr(event, "details", None) or {}
        settings, instrument = details.get("settings"), details.get("instrument")
        if getattr(event, "kind", None) == "command" and settings is not None and instrument in self.instruments:
            self.instruments[instrument] = {**self.instruments[instrument], "settings": settings}

    # --- actions ---------------------------------------------------------------------------------------
    def run_action(self, kind: str, body: bytes, client: str) -> Any:
        handler = self.actions.get(kind)
        if handler is None:
            if kind in ACTIONS:
                raise refused(f"arrowdaq: action {kind!r} is not available in this daemon ({ACTIONS[kind]})")
            raise refused(f"arrowdaq: unknown action {kind!r} (actions: {', '.join(sorted(self.actions))})")
        try:
            args = loads(body) if body else {}
        except ValueError:
            raise refused(f"arrowdaq: {kind}: the body must be a JSON object, got {bytes(body)[:100]!r}") from None
        if not isinstance(args, dict):
            raise refused(f"arrowdaq: {kind}: the body must be a JSON object")
        context = ActionContext(self, client)
        try:
            return self.call_async(handler(context, args), timeout=float(args.get("timeout", 30.0)) + 5.0)
        except ArrowDAQError as exc:
            raise error_for_flight(exc) from None

    # --- the loop ---------------------------------------------------------------------------------------
    def call(self, fn: Any, timeout: float = 10.0) -> Any:
        """Run ``fn()`` on the hub's loop from a Flight thread and return its result."""

        async def run() -> Any:
            return fn()

        return self.call_async(run(), timeout)

    def call_async(self, coro: Any, timeout: float) -> Any:
        loop = self.loop
        if loop is None or loop.is_closed() or self._stopping.is_set():
            coro.close()
            raise flight.FlightUnavailableError("arrowdaq: the daemon is stopping")
        future = asyncio.run_coroutine_threadsafe(coro, loop)
        try:
            return future.result(timeout)
        except TimeoutError:
            future.cancel()
            raise flight.FlightTimedOutError(f"arrowdaq: no answer within {timeout:g} s") from None

    def snapshot(self) -> dict[str, Any]:
        """The service's part of ``status``."""
        with self._lock:
            feeds = [*self._feeds, *self._event_feeds]
        return {
            "address": self.address,
            "streams_open": len(feeds),
            "max_streams": self.settings.max_streams,
            "clients": {f.name: {"stream": f.stream, **f.snapshot()} for f in feeds},
        }


def arrow_bytes(data: bytes) -> pa.Buffer:
    """``data`` in Arrow's memory, for a batch's app metadata. gRPC's thread drops the message after writing
    it, without the GIL; a ``py_buffer`` holds a Python object, and letting go of it takes the GIL again
    (seen in profiles: 13% of a serving thread's time). 1 us."""
    buffer = pa.allocate_buffer(len(data))
    memoryview(buffer).cast("B")[:] = data
    return buffer


def sever_connections(port: int, unix_path: str | None = None) -> int:
    """Shut down this process's accepted connections on ``port`` (or the Unix socket ``unix_path``): the calls
    on them end.

    gRPC's shutdown waits for every running call, and a call blocked writing to
    a client that stopped reading (SIGSTOP, a frozen GUI) never returns. Shutting
    the socket down makes that write fail at once.
    """
    severed = 0
    try:
        fds = [int(fd) for fd in os.listdir("/proc/self/fd")]
    except OSError:
        return 0
    for fd in fds:
        try:
            sock = socket.socket(fileno=os.dup(fd))
        except OSError:
            continue
        try:
            if sock.type != socket.SOCK_STREAM or sock.family not in (socket.AF_INET, socket.AF_INET6, socket.AF_UNIX):
                continue
            try:
                local, _peer = sock.getsockname(), sock.getpeername()
            except OSError:
                continue  # the listening socket, or not connected
            ours = local == unix_path if sock.family == socket.AF_UNIX else unix_path is None and local[1] == port
            if ours:
                sock.shutdown(socket.SHUT_RDWR)
                severed += 1
        except OSError:
            pass
        finally:
            sock.close()
    return severed
