"""Scans on the simulated optical table, through the hub, recorded as scan files."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import tomllib

import h5py
import numpy as np
import pytest

from arrowdaq import open_run
from arrowdaq.app.config import parse_config
from arrowdaq.app.demo import prepare_table
from arrowdaq.app.runner import Application
from arrowdaq.cli.demo_cmd import demo_config_text
from arrowdaq.cli.main import main
from arrowdaq.errors import CommandError
from arrowdaq.hub import InstrumentManager
from arrowdaq.scans import ScanState, grid_scan, scan
from arrowdaq.scans.service import ScanService
from arrowdaq.sim import OpticalTable
from arrowdaq.storage import StorageOptions

TRUTH = OpticalTable().settings


@contextlib.asynccontextmanager
async def demo_table(tmp_path, latency_scale=0.01):
    config = parse_config(tomllib.loads(demo_config_text()), "demo.toml")
    config.storage.record = False
    config.simulation.latency_scale = latency_scale
    config.processors = []
    app = Application(config)
    service = ScanService(
        app.hub,
        options=StorageOptions(data_dir=tmp_path),
        record=["pm1/*", "hwp/*", "stage/*"],
        instruments=lambda: app.instruments,
    )
    try:
        await app.start()
        await prepare_table(app.hub)
        yield app, service
    finally:
        await service.close()  # a scan left running (a failed test) is aborted
        await app.stop()


async def move(app, instrument, value, **args):
    """A move from another client."""
    return await app.hub.command(instrument, "move_to", target=value, **args)


class OnPoint:
    """A ScanObserver calling ``action(index)`` from the engine's thread after each point."""

    def __init__(self, action):
        self.action = action
        self.states = []

    def start(self, setup):
        pass

    def point(self, batch, row):
        self.action(row["index"])

    def state(self, state):
        self.states.append(state)

    def end(self, result):
        pass


