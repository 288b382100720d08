"""The window against a real demo daemon (a separate process), through the live service, offscreen."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from arrowdaq.storage import open_run

from .configs import meters_with_one_on_a_dead_port, write_config
from .gui_support import DemoDaemon, connected_window
from .processes import run_file_named
from .waiting import wait_until

INSTRUMENTS = {"laser", "hwp", "stage", "pm1", "scope1", "cam1"}


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    daemon = DemoDaemon(tmp_path_factory.mktemp("demo"))
    yield daemon
    daemon.stop()


def open_window(qtbot, daemon: DemoDaemon, layout: Path):
    """The main window on ``daemon``, shown offscreen and connected."""
    from arrowdaq.gui.link import Link

    return connected_window(qtbot, Link(daemon.connector(), "demo"), layout)


@pytest.fixture
def window(qtbot, demo, tmp_path):
    win = open_window(qtbot, demo, tmp_path / "gui.ini")
    qtbot.waitUntil(
        lambda: set(win.instruments.cards) == INSTRUMENTS and not win.instruments.incomplete, timeout=30_000
    )
    yield win
    win.shutdown()


def test_every_panel_builds_and_shows_data_from_the_demo_daemon(qtbot, window):
    cards = window.instruments.cards
    assert cards["hwp"].info.movable and "stop1" in cards["hwp"].command_buttons
    assert set(cards["stage"].info.axes) == {1, 2, 3} and "stop3" in cards["stage"].command_buttons
    pm1 = cards["pm1"].value_labels["pm1/power"]
    qtbot.waitUntil(lambda: pm1.text().endswith(" W"), timeout=20_000)  # a live value with its unit
    qtbot.waitUntil(lambda: len(window.plots.histories["pm1/power"].t) > 3, timeout=20_000)
    assert "pm1/power" in window.plots.selected()
    qtbot.waitUntil(lambda: window.spectrum.trace is not None, timeout=20_000)
    assert window.spectrum.trace.x_unit == "Hz"
    qtbot.waitUntil(lambda: window.camera.frames_drawn > 0, timeout=20_000)
    assert window.camera.frame.ndim == 2 and "fps" in window.camera.info.text()
    qtbot.waitUntil(lambda: window.events.table.rowCount() > 0, timeout=20_000)
    qtbot.waitUntil(lambda: window.recording.recording and window.recording.path.text().endswith(".h5"), timeout=20_000)
    qtbot.waitUntil(lambda: "rows/s" in window.rates.text(), timeout=20_000)
    assert window.link.state == "connected" and "connected" in window.connection.text()
    scans = window.scans
    if "scan" in window.description.actions:
        assert scans.plans, "the daemon has a scan engine: the panel offers its plans"
    else:
        assert scans.state == "unavailable" and not any(b.isEnabled() for b in scans.buttons.values())


def test_setting_the_laser_wavelength_from_its_card_changes_the_simulator(qtbot, window, demo):
    card = window.instruments.cards["laser"]
    editor = card.editors.get("wavelength")
    if editor is not None:  # a declared, writable setting: its editor and Set
        editor.set_text(780)
        editor.button.click()
    else:  # the driver's command with its argument
        command = next(c for c in card.info.commands if c.name == "set_wavelength")
        card.command_with_text(command, "nm=780")
    qtbot.waitUntil(lambda: "done" in card.reply.text() or "780" in card.reply.text(), timeout=30_000)
    label = card.value_labels["laser/wavelength"]
    qtbot.waitUntil(lambda: label.text() == "780 nm", timeout=30_000)  # the simulator's reading, streamed
    with demo.client() as client:
        assert client.command("laser", "get_wavelength") == pytest.approx(780.0, abs=0.5)


def test_a_bad_value_is_refused_with_the_daemons_message(qtbot, window):
    card = window.instruments.cards["laser"]
    command = next(c for c in card.info.commands if c.name == "set_wavelength")
    card.command_with_text(command, "nm=5000")
    qtbot.waitUntil(lambda: "5000" in card.reply.text(), timeout=30_000)
    assert card.reply.styleSheet().endswith("#c62828")  # shown as an error, the daemon's words


def test_recording_panel_shows_the_file_and_its_size_growing_as_the_daemon_reports_it(qtbot, window, demo):
    rec = window.recording
    qtbot.waitUntil(lambda: rec.recording and rec.path.text().endswith(".h5"), timeout=20_000)
    with demo.client() as client:
        state = client.status()["recording"]
    assert state["file"] == rec.path.text() and state["size_bytes"] > 0  # the daemon says how big the file is
    first = rec.file_size.text()
    assert re.fullmatch(r"[\d.]+ (B|KiB|MiB|GiB)", first), first
    qtbot.waitUntil(lambda: rec.file_size.text() != first, timeout=30_000)  # it grows while the demo records


def test_status_bar_names_the_other_live_clients(qtbot, window, demo):
    qtbot.waitUntil(lambda: "rows/s" in window.rates.text() and "drops:" in window.drops.text(), timeout=20_000)
    assert "connected" in window.connection.text()
    with demo.client() as client:  # named "test": a second program watching the power meter
        with client.subscribe("pm1/power") as sub:
            next(iter(sub))
            qtbot.waitUntil(lambda: "other clients: test" in window.clients.text(), timeout=20_000)
        qtbot.waitUntil(lambda: "no other clients" in window.clients.text(), timeout=20_000)
    assert "this window" in window.clients.toolTip()


def test_the_card_of_an_instrument_that_cannot_start_shows_its_last_error(qtbot, tmp_path):
    config = write_config(tmp_path, meters_with_one_on_a_dead_port(required=False))
    daemon = DemoDaemon(tmp_path, duration=120, command=["run", str(config)])
    try:
        win = open_window(qtbot, daemon, tmp_path / "gui.ini")
        qtbot.waitUntil(lambda: {"pm1", "pm2"} <= set(win.instruments.cards), timeout=30_000)
        card = win.instruments.cards["pm2"]
        qtbot.waitUntil(lambda: "/dev/ttyARROWDAQ-NONE" in card.error.text(), timeout=30_000)
        assert card.error.text().startswith("last error: ") and not card.error.isHidden()
        assert card.status.text() == "reconnecting"  # it keeps trying; the light says so
        assert "controls not known yet" in card.error.text()
        assert not win.instruments.cards["pm1"].error.text()  # the working one shows no error
        win.shutdown()
    finally:
        daemon.stop()


def rows_in_summary(output: str) -> dict[str, int]:
    """Rows per stream from the daemon's summary table."""
    rows = {}
    for line in output.splitlines():
        m = re.match(r"\W*([\w/]+)\W+([\d,]+)\W+([\d,]+)\W", line)
        if m and "/" in m.group(1):
            rows[m.group(1)] = int(m.group(2).replace(",", ""))
    return rows


