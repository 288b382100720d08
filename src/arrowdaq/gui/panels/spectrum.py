"""The newest trace of a vector stream (a spectrum from the FFT, a scope trace) against its own x axis.

The axis and its unit come from the stream (``x0``/``dx`` or ``x``, unit in the
field metadata), so an FFT is drawn in Hz and a scope trace in s. Only the
newest trace is drawn, clipped to the view and min/max-decimated per pixel.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from ..batches import Trace, last_trace
from ..decimate import for_display
from ..describe import Description
from ..link import Link, Watch
from ..qt import QtCore, QtWidgets, pg


class SpectrumPanel(QtWidgets.QWidget):
    """See the module docstring."""

    def __init__(self, link: Link, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.link = link
        self.watch: Watch | None = None
        self.trace: Trace | None = None
        self._dirty = False
        self.frames_drawn = 0

        self.picker = QtWidgets.QComboBox()
        self.picker.setToolTip("A trace or spectrum stream (one row = one trace)")
        self.picker.currentTextChanged.connect(self.show_stream)
        self.log_y = QtWidgets.QCheckBox("Log Y")
        self.log_y.setChecked(True)
        self.log_y.toggled.connect(self._set_log_y)
        self.pause = QtWidgets.QPushButton("Pause")
        self.pause.setCheckable(True)
        self.pause.toggled.connect(lambda on: self.pause.setText("Resume" if on else "Pause"))
        self.readout = QtWidgets.QLabel("move the mouse over the plot to read values")

        self.plot = pg.PlotWidget()
        self.plot.showGrid(x=True, y=True, alpha=0.3)
        self.plot.setLogMode(y=True)
        self.curve = self.plot.plot([], [], pen=pg.mkPen("#ffbb00", width=1))
        self.plot.scene().sigMouseMoved.connect(self._on_mouse)
        self.plot.getPlotItem().vb.sigXRangeChanged.connect(lambda *_: self.redraw(force=True))

        top = QtWidgets.QHBoxLayout()
        top.addWidget(QtWidgets.QLabel("Stream"))
        top.addWidget(self.picker, 1)
        top.addWidget(self.log_y)
        top.addWidget(self.pause)
        layout = QtWidgets.QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.plot, 1)
        layout.addWidget(self.readout)

        self.timer = QtCore.QTimer(self)
        self.timer.timeout.connect(self.redraw)
        self.timer.start(50)

    def set_description(self, description: Description) -> None:
        current = self.picker.currentText()
        names = description.streams_of_kind("vector")
        self.picker.blockSignals(True)
        self.picker.clear()
        self.picker.addItems(names)
        preferred = current if current in names else next((n for n in names if "fft" in n), names[0] if names else "")
        self.picker.setCurrentText(preferred)
        self.picker.blockSignals(False)
        if preferred:
            self.show_stream(preferred, force=True)

    def show_stream(self, name: str, force: bool = False) -> None:
        if self.watch is not None and self.watch.stream == name and not force:
            return
        if self.watch is not None:
            self.link.unwatch(self.watch)
            self.watch = None
        self.trace = None
        if name:
            self.watch = self.link.watch(name, self.add_batches)

    def add_batches(self, batches: list[pa.RecordBatch]) -> None:
        trace = last_trace(batches[-1])
        if trace is None:
            return
        if self.trace is None or trace.x_unit != self.trace.x_unit or len(trace.x) != len(self.trace.x):
            self.plot.setLabel("bottom", "frequency" if trace.x_unit == "Hz" else "x", units=trace.x_unit or None)
            self.plot.setLabel("left", self.picker.currentText(), units=trace.unit or None)
            self.plot.enableAutoRange()
        self.trace = trace
        self._dirty = True

    def _set_log_y(self, on: bool) -> None:
        self.plot.setLogMode(y=on)
        self.redraw(force=True)

    def redraw(self, force: bool = False) -> None:
        if self.trace is None or (not self._dirty and not force) or self.pause.isChecked():
            return
        self._dirty = False
        vb = self.plot.getPlotItem().vb
        t = self.trace
        (x0, x1), _ = vb.viewRange()
        if vb.autoRangeEnabled()[0]:  # following the data: the whole trace
            x0, x1 = t.x[0], t.x[-1]
        x, y = for_display(t.x, t.y, x0, x1, int(vb.width()) or 500)
        if self.log_y.isChecked():
            y = np.where(y > 0, y, np.nan)
        self.curve.setData(x, y, connect="finite")
        self.frames_drawn += 1

    def _on_mouse(self, pos: QtCore.QPointF) -> None:
        if self.trace is None or not self.plot.sceneBoundingRect().contains(pos):
            return
        p = self.plot.getPlotItem().vb.mapSceneToView(pos)
        t = self.trace
        i = int(np.clip(np.searchsorted(t.x, p.x()), 0, len(t.x) - 1))
        self.readout.setText(f"x = {t.x[i]:.6g} {t.x_unit}    y = {t.y[i]:.6g} {t.unit}")

    def close_feeds(self) -> None:
        self.show_stream("")
