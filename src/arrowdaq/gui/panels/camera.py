"""Camera frames: the newest image with its histogram and levels, a colour map, an ROI, fps and drops.

Only the newest frame is drawn, and no finer than the screen shows it (every
k-th pixel when k image pixels fall on one screen pixel; the ROI statistics use
every pixel). ImageItem gets explicit levels and a 256-entry lookup table.
Dropped frames are the gaps in ``frame_number``: frames the camera made that
this window never showed.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pyarrow as pa

from ..batches import frames
from ..describe import Description
from ..link import Link, Watch
from ..qt import QtCore, QtWidgets, pg

COLOUR_MAPS = ["viridis", "inferno", "magma", "plasma", "CET-L1"]


#: Entries of the colour lookup table (pyqtgraph's histogram would make 512 for 16-bit images: slower, no better).
LUT_SIZE = 256


class Histogram(pg.HistogramLUTItem):
    """The histogram and levels beside the image, with a 256-entry lookup table."""

    def getLookupTable(self, img: Any = None, n: int | None = None, alpha: Any = None) -> Any:
        return super().getLookupTable(img, LUT_SIZE, alpha)


class CameraPanel(QtWidgets.QWidget):
    """See the module docstring."""

    def __init__(self, link: Link, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.link = link
        self.watch: Watch | None = None
        self.frame: np.ndarray | None = None
        self.last_number: int | None = None
        self.dropped = 0
        self.shown = 0
        self.frames_drawn = 0
        self._dirty = False
        self._times: list[float] = []
        self._levels_set = False

        self.picker = QtWidgets.QComboBox()
        self.picker.currentTextChanged.connect(self.show_stream)
        self.cmap = QtWidgets.QComboBox()
        self.cmap.addItems(COLOUR_MAPS)
        self.cmap.setToolTip("Colour map")
        self.cmap.currentTextChanged.connect(self._set_cmap)
        self.auto_levels = QtWidgets.QCheckBox("Auto levels")
        self.auto_levels.setChecked(True)
        self.auto_levels.setToolTip(
            "Levels follow each frame's min and max; dragging the histogram's levels turns this off"
        )
        self.auto_levels.toggled.connect(self._set_auto_levels)
        self.pause = QtWidgets.QPushButton("Pause")
        self.pause.setCheckable(True)
        self.pause.toggled.connect(lambda on: self.pause.setText("Resume" if on else "Pause"))
        self.info = QtWidgets.QLabel("no frame yet")
        self.roi_info = QtWidgets.QLabel("ROI: -")
        self.roi_info.setToolTip(
            "Sum and mean of the pixels inside the yellow rectangle (drag it, resize it by its corner)"
        )

        self.view = pg.GraphicsLayoutWidget()
        self.vb = self.view.addViewBox(lockAspect=True, invertY=True)
        self.image = pg.ImageItem(axisOrder="row-major")
        self.vb.addItem(self.image)
        self.hist = Histogram(image=self.image)
        self.hist.setToolTip("Histogram of the frame: drag the lines to set the display levels")
        self._drawing = False  # levels set by the panel itself, not dragged by the user
        self.hist.sigLevelChangeFinished.connect(self._levels_dragged)
        self.view.addItem(self.hist)
        self.roi = pg.RectROI([10, 10], [50, 50], pen=pg.mkPen("y", width=1))
        self.vb.addItem(self.roi)
        self.roi.sigRegionChanged.connect(self._update_roi)
        self._set_cmap(self.cmap.currentText())

        top = QtWidgets.QHBoxLayout()
        top.addWidget(QtWidgets.QLabel("Stream"))
        top.addWidget(self.picker, 1)
        top.addWidget(QtWidgets.QLabel("Colours"))
        top.addWidget(self.cmap)
        top.addWidget(self.auto_levels)
        top.addWidget(self.pause)
        bottom = QtWidgets.QHBoxLayout()
        bottom.addWidget(self.info, 1)
        bottom.addWidget(self.roi_info, 1)
        layout = QtWidgets.QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.view, 1)
        layout.addLayout(bottom)

        self.timer = QtCore.QTimer(self)
        self.timer.timeout.connect(self.redraw)
        self.timer.start(33)

    def _set_cmap(self, name: str) -> None:
        cmap = pg.colormap.get(name)
        self.hist.gradient.setColorMap(cmap)  # the histogram hands the image its 256-entry table
        self.hist.gradient.showTicks(False)  # 256 colour stops as ticks cost ~30 ms a frame to paint

    def set_description(self, description: Description) -> None:
        current = self.picker.currentText()
        names = description.streams_of_kind("image")
        self.picker.blockSignals(True)
        self.picker.clear()
        self.picker.addItems(names)
        preferred = current if current in names else (names[0] if names else "")
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
        self.frame, self.last_number, self._levels_set = None, None, False
        if name:
            self.watch = self.link.watch(name, self.add_batches)

    def add_batches(self, batches: list[pa.RecordBatch]) -> None:
        pixels, numbers = frames(batches[-1])
        if len(numbers) == 0:
            return
        newest = int(numbers[-1])
        received = sum(b.num_rows for b in batches)
        if self.last_number is not None and newest > self.last_number:
            self.dropped += max(newest - self.last_number - received, 0)
        self.last_number = newest
        self.set_frame(pixels[-1])

    def set_frame(self, frame: np.ndarray) -> None:
        """Show ``frame`` at the next redraw (also used by the benchmark)."""
        self.frame = frame
        self._dirty = True

    def _levels_dragged(self, *_: object) -> None:
        if not self._drawing:
            self.auto_levels.setChecked(False)  # the user chose levels: keep them

    def fit_levels(self) -> None:
        if self.frame is not None:
            lo, hi = float(self.frame.min()), float(self.frame.max())
            self.hist.setLevels(lo, hi if hi > lo else lo + 1)

    def _set_auto_levels(self, on: bool) -> None:
        if on:
            self.redraw(force=True)

    def redraw(self, force: bool = False) -> None:
        if self.frame is None or (not self._dirty and not force) or self.pause.isChecked():
            return
        self._dirty = False
        self._drawing = True
        try:
            self._draw()
        finally:
            self._drawing = False

    def display_step(self) -> int:
        """Image pixels per screen pixel (1 when zoomed in): a 2048-px frame in a 400-px view draws every 5th."""
        assert self.frame is not None
        h, w = self.frame.shape[:2]
        (x0, x1), (y0, y1) = self.vb.viewRange()
        span_x, span_y = min(x1 - x0, w), min(y1 - y0, h)
        width, height = max(self.vb.width(), 1.0), max(self.vb.height(), 1.0)
        return max(int(min(span_x / width, span_y / height)), 1)

    def _show(self, levels: tuple[float, float]) -> None:
        """Draw the frame, every ``display_step``-th pixel, stretched over the frame's full size."""
        assert self.frame is not None
        h, w = self.frame.shape[:2]
        step = self.display_step() if self._levels_set else 1
        shown = self.frame[::step, ::step] if step > 1 else self.frame
        self.image.setImage(shown, autoLevels=False, levels=levels)
        self.image.setRect(QtCore.QRectF(0, 0, w, h))  # image coordinates stay the frame's pixels (the ROI's)

    def _draw(self) -> None:
        assert self.frame is not None
        if not self._levels_set:
            self._show((0, 1))
            self.fit_levels()
            h, w = self.frame.shape[:2]
            self.roi.setPos((w / 4, h / 4))
            self.roi.setSize((w / 2, h / 2))
            self._levels_set = True
        else:
            if self.auto_levels.isChecked():
                self.fit_levels()
            self._show(self.hist.getLevels())
        self.frames_drawn += 1
        self.shown += 1
        now = time.monotonic()
        self._times = [t for t in self._times if now - t < 2.0] + [now]
        fps = (len(self._times) - 1) / (self._times[-1] - self._times[0]) if len(self._times) > 1 else 0.0
        h, w = self.frame.shape[:2]
        self.info.setText(
            f"frame {self.last_number if self.last_number is not None else '-'}  {w}×{h}  "
            f"{fps:.1f} fps shown  dropped {self.dropped}"
        )
        self._update_roi()

    def _update_roi(self) -> None:
        if self.frame is None:
            return
        (x, y), (w, h) = self.roi.pos(), self.roi.size()
        x0, y0 = max(int(round(x)), 0), max(int(round(y)), 0)
        region = self.frame[y0 : max(int(round(y + h)), 0), x0 : max(int(round(x + w)), 0)]
        if region.size == 0:
            self.roi_info.setText("ROI: outside the image")
            return
        total = float(np.sum(region, dtype=np.float64))
        self.roi_info.setText(
            f"ROI {region.shape[1]}×{region.shape[0]} px: sum {total:.4g}  mean {total / region.size:.4g}"
        )

    def close_feeds(self) -> None:
        self.show_stream("")
