"""``arrowdaq scan CONFIG PLAN ARGS... [-d DETECTOR]...``: start the instruments, run one scan, stop.

CONFIG is a configuration file or ``demo`` (the simulated optical table, its
laser switched on). The scan is the run: its file holds the scan table, the
plan, the outcome and the monitor streams the configuration records.
Ctrl-C aborts (motion stopped, the file closed with exit status ``aborted``).
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import tomllib
from pathlib import Path
from typing import Any

PLAN_HELP = """plans (ARGS in order; NAME=VALUE for options):
  count NUM [interval=S]                       time series
  scan AXIS START STOP NUM                     NUM points, both ends included
  step_scan AXIS START STOP STEP
  list_scan AXIS P1 P2 ...
  log_scan AXIS START STOP NUM
  rel_scan AXIS START STOP NUM                 relative to where AXIS stands
  grid_scan OUTER START STOP NUM INNER START STOP NUM [snake=true]
  angular_power_scan [AXIS START STOP STEP]    half-wave plate + Malus fit (default hwp 0 90 2, -d pm1)
axes: hwp, stage (its first axis), stage:2; detectors: pm1, laser/power"""


def plan_value(text: str) -> Any:
    """A command-line plan argument: a number, true/false, or a name."""
    lowered = text.lower()
    if lowered in ("true", "false", "yes", "no"):
        return lowered in ("true", "yes")
    try:
        number = float(text)
    except ValueError:
        return text
    return int(number) if number.is_integer() and "." not in text and "e" not in lowered else number


def plan_arguments(plan: str, words: list[str]) -> tuple[list[Any], dict[str, Any]]:
    args = [plan_value(w) for w in words if "=" not in w]
    kwargs = {k: plan_value(v) for k, _, v in (w.partition("=") for w in words if "=" in w)}
    if plan == "list_scan" and args:
        args = [args[0], args[1:]]
    return args, kwargs


def load(config: str) -> tuple[Any, str, str]:
    from ..app.config import load_config, parse_config

    if config == "demo":
        from .demo_cmd import demo_config_text

        text = demo_config_text()
        return parse_config(tomllib.loads(text), "demo.toml"), text, "demo.toml"
    path = Path(config)
    cfg = load_config(path)
    return cfg, path.read_text(encoding="utf-8"), str(path)


def run(args: argparse.Namespace) -> int:
    from ..scans.service import build_plan

    config, text, source = load(args.config)
    if args.data_dir is not None:
        config.run.data_dir = Path(args.data_dir)
    positional, keywords = plan_arguments(args.plan, args.args)
    plan = build_plan(args.plan, *positional, **keywords)  # a bad plan is refused before anything starts
    if args.latency_scale is not None:
        config.simulation.latency_scale = args.latency_scale
    return asyncio.run(_scan(config, text, source, plan, args))


async def _scan(config: Any, text: str, source: str, plan: Any, args: argparse.Namespace) -> int:
    from ..app.config import storage_options
    from ..app.demo import prepare_table
    from ..app.runner import Application
    from ..app.scanview import ScanView, print_result
    from ..scans.service import ScanService
    from ..storage import RunInfo

    record = list(config.storage.streams)
    config.storage.record = False  # the scan's own file is the run
    app = Application(config, config_text=text, source=source)
    service = ScanService(
        app.hub,
        options=storage_options(config),
        record=record,
        run=RunInfo(operator=config.run.operator, sample=config.run.sample, notes=config.run.notes, config=text),
        instruments=lambda: app.instruments,
        settle=args.settle,
        reads=args.reads,
    )
    loop = asyncio.get_running_loop()
    aborting = False

    def interrupt() -> None:
        nonlocal aborting
        if service.engine is not None and not aborting:
            aborting = True
            print("\naborting the scan (motion stopped; the file keeps the points measured)...", flush=True)
            try:
                service.abort()
            except Exception:
                pass

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, interrupt)
    try:
        await app.start()
        if args.config == "demo":
            await prepare_table(app.hub)
        if args.dry_run:
            dry = await service.dry_run(plan, args.detector)
            print(f"{plan.name}: {dry.points} points, about {dry.estimated_s:.1f} s", flush=True)
            for problem in dry.problems:
                print(f"  {problem}", flush=True)
            return 0 if dry.ok else 1
        with ScanView() as view:
            result = await service.run(plan, args.detector, observers=[view])
        print_result(result)
        return 0 if result.exit_status == "success" else 1
    finally:
        await service.close()  # a scan still running (an error) is aborted and its file closed
        await app.stop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "scan",
        help="run a scan (a plan over the instruments of a configuration)",
        description="Start the instruments of CONFIG (or the simulated table: demo), run PLAN, record it as a run "
        "file, stop. Example: arrowdaq scan demo scan hwp 0 90 46 -d pm1",
        epilog=PLAN_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("config", help="TOML configuration file, or 'demo'")
    p.add_argument("plan", help="plan name (see below)")
    p.add_argument("args", nargs="*", help="the plan's arguments")
    p.add_argument("-d", "--detector", action="append", default=[], metavar="DETECTOR", help="read at every point")
    p.add_argument("--data-dir", metavar="DIR", help="where the scan file goes (overrides [run] data_dir)")
    p.add_argument("--settle", type=float, default=0.0, metavar="S", help="wait S seconds after each move")
    p.add_argument("--reads", type=int, default=1, metavar="N", help="read each detector N times per point")
    p.add_argument("--dry-run", action="store_true", help="check limits and estimate the time; move nothing")
    p.add_argument("--latency-scale", type=float, metavar="X", help="simulated instruments: latency scale")
    p.set_defaults(func=run)
