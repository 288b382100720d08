"""The GUI's widgets with real Qt (offscreen), fed real Arrow batches through the GUI's client seam."""

from __future__ import annotations

import numpy as np
import pytest

from arrowdaq.data import image_batch, scalar_batch, vector_batch
from arrowdaq.gui.decimate import for_display, minmax_per_pixel
from arrowdaq.gui.describe import parse_description
from arrowdaq.gui.link import Link

from .gui_support import BatchSource
from .waiting import wait_until

DESCRIPTION = {
    "instruments": {
        "laser": {
            "driver": "maitai",
            "capabilities": ["Readable", "WavelengthTunable"],
            "settings": {"wavelength": 800.0},
            "streams": {"wavelength": {"unit": "nm"}},
            "controls": {"wavelength": {"unit": "nm", "limits": [690, 1040], "read_only": False}},
            "commands": {"open_shutter": {"params": []}, "set_wavelength": {"params": [{"name": "nm"}]}},
            "status": "running",
            "error": None,
        },
        "stage": {
            "driver": "esp300",
            "capabilities": ["Readable", "Movable"],
            "streams": {"axis1_position": {"unit": "mm"}, "axis2_position": {"unit": "mm"}},
            "commands": {
                "move_to": {"params": [{"name": "position"}, {"name": "axis"}]},
                "stop_motion": {"params": [{"name": "axis"}]},
            },
            "status": "running",
        },
    },
    "streams": {
        "laser/wavelength": {"kind": "scalar", "unit": "nm"},
        "pm1/power": {"kind": "scalar", "unit": "W"},
        "scope1_fft/spectrum": {"kind": "vector", "unit": "V"},
        "cam1/frames": {"kind": "image", "unit": "counts"},
        "stage/axis1_position": {"kind": "scalar", "unit": "mm"},
        "stage/axis2_position": {"kind": "scalar", "unit": "mm"},
    },
}


@pytest.fixture
def source():
    return BatchSource(DESCRIPTION)


@pytest.fixture
def link(qtbot, source):
    def connect():
        if source.down.is_set():
            raise ConnectionError("daemon unavailable")
        return source

    link = Link(connect, "test", retry_s=0.05)
    with qtbot.waitSignal(link.connected, timeout=5000):
        link.open()
    yield link
    link.close()


def power(values, t0=1_700_000_000.0, dt=0.01):
    t = (t0 + np.arange(len(values)) * dt) * 1e9
    return scalar_batch(np.asarray(values, float), channel="power", unit="W", timestamps_ns=t.astype(np.uint64))


# --- drawing only what the screen shows -------------------------------------------------------
def test_minmax_keeps_every_spike_in_two_points_per_pixel():
    x = np.arange(100_000, dtype=float)
    y = np.zeros_like(x)
    y[12_345], y[77_777] = 5.0, -3.0
    dx, dy = minmax_per_pixel(x, y, 500)
    assert len(dx) == 1000
    assert dy.max() == 5.0 and dy.min() == -3.0
    assert np.all(np.diff(dx) >= 0)  # still drawable as a line, left to right


def test_clip_to_view_keeps_one_neighbour_each_side():
    x = np.arange(10.0)
    cx, cy = for_display(x, x * 2, 3.5, 5.5, 100)
    assert list(cx) == [3.0, 4.0, 5.0, 6.0] and list(cy) == [6.0, 8.0, 10.0, 12.0]


def test_description_gives_limits_axes_and_units():
    d = parse_description(DESCRIPTION)
    laser, stage = d.instruments
    wavelength = laser.controls[0]
    assert (wavelength.minimum, wavelength.maximum, wavelength.value) == (690.0, 1040.0, 800.0)
    with pytest.raises(ValueError, match="above 1040"):
        wavelength.check(1200)
    assert stage.movable and stage.axes == [1, 2] and stage.position_unit == "mm"
    assert laser.commands[1].params == ["nm"]
    assert d.streams_of_kind("image") == ["cam1/frames"]


