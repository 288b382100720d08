"""ActorRef: the handle to an actor, and the loop that serves one instance of it.

The ref outlives the actor instances behind it: when an actor raises, its
supervisor (:mod:`.supervisor`) builds a fresh instance from the factory and
hands it to :meth:`ActorRef.run`, while the mailbox, the attached inboxes (hub
subscriptions) and every ref held elsewhere stay valid. Nothing queued is lost
across a restart; the one message or batch being handled when the actor raised
is not handed to the new instance (it may be what made it fail).

A stop drains what is queued for as long as the actor makes progress (a slow
disk, a big backlog of frames): it gives up only after ``stop_timeout`` s in
which not one message or batch was handled and the actor's own measure of
progress (:meth:`~.actor.Actor.progress`: storage's file size) did not change. What is then still queued is handed
to the actor's :meth:`~.actor.Actor.on_abandoned`, which counts and reports it
(storage: ``lost`` events with rows and batches per stream); see decision 0039.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine
from typing import Any

from ..errors import ActorNotRunning, AskTimeout, CommandError, describe
from ..log import get_logger
from .actor import Actor, Inbox, Timer
from .mailbox import Mailbox
from .status import ActorStatus, Role, StatusEvent

log = get_logger("arrowdaq.actors")

#: Seconds without progress (no message or batch handled) after which a stop stops draining the queue.
STOP_TIMEOUT = 5.0


class _Ask:
    __slots__ = ("message", "future")

    def __init__(self, message: Any, future: asyncio.Future[Any]) -> None:
        self.message = message
        self.future = future


class _Stop:
    pass


_STOP = _Stop()


class ActorRef:
    """Send messages to an actor (`tell`, `ask`), stop it, read its status."""

    def __init__(
        self,
        name: str,
        *,
        role: Role = Role.PROCESSOR,
        mailbox_size: int | None = None,
        stop_timeout: float = STOP_TIMEOUT,
        on_status: Callable[[StatusEvent], None] | None = None,
    ) -> None:
        self.name = name
        self.role = role
        self.stop_timeout = stop_timeout
        self._on_status = on_status
        self._wakeup = asyncio.Event()
        self._mailbox = Mailbox(mailbox_size or 1000, self._wakeup)
        #: Set by :meth:`stop`; the supervisor does not restart an actor asked to stop.
        self.stop_requested = asyncio.Event()
        self._inboxes: list[Inbox] = []
        self._next_inbox = 0
        self.status = ActorStatus.STARTING
        self._status_changed = asyncio.Event()  # set, and replaced, on every status change
        self.last_error: str | None = None
        #: Restarts after faults in the code or the configuration (see :class:`.supervisor.RestartPolicy`).
        self.restarts = 0
        #: Times the actor lost its link (each outage counted once, however many attempts it took).
        self.outages = 0
        #: A lost link is being retried; :meth:`link_up` ends the outage.
        self.in_outage = False
        #: Monotonic time the latest instance started running; None until its ``on_start`` succeeded.
        self.running_since: float | None = None
        self._task: asyncio.Task[None] | None = None
        self._serving: asyncio.Task[None] | None = None
        self._drained = asyncio.Event()
        #: Set by :meth:`give_up`: a stop abandons its drain at once, with this reason.
        self._give_up = asyncio.Event()
        self._give_up_why = ""
        self._draining = False  # a stop waits for this actor's drain now
        self._close_timeout = stop_timeout
        #: Messages and batches handled so far (a stop keeps draining while this grows).
        self.handled = 0
        #: Checks a message before it queues (an instrument refuses an unknown command at once).
        self.precheck: Callable[[Any], None] | None = None
        self._running: Actor | None = None  # the instance serving messages (urgent ones go straight to it)

    def __repr__(self) -> str:
        return f"<ActorRef {self.name} {self.status.value}>"

    # --- public API -----------------------------------------------------------
    def start(self, supervision: Coroutine[Any, Any, None]) -> ActorRef:
        """Run ``supervision`` (the supervisor's restart loop for this actor) as the actor's task."""
        if self._task is None:
            self._task = asyncio.create_task(supervision, name=f"actor-{self.name}")
        else:
            supervision.close()
        return self

    def attach(self, inbox: Inbox) -> None:
        """Serve ``inbox`` (a hub subscription) in this actor's loop, across restarts."""
        inbox.set_waker(self._wakeup)
        self._inboxes.append(inbox)

    @property
    def inboxes(self) -> tuple[Inbox, ...]:
        return tuple(self._inboxes)

    @property
    def queued(self) -> int:
        """Messages waiting in the mailbox."""
        return len(self._mailbox)

    async def tell(self, message: Any) -> None:
        """Queue a message; waits while the mailbox is full (backpressure)."""
        self._check_alive()
        if self.precheck is not None:
            self.precheck(message)
        await self._mailbox.put(message)

    async def ask(self, message: Any, timeout: float = 5.0) -> Any:
        """Send a message and wait for the reply; raises AskTimeout after ``timeout`` s."""
        self._check_alive()
        if self.precheck is not None:
            self.precheck(message)
        running = self._running
        if running is not None and running.urgent(message):
            async with asyncio.timeout(timeout):
                return await running.handle(message)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        deadline = asyncio.timeout(timeout)
        try:
            async with deadline:
                await self._mailbox.put(_Ask(message, future))
                return await future
        except TimeoutError:
            if not deadline.expired():
                raise  # the handler's own timeout (a device that did not answer), not ours
            future.cancel()
            raise AskTimeout(
                f"actor {self.name!r} ({self.status.value}) did not answer {_label(message)} within {timeout:g} s"
            ) from None

    async def stop(self, timeout: float | None = None) -> None:
        """Stop: what is queued is handled first, for as long as the actor makes progress; then the
        actor closes (``on_stop``) within its own ``close_timeout``, whatever the drain took.

        ``timeout`` (default :attr:`stop_timeout`) is the longest stretch without one message or batch
        handled and without a change of the actor's :meth:`~.actor.Actor.progress`: a stuck actor's queue is handed to its ``on_abandoned`` (counted, reported) and it is
        closed. A close is never cut short by a slow drain: a laser's shutter gets closed.
        """
        timeout = self.stop_timeout if timeout is None else timeout
        self.stop_requested.set()
        if self._task is None:
            self.set_status(ActorStatus.STOPPED)
            return
        if self._task.done():
            return
        self._mailbox.put_nowait(_STOP)
        self._wakeup.set()
        drained = asyncio.ensure_future(self._drained.wait())
        self._give_up.clear()
        give_up = asyncio.ensure_future(self._give_up.wait())
        self._draining = True
        try:
            while True:
                handled, mark = self.handled, self._progress()
                await asyncio.wait({drained, self._task, give_up}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
                if drained.done() or self._task.done():
                    break
                if give_up.done():
                    self._abandon(self._give_up_why)
                    break
                if self.handled == handled and self._progress() == mark:
                    self._abandon(f"actor {self.name!r} made no progress for {timeout:g} s while stopping")
                    break
                log.info(
                    f"actor {self.name!r} is still draining its queue: {self.handled - handled} item(s) handled "
                    f"in the last {timeout:g} s, {self.backlog} left"
                )
        finally:
            self._draining = False
            drained.cancel()
            give_up.cancel()
        try:
            await asyncio.wait_for(asyncio.shield(self._task), self._close_timeout + 1.0)
        except TimeoutError:
            log.error(f"actor {self.name!r} did not close within {self._close_timeout:g} s; cancelling it")
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    def give_up(self, why: str) -> bool:
        """Cut the drain a stop is waiting for short (an operator's hard stop): what is still queued goes
        to ``on_abandoned`` (counted, reported) and the actor closes as usual. False, and nothing done,
        when no stop is waiting for this actor's drain now (a drain yet to come is not cut)."""
        if not self._draining:
            return False
        if not self._give_up.is_set():
            self._give_up_why = why
            self._give_up.set()
        return True

    def _progress(self) -> Any:
        """The running instance's own measure of progress within one item (see ``Actor.progress``)."""
        actor = self._running
        return None if actor is None else actor.progress()

    @property
    def backlog(self) -> int:
        """Messages and batches waiting (mailbox and inboxes)."""
        return len(self._mailbox) + sum(len(inbox) for inbox in self._inboxes)

    def _abandon(self, why: str) -> None:
        """A stop gives up on a stuck actor: its queue is taken away and handed to ``on_abandoned``
        (or, with no instance running, reported here); its handler in progress is cancelled."""
        items: list[tuple[str, Any]] = []
        for inbox in self._inboxes:
            while (item := inbox.pop()) is not None:
                items.append(item)
        messages = 0
        for message in self._mailbox.drain():
            if isinstance(message, Timer):
                message.pending = False
            elif isinstance(message, _Ask):
                if not message.future.done():
                    message.future.set_exception(ActorNotRunning(f"{why}; not handled"))
                messages += 1
            elif message is not _STOP:
                messages += 1
        log.warning(
            f"{why}: closing it with {len(items)} batch(es) and {messages} message(s) still queued, not handled"
        )
        actor = self._running
        if actor is not None:
            actor.on_abandoned(items, why)
        elif items:
            self.report_error(f"{len(items)} batch(es) not handled: {why}")
        if self._serving is not None:
            self._serving.cancel()

    def report_error(self, error: str) -> None:
        """Record a non-fatal error (a garbage reply, an OVER reading): shown in status, no restart."""
        self._publish(error)

    def link_up(self) -> None:
        """The actor's link demonstrably works (a device answered): an outage is over, and the next
        one starts again from the shortest backoff."""
        self.in_outage = False

    def set_status(self, status: ActorStatus, error: str | None = None) -> None:
        """Record and publish a status change (the supervisor's; an actor reports with ``report``).

        Stopped and Failed refuse the asks still queued, naming why."""
        self.status = status
        self._status_changed.set()
        self._status_changed = asyncio.Event()
        self._publish(error)
        if status is ActorStatus.STOPPED:
            self._fail_pending(f"actor {self.name!r} stopped" + (f": {error}" if error else ""))
        elif status is ActorStatus.FAILED:
            self._fail_pending(f"actor {self.name!r} is Failed: {error}")

    async def wait_status(self, *wanted: ActorStatus, timeout: float = 5.0) -> ActorStatus:
        """Wait until the actor reaches one of ``wanted`` (a test and start-up helper)."""
        async with asyncio.timeout(timeout):
            while self.status not in wanted:
                await self._status_changed.wait()
        return self.status

    # --- serving one instance ---------------------------------------------------------
    async def run(self, actor: Actor) -> None:
        """Serve a fresh instance until a stop: bind it, start it, handle what arrives, close it.

        Returns after a stop; raises what the actor raised (it is closed either way)."""
        actor.bind(self, self._mailbox)
        self._drained.clear()  # a stop waits for this instance's drain, not for the one before a restart
        self._close_timeout = actor.close_timeout
        self.running_since = None
        try:
            await actor.on_start()
            if self.status is ActorStatus.RECONNECTING:
                log.info(f"actor {self.name!r} reconnected")
            self.set_status(ActorStatus.RUNNING)
            self.running_since = time.monotonic()
            self._running = actor
            await self._serve_until_stopped(actor)
        finally:
            self._running = None
            await actor.close(lambda exc: log.warning(f"actor {self.name!r}: error while closing: {describe(exc)}"))

    def _check_alive(self) -> None:
        if not self.status.alive or self.stop_requested.is_set():
            why = f": {self.last_error}" if self.last_error else ""
            raise ActorNotRunning(f"actor {self.name!r} is {self.status.value}{why}")

    async def _serve_until_stopped(self, actor: Actor) -> None:
        """Serve; ``stop()`` may cut a stuck drain short, after which the actor still closes."""
        self._serving = asyncio.create_task(self._serve(actor), name=f"actor-{self.name}-serve")
        try:
            await self._serving
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if not self._serving.cancelled() or (current is not None and current.cancelling()):
                raise  # the whole actor is being cancelled, not just its drain
        finally:
            self._serving = None
            self._drained.set()

    async def _serve(self, actor: Actor) -> None:
        """Handle mailbox messages first, then inbox items, until a stop message."""
        while True:
            message = self._mailbox.pop()
            if message is _STOP or (message is None and self.stop_requested.is_set() and not self._has_items()):
                await self._drain(actor)
                return
            if message is not None:
                await self._dispatch(actor, message)
                self.handled += 1
                continue
            item = self._next_item()
            if item is not None:
                await actor.on_batch(*item)
                self.handled += 1
                continue
            self._wakeup.clear()
            await self._wakeup.wait()

    async def _drain(self, actor: Actor) -> None:
        """On stop: what is already queued is still handled (lossless across a stop), timer ticks aside;
        then the actor finishes what they started (``on_drained``: storage writes what it gathered)."""
        while (message := self._mailbox.pop()) is not None:
            if isinstance(message, Timer):
                message.pending = False  # a poll due after the stop is not taken
            elif message is not _STOP:
                await self._dispatch(actor, message)
                self.handled += 1
        while (item := self._next_item()) is not None:
            await actor.on_batch(*item)
            self.handled += 1
        await actor.on_drained()

    def _has_items(self) -> bool:
        return len(self._mailbox) > 0 or any(len(i) for i in self._inboxes)

    def _next_item(self) -> tuple[str, Any] | None:
        """Round-robin over the inboxes so one busy stream cannot starve another."""
        n = len(self._inboxes)
        for k in range(n):
            inbox = self._inboxes[(self._next_inbox + k) % n]
            item = inbox.pop()
            if item is not None:
                self._next_inbox = (self._next_inbox + k + 1) % n
                return item
        return None

    async def _dispatch(self, actor: Actor, message: Any) -> None:
        if isinstance(message, _Ask):
            if message.future.done():  # the asker gave up
                return
            try:
                reply = await actor.handle(message.message)
            except CommandError as exc:
                if not message.future.done():
                    message.future.set_exception(exc)
                return
            except Exception as exc:
                if not message.future.done():
                    message.future.set_exception(exc)
                raise
            if not message.future.done():
                message.future.set_result(reply)
        elif isinstance(message, Timer):
            message.pending = False
            await actor.handle(message.message)
        else:
            try:
                await actor.handle(message)
            except CommandError as exc:
                actor.log.warning(f"command refused: {exc}")

    def _publish(self, error: str | None) -> None:
        if error is not None:
            self.last_error = error
        if self._on_status is not None:
            self._on_status(StatusEvent(self.name, self.status, error, self.restarts))  # this change's error only

    def _fail_pending(self, why: str) -> None:
        for message in self._mailbox.drain():
            if isinstance(message, _Ask) and not message.future.done():
                message.future.set_exception(ActorNotRunning(why))


def _label(message: Any) -> str:
    action = getattr(message, "action", None)
    return f"{type(message).__name__}({action!r})" if action else type(message).__name__
