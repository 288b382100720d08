"""``arrowdaq bench``: run the benchmarks in ``benchmarks/`` (a source checkout)."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from ..errors import ArrowDAQError

BENCHMARKS = ("pipeline", "hub", "storage", "processors", "serial_transport", "gui", "scans", "live")


def benchmarks_dir() -> Path:
    here = Path(__file__).resolve()
    for parent in here.parents:
        candidate = parent / "benchmarks"
        if (candidate / "hub.py").is_file():
            return candidate
    raise ArrowDAQError("benchmarks/ not found: `arrowdaq bench` runs from a source checkout of arrowdaq")


def run(args: argparse.Namespace) -> int:
    folder = benchmarks_dir()
    names = args.only or [n for n in BENCHMARKS if (folder / f"{n}.py").is_file()]
    status = 0
    for name in names:
        script = folder / f"{name}.py"
        if not script.is_file():
            raise ArrowDAQError(f"no benchmark {name!r} in {folder} (benchmarks: {', '.join(BENCHMARKS)})")
        print(f"== {name} ==", flush=True)
        status |= subprocess.call([sys.executable, str(script), *(["--quick"] if args.quick else [])])
    return status


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "bench",
        help="run the benchmarks (pipeline, hub, storage, processors, serial transport, gui, scans)",
        description="Run the benchmarks; each prints ratios against a baseline measured in the same run.",
    )
    p.add_argument(
        "only", nargs="*", metavar="NAME", help=f"benchmarks to run (default: all of {', '.join(BENCHMARKS)})"
    )
    p.add_argument("--quick", action="store_true", help="short runs (smoke test)")
    p.set_defaults(func=run)
