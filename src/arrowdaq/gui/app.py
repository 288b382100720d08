"""``arrowdaq gui``: the window, in its own process, attached to a daemon through the live service."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # Qt loads only when a window opens
    from .link import Connector


def live_connector(address: str | None, token: str | None = None, tls_cert: str | None = None) -> Connector:
    """Connect through the live-service client (the GUI's only import from arrowdaq)."""
    from ..live.client import connect

    name = f"arrowdaq gui pid {os.getpid()}"  # how the daemon's command log names this window
    return lambda: connect(address, token=token, name=name, tls_cert=tls_cert)


def run_gui(
    address: str | None = None, token: str | None = None, settings: Path | None = None, tls_cert: str | None = None
) -> int:
    """Open the window and run until it is closed; 0 on a normal close. ``tls_cert``: the certificate to
    trust for a ``grpc+tls://`` daemon (default: ARROWDAQ_TLS_CERT or the local daemon's address file)."""
    from .link import Link
    from .qt import QtCore, application
    from .window import MainWindow

    app = application(sys.argv[:1])
    link = Link(live_connector(address, token, tls_cert), address or "")
    window = MainWindow(link, settings)
    window.show()
    link.open()
    # Ctrl-C or SIGTERM (the daemon that opened the window is ending) closes it cleanly, layout saved
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: window.close())
    wake = QtCore.QTimer()
    wake.timeout.connect(lambda: None)
    wake.start(200)
    return app.exec()
