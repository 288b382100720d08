"""End to end: scope simulator on TCP → SCPI driver → instrument actor → hub → FFT processor → subscriber.

The spectrum of the photodiode trace must peak at the optical table's chopper
frequency: the physics of the simulator survives every layer in between.
"""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from arrowdaq.data import traces_of, unit_of
from arrowdaq.instruments import spawn_instrument
from arrowdaq.instruments.drivers.scpi import SCPIInstrument
from arrowdaq.processors import spawn as spawn_processor
from arrowdaq.sim import OpticalTable, TableSettings, serve
from arrowdaq.sim.scope import ScopeSim, driver_settings

SAMPLE_RATE = 100_000.0
POINTS = 4000  # 25 Hz bins


@pytest.mark.parametrize("chopper_hz", [1_250.0, 3_100.0])
async def test_fft_of_the_simulated_scope_trace_finds_the_chopper_frequency(hub, chopper_hz):
    table = OpticalTable(TableSettings(chopper_hz=chopper_hz), latency_scale=0.001, seed=5)
    table.emission = table.shutter_open = True
    server = serve(ScopeSim(table), "tcp")
    port = server.visa_resource
    settings = driver_settings(points=POINTS, sample_rate=SAMPLE_RATE, trace_hz=20.0)
    try:
        spawn_instrument(
            hub,
            "scope1",
            SCPIInstrument,
            lambda: SCPIInstrument.open(port, name="scope1", timeout=0.5, **settings),
            settings=settings,
            port=port,
        )
        spawn_processor(hub, "scope1_fft", "fft", "scope1/trace", window="hann", detrend=True)
        sub = hub.subscribe("scope1_fft/spectrum")
        spectra, df = [], 0.0
        async with asyncio.timeout(15):
            while len(spectra) < 3:
                _, batch = await sub.get()
                spectra.extend(traces_of(batch))
                df = batch.column("dx")[0].as_py()
        assert unit_of(batch.schema, "values") == "V" and unit_of(batch.schema, "x0") == "Hz"
        assert df == pytest.approx(SAMPLE_RATE / POINTS)
        peaks = np.argmax(np.asarray(spectra), axis=1) * df
        assert np.all(np.abs(peaks - chopper_hz) <= df / 2)
    finally:
        await hub.stop(timeout=2.0)
        server.stop()
