"""GUI drawing speed, offscreen: frames per second of a live plot and of a camera image.

* Live plot: 2 curves of 100,000 points each, 1,000 new points per curve per
  frame (a sliding window), drawn by the GUI's PlotPanel (clip to view, min/max
  per pixel). Baseline in the same run: the same curves handed whole to a bare
  pyqtgraph PlotWidget every frame (what a first GUI does).
* Camera: 2048 x 2048 uint16 frames drawn by the CameraPanel (explicit levels,
  256-entry lookup table, ROI statistics). Baseline: pyqtgraph's ImageView with
  its defaults (auto levels and a histogram of every frame).

A frame is counted when the widget has been rendered (``grab()``), so the
numbers include Qt's painting. Targets: >= 30 fps (plot), >= 10 fps (camera).

    QT_QPA_PLATFORM=offscreen .venv/bin/python benchmarks/gui.py [--quick]
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np

from arrowdaq.gui.link import Link
from arrowdaq.gui.panels.camera import CameraPanel
from arrowdaq.gui.panels.plots import PlotPanel
from arrowdaq.gui.qt import application, pg

POINTS = 100_000
NEW_PER_FRAME = 1_000
SIZE = (1280, 800)


def unconnected_link() -> Link:
    def refuse():
        raise ConnectionError("benchmark: no daemon")

    return Link(refuse, "benchmark")


def series(seed: int, n: int, t0: float) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return t0 + np.arange(n) * 1e-3, np.cumsum(rng.normal(size=n))


def fps(draw, frames: int) -> float:
    """1 / the median frame time (the machine is shared: the median ignores frames another process delayed)."""
    draw(0)  # warm-up (first layout, caches)
    times = []
    for i in range(1, frames + 1):
        t0 = time.perf_counter()
        draw(i)
        times.append(time.perf_counter() - t0)
    return 1.0 / float(np.median(times))


def plot_panel(frames: int) -> float:
    panel = PlotPanel(unconnected_link())
    panel.timer.stop()
    panel.resize(*SIZE)
    panel.show()
    panel.window_s.setValue(POINTS * 1e-3)
    t0 = 1.7e9
    for name, seed in (("a/v", 1), ("b/v", 2)):
        panel.units[name] = "V"
        panel.show_stream(name)
        panel.add_points(name, *series(seed, POINTS, t0))

    def draw(i: int) -> None:
        start = t0 + (POINTS + i * NEW_PER_FRAME) * 1e-3
        for name, seed in (("a/v", 1), ("b/v", 2)):
            t, v = series(seed + i, NEW_PER_FRAME, start)
            panel.add_points(name, t, v)
        panel.redraw()
        panel.grab()

    result = fps(draw, frames)
    assert all(len(h.t) >= POINTS for h in panel.histories.values())
    panel.close()
    return result


def plot_baseline(frames: int) -> float:
    widget = pg.PlotWidget()
    widget.resize(*SIZE)
    widget.show()
    curves = [widget.plot(pen=pg.mkPen(c, width=1)) for c in ("#1f77b4", "#ff7f0e")]
    data = [series(s, POINTS, 1.7e9) for s in (1, 2)]

    def draw(i: int) -> None:
        for curve, (t, v) in zip(curves, data, strict=True):
            curve.setData(t + i, np.roll(v, i * NEW_PER_FRAME))
        widget.grab()

    result = fps(draw, frames)
    widget.close()
    return result


def camera_frames() -> list[np.ndarray]:
    yy, xx = np.mgrid[0:2048, 0:2048]
    rng = np.random.default_rng(3)
    out = []
    for k in range(4):
        spot = 3000 * np.exp(-((xx - 900 - 60 * k) ** 2 + (yy - 1100) ** 2) / (2 * 150.0**2))
        out.append((spot + rng.poisson(100, size=spot.shape)).astype(np.uint16))
    return out


def camera_panel(frames: int, images: list[np.ndarray]) -> float:
    panel = CameraPanel(unconnected_link())
    panel.timer.stop()
    panel.resize(*SIZE)
    panel.show()

    def draw(i: int) -> None:
        panel.last_number = i
        panel.set_frame(images[i % len(images)])
        panel.redraw()
        panel.grab()

    result = fps(draw, frames)
    panel.close()
    return result


def camera_baseline(frames: int, images: list[np.ndarray]) -> float:
    view = pg.ImageView()
    view.resize(*SIZE)
    view.show()

    def draw(i: int) -> None:
        view.setImage(images[i % len(images)])
        view.grab()

    result = fps(draw, frames)
    view.close()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer frames (a smoke run)")
    args = parser.parse_args()
    application()
    n_plot, n_cam = (10, 5) if args.quick else (100, 30)
    print(f"GUI drawing, offscreen, {SIZE[0]}x{SIZE[1]} widgets (fps = rendered frames per second)")
    ours, base = plot_panel(n_plot), plot_baseline(max(n_plot // 5, 3))
    print(
        f"live plot, 2 x {POINTS:,} points: {ours:6.1f} fps  (bare pyqtgraph, whole curves: {base:5.1f} fps; "
        f"x{ours / base:.1f})  target >= 30"
    )
    images = camera_frames()
    ours, base = camera_panel(n_cam, images), camera_baseline(max(n_cam // 3, 3), images)
    print(
        f"camera, 2048x2048 uint16:          {ours:6.1f} fps  (pyqtgraph ImageView defaults: {base:5.1f} fps; "
        f"x{ours / base:.1f})  target >= 10"
    )


if __name__ == "__main__":
    main()
