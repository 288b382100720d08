"""A bounded FIFO that wakes its owner: the only way into an actor."""

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
        self._wakeup = wakeup
        self._space = asyncio.Event()
        self._space.set()

    def __len__(self) -> int:
        return len(self._items)

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
        """The oldest item, or None when empty."""
        if not self._items:
            return None
        item = self._items.popleft()
        self._space.set()
        return item

    def drain(self) -> list[Any]:
        items = list(self._items)
        self._items.clear()
        self._space.set()
        return items
