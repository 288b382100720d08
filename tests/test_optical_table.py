"""Physics of the shared optical table, observed through the real drivers and simulators."""

from __future__ import annotations

import math

import numpy as np
import pytest

from arrowdaq.instruments.drivers.ell14 import ELL14
from arrowdaq.instruments.drivers.esp300 import ESP300
from arrowdaq.instruments.drivers.maitai import MaiTai
from arrowdaq.instruments.drivers.newport_1830c import Newport1830C
from arrowdaq.sim import OpticalTable, serve
from arrowdaq.sim.ell14 import ELL14Sim
from arrowdaq.sim.esp300 import ESP300Sim
from arrowdaq.sim.maitai import MaiTaiSim
from arrowdaq.sim.newport_1830c import Newport1830CSim

FAST = {"timeout": 0.5, "delay": 0.0, "min_interval": 0.0}


@pytest.fixture
def bench():
    """The four serial instruments on one table, each on its own pseudo-terminal, connected."""
    table = OpticalTable(latency_scale=0.0, seed=7)
    servers = [
        serve(Newport1830CSim(table), "pty"),
        serve(MaiTaiSim(table), "pty"),
        serve(ELL14Sim(table), "pty"),
        serve(ESP300Sim(table), "pty"),
    ]
    drivers = [
        Newport1830C.open(servers[0].address, name="pm", **FAST),
        MaiTai.open(servers[1].address, name="laser", verify_interval=0.01, **FAST),
        ELL14.open(servers[2].address, name="hwp", address="0", **FAST),
        ESP300.open(servers[3].address, name="stage", axes=[1, 2, 3], motion_poll=0.005, **FAST),
    ]
    try:
        for driver in drivers:
            driver.connect()
        pm, laser, hwp, stage = drivers
        laser.emission_on()
        laser.open_shutter()
        yield table, pm, laser, hwp, stage
    finally:
        for driver in drivers:
            driver.close()
        for server in servers:
            server.stop()


def test_rotating_the_half_wave_plate_follows_malus_law(bench):
    _, pm, _, hwp, _ = bench
    angles = np.arange(0.0, 91.0, 7.5)
    powers = []
    for angle in angles:
        hwp.move_to(angle)
        powers.append(np.mean([pm.power for _ in range(3)]))
    relative = np.asarray(powers) / powers[0]
    expected = np.cos(np.radians(2 * angles)) ** 2
    assert relative == pytest.approx(expected, abs=0.01)  # detector noise is 0.2 % of the reading
    assert powers[0] == pytest.approx(1.5, rel=0.01)  # 3 W at the tuning peak, half to the meter


def test_closing_the_laser_shutter_darkens_the_meter(bench):
    _, pm, laser, _, _ = bench
    assert pm.power > 1.0
    laser.close_shutter()
    assert pm.power < 1e-8


def test_tuning_away_from_the_gain_peak_lowers_the_power(bench):
    _, pm, laser, _, _ = bench
    at_peak = pm.power
    laser.set_wavelength(1000)
    assert pm.power / at_peak == pytest.approx(math.exp(-(((1000 - 800) / 250) ** 2)), rel=0.02)


def test_the_knife_edge_on_axis_1_cuts_the_beam_as_an_error_function(bench):
    _, pm, _, _, stage = bench
    full = pm.power
    for x in (11.5, 12.5, 13.5):
        stage.move_to(x, axis=1, wait=True)
        expected = 0.5 * math.erfc(math.sqrt(2) * (x - 12.5) / 1.0)
        assert pm.power / full == pytest.approx(expected, abs=0.01)


def _centroid(frame: np.ndarray) -> tuple[float, float]:
    background = np.median(frame)
    signal = np.where(frame > background + 100, frame - background, 0.0)  # the spot, not the dark noise
    rows, cols = np.indices(frame.shape)
    return float((rows * signal).sum() / signal.sum()), float((cols * signal).sum() / signal.sum())


def test_the_camera_spot_moves_with_the_stage(bench):
    table, _, _, _, stage = bench
    row0, col0 = _centroid(table.camera_frame(0.01))
    stage.move_to(3.0, axis=2, wait=True)  # 3 mm right at 10 px/mm
    stage.move_to(-2.0, axis=3, wait=True)  # 2 mm up
    row1, col1 = _centroid(table.camera_frame(0.01))
    assert col1 - col0 == pytest.approx(30, abs=1)
    assert row1 - row0 == pytest.approx(-20, abs=1)
