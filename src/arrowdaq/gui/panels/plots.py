"""Live time plots of scalar streams: pick streams, a time window, autoscale, log axis, crosshair, pause.

Each stream keeps its last ``window`` seconds in NumPy arrays (appended per
batch, never per row). Drawing runs on a timer, only when something changed,
and gives each curve only what fits the plot: clipped to the view, min/max per
pixel.
"""

from __future__ import annotations

import functools
import time

import numpy as np
import pyarrow as pa

from ..batches import times_values
from ..decimate import for_display
from ..describe import Description
from ..link import Link, Watch
from ..qt import QtCore, QtWidgets, pg

#: At most this many points per stream are kept (a 1 kHz stream fills it in ~17 min).
MAX_POINTS = 1_000_000
COLOURS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf"]


class History:
    """The recent (t, value) points of one stream, oldest first."""

    def __init__(self) -> None:
        self.t = np.empty(0)
        self.v = np.empty(0)

    def extend(self, t: np.ndarray, v: np.ndarray, keep_s: float) -> None:
        self.t = np.concatenate((self.t, t))
        self.v = np.concatenate((self.v, v))
        if len(self.t) > 1 and self.t[-1] < self.t[-2]:  # out of order across batches: sort once
            order = np.argsort(self.t, kind="stable")
            self.t, self.v = self.t[order], self.v[order]
        start = max(int(np.searchsorted(self.t, self.t[-1] - keep_s)) if len(self.t) else 0, len(self.t) - MAX_POINTS)
        if start > 0:
            self.t, self.v = self.t[start:], self.v[start:]


