"""``arrowdaq gui [ADDRESS]``: the window, attached to a running daemon through its live service.

The CLI and the GUI are separate layers (neither imports the other): this
command checks that a window can open, then becomes ``python -m arrowdaq.gui``.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from ..errors import ArrowDAQError


def has_display() -> bool:
    """True where a window can open (an X11 or Wayland display, a non-Linux desktop, or offscreen Qt)."""
    if os.environ.get("QT_QPA_PLATFORM", "").startswith(("offscreen", "minimal")):
        return True
    if sys.platform.startswith("linux"):
        return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    return True


def gui_missing() -> str | None:
    """What the window needs and is not installed, or None."""
    missing = [m for m in ("PySide6", "pyqtgraph") if importlib.util.find_spec(m) is None]
    return f"{' and '.join(missing)} missing: pip install 'arrowdaq[gui]'" if missing else None


def gui_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "arrowdaq.gui", *args]


def run(args: argparse.Namespace) -> int:
    if not has_display():
        raise ArrowDAQError(
            "no display (DISPLAY and WAYLAND_DISPLAY are unset); set QT_QPA_PLATFORM=offscreen to run without one"
        )
    if (missing := gui_missing()) is not None:
        raise ArrowDAQError(f"the window needs {missing}")
    argv = gui_command(*([args.address] if args.address else []))
    argv += [*(["--token", args.token] if args.token else []), *(["--layout", args.layout] if args.layout else [])]
    if args.tls_cert:
        from ..live.tls import read_certificate

        read_certificate(args.tls_cert)  # a wrong file is said here, not as a window that never connects
        argv += ["--tls-cert", str(Path(args.tls_cert).expanduser().absolute())]
    if os.name == "posix":
        sys.stdout.flush()
        os.execv(sys.executable, argv)  # this process becomes the window: its signals and exit status
    return subprocess.call(argv)


def register(subparsers: argparse._SubParsersAction) -> None:
    from .live_cmd import add_tls_cert_option

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
    add_tls_cert_option(p)
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

    def start(self, address: str, token: str, tls_cert: str | None = None) -> str:
        """Start the window; returns one line saying where it is (or why it is not)."""
        if not has_display():
            return "window: none (no display); the terminal shows the run"
        if (missing := gui_missing()) is not None:
            return f"window: none ({missing})"
        env = {**os.environ, "ARROWDAQ_ADDRESS": address, "ARROWDAQ_TOKEN": token}
        if tls_cert:
            from ..live.tls import CERT_ENV

            env[CERT_ENV] = tls_cert
        self.log = Path(tempfile.gettempdir()) / f"arrowdaq-gui-{os.getpid()}.log"
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(
                gui_command(),
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
