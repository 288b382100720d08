"""The hub (InstrumentManager): declares streams, fans batches out, routes commands.

Producers call :meth:`InstrumentManager.publish`; the hub checks the batch
against its stream's declared schema (the schema, not the values: cheap), counts
it, and hands it to every matching subscription's own buffer. It never awaits
a subscriber's processing: only a full *lossless* buffer makes a producer wait.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, Protocol

import pyarrow as pa

from ..actors import Actor, ActorRef, ActorStatus, Command, RestartPolicy, Role, StatusEvent, Supervisor
from ..data.validate import accept_batch
from ..errors import StreamError
from ..log import get_logger
from .events import RunEvent
from .reservations import Reservations
from .streams import StreamSpec, check_stream_name
from .subscription import LOSSLESS_MAX_BYTES, Delivery, Subscription, batch_memory, matches_any

log = get_logger("arrowdaq.hub")


class Alarm:
    """A condition an operator should see: a stalled lossless subscriber, a failed instrument, a rate
    below its request. ``level`` is a logging level name ("warning", "error")."""

    def __init__(self, source: str, message: str, level: str = "warning") -> None:
        self.source = source
        self.message = message
        self.level = level
        self.time_ns = time.time_ns()

    def __repr__(self) -> str:
        return f"Alarm({self.source!r}, {self.message!r}, {self.level!r})"


class Gatherer(Protocol):
    """Readings gathered outside any actor (a :class:`~.producer.Producer`), not yet published."""

    async def flush(self) -> None: ...


EventListener = Callable[[StatusEvent | Alarm | RunEvent], None]


class InstrumentManager:
    """The hub of the actor graph; see the module docstring."""

    def __init__(self, restart: RestartPolicy = RestartPolicy()) -> None:
        self.supervisor = Supervisor(restart)
        self.supervisor.add_listener(self._on_status)
        self.streams: dict[str, StreamSpec] = {}
        self.subscriptions: list[Subscription] = []
        self._owned: dict[str, list[Subscription]] = {}
        self.actor_status: dict[str, StatusEvent] = {}
        self.recent_events: deque[StatusEvent | Alarm | RunEvent] = deque(maxlen=500)
        self._listeners: list[EventListener] = []
        #: Producers gathering readings outside any actor: what they hold is published first at stop.
        self.gatherers: weakref.WeakSet[Gatherer] = weakref.WeakSet()
        #: Axes a running scan holds: other clients' motion commands to them are refused.
        self.reservations = Reservations()

    # --- streams -------------------------------------------------------------------
    def declare_outputs(self, producer: str, schemas: Mapping[str, pa.Schema], *, derived: bool = False) -> list[str]:
        """Declare a producer's streams, ``<producer>/<name>`` each: how instruments
        (``arrowdaq.instruments.spawn_instrument``) and processors declare what they publish.
        ``derived``: computed from other streams (a processor's), which storage ranks after measured ones."""
        return [
            self.declare(f"{producer}/{name}", schema, producer, derived=derived).name
            for name, schema in schemas.items()
        ]

    def declare(
        self,
        name: str,
        schema: pa.Schema,
        producer: str | None = None,
        *,
        derived: bool = False,
        replace: bool = False,
        explicit: bool = False,
    ) -> StreamSpec:
        """Declare a stream before publishing to it. Re-declaring the same schema is a no-op.

        ``replace``: the same producer changes the schema (each scan's ``scan/points`` has its own
        columns); subscribers stay subscribed and get batches of the new schema. ``explicit``: lossless
        subscribers get it only when they name it (``scan/*``), not through a catch-all such as ``*``
        (a run recording ``*`` would meet a schema it cannot append to with the next scan)."""
        check_stream_name(name)
        if not isinstance(schema, pa.Schema):
            raise StreamError(f"stream {name!r}: schema must be a pyarrow.Schema, got {type(schema).__name__}")
        existing = self.streams.get(name)
        if existing is not None:
            if existing.schema.equals(schema, check_metadata=True) and existing.producer == producer:
                return existing
            if replace and existing.producer == producer:
                spec = StreamSpec(name, schema, producer, derived, explicit=explicit)
                spec.subscribers = existing.subscribers
                self.streams[name] = spec
                return spec
            raise StreamError(f"stream {name!r} is already declared by {existing.producer!r} with another schema")
        spec = StreamSpec(name, schema, producer, derived, explicit=explicit)
        spec.subscribers = [s for s in self.subscriptions if delivers(s, spec)]
        for sub in spec.subscribers:
            sub.streams.append(name)
        self.streams[name] = spec
        return spec

    def stream(self, name: str) -> StreamSpec:
        try:
            return self.streams[name]
        except KeyError:
            known = ", ".join(sorted(self.streams)) or "none declared"
            raise StreamError(f"unknown stream {name!r} (streams: {known})") from None

    def match(self, pattern: str) -> list[str]:
        """Declared stream names matching a glob pattern."""
        return [n for n in self.streams if matches_any(n, [pattern])]

    async def publish(self, stream: str, batch: pa.RecordBatch) -> None:
        """Check ``batch`` against the stream's schema and deliver it to every subscriber
        (every one with room first; then wait for the full lossless ones)."""
        waiting = self.publish_nowait(stream, batch)
        if waiting:
            await self.deliver(stream, batch, waiting)

    def publish_nowait(self, stream: str, batch: pa.RecordBatch) -> list[Subscription]:
        """Like :meth:`publish`, without waiting: returns the lossless subscribers that were
        full and did not take the batch (hand it to them with :meth:`deliver`, in order)."""
        spec = self.streams.get(stream)
        if spec is None:
            self.stream(stream)  # raises with the list of known streams
            return []
        accept_batch(batch, spec.schema, spec.required, stream=stream)
        now = time.monotonic()
        size = batch.get_total_buffer_size()
        spec.meter.add(batch.num_rows, size, now)
        spec.last = batch
        held = batch_memory(batch, size)
        return [sub for sub in spec.subscribers if not sub.offer(stream, batch, held, now)]

    async def deliver(self, stream: str, batch: pa.RecordBatch, subscribers: Iterable[Subscription]) -> None:
        """Hand an accepted batch to the subscribers that refused it, waiting for their space."""
        held = batch_memory(batch)
        for sub in subscribers:
            await sub.put(stream, batch, held)

    def request_rate(self, stream: str, rows_per_s: float | None) -> None:
        """Say how many rows per second ``stream`` should carry; status and the rate watch compare."""
        self.stream(stream).requested_rate = rows_per_s if rows_per_s and rows_per_s > 0 else None

    def count_dropped(self, stream: str, rows: int) -> int:
        """Count rows the producer lost before publishing (status ``dropped``); returns the total."""
        spec = self.stream(stream)
        spec.dropped += rows
        return spec.dropped

    def count_missed(self, stream: str, rows: int) -> int:
        """Count readings the producer was asked for and gave up (status ``missed``; the rate
        watch raises the rate alarm for them); returns the total."""
        spec = self.stream(stream)
        spec.missed += rows
        return spec.missed

    # --- subscriptions ---------------------------------------------------------------
    def subscribe(
        self,
        patterns: str | Iterable[str],
        *,
        delivery: Delivery | str = Delivery.LOSSLESS,
        name: str | None = None,
        owner: str | None = None,
        max_bytes: int = LOSSLESS_MAX_BYTES,
        max_batches: int = 16,
    ) -> Subscription:
        """Subscribe to streams by name or glob (``'pm1/*'``), including streams declared later."""
        pats = [patterns] if isinstance(patterns, str) else list(patterns)
        sub = Subscription(
            name or owner or f"subscriber{len(self.subscriptions)}",
            pats,
            delivery,
            max_bytes=max_bytes,
            max_batches=max_batches,
            on_alarm=self._on_alarm,
        )
        return self.add_subscription(sub, owner=owner)

    def add_subscription(self, sub: Subscription, *, owner: str | None = None) -> Subscription:
        """Deliver to a subscription built elsewhere (the live service's thread-safe client feeds)."""
        for spec in self.streams.values():
            if delivers(sub, spec):
                spec.subscribers.append(sub)
                sub.streams.append(spec.name)
        self.subscriptions.append(sub)
        if owner is not None:
            self._owned.setdefault(owner, []).append(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        sub.close()
        for spec in self.streams.values():
            if sub in spec.subscribers:
                spec.subscribers.remove(sub)
        if sub in self.subscriptions:
            self.subscriptions.remove(sub)

    # --- actors ---------------------------------------------------------------------
    def spawn(
        self,
        name: str,
        factory: Callable[[], Actor],
        *,
        role: Role | None = None,
        inputs: str | Iterable[str] | None = None,
        delivery: Delivery | str = Delivery.LOSSLESS,
        restart: RestartPolicy | None = None,
        max_bytes: int = LOSSLESS_MAX_BYTES,
        max_batches: int = 16,
        start: bool = True,
    ) -> ActorRef:
        """Start an actor (``start=False``: later, with :meth:`start`); with ``inputs`` (stream names or globs) it is subscribed first, with
        ``delivery`` (``lossless`` or ``latest``); ``restart`` overrides the hub's restart policy.

        The subscription belongs to the actor's ref, so it survives restarts:
        a restarted actor loses nothing that was queued for it (the batch it was
        handling when it raised is not retried).
        """
        ref = self.supervisor.spawn(name, factory, role=role, restart=restart, start=False)
        if inputs is not None:
            sub = self.subscribe(inputs, delivery=delivery, owner=name, max_bytes=max_bytes, max_batches=max_batches)
            ref.attach(sub)
        return self.supervisor.start(name) if start else ref

    def start(self, name: str) -> ActorRef:
        """Start an actor spawned with ``start=False``."""
        return self.supervisor.start(name)

    def actor(self, name: str) -> ActorRef:
        return self.supervisor.get(name)

    async def command(self, actor: str, action: str | Command, timeout: float = 5.0, **args: Any) -> Any:
        """Send a command to an actor and return its reply: ``await hub.command('laser', 'open_shutter')``."""
        message = action if isinstance(action, Command) else Command(action, args)
        self.reservations.check(actor, message)
        reply = await self.supervisor.get(actor).ask(message, timeout=timeout)
        if isinstance(reply, asyncio.Future):  # finishes later (a move: its arrival); ``timeout`` covered the start
            return await reply
        return reply

    async def stop(self, timeout: float | None = None, after: Callable[[Role], Awaitable[None]] | None = None) -> None:
        """Ordered stop: what producers outside actors have gathered is published, then sources stop,
        then processors (drained), then sinks (drained, closed); ``after(role)`` runs when a role's
        actors have stopped."""
        for gatherer in list(self.gatherers):  # nothing gathered is lost at stop
            await gatherer.flush()
        await self.supervisor.stop_all(timeout, after)
        for sub in list(self.subscriptions):
            sub.close()

    # --- status and events -------------------------------------------------------------
    def add_listener(self, listener: EventListener) -> None:
        """Receive every StatusEvent, Alarm and RunEvent (the listener must not block)."""
        self._listeners.append(listener)

    def remove_listener(self, listener: EventListener) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)

    def alarm(self, source: str, message: str, level: str = "warning") -> Alarm:
        """Raise an alarm: logged, and given to every listener (the terminal, the run file's event log)."""
        alarm = Alarm(source, message, level)
        log.log(logging.ERROR if level == "error" else logging.WARNING, f"{source}: {message}")
        self._emit(alarm)
        return alarm

    def record_event(self, source: str, kind: str, message: str, level: str = "info", **details: Any) -> RunEvent:
        """Report an event for the run's event log (and every other listener): a storage
        problem, a lost batch, a command. ``details`` must be JSON-able; see ``arrowdaq.hub.events``."""
        event = RunEvent(source, kind, message, level, details)
        self._emit(event)
        return event

    def _emit(self, event: StatusEvent | Alarm | RunEvent) -> None:
        self.recent_events.append(event)
        for listener in self._listeners:
            listener(event)

    def _on_status(self, event: StatusEvent) -> None:
        self.actor_status[event.actor] = event
        if event.status in (ActorStatus.FAILED, ActorStatus.STOPPED):
            for sub in self._owned.get(event.actor, []):
                sub.close()  # never leave a producer waiting on a dead consumer
        self._emit(event)

    def _on_alarm(self, sub: Subscription, stream: str) -> None:
        message = f"lossless subscriber {sub.name!r} is full ({sub.queued_bytes} bytes queued); {stream!r} waits"
        log.warning(message, extra={"stream": stream})
        self._emit(Alarm(sub.name, message))

    def status(self) -> dict[str, Any]:
        """Actors, streams and subscribers with their metrics: the status API."""
        return {
            "actors": {
                name: {
                    "status": ref.status.value,
                    "role": ref.role.value,
                    "error": ref.last_error,
                    "restarts": ref.restarts,
                    "reconnects": ref.outages,
                    "queued": ref.queued,
                }
                for name, ref in self.supervisor.actors.items()
            },
            "streams": {
                name: {
                    "producer": spec.producer,
                    "derived": spec.derived,
                    "kind": spec.kind,
                    **spec.meter.snapshot(),
                    "requested_per_s": spec.requested_rate,
                    "dropped": spec.dropped,
                    "missed": spec.missed,
                    "slow": spec.slow,
                }
                for name, spec in self.streams.items()
            },
            "subscribers": {sub.name: sub.snapshot() for sub in self.subscriptions},
        }


def delivers(sub: Subscription, spec: StreamSpec) -> bool:
    """Whether ``sub`` gets ``spec``'s batches: a pattern matches it. An explicit stream goes to a lossless
    subscriber (a recorder, a processor) only through a pattern whose first segment is the stream's own,
    as ``scan/*`` is for ``scan/points``; live views (latest) take it through any pattern."""
    if not spec.explicit or sub.delivery is Delivery.LATEST:
        return sub.matches(spec.name)
    head = spec.name.split("/", 1)[0]
    return any(p.split("/", 1)[0] == head and matches_any(spec.name, [p]) for p in sub.patterns)
