"""The supervisor: spawns actors, restarts the ones that fail, stops them in order.

Restarts follow :class:`RestartPolicy`: a fault in the code or the configuration
restarts the actor after a backoff (200 ms doubling to 5 s); ``max_failures``
faults within ``window`` seconds, or one :class:`~arrowdaq.errors.Unrecoverable`
error, make it Failed. A lost link (an exception in the actor's ``link_errors``)
is not a fault: the actor is Reconnecting, retried with the same capped backoff
for as long as it lives, and never counts toward Failed (decision 0013).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from ..errors import ActorError, ArrowDAQError, Unrecoverable, describe
from ..log import get_logger
from .actor import Actor
from .ref import ActorRef
from .status import STOP_ORDER, ActorStatus, Role, StatusEvent

log = get_logger("arrowdaq.actors")

StatusListener = Callable[[StatusEvent], None]

#: Errors whose message says it all: logged without a traceback.
_QUIET_ERRORS = (ArrowDAQError, TimeoutError, ConnectionError, OSError)


@dataclass(frozen=True)
class RestartPolicy:
    """Restart with exponential backoff; Failed after ``max_failures`` within ``window`` s."""

    initial_backoff: float = 0.2
    max_backoff: float = 5.0
    max_failures: int = 5
    window: float = 60.0
    stop_timeout: float = 5.0


class Restarts:
    """One actor's restart loop: build an instance, let its ref serve it, decide what a failure means."""

    def __init__(self, ref: ActorRef, factory: Callable[[], Actor], policy: RestartPolicy) -> None:
        self.ref = ref
        self.factory = factory
        self.policy = policy
        self.backoff = policy.initial_backoff
        self._faults: deque[float] = deque()  # times of code or configuration faults: a lost link never counts
        self._was_in_outage = False  # after the last failure (``ref.link_up`` ends an outage meanwhile)

    async def run(self) -> None:
        ref = self.ref
        while True:
            actor = self.factory()
            if ref.status is ActorStatus.RESTARTING:  # attempts during an outage stay Reconnecting
                ref.set_status(ActorStatus.STARTING)
            try:
                await ref.run(actor)
            except asyncio.CancelledError:
                ref.set_status(ActorStatus.STOPPED)
                raise
            except Exception as exc:
                if not self._after_failure(actor, exc):
                    return
                try:
                    await asyncio.wait_for(ref.stop_requested.wait(), self.backoff)
                    ref.set_status(ActorStatus.STOPPED)
                    return
                except TimeoutError:
                    pass
                self.backoff = min(self.backoff * 2, self.policy.max_backoff)
            else:
                ref.set_status(ActorStatus.STOPPED)
                return

    def _after_failure(self, actor: Actor, exc: Exception) -> bool:
        """Status after a failure (Reconnecting, Restarting, Failed or Stopped); True: start again."""
        ref, error, now = self.ref, describe(exc), time.monotonic()
        ran_well = ref.running_since is not None and now - ref.running_since > self.policy.max_backoff
        if ran_well or (self._was_in_outage and not ref.in_outage):  # ran for a while, or the link came back
            self.backoff = self.policy.initial_backoff
        if ref.stop_requested.is_set():
            log.warning(f"actor {ref.name!r} failed while stopping: {error}")
            ref.set_status(ActorStatus.STOPPED, error)
            return False
        if isinstance(exc, actor.link_errors) and not isinstance(exc, Unrecoverable):
            self._lost_link(error, new_outage=ran_well)
        else:
            log.error(f"actor {ref.name!r} failed: {error}", exc_info=not isinstance(exc, _QUIET_ERRORS))
            self._faults.append(now)
            while self._faults and now - self._faults[0] > self.policy.window:
                self._faults.popleft()
            if isinstance(exc, Unrecoverable) or len(self._faults) >= self.policy.max_failures:
                ref.set_status(ActorStatus.FAILED, error)  # a restart would fail the same way
                return False
            ref.restarts += 1
            ref.set_status(ActorStatus.RESTARTING, error)
        self._was_in_outage = ref.in_outage
        return True

    def _lost_link(self, error: str, *, new_outage: bool) -> None:
        """Status Reconnecting with the reason; never Failed. An outage ends once the actor ran well
        again or said its link is up (``ref.link_up``): a device that accepts the connection and then
        stays silent is still the same outage."""
        ref = self.ref
        if new_outage or not ref.in_outage:
            ref.in_outage = True
            ref.outages += 1
            log.warning(f"actor {ref.name!r} lost its link, reconnecting: {error}")
        elif ref.status is ActorStatus.RECONNECTING and error == ref.last_error:
            log.debug(f"actor {ref.name!r} still cannot reconnect: {error}")
            return
        ref.set_status(ActorStatus.RECONNECTING, error)


class Supervisor:
    """Owns a set of actors. One failing never stops the others."""

    def __init__(self, restart: RestartPolicy = RestartPolicy()) -> None:
        self.restart = restart
        self.actors: dict[str, ActorRef] = {}
        self._restarts: dict[str, Restarts] = {}
        self._listeners: list[StatusListener] = []

    def add_listener(self, listener: StatusListener) -> None:
        """Call ``listener(event)`` on every status change (must not block)."""
        self._listeners.append(listener)

    def _publish(self, event: StatusEvent) -> None:
        for listener in self._listeners:
            listener(event)

    def spawn(
        self,
        name: str,
        factory: Callable[[], Actor],
        *,
        role: Role | None = None,
        restart: RestartPolicy | None = None,
        mailbox_size: int | None = None,
        start: bool = True,
    ) -> ActorRef:
        """Create and (by default) start an actor; ``factory`` builds a fresh instance per (re)start."""
        if name in self.actors and self.actors[name].status.alive:
            raise ActorError(f"an actor named {name!r} is already running")
        if role is None:
            role = getattr(factory, "role", Role.PROCESSOR)  # an Actor class carries its role
        mailbox_size = mailbox_size or getattr(factory, "mailbox_size", None)
        policy = restart or self.restart
        ref = ActorRef(
            name, role=role, mailbox_size=mailbox_size, stop_timeout=policy.stop_timeout, on_status=self._publish
        )
        self.actors[name] = ref
        self._restarts[name] = Restarts(ref, factory, policy)
        if start:
            self.start(name)
        return ref

    def start(self, name: str) -> ActorRef:
        """Start an actor spawned with ``start=False`` (once its inboxes are attached)."""
        return self.actors[name].start(self._restarts[name].run())

    def get(self, name: str) -> ActorRef:
        try:
            return self.actors[name]
        except KeyError:
            known = ", ".join(sorted(self.actors)) or "none"
            raise ActorError(f"no actor named {name!r} (known: {known})") from None

    def give_up(self, why: str) -> list[str]:
        """A hard stop: the drains a stop waits for now are cut short (see :meth:`ActorRef.give_up`); what
        is still queued is counted by each actor's ``on_abandoned``. Returns the actors given up on."""
        return [name for name, ref in list(self.actors.items()) if ref.give_up(why)]

    async def stop_all(
        self, timeout: float | None = None, after: Callable[[Role], Awaitable[None]] | None = None
    ) -> None:
        """Stop sources first, then processors (drained), then sinks (drained, closed).

        ``after(role)`` runs once each role's actors have stopped (e.g. to record final counts
        while the sinks still run)."""
        for role in STOP_ORDER:
            group = [ref for ref in self.actors.values() if ref.role == role]
            if group:
                await asyncio.gather(*(ref.stop(timeout) for ref in group))
            if after is not None:
                await after(role)
