"""The ``arrowdaq`` command: one entry point, one module per subcommand.

Each subcommand module has ``register(subparsers)``, which adds its parser and
sets ``func`` to a function ``(args) -> int`` (the exit status). Errors that
arrowdaq raises on purpose are printed as one line, without a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from ..errors import ArrowDAQError
from ..log import configure as configure_logging

#: Subcommand modules, in the order ``--help`` lists them.
SUBCOMMANDS = [
    "arrowdaq.cli.demo_cmd",
    "arrowdaq.cli.run_cmd",
    "arrowdaq.cli.live_cmd",
    "arrowdaq.cli.gui_cmd",
    "arrowdaq.cli.scan_cmd",
    "arrowdaq.cli.sim_cmd",
    "arrowdaq.cli.inspect_cmd",
    "arrowdaq.cli.runs_cmd",
    "arrowdaq.cli.export_cmd",
    "arrowdaq.cli.bench_cmd",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="arrowdaq", description="Data acquisition for laboratory instruments.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMANDS:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            continue  # not built yet
        module.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    configure_logging(logging.DEBUG if args.verbose else logging.WARNING)
    try:
        return int(args.func(args) or 0)
    except ArrowDAQError as exc:
        print(f"arrowdaq {args.command}: error: {exc}", file=sys.stderr)
        return int(getattr(exc, "exit_status", 1))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
