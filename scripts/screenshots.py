"""Render the GUI against the demo daemon, offscreen, into docs/images/ (the README shows them).

Starts ``arrowdaq demo`` with its own address file, opens the window in this
process with ``QT_QPA_PLATFORM=offscreen``, lets data flow, runs a short scan
when the daemon has a scan engine, and saves the main window and each panel.

    .venv/bin/python scripts/screenshots.py [--out docs/images] [--seconds 12]
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

PANELS = {
    "Instruments": "gui-instruments.png",
    "Live plots": "gui-plots.png",
    "Spectrum": "gui-spectrum.png",
    "Camera": "gui-camera.png",
    "Scans": "gui-scans.png",
    "Recording": "gui-recording.png",
    "Log / events": "gui-events.png",
}


def wait(app, seconds: float, until=lambda: False) -> None:
    """Run the Qt loop for ``seconds`` or until ``until()``."""
    end = time.monotonic() + seconds
    while time.monotonic() < end and not until():
        app.processEvents()
        time.sleep(0.02)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "docs" / "images")
    parser.add_argument("--seconds", type=float, default=12.0, help="how long data flows before the pictures")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    tmp = Path(tempfile.mkdtemp(prefix="arrowdaq-screens-"))
    os.environ["ARROWDAQ_LIVE_FILE"] = str(tmp / "live.json")
    daemon = subprocess.Popen(
        [sys.executable, "-m", "arrowdaq.cli.main", "demo", "--no-gui", "--duration", "300", "--data-dir", str(tmp)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        from arrowdaq.gui.app import live_connector
        from arrowdaq.gui.link import Link
        from arrowdaq.gui.qt import application
        from arrowdaq.gui.window import MainWindow

        app = application()
        link = Link(live_connector(None), "")
        window = MainWindow(link, tmp / "gui.ini")
        window.resize(1800, 1100)
        window.show()
        end = time.monotonic() + 60
        while not (tmp / "live.json").exists() and time.monotonic() < end:
            time.sleep(0.1)
        link.open()
        wait(app, 30, lambda: link.state == "connected")
        if link.state != "connected":
            print(f"screenshots: the demo daemon did not answer ({link.state})", file=sys.stderr)
            return 1
        plots = window.plots
        for i in range(plots.picker.count()):  # the power meter and its low-pass filter
            item = plots.picker.item(i)
            wanted = item.text().startswith(("pm1/power", "pm1_lowpass/filtered"))
            item.setCheckState(item.checkState().Checked if wanted else item.checkState().Unchecked)
        scans = window.scans
        wait(app, 10, lambda: "scan" in scans.plans)
        wait(app, 8)  # the demo lights the table first (laser on, shutter open)
        if "scan" in scans.plans:  # the half-wave plate turned through 90 degrees: Malus's law on the power meter
            scans.plan.setCurrentText("scan")
            for name, value in {"axis": "hwp", "start": 0, "stop": 90, "num": 19, "detectors": "pm1"}.items():
                scans.fields[name].setText(str(value))
            scans.start_scan()
            wait(app, 120, lambda: scans.outcome is not None)
        wait(app, args.seconds)
        scene = plots.plot.getPlotItem().vb.sceneBoundingRect()
        where = scene.topLeft() + (scene.bottomRight() - scene.topLeft()) * 0.85
        plots._on_mouse(where)  # the crosshair and its readout over recent data, as under the mouse
        wait(app, 0.5)
        window.grab().save(str(args.out / "gui-main.png"))
        for title, name in PANELS.items():
            window.docks[title].grab().save(str(args.out / name))
        print(f"screenshots: {len(PANELS) + 1} images in {args.out}")
        window.close()
        return 0
    finally:
        daemon.send_signal(signal.SIGINT)
        try:
            daemon.wait(timeout=30)
        except subprocess.TimeoutExpired:
            daemon.kill()


if __name__ == "__main__":
    sys.exit(main())
