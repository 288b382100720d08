"""Applications run in the test's event loop until what the test needs has happened, not for a fixed time."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from arrowdaq.app.runner import Application, RunSummary

from .waiting import TIMEOUT, Message, wait_until_async


def published(app: Application, stream: str) -> int:
    """Rows the hub has published on ``stream`` so far (0 before it is declared)."""
    spec = app.hub.streams.get(stream)
    return spec.meter.rows if spec is not None else 0


class Running:
    """``async with Running(app) as run:`` the application runs while the block acts on it; leaving the block
    stops it as Ctrl-C does (also when the block fails: no run is left behind), and ``run.summary`` is its summary."""

    def __init__(self, app: Application) -> None:
        self.app = app
        self.summary: RunSummary | None = None
        self._task: asyncio.Task[RunSummary] | None = None

    async def __aenter__(self) -> Running:
        self._task = asyncio.create_task(self.app.run())
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self.app.request_stop()
        self.summary = await self._task

    @property
    def ended(self) -> bool:
        """The run ended by itself (a failure at start-up, its duration)."""
        return self._task is not None and self._task.done()


async def run_until(
    app: Application, condition: Callable[[], object], message: Message, timeout: float = TIMEOUT
) -> RunSummary:
    """Run ``app`` until ``condition()`` holds, then stop it as Ctrl-C does; the run's summary.

    A run cut short by a failed wait is still stopped and its file closed.
    """
    async with Running(app) as run:
        await wait_until_async(lambda: run.ended or condition(), timeout, message)
    assert run.summary is not None
    return run.summary
