"""Shared test fixtures."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")  # GUI tests draw real Qt widgets, never on a screen

from arrowdaq.actors import RestartPolicy
from arrowdaq.hub import InstrumentManager
from arrowdaq.sim import OpticalTable

#: Restarts fast enough for tests, with the same doubling and failure limit.
FAST_RESTARTS = RestartPolicy(initial_backoff=0.01, max_backoff=0.08, max_failures=3, window=10.0, stop_timeout=2.0)


@pytest.fixture(scope="session", autouse=True)
def no_user_runtime_dir(tmp_path_factory):
    """From the session's start, before any module's fixtures copy the environment for their processes (a
    plugin's ``env``): no daemon a test starts writes over, and at its end removes, the address file of the
    user's own daemon running beside ``make test``."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDG_RUNTIME_DIR", str(tmp_path_factory.mktemp("session-runtime")))
        patch.delenv("ARROWDAQ_LIVE_FILE", raising=False)
        yield


@pytest.fixture(autouse=True)
def private_runtime_dir(tmp_path_factory, monkeypatch):
    """Daemons started by tests write their address file here, not in the user's runtime directory."""
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path_factory.mktemp("runtime")))
    monkeypatch.delenv("ARROWDAQ_LIVE_FILE", raising=False)


@pytest.fixture
async def hub():
    manager = InstrumentManager(FAST_RESTARTS)
    yield manager
    await manager.stop(timeout=2.0)


@pytest.fixture
def table() -> OpticalTable:
    """The simulated optical table with the laser emitting through an open shutter; simulators answer at once."""
    table = OpticalTable(latency_scale=0.0, seed=5)
    table.emission = table.shutter_open = True
    return table


@pytest.fixture
def scripted_driver():
    """``start(DriverClass, replies, **settings)``: the driver on a pty whose device answers from a script.

    For byte-level protocol tests (``server.received`` holds what the driver wrote).
    Every driver and server is closed afterwards.
    """
    from arrowdaq.sim import serve
    from arrowdaq.sim.scripted import ScriptedDevice

    opened = []

    def start(driver_class, replies, *, command_terminator=b"\n", reply_terminator=b"\n", **settings):
        device = ScriptedDevice(replies, command_terminator=command_terminator, reply_terminator=reply_terminator)
        server = serve(device, "pty")
        driver = driver_class.open(server.address, **settings)
        opened.append((server, driver))
        return server, driver

    yield start
    for server, driver in reversed(opened):
        driver.close()
        server.stop()