class PlotPanel(QtWidgets.QWidget):
    """See the module docstring."""

    def __init__(self, link: Link, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.link = link
        self.histories: dict[str, History] = {}
        self.curves: dict[str, pg.PlotDataItem] = {}
        self.units: dict[str, str] = {}
        self.watches: dict[str, Watch] = {}
        self._dirty = False
        self.frames_drawn = 0
        self.pixels = 0  # the plot's width at the last drawing: points per curve are at most twice that

        self.picker = QtWidgets.QListWidget()
        self.picker.setToolTip("Tick the streams to plot")
        self.picker.setMinimumWidth(215)
        self.picker.setMaximumWidth(260)
        self.picker.itemChanged.connect(self._on_pick)

        self.window_s = QtWidgets.QDoubleSpinBox()
        self.window_s.setRange(1, 3600)
        self.window_s.setValue(60)
        self.window_s.setSuffix(" s")
        self.window_s.setToolTip("Time window shown (and kept)")
        self.autoscale = QtWidgets.QCheckBox("Autoscale Y")
        self.autoscale.setChecked(True)
        self.log_y = QtWidgets.QCheckBox("Log Y")
        self.grid = QtWidgets.QCheckBox("Grid")
        self.grid.setToolTip("Grid lines (they halve the frame rate of a scrolling plot: the axes repaint every frame)")
        self.pause = QtWidgets.QPushButton("Pause")
        self.pause.setCheckable(True)
        self.pause.setToolTip("Freeze the plot; data keeps arriving and shows when you resume")
        self.pause.toggled.connect(lambda on: self.pause.setText("Resume" if on else "Pause"))
        self.readout = QtWidgets.QLabel("move the mouse over the plot to read values")
        self.readout.setTextInteractionFlags(QtCore.Qt.TextInteractionFlag.TextSelectableByMouse)

        self.plot = pg.PlotWidget(axisItems={"bottom": pg.DateAxisItem()})
        self.plot.setLabel("bottom", "time")
        self.grid.toggled.connect(lambda on: self.plot.showGrid(x=on, y=on, alpha=0.3))
        self.legend = self.plot.addLegend(offset=(10, 10))
        self.vline = pg.InfiniteLine(angle=90, movable=False, pen=pg.mkPen("#888", width=1))
        self.hline = pg.InfiniteLine(angle=0, movable=False, pen=pg.mkPen("#888", width=1))
        self.plot.addItem(self.vline, ignoreBounds=True)
        self.plot.addItem(self.hline, ignoreBounds=True)
        self.plot.scene().sigMouseMoved.connect(self._on_mouse)
        self.log_y.toggled.connect(lambda on: self.plot.setLogMode(y=on))

        self.empty = pg.TextItem("tick streams on the left to plot them", color="#aaa", anchor=(0.5, 0.5))
        self.empty.setPos(0.5, 0.5)
        self.plot.addItem(self.empty, ignoreBounds=True)

        controls = QtWidgets.QHBoxLayout()
        controls.addWidget(QtWidgets.QLabel("Window"))
        for w in (self.window_s, self.autoscale, self.log_y, self.grid, self.pause):
            controls.addWidget(w)
        controls.addStretch(1)
        right = QtWidgets.QVBoxLayout()
        right.addLayout(controls)
        right.addWidget(self.plot, 1)
        right.addWidget(self.readout)
        left = QtWidgets.QVBoxLayout()
        left.addWidget(QtWidgets.QLabel("Streams (tick to plot)"))
        left.addWidget(self.picker, 1)
        layout = QtWidgets.QHBoxLayout(self)
        layout.addLayout(left)
        layout.addLayout(right, 1)

        self.timer = QtCore.QTimer(self)
        self.timer.timeout.connect(self.redraw)
        self.timer.start(33)

    # --- streams ------------------------------------------------------------------
    def set_description(self, description: Description, default: list[str] | None = None) -> None:
        """Offer the scalar streams; tick ``default`` (or keep what was ticked)."""
        ticked = set(self.selected()) or set(default or [])
        self.picker.blockSignals(True)
        self.picker.clear()
        for name in description.streams_of_kind("scalar"):
            info = description.streams[name]
            self.units[name] = info.unit
            item = QtWidgets.QListWidgetItem(f"{name} [{info.unit}]" if info.unit else name)
            item.setData(QtCore.Qt.ItemDataRole.UserRole, name)
            item.setFlags(item.flags() | QtCore.Qt.ItemFlag.ItemIsUserCheckable)
            item.setCheckState(QtCore.Qt.CheckState.Checked if name in ticked else QtCore.Qt.CheckState.Unchecked)
            self.picker.addItem(item)
        self.picker.blockSignals(False)
        for name in ticked:
            self.show_stream(name)

    def selected(self) -> list[str]:
        return [
            self.picker.item(i).data(QtCore.Qt.ItemDataRole.UserRole)
            for i in range(self.picker.count())
            if self.picker.item(i).checkState() == QtCore.Qt.CheckState.Checked
        ]

    def _on_pick(self, item: QtWidgets.QListWidgetItem) -> None:
        name = item.data(QtCore.Qt.ItemDataRole.UserRole)
        if item.checkState() == QtCore.Qt.CheckState.Checked:
            self.show_stream(name)
        else:
            self.hide_stream(name)

    def show_stream(self, name: str) -> None:
        if name in self.curves:
            return
        used = {c.opts["pen"].color().name() for c in self.curves.values()}
        colour = next((c for c in COLOURS if c not in used), COLOURS[len(self.curves) % len(COLOURS)])
        unit = self.units.get(name, "")
        self.curves[name] = self.plot.plot(
            [], [], pen=pg.mkPen(colour, width=1), name=f"{name} [{unit}]" if unit else name
        )
        self.histories[name] = History()
        self.watches[name] = self.link.watch(name, functools.partial(self.add_batches, name))
        self._label_axes()

    def _label_axes(self) -> None:
        """The Y axis says the unit of what is plotted (several units: all of them); an empty plot says what to do."""
        units = sorted({self.units.get(n, "") for n in self.curves} - {""})
        if len(units) == 1:
            self.plot.setLabel("left", "value", units=units[0])
        else:
            self.plot.setLabel("left", "value" + (f" ({', '.join(units)})" if units else ""))
        self.empty.setVisible(not self.curves)

    def hide_stream(self, name: str) -> None:
        curve = self.curves.pop(name, None)
        if curve is not None:
            self.plot.removeItem(curve)
            self.legend.removeItem(curve)
        self.histories.pop(name, None)
        watch = self.watches.pop(name, None)
        if watch is not None:
            self.link.unwatch(watch)
        self._label_axes()

    def add_batches(self, name: str, batches: list[pa.RecordBatch]) -> None:
        history = self.histories.get(name)
        if history is None or not batches:
            return
        parts = [times_values(b) for b in batches]
        history.extend(np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]), self.keep_s)
        self._dirty = True

    def add_points(self, name: str, t: np.ndarray, v: np.ndarray) -> None:
        """Add points directly (the benchmark, and panels that compute their own series)."""
        self.histories[name].extend(t, v, self.keep_s)
        self._dirty = True

    @property
    def keep_s(self) -> float:
        return float(self.window_s.value())

    # --- drawing --------------------------------------------------------------------
    def redraw(self, force: bool = False) -> None:
        if (not self._dirty and not force) or self.pause.isChecked():
            return
        self._dirty = False
        ends = [h.t[-1] for h in self.histories.values() if len(h.t)]
        if not ends:
            return
        x1 = max(ends)
        x0 = x1 - self.keep_s
        pixels = self.pixels = max(int(self.plot.getPlotItem().vb.width()), 100)
        for name, curve in self.curves.items():
            h = self.histories[name]
            x, y = for_display(h.t, h.v, x0, x1, pixels)
            if self.log_y.isChecked():
                y = np.where(y > 0, y, np.nan)
            curve.setData(x, y, connect="finite")
        self.plot.setXRange(x0, x1, padding=0)
        if self.autoscale.isChecked():
            self.plot.enableAutoRange(axis="y")
        else:
            self.plot.disableAutoRange(axis="y")
        self.frames_drawn += 1

    def _on_mouse(self, pos: QtCore.QPointF) -> None:
        vb = self.plot.getPlotItem().vb
        if not self.plot.sceneBoundingRect().contains(pos):
            return
        p = vb.mapSceneToView(pos)
        self.vline.setPos(p.x())
        self.hline.setPos(p.y())
        parts = [time.strftime("%H:%M:%S", time.localtime(p.x()))]
        for name, h in self.histories.items():
            if len(h.t) and h.t[0] <= p.x() <= h.t[-1] + 1.0:  # no value before a stream's first point
                i = min(int(np.searchsorted(h.t, p.x())), len(h.t) - 1)
                parts.append(f"{name} = {h.v[i]:.6g} {self.units.get(name, '')}".rstrip())
            else:
                parts.append(f"{name}: no data here")
        self.readout.setText("   ".join(parts))

    def close_feeds(self) -> None:
        for name in list(self.curves):
            self.hide_stream(name)
