"""The ``arrowdaq`` command: one entry point, one module per subcommand.

Each subcommand module has ``register(subparsers)``, which adds its parser and
sets ``func`` to a function ``(args) -> int`` (the exit status). Errors that
arrowdaq raises on purpose are printed as one line, without a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import re
import sys
import traceback
from collections.abc import Sequence

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


class Parser(argparse.ArgumentParser):
    """argparse, with one more clear message: a positional argument given as an option.

    ``arrowdaq run --config lab.toml`` would otherwise answer only "unrecognized arguments: --config".
    Subparsers are made of this class too (argparse uses the parent's class).
    """

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        tokens = list(sys.argv[1:] if args is None else args)
        self.refuse_positional_as_option(tokens)
        return super().parse_known_args(tokens, namespace)

    def refuse_positional_as_option(self, tokens: list[str]) -> None:
        """``--config`` (or ``--config=lab.toml``) where CONFIG is positional: say how to give it."""
        positionals = [
            a for a in self._actions if not a.option_strings and not isinstance(a, argparse._SubParsersAction)
        ]
        options = [o for a in self._actions for o in a.option_strings]
        for i, token in enumerate(tokens):
            if token == "--":
                return
            flag, eq, value = token.partition("=")
            if not flag.startswith("--") or any(o.startswith(flag) for o in options):
                continue  # not a long option, or one of ours (argparse accepts abbreviations)
            name = flag[2:].replace("-", "_").lower()
            for n, action in enumerate(positionals):
                metavar = action.metavar if isinstance(action.metavar, str) else action.dest.upper()
                word = re.split(r"\W", metavar)[0].lower()  # driver, of DRIVER[=PORT|=pty]
                if not name or name not in (action.dest, action.dest.removesuffix("s"), word):
                    continue
                value = value if eq else (tokens[i + 1] if i + 1 < len(tokens) else "")
                example = f", as in `{self.prog} {value}`" if n == 0 and value and not value.startswith("-") else ""
                self.error(f"{flag} is not an option: {metavar} is given by position, without {flag}{example}")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="arrowdaq", description="Data acquisition for laboratory instruments.")
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
    if not args.verbose:  # gRPC's own lines (a refused TLS handshake) would come before our one-line error
        os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
    try:
        return int(args.func(args) or 0)
    except ArrowDAQError as exc:
        if args.verbose:  # the whole chain (a plugin's own traceback) for whoever writes drivers
            traceback.print_exception(exc)
        print(f"arrowdaq {args.command}: error: {exc}", file=sys.stderr)
        return int(getattr(exc, "exit_status", 1))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
