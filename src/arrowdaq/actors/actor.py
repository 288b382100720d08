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
from .status import Role

if TYPE_CHECKING:
    from .ref import ActorRef

T = TypeVar("T")


class Inbox(Protocol):
    """A data source an actor drains besides its mailbox (a hub subscription)."""

    def pop(self) -> tuple[str, Any] | None: ...

    def set_waker(self, event: asyncio.Event | None) -> None: ...


class Timer:
    """A periodic self-message; at most one tick of it waits in the mailbox."""

    def __init__(self, interval: float, message: Any) -> None:
        if interval <= 0:
            raise ValueError(f"timer interval must be > 0 s, got {interval}")
        self.interval = interval
        self.message = message
        self.pending = False


class Actor:
    """Base class; see the module docstring."""

    role: Role = Role.PROCESSOR
    mailbox_size: int = 1000
    #: Seconds ``on_stop`` may take (closing hardware safely can be slow: a laser's shutter).
    close_timeout: float = 5.0

    name: str
    log: ContextAdapter
    _ref: ActorRef

    def _bind(self, ref: ActorRef) -> None:
        self._ref = ref
        self.name = ref.name
        self.log = get_logger(type(self).__module__, actor=ref.name)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"actor-{ref.name}")
        self._timers: list[asyncio.Task[None]] = []
        self._closed = False

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

        Ticks are not queued behind a slow handler: a tick is skipped while the
        previous one still waits, so a slow device is polled as fast as it answers.
        """
        timer = Timer(interval, message)
        self._timers.append(asyncio.create_task(self._tick(timer), name=f"{self.name}-timer"))
        return timer

    # --- runtime internals --------------------------------------------------------
    async def _tick(self, timer: Timer) -> None:
        loop = asyncio.get_running_loop()
        next_at = loop.time() + timer.interval
        while True:
            await asyncio.sleep(max(0.0, next_at - loop.time()))
            if not timer.pending and self._ref._mailbox.put_nowait(timer):
                timer.pending = True
            next_at += timer.interval
            now = loop.time()
            if next_at < now:  # fell behind: skip the missed ticks
                next_at = now + timer.interval

    def _release(self) -> None:
        for task in self._timers:
            task.cancel()
        self._timers.clear()
        self._executor.shutdown(wait=False, cancel_futures=True)