# --- panels ------------------------------------------------------------------------------------
def test_plot_panel_draws_decimated_curves_with_units(qtbot, link, source):
    from arrowdaq.gui.panels.plots import PlotPanel

    panel = PlotPanel(link)
    qtbot.addWidget(panel)
    panel.resize(800, 400)
    panel.show()
    panel.set_description(parse_description(DESCRIPTION), default=["pm1/power"])
    source.wait_subscribed("pm1/power")
    panel.window_s.setValue(600)  # 50,000 points 10 ms apart fit
    values = np.sin(np.arange(50_000) / 100.0)
    source.push("pm1/power", power(values))
    qtbot.waitUntil(lambda: len(panel.histories["pm1/power"].t) == 50_000, timeout=5000)
    panel.redraw(force=True)
    x, y = panel.curves["pm1/power"].getData()
    assert len(x) <= 2 * panel.pixels + 2 <= 5_000  # decimated to the plot's width in pixels
    assert y.max() == pytest.approx(values.max()) and y.min() == pytest.approx(values.min())
    assert panel.legend.items[0][1].text == "pm1/power [W]"
    panel.pause.setChecked(True)  # frozen: new data is kept but not drawn
    source.push("pm1/power", power([10.0], t0=1_700_000_000.0 + 501))
    qtbot.waitUntil(lambda: len(panel.histories["pm1/power"].t) == 50_001, timeout=5000)
    panel.redraw()
    assert panel.curves["pm1/power"].getData()[1].max() < 10
    panel.close_feeds()


def test_spectrum_panel_uses_the_streams_axis_in_hz(qtbot, link, source):
    from arrowdaq.gui.panels.spectrum import SpectrumPanel

    panel = SpectrumPanel(link)
    qtbot.addWidget(panel)
    panel.show()
    panel.set_description(parse_description(DESCRIPTION))
    source.wait_subscribed("scope1_fft/spectrum")
    spectrum = np.full(4096, 1e-3)
    spectrum[100] = 1.0
    source.push("scope1_fft/spectrum", vector_batch(spectrum[None], channel="s", unit="V", x0=0.0, dx=5.0, x_unit="Hz"))
    qtbot.waitUntil(lambda: panel.trace is not None, timeout=5000)
    panel.log_y.setChecked(False)
    panel.redraw(force=True)
    x, y = panel.curve.getData()
    assert x[0] == 0 and x[-1] == pytest.approx(4095 * 5.0)  # the whole spectrum, in Hz
    assert y.max() == 1.0 and abs(x[np.argmax(y)] - 500.0) <= 2 * 4096 * 5.0 / len(x)  # bin 100 at 5 Hz per bin
    assert panel.plot.getPlotItem().getAxis("bottom").labelUnits == "Hz"
    panel.close_feeds()