#: Streams polled at fixed rates in the demo (the others follow the demo's moves).
FIXED_RATE_STREAMS = ("pm1/power", "scope1/trace", "cam1/frames")


@pytest.mark.timeout(600)  # a daemon, two windows and a 10 s freeze: minutes on a loaded 2-core machine
def test_a_stopped_then_killed_window_costs_no_data_and_a_new_one_attaches(tmp_path):
    from arrowdaq.storage import open_run

    daemon = DemoDaemon(tmp_path, duration=120)
    env = daemon.env  # the window finds the daemon by its address file, as `arrowdaq gui` does
    gui_cmd = [sys.executable, "-m", "arrowdaq.cli.main", "gui", "--layout", str(tmp_path / "gui.ini")]
    windows = []
    try:
        with daemon.client() as client:

            def gui_clients() -> int:
                """Streams served to live clients: the window is the only subscriber."""
                return len(client.status()["live"]["clients"])

            def rows_now() -> tuple[float, dict[str, int]]:
                return time.monotonic(), {s: v["rows"] for s, v in client.status()["streams"].items()}

            def rates(a: tuple[float, dict[str, int]], b: tuple[float, dict[str, int]]) -> dict[str, float]:
                return {s: (b[1][s] - a[1][s]) / (b[0] - a[0]) for s in FIXED_RATE_STREAMS}

            first = subprocess.Popen(gui_cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            windows.append(first)
            wait_until(lambda: gui_clients() >= 5, 60, "the window to subscribe to its streams", every=0.1)
            start = rows_now()
            time.sleep(10)  # the thing tested: the window draws every stream for 10 s
            drawing = rows_now()
            first.send_signal(signal.SIGSTOP)
            time.sleep(10)  # the thing tested: the scenario, a window frozen for 10 s
            stalled = rows_now()
            first.send_signal(signal.SIGKILL)
            first.wait(timeout=10)
            wait_until(lambda: gui_clients() == 0, 60, "the daemon to let go of the dead window", every=0.1)
            # the rows each stream gained in 10 s with the window drawing, then frozen (same machine, same load)
            before, frozen = rates(start, drawing), rates(drawing, stalled)
            for stream in FIXED_RATE_STREAMS:
                assert frozen[stream] >= 0.8 * before[stream], (stream, before, frozen)
            second = subprocess.Popen(gui_cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            windows.append(second)
            wait_until(lambda: gui_clients() >= 5, 60, "a new window to subscribe", every=0.1)
    finally:
        for w in windows:
            if w.poll() is None:
                w.send_signal(signal.SIGCONT)
                w.terminate()
                try:
                    w.wait(timeout=10)
                except subprocess.TimeoutExpired:  # a loaded machine: the window's exit is not under test here
                    w.kill()
                    w.wait()
        output = daemon.stop()
    published = rows_in_summary(output)
    path = run_file_named(output)
    assert published.get("pm1/power", 0) > 0, output
    run = open_run(path)
    for stream, rows in published.items():
        assert run.num_rows(stream) == rows, stream


def fill_scan_form(scans, **values) -> None:
    scans.plan.setCurrentText("scan")
    for name, value in values.items():
        scans.fields[name].setText(str(value))


def enabled_buttons(scans) -> set[str]:
    return {name for name, button in scans.buttons.items() if button.isEnabled()}


#: Points of a scan the test pauses, stops or aborts: minutes long unless ended, so each control lands mid-scan
#: however loaded the machine (the tests end it early).
LONG = 300


def test_a_scan_from_the_scan_panel_runs_on_the_engine_and_its_plot_gets_every_point(qtbot, window, demo):
    scans = window.scans
    qtbot.waitUntil(lambda: "scan" in scans.plans and scans.state == "idle", timeout=30_000)
    scans.plan.setCurrentText("scan")
    assert {"axis", "start", "stop", "num", "detectors"} <= set(scans.fields)  # the form from the plan's parameters
    fill_scan_form(scans, axis="hwp", start=0, stop=90, num=LONG, detectors="pm1", settle=0.3)
    scans.buttons["start"].click()
    qtbot.waitUntil(lambda: scans.state == "running" and scans.rows >= 1, timeout=30_000)
    assert enabled_buttons(scans) == {"pause", "abort"}
    scans.buttons["pause"].click()  # deferred to the next point boundary
    qtbot.waitUntil(lambda: scans.state == "paused", timeout=30_000)
    assert enabled_buttons(scans) == {"resume", "abort"}
    with demo.client() as client:
        paused = client.action("scan", {"action": "state"})
        assert paused["state"] == "paused"  # the engine's state, not the GUI's
        client.action("scan", {"action": "resume"})  # resumed by another client: the buttons follow
        qtbot.waitUntil(lambda: scans.state == "running", timeout=30_000)
        assert enabled_buttons(scans) == {"pause", "abort"}
        qtbot.waitUntil(lambda: scans.rows >= paused["done"] + 2, timeout=30_000)  # measuring again
        client.action("scan", {"action": "stop"})  # another client ends it after the current point
    qtbot.waitUntil(lambda: scans.state == "idle" and scans.outcome is not None, timeout=60_000)
    n = scans.outcome["points"]
    assert scans.outcome["exit_status"] == "success" and paused["done"] + 2 <= n < LONG
    assert scans.rows == n and len(scans.x_values) == n  # every point, once, in order
    assert scans.x_values == pytest.approx(np.linspace(0, 90, LONG)[:n])
    assert (scans.x_name, scans.y_name) == ("hwp", "pm1")
    stats = scans.outcome["statistics"]["pm1"]
    assert scans.y_values.max() == pytest.approx(stats["max"])  # the plot shows what the engine measured and stored
    text = scans.stats.text()
    assert "success" in text and f"{n} points" in text and "centre of mass" in text and "FWHM" in text
    assert enabled_buttons(scans) == {"start"}
    run = open_run(scans.outcome["run_file"])
    assert run.table("scan/points").num_rows == n


def test_abort_from_the_scan_panel_ends_the_scan_with_the_points_measured(qtbot, window):
    scans = window.scans
    qtbot.waitUntil(lambda: "scan" in scans.plans and scans.state == "idle", timeout=30_000)
    fill_scan_form(scans, axis="hwp", start=0, stop=90, num=LONG, detectors="pm1", settle=0.3)
    scans.buttons["start"].click()
    qtbot.waitUntil(lambda: scans.state == "running" and scans.rows >= 2, timeout=30_000)
    scans.buttons["abort"].click()
    qtbot.waitUntil(lambda: scans.state == "idle" and scans.outcome is not None, timeout=60_000)
    outcome = scans.outcome
    assert outcome["exit_status"] == "aborted" and 2 <= outcome["points"] < LONG, outcome
    assert scans.rows == outcome["points"] == len(scans.x_values)
    assert "aborted" in scans.stats.text()


def test_a_scan_that_really_fails_shows_failed_with_the_devices_reason(qtbot, window, demo):
    scans = window.scans
    qtbot.waitUntil(lambda: "scan" in scans.plans and scans.state == "idle", timeout=30_000)
    # axis 2 travels -12.5..12.5 mm: the controller refuses the third point (13 mm), as a real ESP300 does
    fill_scan_form(scans, axis="stage:2", start=10, stop=13, num=3, detectors="pm1", settle=0)
    with demo.client() as client:
        before = client.action("scan", {"action": "state"})["scan_id"]  # a new window shows that scan's outcome
        try:
            scans.buttons["start"].click()
            qtbot.waitUntil(
                lambda: scans.state == "idle" and (scans.outcome or {}).get("scan_id") not in (None, before),
                timeout=60_000,
            )
        finally:
            client.command("stage", "move_to", target=0.0, axis=2)
    outcome = scans.outcome
    assert outcome["exit_status"] == "failed" and outcome["points"] == 2
    assert "limit" in outcome["reason"].lower()
    assert f"scan: failed</b>, 2 points ({outcome['reason']})" in scans.stats.text()


def test_a_reply_that_comes_back_after_its_panel_was_deleted_is_dropped_without_error(qtbot, demo):
    """A panel deleted while its call to the daemon is in flight: the reply is dropped (counted), never run
    on the deleted widgets ("Internal C++ object (QProgressBar) already deleted" in the GUI thread)."""
    import shiboken6

    from arrowdaq.gui.link import Link
    from arrowdaq.gui.panels.scans import ScanPanel

    link = Link(demo.connector(), "demo")
    with qtbot.waitSignal(link.connected, timeout=30_000):
        link.open()
    try:
        kept, deleted = ScanPanel(link), ScanPanel(link)
        qtbot.addWidget(kept)
        kept.follow()  # each asks the daemon for the engine's state; the replies come back on the GUI thread
        deleted.follow()
        shiboken6.delete(deleted)  # the GUI thread has not returned to its event loop: the reply is in flight
        assert deleted.following and not shiboken6.isValid(deleted)
        qtbot.waitUntil(lambda: not kept.following and link.dropped_replies == 1, timeout=30_000)
        assert kept.state_label.text().startswith("engine: ")  # the living panel's reply did run
        assert deleted.following  # the deleted one's never did (pytest-qt fails the test on any error in a slot)
    finally:
        link.close()


def test_the_window_reconnects_by_itself_when_the_daemon_returns(qtbot, tmp_path, monkeypatch):
    from arrowdaq.gui.app import live_connector
    from arrowdaq.gui.link import Link
    from arrowdaq.gui.window import MainWindow

    monkeypatch.setenv("ARROWDAQ_LIVE_FILE", str(tmp_path / "live.json"))  # the window finds daemons as `gui` does
    monkeypatch.delenv("ARROWDAQ_ADDRESS", raising=False)
    monkeypatch.delenv("ARROWDAQ_TOKEN", raising=False)
    daemon = DemoDaemon(tmp_path, duration=300)
    link = Link(live_connector(None), "", retry_s=0.5)
    win = MainWindow(link, tmp_path / "gui.ini")
    qtbot.addWidget(win)
    win.show()
    try:
        with qtbot.waitSignal(link.connected, timeout=30_000):
            link.open()
        history = lambda: len(win.plots.histories["pm1/power"].t)  # noqa: E731
        qtbot.waitUntil(lambda: history() > 3, timeout=30_000)
        daemon.stop()
        qtbot.waitUntil(lambda: link.state.startswith("lost"), timeout=30_000)
        assert "retrying" in win.connection.text()
        before = history()
        daemon = DemoDaemon(tmp_path, duration=300)  # another daemon: another port and token, the same address file
        qtbot.waitUntil(lambda: link.state == "connected", timeout=60_000)
        qtbot.waitUntil(lambda: history() > before + 3, timeout=30_000)  # the plot goes on with the new daemon
        assert "connected" in win.connection.text() and set(win.instruments.cards) == INSTRUMENTS
    finally:
        win.shutdown()
        daemon.stop()


def log_lines(win, source: str = "connection") -> list[str]:
    """The event log's messages from ``source``, oldest first."""
    table, columns = win.events.table, win.events.columns
    at = columns.index("source"), columns.index("message")
    rows = ((table.item(r, at[0]), table.item(r, at[1])) for r in range(table.rowCount()))
    return [m.text() for s, m in rows if s is not None and m is not None and s.text() == source]


def test_a_connection_that_keeps_failing_is_logged_once_and_its_return_once(qtbot, tmp_path):
    """The link retries every 0.2 s: the status bar counts the retries, the event log says why once, and
    once more when a daemon starts at that address and the window reaches it."""
    from arrowdaq.gui.app import live_connector
    from arrowdaq.gui.link import Link
    from arrowdaq.gui.window import MainWindow

    from .live_helpers import DaemonProcess

    socket, token = tmp_path / "live.sock", "a-token-for-this-test-only"
    address = f"grpc+unix://{socket}"
    link = Link(live_connector(address, token), address, retry_s=0.2)
    win = MainWindow(link, tmp_path / "gui.ini")
    qtbot.addWidget(win)
    win.show()
    states: list[str] = []
    link.state_changed.connect(states.append)
    daemon = None
    try:
        link.open()
        qtbot.waitUntil(lambda: len(states) > 5, timeout=30_000)  # nothing answers at the address yet
        lost = log_lines(win)
        assert len(lost) == 1 and lost[0].startswith("lost: ") and "is it running?" in lost[0], lost
        assert "lost" in win.connection.text() and f"retry {link.retries}" in win.connection.text()
        daemon = DaemonProcess(tmp_path, extra=f'[server]\nsocket = "{socket}"\ntoken = "{token}"\n')
        qtbot.waitUntil(lambda: link.state == "connected", timeout=60_000)
        assert log_lines(win) == [lost[0], f"connected to {address}"]
        assert link.retries == 0 and "retry" not in win.connection.text()
        # the log's columns are the ``_events`` stream's, though the window wrote its own lines first
        assert win.events.columns == ["time", "source", "kind", "level", "message", "detail"]
    finally:
        win.shutdown()
        if daemon is not None:
            daemon.stop()