def test_half_wave_plate_scan_from_the_cli_fits_the_tables_malus_law(tmp_path, capsys):
    """The exact command of the issue; the fit recovers the table's truth."""
    assert main(["scan", "demo", "scan", "hwp", "0", "90", "46", "-d", "pm1", "--data-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "scan: success (completed), 46 points" in out and "Peak statistics" in out
    (path,) = tmp_path.glob("scan_*.h5")
    run = open_run(path)
    table = run.scans["scan"]
    assert table.num_rows == 46
    assert run.metadata["scan"]["exit_status"] == "success" and run.complete
    theta, power = table.column("hwp_readback").to_numpy(), table.column("pm1").to_numpy()
    assert table.column("hwp").to_numpy() == pytest.approx(np.linspace(0, 90, 46))
    # P = A cos²(2(θ − θ0)) + B, fitted independently of arrowdaq's own fit
    from scipy.optimize import curve_fit

    model = lambda t, a, t0, b: a * np.cos(2 * np.radians(t - t0)) ** 2 + b  # noqa: E731
    (a, t0, b), _ = curve_fit(model, theta, power, p0=[1.0, 5.0, 0.0])
    true_a = TRUTH.laser_power_w * TRUTH.splitter_to_meter  # at 800 nm, knife edge out of the beam
    assert a == pytest.approx(true_a, rel=0.01)
    assert abs(t0) < 0.5
    residual = power - model(theta, a, t0, b)
    noise = TRUTH.noise_fraction * np.maximum(power, 1e-3) + 1e-3 * 1.5 / 1000  # detector noise + 4-digit display
    assert np.sqrt(np.mean(residual**2)) < 3 * np.sqrt(np.mean(noise**2))
    # monitor streams recorded meanwhile, in the same file
    assert "pm1/power" in run.streams and run.table("pm1/power").num_rows > 0


async def test_knife_edge_scan_with_the_esp300_finds_the_tables_edge(tmp_path):
    async with demo_table(tmp_path) as (app, service):
        result = await service.run(scan("stage:1", 10.0, 15.0, 51), ["pm1"])
    assert result.exit_status == "success"
    edge = result.statistics["pm1"]["derivative"]
    # |dP/dx| of noisy readings: the noise on the lit side pulls the centre of mass 0.045 mm low, ±0.013 mm, with
    # a tail beyond 0.1 mm in 1.6e-4 of scans (simulated); beyond 0.15 mm ~1e-8, still well inside one beam waist
    assert edge["com"] == pytest.approx(TRUTH.beam_center_mm, abs=0.15)
    stored = open_run(result.run_file).metadata["scan"]["statistics"]["pm1"]["derivative"]
    assert stored["com"] == pytest.approx(edge["com"])


async def test_pause_and_resume_mid_scan_measure_every_point_once_in_order(tmp_path):
    async with demo_table(tmp_path) as (app, service):
        paused = asyncio.Event()
        loop = asyncio.get_running_loop()
        control = OnPoint(lambda i: service.pause() if i == 4 else None)
        control.state = lambda s: s is ScanState.PAUSED and loop.call_soon_threadsafe(paused.set)
        done = await service.submit(scan("hwp", 0, 40, 11), ["pm1"], observers=[control])
        await asyncio.wait_for(paused.wait(), 30)
        await move(app, "hwp", 70.0)  # the axis is free while paused
        service.resume()
        result = await done
    assert result.exit_status == "success"
    table = open_run(result.run_file).scans["scan"]
    assert table.column("index").to_pylist() == list(range(11))
    assert table.column("hwp").to_pylist() == pytest.approx(np.linspace(0, 40, 11))
    assert table.column("hwp_readback").to_numpy() == pytest.approx(np.linspace(0, 40, 11), abs=0.01)


async def test_abort_leaves_a_valid_file_with_only_the_measured_points(tmp_path):
    async with demo_table(tmp_path) as (app, service):
        result = await service.run(
            scan("hwp", 0, 90, 46), ["pm1"], observers=[OnPoint(lambda i: service.abort() if i == 6 else None)]
        )
    assert result.exit_status == "aborted"
    run = open_run(result.run_file)
    assert run.complete
    info = run.metadata["scan"]
    assert info["exit_status"] == "aborted" and info["points_measured"] == 7 and info["points_planned"] == 46
    table = run.scans["scan"]
    assert table.column("index").to_pylist() == list(range(7))
    assert table.column("hwp").to_pylist() == pytest.approx(np.arange(7) * 2.0)


async def test_moving_the_scanned_axis_from_another_client_is_refused_naming_the_scan(tmp_path):
    async with demo_table(tmp_path) as (app, service):
        at_point = threading.Event()
        go_on = threading.Event()

        def hold(index):
            if index == 1:
                at_point.set()
                go_on.wait(30)

        done = await service.submit(scan("stage:1", 0, 1, 4), ["pm1"], name="knife", observers=[OnPoint(hold)])
        try:
            await asyncio.to_thread(at_point.wait, 30)
            with pytest.raises(CommandError, match=r"stage.move_to refused: stage axis 1 is in use by scan 'knife'"):
                await move(app, "stage", 5.0, axis=1)
            with pytest.raises(CommandError, match="in use by scan 'knife'"):
                await move(app, "stage", 5.0)  # no axis given: the first one
            await move(app, "stage", 0.5, axis=2)  # another axis is free
        finally:
            go_on.set()
        result = await done
        assert result.exit_status == "success"
        await move(app, "stage", 2.0, axis=1)  # free again after the scan


def nxdata_is_plottable(g: h5py.Group) -> tuple[int, ...]:
    """The NXdata rules: @signal names a field; each @axes entry is a field (or '.') whose length
    matches the signal's dimension given by its ``<axis>_indices``. Returns the signal's shape."""
    signal = g[g.attrs["signal"]]
    axes = [a.decode() if isinstance(a, bytes) else a for a in np.atleast_1d(g.attrs["axes"])]
    for dim, name in enumerate(axes):
        if name == ".":
            continue
        index = np.atleast_1d(g.attrs.get(f"{name}_indices", dim))
        assert [g[name].shape[0]] == [signal.shape[i] for i in index], name
    return signal.shape


async def test_a_grid_scan_opens_as_a_2d_map(tmp_path):
    from nexusformat.nexus import nxload  # the test extra: missing, the test fails rather than skips

    async with demo_table(tmp_path) as (app, service):
        result = await service.run(grid_scan("stage:3", -1, 1, 3, "stage:2", -1, 2, 4, snake=True), ["pm1"])
    assert result.exit_status == "success" and result.num_points == 12
    with h5py.File(result.run_file) as f:
        entry = f[f.attrs["default"]]
        default = entry[entry.attrs["default"]]
        assert default.name == "/entry/scan_map"
        assert nxdata_is_plottable(default) == (3, 4)
        assert not np.isnan(default["pm1"][()]).any()
        assert nxdata_is_plottable(entry["scan_points"]) == (12,)
    from silx.io.nxdata import get_default

    with h5py.File(result.run_file) as f:
        nxdata = get_default(f)  # silx's NXdata rules, as its viewer applies them
        assert nxdata is not None and nxdata.is_valid and nxdata.signal_is_2d
        assert nxdata.axes_dataset_names == ["stage_axis3", "stage_axis2"]
    root = nxload(str(result.run_file))
    plot = root.plottable_data  # nexusformat follows @default to the NXdata it would plot
    assert plot.nxname == "scan_map"
    assert plot.nxsignal.shape == (3, 4)
    assert [a.nxname for a in plot.nxaxes] == ["stage_axis3", "stage_axis2"]
    assert list(plot.nxaxes[1].nxdata) == [-1, 0, 1, 2]


async def test_an_unknown_axis_or_detector_is_named(tmp_path):
    async with demo_table(tmp_path) as (app, service):
        with pytest.raises(CommandError, match=r"no instrument 'nope' \(instruments: .*hwp"):
            await service.submit(scan("nope", 0, 1, 2), ["pm1"])
        with pytest.raises(CommandError, match="laser has streams .*; name one, e.g. laser/"):
            await service.submit(scan("hwp", 0, 1, 2), ["laser"])
        with pytest.raises(CommandError, match="pm1 does not move"):
            await service.submit(scan("pm1", 0, 1, 2), ["pm1"])
    assert not list(tmp_path.glob("*.h5"))


async def test_the_scan_action_submits_by_name_and_reports_state(tmp_path):
    from arrowdaq.scans.actions import plan_parameters, scan_action

    async with demo_table(tmp_path) as (app, service):
        body = {"action": "submit", "plan": "scan", "args": {"axis": "hwp", "start": 0, "stop": 10, "num": 3}}
        state = await scan_action(service, body | {"args": body["args"] | {"detectors": "pm1", "reads": 2}})
        assert state["plan"] == "scan" and state["run_file"].endswith(".h5")
        await service.task
        state = await scan_action(service, {"action": "state"})
        assert state["state"] == "idle" and state["last"]["exit_status"] == "success" and state["last"]["points"] == 3
        assert state["last"]["statistics"]["pm1"]["fwhm"] is None  # NaN travels as null
        with pytest.raises(CommandError, match="unknown action 'jump'"):
            await scan_action(service, {"action": "jump"})
        with pytest.raises(CommandError, match="no scan is running"):
            await scan_action(service, {"action": "pause"})
        dry = await scan_action(
            service, {"action": "dry_run", "plan": "scan", "args": ["hwp", 0, 90, 10], "detectors": ["pm1"]}
        )
        assert dry["points"] == 10 and dry["ok"]
    plans = {p["name"]: p for p in plan_parameters()}
    assert [p["name"] for p in plans["scan"]["params"]][:4] == ["axis", "start", "stop", "num"]


async def test_a_scan_asked_for_while_the_demo_lights_its_table_begins_once_it_is_lit(tmp_path):
    """The live service is up before the instruments are: a scan asked for at once (a second terminal,
    the GUI) waits for the start-up, here the demo switching its laser on, so no point is measured dark."""
    config = parse_config(tomllib.loads(demo_config_text()), "demo.toml")
    config.storage.record = False
    config.simulation.latency_scale = 0.01
    config.processors = []
    config.run.data_dir = tmp_path
    app = Application(config)
    preparing, release = asyncio.Event(), asyncio.Event()
    waiting = asyncio.Event()
    app.hub.add_listener(lambda e: "while the daemon starts" in getattr(e, "message", "") and waiting.set())

    async def prepare(hub):
        preparing.set()
        await release.wait()  # the test holds the start-up here, the table still dark
        await prepare_table(hub)

    starting = asyncio.ensure_future(app.start(prepare))
    try:
        await asyncio.wait_for(preparing.wait(), 30)
        assert app.scans is not None
        submitted = asyncio.ensure_future(app.scans.submit(scan("hwp", 0, 90, 46), ["pm1"], client="early"))
        await asyncio.wait_for(waiting.wait(), 30)
        assert not submitted.done() and app.scans.status()["state"] == "idle"
        release.set()
        await asyncio.wait_for(starting, 60)
        result = await asyncio.wait_for(await submitted, 120)
    finally:
        release.set()
        await app.stop()
    table = open_run(result.run_file).scans["scan"]
    power, angle = table.column("pm1").to_numpy(), table.column("hwp").to_numpy()
    assert power[0] > 10 * power.min()  # lit from the first point
    assert abs(angle[np.argmin(power)] - 45) <= 4


async def test_a_scan_still_waiting_for_the_start_is_refused_when_the_daemon_stops(tmp_path):
    hub = InstrumentManager()
    waiting = asyncio.Event()
    hub.add_listener(lambda e: "while the daemon starts" in getattr(e, "message", "") and waiting.set())
    service = ScanService(hub, taking=False)
    submitted = asyncio.ensure_future(service.submit(scan("hwp", 0, 90, 46), ["pm1"], client="early"))
    await asyncio.wait_for(waiting.wait(), 30)
    await service.close()
    with pytest.raises(CommandError, match="the daemon is stopping: no new scans"):
        await submitted