def test_camera_panel_levels_roi_and_dropped_frames(qtbot, link, source):
    from arrowdaq.gui.panels.camera import CameraPanel

    panel = CameraPanel(link)
    qtbot.addWidget(panel)
    panel.show()
    panel.set_description(parse_description(DESCRIPTION))
    source.wait_subscribed("cam1/frames")
    frame = np.zeros((64, 80), np.uint16)
    frame[10:20, 10:20] = 1000
    source.push("cam1/frames", image_batch(frame, channel="frames", frame_numbers=1))
    qtbot.waitUntil(lambda: panel.frame is not None, timeout=5000)
    panel.redraw(force=True)
    assert panel.hist.getLevels() == (0.0, 1000.0)  # explicit levels from the first frame
    assert len(panel.hist.getLookupTable(panel.frame)) == 256
    panel.roi.setPos((10, 10))
    panel.roi.setSize((10, 10))
    assert "sum 1e+05" in panel.roi_info.text() and "mean 1000" in panel.roi_info.text()
    source.push("cam1/frames", image_batch(frame, channel="frames", frame_numbers=5))  # 2, 3, 4 never came
    qtbot.waitUntil(lambda: panel.last_number == 5, timeout=5000)
    assert panel.dropped == 3
    panel.redraw(force=True)
    assert "dropped 3" in panel.info.text()
    source.push("cam1/frames", image_batch(frame // 10, channel="frames", frame_numbers=6))  # a dimmer frame
    qtbot.waitUntil(lambda: panel.last_number == 6, timeout=5000)
    panel.redraw(force=True)
    assert panel.auto_levels.isChecked() and panel.hist.getLevels() == (0.0, 100.0)  # levels follow the frames
    panel.hist.setLevels(0, 50)  # as a drag of the histogram's levels ends
    panel.hist.sigLevelChangeFinished.emit(panel.hist)
    assert not panel.auto_levels.isChecked()
    panel.close_feeds()


def test_card_refuses_a_value_outside_the_limits_without_sending(qtbot, link, source):
    from arrowdaq.gui.panels.instruments import InstrumentsPanel

    panel = InstrumentsPanel(link)
    qtbot.addWidget(panel)
    panel.show()
    panel.set_description(parse_description(DESCRIPTION))
    card = panel.cards["laser"]
    editor = card.editors["wavelength"]
    assert editor.editor.minimum() == 690 and editor.editor.maximum() == 1040
    card.set_control(editor.info, 1200.0)  # e.g. typed through a script: refused before sending
    assert "above 1040" in card.reply.text()
    assert not [c for c in source.calls if c[0] == "set"]
    editor.set_text(780)
    editor.button.click()
    qtbot.waitUntil(lambda: card.reply.text() == "wavelength = 780.0", timeout=5000)  # the daemon's answer
    assert ("set", ("laser", "wavelength", 780.0), {}) in source.calls
    card.command_with_text(card.info.commands[1], "nm=750")
    qtbot.waitUntil(lambda: ("command", ("laser", "set_wavelength"), {"nm": 750}) in source.calls, timeout=5000)
    stage = panel.cards["stage"]
    assert set(stage.command_buttons) >= {"stop1", "stop2"}  # a STOP per axis
    panel.stop_all_motion()
    qtbot.waitUntil(lambda: ("command", ("stage", "stop_motion"), {}) in source.calls, timeout=5000)
    panel.close_feeds()


class ScanEngine:
    """The ``scan`` action's replies as the engine gives them (``state`` with ``since``: the points after it)."""

    def __init__(self) -> None:
        self.state = "idle"
        self.scan_id = "run-1"
        self.points: list[dict] = []
        self.total = 5
        self.outcome: dict | None = None

    def __call__(self, body: dict) -> dict:
        reply = {"state": self.state, "scan_id": self.scan_id, "done": len(self.points), "total": self.total}
        if "since" in body:
            current = body.get("scan_id") in (None, self.scan_id)
            reply |= {"since": body["since"], "points": self.points[body["since"] :] if current else []}
            if self.outcome is not None and body.get("scan_id") == self.scan_id:
                reply["outcome"] = self.outcome
        return reply

    def measure(self, angle: float) -> None:
        power = float(np.cos(np.radians(2 * angle)) ** 2)
        row = {"timestamp_ns": 0, "index": len(self.points), "elapsed": 0.1, "hwp": angle, "hwp_readback": angle}
        self.points.append(row | {"pm1": power, "pm1_std": power * 0.01})


def test_scan_panel_buttons_follow_the_engine_and_each_point_is_plotted_once(qtbot, link, source):
    from arrowdaq.gui.panels.scans import ScanPanel

    description = dict(DESCRIPTION, actions=["scan"])
    description["plans"] = [
        {"name": "scan", "doc": "evenly spaced points", "params": [{"name": "axis"}, {"name": "num", "default": 5}]}
    ]
    engine = ScanEngine()
    for action in ("state", "pause", "abort"):
        source.action_replies[("scan", action)] = engine
    panel = ScanPanel(link)
    qtbot.addWidget(panel)
    panel.show()
    panel.set_description(parse_description(description))
    assert list(panel.fields) == ["axis", "num"] and panel.fields["num"].text() == "5"
    assert panel.plan_doc.text() == "evenly spaced points"
    enabled = lambda: {n for n, b in panel.buttons.items() if b.isEnabled()}  # noqa: E731
    for state, buttons in (("idle", {"start"}), ("running", {"pause", "abort"}), ("paused", {"resume", "abort"})):
        engine.state = state
        panel.poll()
        qtbot.waitUntil(lambda state=state: panel.state == state, timeout=5000)
        assert enabled() == buttons, state
    engine.state = "running"
    angles = np.linspace(0, 90, 5)
    for angle in angles:  # points come while the panel keeps asking: each is drawn once
        engine.measure(angle)
        qtbot.waitUntil(lambda: panel.rows == len(engine.points), timeout=5000)
    engine.outcome = {"plan": "scan", "exit_status": "success", "points": 5, "scan_id": "run-1"}
    engine.outcome["statistics"] = {"pm1": {"max": 1.0, "max_at": 0.0, "min": 0.0, "com": 45.0, "fwhm": 45.0}}
    engine.state = "idle"
    qtbot.waitUntil(lambda: panel.state == "idle" and panel.outcome is not None, timeout=5000)
    assert panel.x_values == pytest.approx(angles) and len(panel.y_values) == 5
    assert (panel.x_name, panel.y_name) == ("hwp", "pm1")
    assert panel.progress.value() == 5
    assert "success" in panel.stats.text() and "pm1: max 1 at hwp = 0" in panel.stats.text()
    engine.scan_id, engine.points, engine.outcome = "run-2", [], None  # a scan started elsewhere
    engine.state = "running"
    engine.measure(10.0)
    panel.poll()  # the window's timer: the panel was idle, it asks again
    qtbot.waitUntil(lambda: panel.scan_id == "run-2" and panel.rows == 1, timeout=5000)
    assert panel.x_values == pytest.approx([10.0]) and panel.stats.text() == ""
    panel.buttons["abort"].click()
    qtbot.waitUntil(lambda: ("action", ("scan", {"action": "abort"}), {}) in source.calls, timeout=5000)


# --- the link --------------------------------------------------------------------------------------
def test_feed_keeps_only_the_newest_batches_and_counts_the_rest(qtbot, link, source):
    feed = link.feed("pm1/power")
    source.wait_subscribed("pm1/power")
    for i in range(feed.depth + 10):
        source.push("pm1/power", power([float(i)]))
    # the GUI thread is busy (this test does not let it run): batches pile up in the worker's buffer
    wait_until(lambda: feed.received == feed.depth + 10, message="every batch in the worker's buffer")
    got = feed.take()
    assert len(got) == feed.depth and feed.dropped == 10
    assert got[-1].column("value")[0].as_py() == feed.depth + 9  # the newest kept
    link.release("pm1/power")


def test_a_card_deleted_without_unwatching_stops_watching_and_its_batches_are_dropped(qtbot, link, source):
    """A window closed with its panels: batches already on their way to a deleted card are dropped (counted),
    never shown on its deleted labels, and the card's subscription ends."""
    import shiboken6

    from arrowdaq.gui.panels.instruments import InstrumentsPanel

    kept, deleted = InstrumentsPanel(link), InstrumentsPanel(link)
    qtbot.addWidget(kept)
    for panel in (kept, deleted):
        panel.set_description(parse_description(DESCRIPTION))
    source.wait_subscribed("laser/wavelength")
    assert link.feeds["laser/wavelength"].users == 2
    shiboken6.delete(deleted)  # its labels go with it; it never called unwatch
    source.push("laser/wavelength", power([0.25]))
    label = kept.cards["laser"].value_labels["laser/wavelength"]
    feed = link.feeds["laser/wavelength"]
    qtbot.waitUntil(lambda: label.text().startswith("0.25") and feed.users == 1, timeout=5000)
    assert link.dropped_replies >= 1  # that batch (and the deleted card's replies to its 'get' calls)
    source.push("laser/wavelength", power([0.5]))  # the living card's watch goes on
    qtbot.waitUntil(lambda: label.text().startswith("0.5"), timeout=5000)
    assert link.feeds["laser/wavelength"] is feed and feed.users == 1


def test_link_reconnects_and_resubscribes_when_the_daemon_returns(qtbot, link, source):
    seen = []
    watch = link.watch("pm1/power", lambda batches: seen.extend(batches))
    source.wait_subscribed("pm1/power")
    with qtbot.waitSignal(link.state_changed, check_params_cb=lambda s: s.startswith("lost"), timeout=5000):
        source.fail()
    source.subscribed.clear()
    with qtbot.waitSignal(link.connected, timeout=5000):
        source.recover()
    source.wait_subscribed("pm1/power")
    source.push("pm1/power", power([42.0]))
    qtbot.waitUntil(lambda: bool(seen), timeout=5000)
    assert seen[-1].column("value")[0].as_py() == 42.0 and link.state == "connected"
    link.unwatch(watch)


def test_main_window_saves_and_restores_its_layout(qtbot, link, tmp_path):
    from arrowdaq.gui.window import MainWindow

    layout = tmp_path / "gui.ini"
    window = MainWindow(link, layout)
    qtbot.addWidget(window)
    window.show()
    window.docks["Camera"].setFloating(True)
    window.docks["Scans"].hide()
    window.save_layout()
    window.shutdown()
    again = MainWindow(link, layout)
    qtbot.addWidget(again)
    again.show()
    assert again.docks["Camera"].isFloating() and not again.docks["Scans"].isVisible()
    again.shutdown()
