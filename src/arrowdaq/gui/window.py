"""The main window: every panel in a dock, a STOP for all motion, a status bar; layout kept between runs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .describe import Description, parse_description
from .link import Link
from .panels.camera import CameraPanel
from .panels.events import EventsPanel
from .panels.instruments import STOP_STYLE, InstrumentsPanel
from .panels.plots import PlotPanel
from .panels.recording import RecordingPanel, human_bytes
from .panels.scans import ScanPanel
from .panels.spectrum import SpectrumPanel
from .qt import QtCore, QtGui, QtWidgets

#: Bumped when the docks change, so an old saved layout is not applied to new docks.
LAYOUT_VERSION = 1
STATUS_PERIOD_MS = 1000
SCAN_PERIOD_MS = 500


def client_name(caller: str) -> str:
    """'arrowdaq gui pid 7 (ipv4:127.0.0.1:5123)' -> 'arrowdaq gui pid 7': the name a client gave itself."""
    name, sep, peer = caller.rpartition(" (")
    return name if sep and peer.endswith(")") else caller


def default_settings_path() -> Path:
    base = QtCore.QStandardPaths.writableLocation(QtCore.QStandardPaths.StandardLocation.AppConfigLocation)
    return Path(base or Path.home() / ".config" / "arrowdaq") / "gui.ini"


class MainWindow(QtWidgets.QMainWindow):
    def __init__(self, link: Link, settings_path: Path | None = None) -> None:
        super().__init__()
        self.link = link
        self.description = Description()
        self.settings = QtCore.QSettings(
            str(settings_path or default_settings_path()), QtCore.QSettings.Format.IniFormat
        )
        self.setWindowTitle(f"arrowdaq — {link.address or 'local daemon'}")
        self.setDockNestingEnabled(True)
        self.resize(1600, 1000)

        self.instruments = InstrumentsPanel(link)
        self.plots = PlotPanel(link)
        self.spectrum = SpectrumPanel(link)
        self.camera = CameraPanel(link)
        self.scans = ScanPanel(link)
        self.recording = RecordingPanel(link)
        self.events = EventsPanel(link)
        self.docks: dict[str, QtWidgets.QDockWidget] = {}
        area = QtCore.Qt.DockWidgetArea
        self._dock("Instruments", self.instruments, area.LeftDockWidgetArea)
        self._dock("Live plots", self.plots, area.RightDockWidgetArea)
        self._dock("Spectrum", self.spectrum, area.RightDockWidgetArea)
        self._dock("Camera", self.camera, area.RightDockWidgetArea)
        self._dock("Scans", self.scans, area.RightDockWidgetArea)
        self._dock("Recording", self.recording, area.LeftDockWidgetArea)
        self._dock("Log / events", self.events, area.BottomDockWidgetArea)
        self.splitDockWidget(self.docks["Live plots"], self.docks["Camera"], QtCore.Qt.Orientation.Horizontal)
        self.splitDockWidget(self.docks["Live plots"], self.docks["Spectrum"], QtCore.Qt.Orientation.Vertical)
        self.splitDockWidget(self.docks["Camera"], self.docks["Scans"], QtCore.Qt.Orientation.Vertical)
        horizontal, vertical = QtCore.Qt.Orientation.Horizontal, QtCore.Qt.Orientation.Vertical
        d = self.docks
        self.resizeDocks([d["Instruments"], d["Live plots"], d["Camera"]], [480, 640, 480], horizontal)
        self.resizeDocks([d["Instruments"], d["Recording"]], [700, 260], vertical)
        self.resizeDocks([d["Live plots"], d["Spectrum"]], [500, 400], vertical)
        self.resizeDocks([d["Log / events"]], [200], vertical)
        self._default_state = self.saveState(LAYOUT_VERSION)

        toolbar = self.addToolBar("Main")
        toolbar.setObjectName("toolbar-main")
        self.stop_all = QtWidgets.QPushButton("STOP all motion")
        self.stop_all.setStyleSheet(STOP_STYLE)
        self.stop_all.setToolTip("Stop every axis of every Movable instrument now (Esc)")
        self.stop_all.clicked.connect(self.instruments.stop_all_motion)
        toolbar.addWidget(self.stop_all)
        QtGui.QShortcut(QtGui.QKeySequence("Esc"), self, self.instruments.stop_all_motion)
        toolbar.addSeparator()
        toolbar.addAction("Reset layout", lambda: self.restoreState(self._default_state, LAYOUT_VERSION))
        view = self.menuBar().addMenu("&View")
        for dock in self.docks.values():
            view.addAction(dock.toggleViewAction())

        self.connection = QtWidgets.QLabel("connecting …")
        self.rates = QtWidgets.QLabel("")
        self.drops = QtWidgets.QLabel("")
        self.clients = QtWidgets.QLabel("")
        self.record_state = QtWidgets.QLabel("")
        bar = self.statusBar()
        for w in (self.connection, self.rates, self.drops, self.clients):
            bar.addWidget(w)
        bar.addPermanentWidget(self.record_state)

        link.connected.connect(self.on_connected)
        link.state_changed.connect(self.on_state)
        #: Reasons of the outage in progress already in the event log (empty while connected).
        self.outage: set[str] = set()
        link.error.connect(lambda message: self.events.add_message("gui", message))
        self.events.command_logged.connect(self.instruments.apply_command_record)
        self.status_timer = QtCore.QTimer(self)
        self.status_timer.timeout.connect(self.poll_status)
        self.status_timer.start(STATUS_PERIOD_MS)
        self.scan_timer = QtCore.QTimer(self)
        self.scan_timer.timeout.connect(self.scans.poll)
        self.scan_timer.start(SCAN_PERIOD_MS)
        self.restore_layout()

    def _dock(self, title: str, widget: QtWidgets.QWidget, area: QtCore.Qt.DockWidgetArea) -> None:
        dock = QtWidgets.QDockWidget(title, self)
        dock.setObjectName(f"dock-{title}")
        dock.setWidget(widget)
        self.addDockWidget(area, dock)
        self.docks[title] = dock

    # --- connection -----------------------------------------------------------------
    def on_connected(self, raw: dict[str, Any]) -> None:
        self.description = parse_description(raw)
        d = self.description
        self.instruments.set_description(d)
        self.docks["Instruments"].setMinimumWidth(self.instruments.minimumWidth() + 8)  # no card cut off
        defaults = [n for n in d.streams_of_kind("scalar") if n.endswith("/power")][:2]
        self.plots.set_description(d, default=defaults)
        self.spectrum.set_description(d)
        self.camera.set_description(d)
        self.scans.set_description(d)
        self.events.start()
        self.poll_status()
        if self.instruments.incomplete:  # an instrument was busy: describe again shortly
            QtCore.QTimer.singleShot(3000, self.describe_again)

    def describe_again(self, delay_ms: int = 3000) -> None:
        """Ask ``describe`` again for an instrument not described yet; rebuild only when its answer changed."""

        def answered(raw: dict[str, Any]) -> None:
            before = {i.name: (i.describe_error, i.status) for i in self.description.instruments}
            after = {i.name: (i.describe_error, i.status) for i in parse_description(raw).instruments}
            if after != before:
                self.on_connected(raw)  # asks again itself while some instrument is still missing
            else:  # still starting or failed: its card shows why; ask less often
                later = min(2 * delay_ms, 30_000)
                QtCore.QTimer.singleShot(later, lambda: self.describe_again(later))

        if self.link.state == "connected":
            self.link.call("describe", on_done=answered, on_error=lambda _: None)

    def on_state(self, state: str) -> None:
        colour = "#2ca02c" if state == "connected" else "#c62828" if state.startswith("lost") else "#b26a00"
        text = state if len(state) < 120 else state[:117] + "…"
        where = self.link.address or "local daemon"
        retries = f", retry {self.link.retries}" if self.link.retries > 1 else ""
        suffix = f" (retrying{retries})" if state.startswith("lost") else ""
        self.connection.setText(f"<span style='color:{colour}'>●</span> {where}: {text}{suffix}")
        self.log_connection(state)

    def log_connection(self, state: str) -> None:
        """The event log gets each reason of an outage once (the link retries every second; the status bar
        shows the retries), and a line when the link is back."""
        if state.startswith("lost") and state not in self.outage:
            self.outage.add(state)
            self.events.add_message("connection", state, level="error")
        elif state == "connected" and self.outage:
            self.outage.clear()
            self.events.add_message("connection", f"connected to {self.link.address or 'the local daemon'}")

    def poll_status(self) -> None:
        if self.link.state == "connected":
            self.link.call("status", on_done=self.on_status, on_error=lambda _: None)

    def on_status(self, status: dict[str, Any]) -> None:
        self.instruments.update_status(status)
        self.recording.update_status(status)
        streams = status.get("streams") or {}
        rows = sum(float(s.get("rows_per_s", 0) or 0) for s in streams.values() if isinstance(s, dict))
        nbytes = sum(float(s.get("bytes_per_s", 0) or 0) for s in streams.values() if isinstance(s, dict))
        self.rates.setText(f"{len(streams)} streams, {rows:,.0f} rows/s, {human_bytes(nbytes)}/s")
        subs = status.get("subscribers") or {}
        daemon_drops = sum(int(s.get("drops", 0) or 0) for s in subs.values() if isinstance(s, dict))
        gui_drops = sum(f.dropped for f in self.link.feeds.values())
        self.drops.setText(f"drops: {daemon_drops} in the daemon's live buffers, {gui_drops} skipped by this window")
        self.show_clients((status.get("live") or {}).get("clients") or {})
        rec = status.get("recording")
        if isinstance(rec, dict):
            self.record_state.setText("● REC" if self.recording.recording else "not recording")
            self.record_state.setStyleSheet("color:#c62828; font-weight:bold" if self.recording.recording else "")

    def show_clients(self, feeds: dict[str, Any]) -> None:
        """Who else is attached: the live clients by name (the service's open streams, grouped)."""
        me = getattr(self.link.client, "name", None)
        streams: dict[str, int] = {}
        for feed in feeds.values():
            if isinstance(feed, dict):
                name = client_name(str(feed.get("client") or "?"))
                name = "this window" if name == me else name
                streams[name] = streams.get(name, 0) + 1
        others = sorted(n for n in streams if n != "this window")
        shown = ", ".join(others[:3]) + (f" and {len(others) - 3} more" if len(others) > 3 else "")
        self.clients.setText(f"other clients: {shown}" if others else "no other clients")
        self.clients.setToolTip(
            "Live clients of the daemon (open streams):\n" + "\n".join(f"{n}: {k}" for n, k in sorted(streams.items()))
        )

    # --- layout ---------------------------------------------------------------------
    def restore_layout(self) -> None:
        geometry = self.settings.value("geometry")
        state = self.settings.value("state")
        if geometry is not None:
            self.restoreGeometry(geometry)
        if state is not None:
            self.restoreState(state, LAYOUT_VERSION)

    def save_layout(self) -> None:
        self.settings.setValue("geometry", self.saveGeometry())
        self.settings.setValue("state", self.saveState(LAYOUT_VERSION))
        self.settings.sync()

    def closeEvent(self, event: QtGui.QCloseEvent) -> None:
        self.save_layout()
        self.shutdown()
        super().closeEvent(event)

    def shutdown(self) -> None:
        self.status_timer.stop()
        self.scan_timer.stop()
        for panel in (self.instruments, self.plots, self.spectrum, self.camera, self.scans, self.events):
            panel.close_feeds()
        self.link.close()
