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


async def run_until(
    app: Application, condition: Callable[[], object], message: Message, timeout: float = TIMEOUT
) -> RunSummary:
    """Run ``app`` until ``condition()`` holds, then stop it as Ctrl-C does; the run's summary.

    A run cut short by a failed wait is still stopped and its file closed.
    """
    run = asyncio.create_task(app.run())
    try:
        await wait_until_async(lambda: run.done() or condition(), timeout, message)
    finally:
        app.request_stop()
        summary = await run
    return summary
