"""``arrowdaq gui [ADDRESS]``: the window, attached to a running daemon through its live service."""

from __future__ import annotations

import argparse
import importlib.util
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from ..errors import ArrowDAQError


def run(args: argparse.Namespace) -> int:
    from ..gui.app import has_display

    if not has_display():
        raise ArrowDAQError(
            "no display (DISPLAY and WAYLAND_DISPLAY are unset); set QT_QPA_PLATFORM=offscreen to run without one"
        )
    try:
        from ..gui.app import run_gui
    except ImportError as exc:
        raise ArrowDAQError(f"the GUI needs PySide6 and pyqtgraph: pip install 'arrowdaq[gui]' ({exc})") from None
    return run_gui(args.address, token=args.token, settings=Path(args.layout) if args.layout else None)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "gui",
        help="open the window on a running daemon",
        description="Instruments, live plots, spectra, camera, scans, recording and events of a running daemon "
        "(arrowdaq run / demo), through its live service. Closing or killing the window never affects the daemon.",
    )
    p.add_argument(
        "address",
        nargs="?",
        default=None,
        help="the daemon's live-service address, e.g. grpc://127.0.0.1:8815 (default: the local daemon's)",
    )
    p.add_argument("--token", default=None, help="the daemon's token (default: read with the local daemon's address)")
    p.add_argument("--layout", metavar="FILE", default=None, help="where the window layout is kept (default: per user)")
    p.set_defaults(func=run)


class WindowProcess:
    """The window of a daemon started by ``arrowdaq demo`` / ``run --gui``: ``arrowdaq gui`` in its own process.

    It gets the address and token in its environment, runs in its own session
    (a Ctrl-C in the terminal reaches the daemon, which then closes the window),
    and writes what it has to say to a log file, not over the terminal view.
    """

    def __init__(self) -> None:
        self.process: subprocess.Popen[bytes] | None = None
        self.log: Path | None = None

    def start(self, address: str, token: str) -> str:
        """Start the window; returns one line saying where it is (or why it is not)."""
        from ..gui.app import has_display

        if not has_display():
            return "window: none (no display); the terminal shows the run"
        if importlib.util.find_spec("PySide6") is None or importlib.util.find_spec("pyqtgraph") is None:
            return "window: none (PySide6/pyqtgraph missing: pip install 'arrowdaq[gui]')"
        env = {**os.environ, "ARROWDAQ_ADDRESS": address, "ARROWDAQ_TOKEN": token}
        self.log = Path(tempfile.gettempdir()) / f"arrowdaq-gui-{os.getpid()}.log"
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "arrowdaq.cli.main", "gui"],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return f"window: arrowdaq gui, pid {self.process.pid} (messages in {self.log})"

    def close(self) -> None:
        """Ask the window to close (it saves its layout); do not wait."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()

    def wait(self, timeout: float = 5.0) -> None:
        if self.process is None:
            return
        self.close()
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
