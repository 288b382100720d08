"""The base class of every actor: instruments, processors, storage, services.

Subclass it and override what you need::

    class Counter(Actor):
        async def on_start(self):          # open hardware, files...
            self.count = 0
        async def handle(self, message):   # every tell/ask lands here, one at a time
            self.count += 1
            return self.count              # the reply to an ask
        async def on_stop(self):           # close hardware, flush

An actor owns its state; nothing else touches it. Blocking calls (serial, VISA,
h5py) go through :meth:`blocking`, which runs them in the actor's own worker
thread so the event loop never waits on hardware.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from ..errors import describe
from ..log import ContextAdapter, get_logger
from .mailbox import Mailbox
from .status import Role

if TYPE_CHECKING:
    from .ref import ActorRef

T = TypeVar("T")


class Inbox(Protocol):
    """A data source an actor drains besides its mailbox (a hub subscription)."""

    def pop(self) -> tuple[str, Any] | None: ...

    def __len__(self) -> int: ...

    def set_waker(self, event: asyncio.Event | None) -> None: ...


class Timer:
    """A periodic self-message; at most one tick of it waits in the mailbox.

    Ticks that fall due while one still waits (a busy handler, a late event
    loop: asyncio sleeps in whole milliseconds) are not queued but counted in
    :attr:`owed`: a handler that can catch up takes them with :meth:`take_owed`
    (an instrument actor reads that many values in one go) and so keeps the
    requested rate. :attr:`achieved_hz` against :attr:`requested_hz` shows any shortfall; the timer
    itself judges nothing: a stream's rate has one judge, :class:`arrowdaq.hub.RateWatch` (achieved
    against requested rows per second, and readings a fast poll gave up).
    """

    def __init__(self, interval: float, message: Any) -> None:
        if interval <= 0:
            raise ValueError(f"timer interval must be > 0 s, got {interval}")
        self.interval = interval
        self.message = message
        self.pending = False
        self.ticks = 0  # intervals elapsed since the timer started
        self.owed = 0  # intervals elapsed and not yet taken by a handler (at least the pending tick's one)
        self.honoured = 0  # intervals a handler acted on: delivered ticks, plus what take_owed handed out
        self.started = 0.0  # loop time of the start

    @property
    def requested_hz(self) -> float:
        return 1.0 / self.interval

    def take_owed(self) -> int:
        """The intervals due since the last take (at least 1 for the tick being handled); resets them."""
        owed, self.owed = max(self.owed, 1), 0
        self.honoured += owed - 1  # the tick itself was counted when it was delivered
        return owed

    def achieved_hz(self, now: float) -> float:
        """Ticks acted on per second since the start."""
        elapsed = now - self.started
        return self.honoured / elapsed if elapsed > 0 else 0.0

    @property
    def shortfall(self) -> float:
        """The fraction of elapsed intervals no handler acted on (0 = the rate is kept)."""
        return 1.0 - self.honoured / self.ticks if self.ticks else 0.0


class Actor:
    """Base class; see the module docstring."""

    role: Role = Role.PROCESSOR
    mailbox_size: int = 1000
    #: Seconds ``on_stop`` may take (closing hardware safely can be slow: a laser's shutter).
    close_timeout: float = 5.0
    #: Exceptions that mean the outside world went away (a device link dropped, went silent or
    #: sent garbage), not a fault in the code or the configuration: the supervisor retries them
    #: for as long as the actor lives (backoff capped, status Reconnecting); they never make it Failed.
    link_errors: tuple[type[BaseException], ...] = ()

    name: str
    log: ContextAdapter

    # --- the runtime's side: each (re)start builds a fresh instance, binds it, and closes it once ---------
    def bind(self, ref: ActorRef, mailbox: Mailbox) -> None:
        """Give a fresh instance its ref (name, status) and mailbox (its timers tick into it)."""
        self._ref = ref
        self._mailbox = mailbox
        self.name = ref.name
        self.log = get_logger(type(self).__module__, actor=ref.name)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"actor-{ref.name}")
        self._timers: list[asyncio.Task[None]] = []
        self._timer_objects: list[Timer] = []
        self._closed = False

    async def close(self, on_error: Callable[[BaseException], None]) -> None:
        """``on_stop`` once per instance, within :attr:`close_timeout`; then the timers and the worker
        thread end. An error while closing goes to ``on_error``: the instance is gone either way."""
        if self._closed:
            return
        self._closed = True
        try:
            await asyncio.wait_for(self.on_stop(), self.close_timeout)
        except Exception as exc:
            on_error(exc)
        finally:
            for task in self._timers:
                task.cancel()
            self._timers.clear()
            self._executor.shutdown(wait=False, cancel_futures=True)

    # --- hooks to override -----------------------------------------------------
    async def on_start(self) -> None:
        """Open what the actor needs. An exception here counts as a failure."""

    async def on_stop(self) -> None:
        """Close and flush. Called on stop and before a restart."""

    async def handle(self, message: Any) -> Any:
        """Handle a tell or ask; the return value is the reply to an ask."""
        raise NotImplementedError(f"{type(self).__name__} does not handle {type(message).__name__}")

    async def on_batch(self, stream: str, batch: Any) -> None:
        """Handle one item from an attached inbox (a hub subscription)."""

    async def on_drained(self) -> None:
        """At a stop, once everything queued is handled: finish what the handled items started (storage
        writes and flushes what it gathered). Part of the drain, so the stop waits for it while the actor
        makes progress; ``on_stop`` is left with closing, within the fixed :attr:`close_timeout`."""

    def progress(self) -> Any:
        """What changes while one long item is being handled (storage: its file's size, growing chunk by
        chunk during a big write): a stop keeps waiting while this changes, as it does while items are
        handled. Called on the event loop once per stop timeout; must be cheap. None: items handled only."""
        return None

    def on_abandoned(self, items: list[tuple[str, Any]], why: str) -> None:
        """A stop gave up on this actor (no progress for ``stop_timeout`` s): ``items`` (stream, batch)
        were still queued and will not be handled. Count and report them (storage records them as
        lost); must not block. By default they are reported in the actor's status."""
        if items:
            self.report(f"{len(items)} batch(es) not handled: {why}")

    def urgent(self, message: Any) -> bool:
        """True for a message an ``ask`` hands to :meth:`handle` at once, beside the message in progress,
        instead of queueing it (an instrument's ``stop`` must not wait for a poll). Such a handler must
        be safe to run concurrently with the others (no use of the worker thread)."""
        return False

    # --- tools for subclasses -----------------------------------------------------
    @property
    def ref(self) -> ActorRef:
        return self._ref

    async def blocking(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run ``fn(*args, **kwargs)`` in this actor's worker thread and await it."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(fn, *args, **kwargs))

    def report(self, error: BaseException | str) -> None:
        """Show a non-fatal error in this actor's status and the log, without a restart."""
        text = error if isinstance(error, str) else describe(error)
        self.log.warning(text)
        self._ref.report_error(text)

    def every(self, interval: float, message: Any) -> Timer:
        """Tell ``message`` to this actor every ``interval`` seconds until it stops.

        Ticks are not queued behind a slow handler: while one waits, the ones
        falling due are counted (:meth:`Timer.take_owed`), not queued, so a slow
        device is polled as fast as it answers and a fast one can catch up.
        """
        timer = Timer(interval, message)
        self._timer_objects.append(timer)
        self._timers.append(asyncio.create_task(self._tick(timer), name=f"{self.name}-timer"))
        return timer

    # --- runtime internals --------------------------------------------------------
    async def _tick(self, timer: Timer) -> None:
        loop = asyncio.get_running_loop()
        timer.started = loop.time()
        next_at = timer.started + timer.interval
        while True:
            await asyncio.sleep(max(0.0, next_at - loop.time()))
            due = int((loop.time() - next_at) // timer.interval) + 1  # woken late: several intervals are due
            next_at += due * timer.interval
            timer.ticks += due
            timer.owed += due
            if not timer.pending:
                self._mailbox.put_tick(timer)
                timer.pending = True
                timer.honoured += 1

    @property
    def timers(self) -> list[Timer]:
        """This actor's timers (requested and achieved rates)."""
        return list(self._timer_objects)
