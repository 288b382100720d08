"""Shared test fixtures."""

from __future__ import annotations

import pytest

from arrowdaq.actors import RestartPolicy
from arrowdaq.hub import InstrumentManager

#: Restarts fast enough for tests, with the same doubling and failure limit.
FAST_RESTARTS = RestartPolicy(initial_backoff=0.01, max_backoff=0.08, max_failures=3, window=10.0, stop_timeout=2.0)


@pytest.fixture
async def hub():
    manager = InstrumentManager(FAST_RESTARTS)
    yield manager
    await manager.stop(timeout=2.0)
