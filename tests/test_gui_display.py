"""The window on a real X display (Xvfb started here): it maps, attaches to the daemon and closes cleanly.

The other GUI tests run Qt offscreen; this one runs the xcb platform plugin and
its system libraries as a user's desktop does (`scripts/bootstrap.sh` installs
Xvfb and x11-utils on Debian when run as root).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator

import pytest

from .gui_support import DemoDaemon
from .waiting import wait_until

TITLE = "arrowdaq — local daemon"


def need(tool: str, package: str) -> str:
    path = shutil.which(tool)
    if path is None:  # a set-up problem, said plainly (not skipped: the check would silently vanish)
        raise AssertionError(f"{tool} missing: `make setup` as root on Debian installs it (apt-get install {package})")
    return path


@pytest.fixture
def display() -> Iterator[str]:
    """A fresh X server on a free display number (Xvfb picks it and writes it to a pipe)."""
    read, write = os.pipe()
    xvfb = subprocess.Popen(
        [need("Xvfb", "xvfb"), "-displayfd", str(write), "-screen", "0", "1600x1000x24", "-nolisten", "tcp"],
        pass_fds=(write,),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    os.close(write)
    with os.fdopen(read) as pipe:
        number = pipe.readline().strip()  # blocks until the server is ready (or has died: "")
    try:
        assert number, f"Xvfb did not start: {xvfb.stderr.read().decode() if xvfb.poll() is not None else ''}"
        yield f":{number}"
    finally:
        xvfb.terminate()
        xvfb.wait(timeout=10)


def windows(display: str) -> str:
    """The X server's window tree (names and geometry), as xwininfo prints it.

    xwininfo exits 1 with BadWindow when a window disappears while it walks the tree (a window being mapped or
    closed at that moment, seen once in CI): the walk is repeated, a few times, before that counts as a failure.
    """
    for _attempt in range(5):
        out = subprocess.run(
            [need("xwininfo", "x11-utils"), "-root", "-tree", "-display", display],
            capture_output=True,
            text=True,
            timeout=10,
        )
        if out.returncode == 0:
            return out.stdout
        if "BadWindow" not in out.stderr:
            break
    raise AssertionError(f"xwininfo on {display} failed ({out.returncode}): {out.stderr.strip()}")


def map_state(display: str, title: str) -> str:
    out = subprocess.run(
        [need("xwininfo", "x11-utils"), "-name", title, "-display", display], capture_output=True, text=True, timeout=10
    )
    return next((line.split(":", 1)[1].strip() for line in out.stdout.splitlines() if "Map State" in line), "")


def test_arrowdaq_gui_opens_a_window_on_a_display_attaches_and_closes_cleanly(display, tmp_path):
    daemon = DemoDaemon(tmp_path, duration=300)
    env = {**daemon.env, "DISPLAY": display}
    env.pop("QT_QPA_PLATFORM")  # the real platform plugin (xcb), not offscreen
    layout = tmp_path / "gui.ini"
    gui = subprocess.Popen(
        [sys.executable, "-m", "arrowdaq.cli.main", "gui", "--layout", str(layout)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_until(lambda: f'"{TITLE}"' in windows(display) or gui.poll() is not None, 60, "the window", every=0.2)
        assert gui.poll() is None, gui.stdout.read()
        wait_until(lambda: map_state(display, TITLE) == "IsViewable", 60, "the window to map", every=0.2)
        with daemon.client() as client:  # the window attached: it reads streams through the live service

            def window_streams() -> set[str]:
                feeds = client.status()["live"]["clients"].values()
                return {f["stream"] for f in feeds if f["client"].startswith(f"arrowdaq gui pid {gui.pid} ")}

            wait_until(
                lambda: {"pm1/power", "cam1/frames", "_events"} <= window_streams(),
                60,
                "the window's streams",
                every=0.2,
            )
            gui.send_signal(signal.SIGTERM)  # what the daemon that opened a window does when it ends
            output, _ = gui.communicate(timeout=30)
            assert gui.returncode == 0, output
            assert "Traceback" not in output, output
            wait_until(lambda: not window_streams(), 60, "the daemon to let go of the closed window", every=0.2)
        assert f'"{TITLE}"' not in windows(display)
        assert layout.stat().st_size > 0  # the layout was saved on close
    finally:
        if gui.poll() is None:
            gui.kill()
            gui.wait(timeout=10)
        output = daemon.stop()
    assert "Traceback" not in output, output


def test_demo_opens_its_window_where_there_is_a_display_and_closes_it_at_the_end(display, tmp_path):
    env = {**os.environ, "DISPLAY": display, "ARROWDAQ_LIVE_FILE": str(tmp_path / "live.json")}
    for name in ("QT_QPA_PLATFORM", "ARROWDAQ_ADDRESS", "ARROWDAQ_TOKEN"):
        env.pop(name, None)
    demo = subprocess.Popen(
        [sys.executable, "-m", "arrowdaq.cli.main", "demo", "--duration", "25", "--data-dir", str(tmp_path / "data")],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_until(
            lambda: "arrowdaq —" in windows(display) or demo.poll() is not None, 60, "the demo's window", every=0.2
        )
        assert demo.poll() is None, demo.stdout.read()
        output, _ = demo.communicate(timeout=120)  # the demo ends by itself (--duration) and closes its window
    finally:
        if demo.poll() is None:
            demo.send_signal(signal.SIGINT)
            demo.wait(timeout=60)
    assert demo.returncode == 0, output
    assert "window: arrowdaq gui, pid" in output, output
    assert "arrowdaq —" not in windows(display)
