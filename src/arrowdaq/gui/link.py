"""The GUI's only way to the daemon: a live-service client, with its blocking parts off the GUI thread.

* :class:`StreamFeed` — one worker thread per stream iterates the client's
  ``subscribe(stream, "latest")`` (it blocks) and keeps only the newest batches;
  it wakes the GUI thread with one queued signal at a time, however fast
  batches come. A slow GUI loses only its own batches, counted in ``dropped``.
* :class:`Link` — the connection: opens the client, reports its state
  (connecting, connected, lost), reconnects by itself when the daemon comes
  back, and runs calls (``describe``, ``command``...) in a small thread pool,
  handing results back to the GUI thread.

The client is anything with the methods of :class:`LiveClient`;
``arrowdaq.connect`` returns one.
"""

from __future__ import annotations

import functools
import threading
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol

import pyarrow as pa

from .qt import QtCore, is_alive

#: Newest batches a feed holds for the GUI thread (older ones are dropped and counted).
FEED_DEPTH = 64


class LiveClient(Protocol):
    """What the GUI uses of the live-service client."""

    def describe(self) -> dict[str, Any]: ...

    def ping(self) -> Any: ...

    def status(self) -> dict[str, Any]: ...

    def subscribe(self, stream: str, mode: str = "latest") -> Iterable[pa.RecordBatch]: ...

    def close(self) -> None: ...


Connector = Callable[[], LiveClient]


def subscribe_latest(client: LiveClient, stream: str) -> Iterable[pa.RecordBatch]:
    """The client's latest-mode subscription, with heartbeats when it offers them (they let a feed stop promptly)."""
    try:
        return client.subscribe(stream, "latest", heartbeats=True)  # type: ignore[call-arg]  # newer clients only
    except TypeError:  # a client without the option
        return client.subscribe(stream, "latest")


def owners(*callbacks: Callable[..., Any] | None) -> tuple[QtCore.QObject, ...]:
    """The Qt objects callbacks belong to: a bound method's object, a partial's, or one a closure holds
    (a panel's ``lambda reply: self.show(reply)``). A reply for a deleted one must not run."""
    found: list[QtCore.QObject] = []
    for fn in callbacks:
        while isinstance(fn, functools.partial):
            found += [a for a in (*fn.args, *fn.keywords.values()) if isinstance(a, QtCore.QObject)]
            fn = fn.func
        bound = getattr(fn, "__self__", None)
        if isinstance(bound, QtCore.QObject):
            found.append(bound)
        for cell in getattr(fn, "__closure__", None) or ():
            try:
                value = cell.cell_contents
            except ValueError:  # a cell not filled yet
                continue
            if isinstance(value, QtCore.QObject):
                found.append(value)
    return tuple(dict.fromkeys(found))


class _Invoker(QtCore.QObject):
    """Runs callables on the thread it lives in (the GUI thread), posted from any thread.

    A callable whose owners (widgets) were deleted meanwhile is dropped and counted: a reply that
    comes back after its panel was closed must not touch the panel's deleted widgets."""

    call = QtCore.Signal(object, object)

    def __init__(self) -> None:
        super().__init__()
        self.dropped = 0
        self.call.connect(self._run, QtCore.Qt.ConnectionType.QueuedConnection)

    @QtCore.Slot(object, object)
    def _run(self, fn: Callable[[], None], owned_by: tuple[QtCore.QObject, ...]) -> None:
        if not all(is_alive(owner) for owner in owned_by):  # on the GUI thread: nothing is deleted meanwhile
            self.dropped += 1
            return
        fn()


