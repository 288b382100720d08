"""Waiting in tests: for a condition, with a timeout and a message that says what did not happen.

Tests wait for something to happen, never for time to pass: a fixed sleep is too short on a
loaded machine (the suite runs on two shared cores) and too long everywhere else. Wait on an
event, a queue or a status where the code offers one; otherwise poll a cheap condition with
:func:`wait_until` (threads, subprocesses, files) or :func:`wait_until_async` (inside a
test's event loop, which keeps running while it waits).

The timeout is generous on purpose: only a failing test ever waits that long.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TypeVar

import pyarrow as pa

from arrowdaq.hub import Subscription

T = TypeVar("T")

#: Seconds before a wait fails; a passing test never waits this long.
TIMEOUT = 30.0
#: Polling starts fast (most conditions hold within milliseconds) and backs off to ``every`` seconds.
EVERY = 0.02

Message = str | Callable[[], str]


def _timed_out(timeout: float, message: Message) -> AssertionError:
    what = message() if callable(message) else message
    return AssertionError(f"waited {timeout:g} s for {what}")


def wait_until(
    condition: Callable[[], T], timeout: float = TIMEOUT, message: Message = "the condition", *, every: float = EVERY
) -> T:
    """Poll ``condition()`` until it is truthy and return its value; AssertionError after ``timeout`` s.

    ``message`` says what was awaited (``"the run file to appear"``); a callable is asked
    only on failure, so it can show the state the test saw last. ``every`` is the longest
    pause between checks (longer for a costly check, such as opening a run file).
    """
    deadline = time.monotonic() + timeout
    interval = min(0.001, every)
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise _timed_out(timeout, message)
        time.sleep(interval)  # the one polling pause of the suite's waits
        interval = min(2 * interval, every)


async def wait_until_async(
    condition: Callable[[], T], timeout: float = TIMEOUT, message: Message = "the condition", *, every: float = EVERY
) -> T:
    """:func:`wait_until` for a coroutine: the event loop (actors, servers) runs between checks."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    interval = min(0.001, every)
    while True:
        value = condition()
        if value:
            return value
        if loop.time() >= deadline:
            raise _timed_out(timeout, message)
        await asyncio.sleep(interval)  # the one polling pause of the suite's async waits
        interval = min(2 * interval, every)


async def fresh_batch(subscription: Subscription, timeout: float = TIMEOUT) -> tuple[str, pa.RecordBatch]:
    """The next ``(stream, batch)`` a hub subscription receives after this call (what was queued is dropped)."""
    while subscription.pop() is not None:
        pass
    try:
        return await asyncio.wait_for(subscription.get(), timeout)
    except TimeoutError:
        raise AssertionError(f"waited {timeout:g} s for a batch on {', '.join(subscription.patterns)}") from None
