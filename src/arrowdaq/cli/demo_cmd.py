"""``arrowdaq demo``: the simulated optical table, every instrument, processors, recording."""

from __future__ import annotations

import argparse
import tomllib
from importlib import resources

from ..app.config import parse_config
from .run_cmd import positive_seconds, run_and_report


def demo_config_text() -> str:
    return resources.files("arrowdaq").joinpath("configs/demo.toml").read_text(encoding="utf-8")


def run(args: argparse.Namespace) -> int:
    from ..app.demo import demo_sequence, prepare_table

    text = demo_config_text()
    config = parse_config(tomllib.loads(text), "demo.toml")
    return run_and_report(config, text, args, extra=demo_sequence, source="demo.toml", prepare=prepare_table)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "demo",
        help="run the simulated optical table demo",
        description="Simulated laser, half-wave plate, stage, power meter, scope and camera on one optical table, "
        "with an FFT, a filter and a trigger, recorded to an HDF5 run file.",
    )
    p.add_argument(
        "--duration",
        type=positive_seconds,
        default=None,
        metavar="S",
        help="stop after S seconds (default: until Ctrl-C)",
    )
    p.add_argument("--data-dir", metavar="DIR", help="where the run file goes (default: ./data)")
    p.add_argument(
        "--gui",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="open the window (default: when a display exists)",
    )
    p.set_defaults(func=run)
