"""The supervisor: spawns actors, reports their status, stops them in order."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from ..errors import ActorError
from .actor import Actor
from .ref import ActorRef, RestartPolicy
from .status import STOP_ORDER, Role, StatusEvent

StatusListener = Callable[[StatusEvent], None]


class Supervisor:
    """Owns a set of actors. One failing never stops the others."""

    def __init__(self, policy: RestartPolicy = RestartPolicy()) -> None:
        self.policy = policy
        self.actors: dict[str, ActorRef] = {}
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
        policy: RestartPolicy | None = None,
        mailbox_size: int | None = None,
        start: bool = True,
    ) -> ActorRef:
        """Create and (by default) start an actor; ``factory`` builds a fresh instance per (re)start."""
        if name in self.actors and self.actors[name].status.alive:
            raise ActorError(f"an actor named {name!r} is already running")
        if role is None:
            role = getattr(factory, "role", Role.PROCESSOR)  # an Actor class carries its role
        mailbox_size = mailbox_size or getattr(factory, "mailbox_size", None)
        ref = ActorRef(
            name,
            factory,
            role=role,
            policy=policy or self.policy,
            mailbox_size=mailbox_size,
            on_status=self._publish,
        )
        self.actors[name] = ref
        if start:
            ref.start()
        return ref

    def get(self, name: str) -> ActorRef:
        try:
            return self.actors[name]
        except KeyError:
            known = ", ".join(sorted(self.actors)) or "none"
            raise ActorError(f"no actor named {name!r} (known: {known})") from None

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
