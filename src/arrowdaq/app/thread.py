"""An Application on an event loop in a thread of this process.

For a program that embeds the daemon and goes on with its own work meanwhile (a notebook, a
benchmark, a test) and talks to it through its live service, or through its hub with
:meth:`ApplicationThread.call`::

    with ApplicationThread(Application(config)) as daq:
        rows = daq.call(lambda: some_coroutine(daq.app.hub))

``Application.run`` is not used: it installs signal handlers, which only the main thread may.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from .runner import Application, RunSummary

T = TypeVar("T")


class ApplicationThread:
    """``start()`` returns once the application has started (or raises what its start raised);
    ``stop()`` stops it and returns its run summary."""

    def __init__(self, app: Application) -> None:
        self.app = app
        self.summary: RunSummary | None = None
        self.error: BaseException | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, name="arrowdaq-application", daemon=True)

    def _run(self) -> None:
        async def main() -> RunSummary:
            self.loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            try:
                await self.app.start()
                self._ready.set()
                await self._stop.wait()
            finally:
                await self.app.stop()
            return self.app.summary()

        try:
            self.summary = asyncio.run(main())
        except BaseException as exc:  # raised by start() or stop() in the caller's thread
            self.error = exc
        finally:
            self._ready.set()

    def start(self, timeout: float = 60.0) -> ApplicationThread:
        self._thread.start()
        if not self._ready.wait(timeout):
            raise TimeoutError(f"the application did not start within {timeout:g} s")
        if self.error is not None:
            raise self.error
        return self

    def call(self, fn: Callable[[], Awaitable[T]], timeout: float = 30.0) -> T:
        """Run ``fn()`` (a coroutine function) on the application's loop and return its result."""
        assert self.loop is not None, "start() first"

        async def run() -> T:
            return await fn()

        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(timeout)

    def stop(self, timeout: float | None = None) -> RunSummary:
        """Stop the application and return its summary. By default wait as long as the stop takes: it is
        bounded by its own rules (storage drains while it makes progress; decisions 0039, 0201), and a
        process that exits meanwhile would end the daemon thread in the middle of writing the run file."""
        if self.loop is not None and self._stop is not None and self._thread.is_alive():
            self.loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise TimeoutError(f"the application did not stop within {timeout:g} s; it goes on stopping")
        if self.error is not None:
            raise self.error
        assert self.summary is not None
        return self.summary

    def __enter__(self) -> ApplicationThread:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