class StreamFeed(QtCore.QObject):
    """The newest batches of one stream, filled by a worker thread; see the module docstring."""

    ready = QtCore.Signal()  # new batches to take (at most one pending signal)
    arrived = QtCore.Signal(list)  # on the GUI thread: the batches since the last signal, oldest first
    failed = QtCore.Signal(str)  # the subscription ended with an error (the link reconnects)

    def __init__(self, stream: str, depth: int = FEED_DEPTH) -> None:
        super().__init__()
        self.stream = stream
        self.depth = depth
        self.dropped = 0  # batches this GUI did not draw (its own buffer or the service's latest mode)
        self.received = 0
        self._lock = threading.Lock()
        self._pending: deque[pa.RecordBatch] = deque()
        self._signalled = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._iterator: Any = None
        self.users = 0  # panels showing this stream
        self.failures = 0  # subscriptions that ended in an error in a row (retries back off)
        self.ready.connect(self._deliver, QtCore.Qt.ConnectionType.QueuedConnection)

    @QtCore.Slot()
    def _deliver(self) -> None:
        batches = self.take()
        if batches:
            self.arrived.emit(batches)

    def start(self, client: LiveClient) -> None:
        self.stop()
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, args=(client, self._stop), name=f"feed {self.stream}", daemon=True
        )
        self._thread.start()

    def stop(self, wait: bool = False) -> None:
        self._stop.set()
        iterator, self._iterator = self._iterator, None
        cancel = getattr(iterator, "cancel", None) or getattr(iterator, "close", None)
        if cancel is not None:
            try:
                cancel()
            except Exception:  # the call may be finishing on its own thread
                pass
        if wait and self._thread is not None:
            self._thread.join(timeout=3.0)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive() and not self._stop.is_set()

    def take(self) -> list[pa.RecordBatch]:
        """Every batch received since the last take (at most ``depth``), oldest first."""
        with self._lock:
            batches = list(self._pending)
            self._pending.clear()
            self._signalled = False
        return batches

    def _run(self, client: LiveClient, stop: threading.Event) -> None:
        try:
            iterator = subscribe_latest(client, self.stream)
            self._iterator = iterator
            if stop.is_set():  # stopped while subscribing
                self.stop()
                return
            service_drops = 0
            for batch in iterator:
                if stop.is_set():
                    return
                if batch.num_rows == 0:
                    continue  # heartbeat: the loop wakes at least once a second to see ``stop``
                dropped = int(getattr(iterator, "dropped", 0) or 0)  # by the service's latest buffer
                self.failures = 0
                with self._lock:
                    self.received += 1
                    self.dropped += dropped - service_drops
                    service_drops = dropped
                    if len(self._pending) >= self.depth:
                        self._pending.popleft()
                        self.dropped += 1
                    self._pending.append(batch)
                    notify = not self._signalled
                    self._signalled = True
                if notify:
                    self.ready.emit()
            if not stop.is_set():
                self.failed.emit(f"{self.stream}: the stream ended")
        except Exception as exc:
            if not stop.is_set():
                self.failed.emit(f"{self.stream}: {exc}")


@dataclass
class Watch:
    """A panel's interest in one stream (see :meth:`Link.watch`)."""

    stream: str
    feed: StreamFeed
    connection: Any
    released: bool = False


