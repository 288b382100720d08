"""For the GUI tests: the Qt imports with a clear message when the gui extra is missing, and a batch source."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa

from .live_helpers import DaemonProcess

try:
    import pytestqt  # noqa: F401
    from PySide6 import QtCore  # noqa: F401
except ImportError as exc:  # pragma: no cover - a set-up problem, said plainly
    raise ImportError(f"{exc}: the GUI tests need the gui and test extras; run `make setup`") from None


def connected_window(qtbot: Any, link: Any, layout: Path) -> Any:
    """The main window on ``link``, shown offscreen, once the daemon has answered."""
    from arrowdaq.gui.window import MainWindow

    win = MainWindow(link, layout)
    qtbot.addWidget(win)
    win.resize(1600, 1000)
    win.show()
    try:
        with qtbot.waitSignal(link.connected, timeout=30_000):
            link.open()
    except BaseException:
        win.shutdown()  # it never connected: its link stops retrying with the test
        raise
    return win


class BatchSource:
    """A live client whose streams are fed by the test with real RecordBatches (the GUI's seam, no daemon).

    ``push(stream, batch)`` delivers to every open subscription of ``stream``;
    ``fail()`` ends every subscription and refuses calls, like a daemon that
    went away, until ``recover()``.
    """

    def __init__(self, description: dict[str, Any]) -> None:
        self.description = description
        self.calls: list[tuple[str, tuple, dict]] = []
        self.values: dict[tuple[str, str], Any] = {}  # what ``get`` answers
        self.action_replies: dict[tuple[str, str | None], Any] = {}  # (kind, body's action) -> reply
        self.status_reply: dict[str, Any] = {"streams": {}, "subscribers": {}, "actors": {}}
        self.down = threading.Event()
        self._cond = threading.Condition()
        self._queues: dict[str, list[list[pa.RecordBatch | None]]] = {}
        self.subscribed = threading.Event()

    # the client's interface ------------------------------------------------------------
    def _call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        if self.down.is_set():
            raise ConnectionError("daemon unavailable")
        self.calls.append((name, args, kwargs))
        return {"ok": True}

    def describe(self) -> dict[str, Any]:
        if self.down.is_set():
            raise ConnectionError("daemon unavailable")
        return self.description

    def ping(self) -> dict[str, Any]:
        return self._call("ping")

    def status(self) -> dict[str, Any]:
        if self.down.is_set():
            raise ConnectionError("daemon unavailable")
        return self.status_reply

    def command(self, instrument: str, command: str, **args: Any) -> Any:
        return self._call("command", instrument, command, **args)

    def get(self, instrument: str, name: str) -> Any:
        if self.down.is_set():
            raise ConnectionError("daemon unavailable")
        return {"value": self.values.get((instrument, name))}

    def set(self, instrument: str, name: str, value: Any) -> Any:
        self._call("set", instrument, name, value)
        return {"value": value}

    def record(self, action: str = "state", **meta: Any) -> Any:
        return self._call("record", action, **meta)

    def action(self, kind: str, body: dict[str, Any]) -> Any:
        self._call("action", kind, body)
        reply = self.action_replies.get((kind, body.get("action")), {})
        return reply(body) if callable(reply) else reply  # a callable answers from the body

    def close(self) -> None:
        pass

    def subscribe(self, stream: str, mode: str = "latest", heartbeats: bool = False) -> Iterator[pa.RecordBatch]:
        if self.down.is_set():
            raise ConnectionError("daemon unavailable")
        queue: list[pa.RecordBatch | None] = []
        with self._cond:
            self._queues.setdefault(stream, []).append(queue)
            self._cond.notify_all()
        self.subscribed.set()
        return self._iterate(queue)

    def _iterate(self, queue: list[pa.RecordBatch | None]) -> Iterator[pa.RecordBatch]:
        while True:
            with self._cond:
                while not queue:
                    self._cond.wait(0.2)
                    if self.down.is_set():
                        raise ConnectionError("daemon unavailable")
                item = queue.pop(0)
            if item is None:
                return
            yield item

    # the test's side -------------------------------------------------------------------
    def wait_subscribed(self, stream: str, timeout: float = 5.0) -> None:
        with self._cond:
            if not self._cond.wait_for(lambda: self._queues.get(stream), timeout):
                raise AssertionError(f"nobody subscribed to {stream}")

    def push(self, stream: str, batch: pa.RecordBatch) -> None:
        with self._cond:
            for q in self._queues.get(stream, []):
                q.append(batch)
            self._cond.notify_all()

    def fail(self) -> None:
        with self._cond:
            self.down.set()
            self._queues.clear()
            self._cond.notify_all()

    def recover(self) -> None:
        self.down.clear()


class DemoDaemon(DaemonProcess):
    """``arrowdaq demo`` (or ``arrowdaq run CONFIG``) in its own process, with its own address file;
    ``stop()`` returns its output."""

    def __init__(self, tmp: Path, duration: float = 600, command: list[str] | None = None) -> None:
        args = [*(command or ["demo"]), "--no-gui", "--duration", str(duration), "--data-dir", str(tmp / "data")]
        super().__init__(tmp, command=args, env={"QT_QPA_PLATFORM": "offscreen"})

    def connector(self):
        from arrowdaq.gui.app import live_connector

        return live_connector(self.address, self.token)
