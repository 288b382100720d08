"""A bounded FIFO that wakes its owner: the only way into an actor.

Timer ticks (polls, flushes) wait in a lane of their own that is served after
everything else, so a command goes ahead of an instrument's polling instead
of behind a whole poll cycle. A timer has at most one tick waiting, so that
lane stays short.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any


class Mailbox:
    """Bounded queue; `put` waits for space (that wait is the backpressure)."""

    def __init__(self, capacity: int, wakeup: asyncio.Event) -> None:
        if capacity < 1:
            raise ValueError(f"mailbox capacity must be >= 1, got {capacity}")
        self.capacity = capacity
        self._items: deque[Any] = deque()
        self._ticks: deque[Any] = deque()
        self._wakeup = wakeup
        self._space = asyncio.Event()
        self._space.set()

    def __len__(self) -> int:
        return len(self._items) + len(self._ticks)

    def put_tick(self, item: Any) -> None:
        """Queue a timer tick behind everything else (its timer keeps at most one waiting)."""
        self._ticks.append(item)
        self._wakeup.set()

    def put_nowait(self, item: Any) -> bool:
        """Enqueue if there is room; False when full."""
        if len(self._items) >= self.capacity:
            return False
        self._items.append(item)
        if len(self._items) >= self.capacity:
            self._space.clear()
        self._wakeup.set()
        return True

    async def put(self, item: Any) -> None:
        while not self.put_nowait(item):
            await self._space.wait()

    def pop(self) -> Any | None:
        """The oldest item, timer ticks last; None when empty."""
        if not self._items:
            return self._ticks.popleft() if self._ticks else None
        item = self._items.popleft()
        self._space.set()
        return item

    def drain(self) -> list[Any]:
        items = [*self._items, *self._ticks]
        self._items.clear()
        self._ticks.clear()
        self._space.set()
        return items