class Link(QtCore.QObject):
    """The connection to the daemon; see the module docstring."""

    connected = QtCore.Signal(dict)  # describe() of the daemon just reached
    state_changed = QtCore.Signal(str)  # "connecting", "connected", "lost: <reason>" (again at every retry)
    error = QtCore.Signal(str)  # a call failed: the daemon's message

    def __init__(self, connect: Connector, address: str = "", retry_s: float = 1.0) -> None:
        super().__init__()
        self.address = address
        self.retry_s = retry_s
        self._connect = connect
        self._invoker = _Invoker()
        self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="arrowdaq-gui-call")
        self._feeds: dict[str, StreamFeed] = {}
        self.client: LiveClient | None = None
        self.description: dict[str, Any] = {}
        self.state = "connecting"
        #: Attempts to connect that failed since the link was last up (the status bar shows them).
        self.retries = 0
        self._closing = threading.Event()
        self._reconnecting = threading.Lock()

    # --- connection ---------------------------------------------------------------
    def open(self) -> None:
        """Connect in the background; ``connected`` fires when the daemon answers."""
        self._set_state("connecting")
        threading.Thread(target=self._connect_loop, name="arrowdaq-gui-connect", daemon=True).start()

    def _connect_loop(self) -> None:
        if not self._reconnecting.acquire(blocking=False):
            return  # already trying
        try:
            while not self._closing.is_set():
                try:
                    client = self._connect()
                    description = client.describe()
                except Exception as exc:
                    self.post(functools.partial(self._attempt_failed, f"lost: {exc}"))
                    self._closing.wait(self.retry_s)
                    continue
                self.post(functools.partial(self._on_connected, client, description))
                return
        finally:
            self._reconnecting.release()

    def _attempt_failed(self, state: str) -> None:
        self.retries += 1
        self._set_state(state)

    def _on_connected(self, client: LiveClient, description: dict[str, Any]) -> None:
        if self._closing.is_set():
            client.close()
            return
        self.retries = 0
        old, self.client = self.client, client
        if old is not None:
            self._pool.submit(old.close)
        self.description = description
        for feed in self._feeds.values():
            feed.start(client)
        self._set_state("connected")
        self.connected.emit(description)

    def _on_feed_failed(self, feed: StreamFeed, message: str) -> None:
        """One stream failed: if the daemon still answers, show the error and retry that stream; else reconnect."""
        if self.state != "connected" or self._closing.is_set():
            return

        def restart_feed(client: LiveClient) -> None:
            if not feed.running:
                feed.start(client)

        def retry_feed(_: Any) -> None:
            if feed.failures == 0:
                self.error.emit(message)  # once: retries of the same stream do not flood the log
            feed.failures += 1
            client = self.client
            if client is not None and self._feeds.get(feed.stream) is feed:
                delay = min(self.retry_s * 2 ** min(feed.failures, 5), 30.0)
                QtCore.QTimer.singleShot(int(delay * 1000), functools.partial(restart_feed, client))

        def lost(_: str) -> None:
            if self.state != "connected":
                return
            for each in self._feeds.values():
                each.stop()
            self._set_state(f"lost: {message}")
            threading.Thread(target=self._connect_loop, name="arrowdaq-gui-connect", daemon=True).start()

        self.call("ping", on_done=retry_feed, on_error=lost)

    def _set_state(self, state: str) -> None:
        self.state = state
        self.state_changed.emit(state)

    def close(self) -> None:
        """Stop every feed and the pool; never waits on the daemon for long."""
        self._closing.set()
        for feed in self._feeds.values():
            feed.stop()
        for feed in self._feeds.values():
            feed.stop(wait=True)
        self._pool.shutdown(wait=False, cancel_futures=True)
        if self.client is not None:
            try:
                self.client.close()
            except Exception:
                pass

    # --- streams --------------------------------------------------------------------
    def feed(self, stream: str) -> StreamFeed:
        """The feed of ``stream`` (one per stream, shared by every panel that shows it; ``release`` when done)."""
        feed = self._feeds.get(stream)
        if feed is not None:
            feed.users += 1
        else:
            feed = self._feeds[stream] = StreamFeed(stream)
            feed.users = 1
            feed.failed.connect(lambda message, feed=feed: self._on_feed_failed(feed, message))
            if self.client is not None and self.state == "connected":
                feed.start(self.client)
        return feed

    def release(self, stream: str) -> None:
        """One panel less shows ``stream``; the subscription ends with the last one."""
        feed = self._feeds.get(stream)
        if feed is not None:
            feed.users -= 1
            if feed.users <= 0:
                del self._feeds[stream]
                feed.stop()

    def watch(self, stream: str, callback: Callable[[list[pa.RecordBatch]], None]) -> Watch:
        """Call ``callback(batches)`` on the GUI thread as batches of ``stream`` arrive, until ``unwatch``
        or until the widget it belongs to (:func:`owners`) is deleted: then the watch ends by itself."""
        feed = self.feed(stream)
        owned_by = owners(callback)
        watch = Watch(stream, feed, None)

        def deliver(batches: list[pa.RecordBatch]) -> None:
            if all(is_alive(owner) for owner in owned_by):
                callback(batches)
            else:
                self._invoker.dropped += 1
                self.unwatch(watch)

        watch.connection = feed.arrived.connect(deliver)
        return watch

    def unwatch(self, watch: Watch) -> None:
        if watch.released:
            return
        watch.released = True
        try:
            watch.feed.arrived.disconnect(watch.connection)
        except (RuntimeError, TypeError):
            pass
        self.release(watch.stream)

    @property
    def feeds(self) -> dict[str, StreamFeed]:
        return dict(self._feeds)

    # --- calls ----------------------------------------------------------------------
    def post(self, fn: Callable[[], None], owned_by: tuple[QtCore.QObject, ...] | None = None) -> None:
        """Run ``fn`` on the GUI thread (from any thread), unless one of its owners (by default found
        by :func:`owners`) was deleted by then."""
        self._invoker.call.emit(fn, owners(fn) if owned_by is None else owned_by)

    @property
    def dropped_replies(self) -> int:
        """Replies and batches not handed to a widget because it was deleted before they came."""
        return self._invoker.dropped

    def call(
        self,
        method: str,
        *args: Any,
        on_done: Callable[[Any], None] | None = None,
        on_error: Callable[[str], None] | None = None,
        **kwargs: Any,
    ) -> None:
        """``client.method(*args, **kwargs)`` off the GUI thread; the result or error comes back on it,
        unless the widget a callback belongs to (:func:`owners`) was deleted meanwhile."""
        client = self.client
        if client is None or self._closing.is_set():
            message = f"{method}: not connected to the daemon"
            (on_error or self.error.emit)(message)
            return

        owned_by = owners(on_done, on_error)

        def work() -> None:
            try:
                result = getattr(client, method)(*args, **kwargs)
            except Exception as exc:
                text = str(exc) or type(exc).__name__
                self.post(lambda: (on_error or self.error.emit)(text), owned_by)
                return
            if on_done is not None:
                self.post(lambda: on_done(result), owned_by)

        try:
            self._pool.submit(work)
        except RuntimeError:  # pool shut down: the window is closing
            pass
