"""``python -m arrowdaq.gui [ADDRESS]``: the window (``arrowdaq gui`` runs this in its process)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from .app import run_gui


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="arrowdaq gui", description="The arrowdaq window on a running daemon.")
    parser.add_argument("address", nargs="?", default=None, help="the daemon's live-service address (default: local)")
    parser.add_argument("--token", default=None, help="the daemon's token (default: with the local address)")
    parser.add_argument("--layout", metavar="FILE", default=None, help="where the window layout is kept")
    parser.add_argument("--tls-cert", metavar="PEM", default=None, help="the certificate to trust (grpc+tls)")
    args = parser.parse_args(argv)
    os.environ.setdefault("GRPC_VERBOSITY", "ERROR")  # the window says why a connection fails; no gRPC lines
    layout = Path(args.layout) if args.layout else None
    return run_gui(args.address, token=args.token, settings=layout, tls_cert=args.tls_cert)


if __name__ == "__main__":
    sys.exit(main())
