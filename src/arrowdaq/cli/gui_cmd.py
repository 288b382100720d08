"""``arrowdaq gui [ADDRESS]``: the window, attached to a running daemon through its live service."""

from __future__ import annotations

import argparse
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
