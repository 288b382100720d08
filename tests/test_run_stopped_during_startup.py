"""A run stopped while an instrument is still starting (Ctrl-C, or a --duration shorter than a slow
start-up): the instruments that were already recording are described in the run file all the same."""

from __future__ import annotations

import asyncio
import threading

import arrowdaq
from arrowdaq.app.runner import Application
from arrowdaq.instruments import registry
from arrowdaq.instruments.drivers.newport_1830c import Newport1830C

from .configs import PM1, config_in, instrument, lab
from .runs import published
from .waiting import wait_until_async


class SlowMeter(Newport1830C):
    """A meter whose connection takes until the test lets it go (a device still warming up)."""

    driver_name = "slow_meter"
    release = threading.Event()

    def connect(self) -> None:
        SlowMeter.release.wait(30)
        super().connect()


CONFIG = lab(PM1, instrument("slow", "slow_meter", required=False), name="early", latency_scale=0.0)


async def test_a_run_stopped_during_start_up_still_describes_the_instruments_that_recorded(tmp_path, monkeypatch):
    monkeypatch.setitem(registry.BUILTIN, "slow_meter", f"{__name__}:SlowMeter")
    app = Application(config_in(tmp_path, CONFIG))
    run = asyncio.create_task(app.run())
    try:
        await wait_until_async(lambda: published(app, "pm1/power") >= 3, message="3 rows of pm1/power")
        assert not SlowMeter.release.is_set()  # the slow meter is still connecting: start-up goes on
        app.request_stop()
    finally:
        SlowMeter.release.set()
        summary = await run
    recorded = arrowdaq.open_run(summary.run_file)
    assert recorded.num_rows("pm1/power") >= 3
    described = recorded.metadata["instrument"]
    assert "pm1" in described, described
    assert described["pm1"]["settings"]["units"] == "W"
