"""``arrowdaq scan CONFIG PLAN ARGS... [-d DETECTOR]...``: start the instruments, run one scan, stop.

CONFIG is a configuration file or ``demo`` (the simulated optical table, its
laser switched on). The scan is the run: its file holds the scan table, the
plan, the outcome and the monitor streams the configuration records.
Ctrl-C aborts (motion stopped, the file closed with exit status ``aborted``).

``arrowdaq scan --connect [ADDRESS] PLAN ARGS...`` runs the scan in a running
daemon instead (its engine, its instruments, its data directory), with the
same live table, progress and result; Ctrl-C aborts the scan there too.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import tomllib
from pathlib import Path
from typing import Any

from ..errors import ArrowDAQError


class UsageError(ArrowDAQError):
    """The command line lacks something: said in one line, exit status 2."""

    exit_status = 2


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
    words = [args.config, args.plan, *args.args]
    words = [w for w in words if w is not None]
    address = args.connect
    if address is not None:  # `--connect scan hwp ...`: the first word after --connect is the plan, not an address
        if address and "://" not in address:
            words, address = [address, *words], ""
        if not words:
            raise UsageError("--connect: give a plan (or a configured scan's name)")
        return run_remote(args, address or None, words[0], words[1:])
    if len(words) < 2:
        raise UsageError("give CONFIG and PLAN (or a scan named in CONFIG's [[scans]])")
    return run_standalone(args, words[0], words[1], words[2:])


def run_standalone(args: argparse.Namespace, config_name: str, plan_name: str, words: list[str]) -> int:
    from ..scans.actions import plan_request

    config, text, source = load(config_name)
    if args.data_dir is not None:
        config.run.data_dir = Path(args.data_dir)
    named = {entry.name: entry.model_dump() for entry in config.scans}
    positional, keywords = plan_arguments(plan_name, words)
    body = {"plan": plan_name, "args": positional, "kwargs": keywords, "detectors": args.detector}
    body |= {k: v for k, v in (("settle", args.settle), ("reads", args.reads)) if v is not None}
    plan, detectors, options = plan_request(body, named)  # a bad plan is refused before anything starts
    if args.latency_scale is not None:
        config.simulation.latency_scale = args.latency_scale
    return asyncio.run(_scan(config, text, source, plan, detectors, options, args, config_name == "demo"))


async def _scan(
    config: Any,
    text: str,
    source: str,
    plan: Any,
    detectors: list[str],
    options: dict[str, Any],
    args: argparse.Namespace,
    demo: bool,
) -> int:
    from ..app.demo import prepare_table
    from ..app.runner import Application
    from ..app.scanview import ScanView, print_result

    config.storage.record = False  # the scan's own file is the run
    config.server.enabled = False  # nothing to serve: the scan ends with the command
    app = Application(config, config_text=text, source=source)
    loop = asyncio.get_running_loop()
    aborting = False

    def interrupt() -> None:
        nonlocal aborting
        service = app.scans
        if service is not None and service.engine is not None and not aborting:
            aborting = True
            print("\naborting the scan (motion stopped; the file keeps the points measured)...", flush=True)
            try:
                service.abort(client="Ctrl-C")
            except Exception:
                pass

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, interrupt)
    try:
        await app.start(prepare_table if demo else None)
        assert app.scans is not None
        if args.dry_run:
            dry = await app.scans.dry_run(plan, detectors, **{k: v for k, v in options.items() if k != "name"})
            print(f"{plan.name}: {dry.points} points, about {dry.estimated_s:.1f} s", flush=True)
            for problem in dry.problems:
                print(f"  {problem}", flush=True)
            return 0 if dry.ok else 1
        with ScanView() as view:
            result = await app.scans.run(plan, detectors, observers=[view], **options)
        print_result(result)
        return 0 if result.exit_status == "success" else 1
    finally:
        await app.stop()  # a scan still running (an error) is aborted and its file closed
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


def run_remote(args: argparse.Namespace, address: str | None, plan: str, words: list[str]) -> int:
    """The scan in a running daemon (``--connect``): the same view; Ctrl-C aborts the scan."""
    from ..app.scanview import ScanView, print_result
    from ..errors import CommandError
    from ..live.client import connect
    from ..scans import ScanState

    positional, keywords = plan_arguments(plan, words)
    options = {k: v for k, v in (("settle", args.settle), ("reads", args.reads)) if v is not None}
    with connect(address, args.token, name="arrowdaq scan", tls_cert=args.tls_cert) as client:
        if args.dry_run:
            body = {"action": "dry_run", "plan": plan, "args": positional, "kwargs": keywords}
            dry = client.action("scan", body | {"detectors": args.detector, **options})
            print(f"{plan}: {dry['points']} points, about {dry['estimated_s']:.1f} s", flush=True)
            for problem in dry["problems"]:
                print(f"  {problem}", flush=True)
            return 0 if dry["ok"] else 1
        remote = client.scan(plan, *positional, detectors=args.detector, wait=False, **options, **keywords)
        print(f"scan {remote.plan} ({remote.scan_id}) in the daemon at {client.address}", flush=True)
        aborting = False
        shown = remote.state
        with ScanView() as view:
            view.begin(remote.plan, remote.total)
            while remote.outcome is None:
                try:
                    for update in remote.updates():
                        for row in update.points:
                            view.point(None, row)
                        if update.state != shown:
                            shown = update.state
                            view.state(ScanState(update.state))
                except KeyboardInterrupt:
                    if not aborting:
                        aborting = True
                        print(
                            "\nCtrl-C: aborting the scan in the daemon (motion stopped; the file keeps the points"
                            " measured)...",
                            flush=True,
                        )
                        try:
                            remote.abort()
                        except CommandError:
                            pass  # it ended meanwhile
                    else:
                        print("already aborting: waiting for the daemon to close the scan file...", flush=True)
        print_result(remote.outcome)
        return 0 if remote.outcome.exit_status == "success" else 1


def register(subparsers: argparse._SubParsersAction) -> None:
    from .live_cmd import add_tls_cert_option

    p = subparsers.add_parser(
        "scan",
        help="run a scan (a plan over the instruments of a configuration)",
        description="Start the instruments of CONFIG (or the simulated table: demo), run PLAN, record it as a run "
        "file, stop. Example: arrowdaq scan demo scan hwp 0 90 46 -d pm1",
        epilog=PLAN_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("config", nargs="?", help="TOML configuration file, or 'demo' (not with --connect)")
    p.add_argument("plan", nargs="?", help="plan name (see below), or the name of a scan in CONFIG's [[scans]]")
    p.add_argument("args", nargs="*", help="the plan's arguments")
    p.add_argument(
        "--connect",
        nargs="?",
        const="",
        metavar="ADDRESS",
        help="run the scan in a running daemon (arrowdaq run/demo): the local one, or ADDRESS "
        "(grpc://host:port); Ctrl-C aborts the scan",
    )
    p.add_argument("--token", help="the daemon's token, with --connect ADDRESS (default: its address file)")
    add_tls_cert_option(p)
    p.add_argument("-d", "--detector", action="append", default=[], metavar="DETECTOR", help="read at every point")
    p.add_argument("--data-dir", metavar="DIR", help="where the scan file goes (overrides [run] data_dir)")
    p.add_argument("--settle", type=float, metavar="S", help="wait S seconds after each move (default 0)")
    p.add_argument("--reads", type=int, metavar="N", help="read each detector N times per point (default 1)")
    p.add_argument("--dry-run", action="store_true", help="check limits and estimate the time; move nothing")
    p.add_argument("--latency-scale", type=float, metavar="X", help="simulated instruments: latency scale")
    p.set_defaults(func=run)
