"""``arrowdaq run CONFIG``: run an acquisition headless until Ctrl-C, SIGTERM or --duration."""

from __future__ import annotations

import argparse
import asyncio
import math
import signal
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.table import Table

from ..app.config import Config, load_config, read_config_text

if TYPE_CHECKING:  # the runner pulls in scipy and h5py: imported when a run starts, not for --help
    from ..app.runner import RunSummary
    from ..hub import InstrumentManager


def positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, got {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"expected seconds > 0, got {text!r}")
    return value


def execute(
    config: Config,
    config_text: str | None,
    duration: float | None,
    extra: Callable[[InstrumentManager], Coroutine[Any, Any, None]] | None = None,
    source: str = "<config>",
    gui: bool = False,
    prepare: Callable[[InstrumentManager], Awaitable[None]] | None = None,
) -> RunSummary:
    """Run ``config`` with the terminal view; ``extra`` runs beside it (the demo's sequence), ``prepare``
    once the instruments are up, before scans begin (the demo lights its table).

    With ``gui`` the window opens (its own process, a client of the live service) once the service is up.
    """
    from ..app.liveview import TerminalView
    from ..app.runner import Application
    from .gui_cmd import WindowProcess

    window = WindowProcess()
    window_started = not gui

    app = Application(config, config_text=config_text, source=source)
    view = TerminalView(app.hub, lambda: app.run_file, duration)
    app.hub.add_listener(view.event)

    async def main() -> RunSummary:
        task: asyncio.Task[None] | None = None
        announced = False

        def tick() -> None:
            nonlocal task, window_started, announced
            live = app.live
            if not announced and live is not None and live.address:
                announced = True
                where = f" (token in {live.address_file})" if live.address_file else ""
                view.console.print(f"live service: {live.address}{where}", highlight=False)
            if not window_started and live is not None and live.address:
                window_started = True
                cert = live.settings.tls_cert
                trusted = str(cert.absolute()) if cert is not None else None  # a self-signed daemon's own
                view.console.print(window.start(live.address, live.token, trusted), highlight=False)
            if extra is not None and task is None and app.hub.supervisor.actors:
                task = asyncio.create_task(extra(app.hub))
            view.update()

        async def follow_the_stop() -> None:
            while True:
                await asyncio.sleep(0.25)
                view.update()

        refresher: asyncio.Task[None] | None = None

        async def stopping() -> None:  # the sequence ends before the instruments it drives
            nonlocal refresher
            view.stopping()
            refresher = asyncio.create_task(follow_the_stop())
            window.close()  # the window goes first: it would only report the daemon gone
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)

        try:
            done.append(await app.run(duration, on_tick=tick, on_stopping=stopping, prepare=prepare))
        finally:
            if refresher is not None:
                refresher.cancel()
        return done[0]

    done: list[RunSummary] = []
    with view:
        try:
            summary = asyncio.run(main())
        except KeyboardInterrupt:
            if not done:
                raise
            summary = done[0]  # an impatient Ctrl-C after the run file was closed: it is complete
        finally:
            window.wait()
    return summary


def print_summary(summary: RunSummary, console: Console | None = None) -> None:
    from ..app.liveview import human_bytes
    from ..app.runner import ExitStatus

    console = console or Console()
    table = Table(title=f"Run summary ({summary.duration_s:.1f} s)")
    stored = summary.stored or {}
    longest = max((len(name) for name in summary.streams), default=6)
    for col in ("stream", "published", "stored", "rows/s", "requested/s", "dropped", "unit"):
        if col == "stream":  # a stream's name is never cut, however narrow the terminal
            table.add_column(col, justify="left", no_wrap=True, min_width=longest)
        else:
            table.add_column(col, justify="left" if col == "unit" else "right")
    short: list[str] = []
    for name, s in summary.streams.items():
        achieved = f"{s.rows_per_s:,.1f}"
        if name in summary.slow_streams:
            achieved = f"[bold red]{achieved}[/]"
        requested = f"{s.requested_per_s:,.1f}" if s.requested_per_s else ""
        dropped = f"[bold red]{s.dropped:,}[/]" if s.dropped else "0"
        in_file = "" if name not in stored else f"{stored[name]:,}"
        expected = summary.expected_in_file(name)
        if name in stored and stored[name] != expected:
            in_file = f"[bold red]{in_file}[/]"
            since = "" if summary.published_while_recording is None else " while it recorded"
            short.append(f"{name}: {expected:,} rows published{since}, {stored[name]:,} in the run file")
        table.add_row(name, f"{s.rows:,}", in_file, achieved, requested, dropped, s.unit or "")
    console.print(table)
    for why in summary.slow_streams.values():
        console.print(f"[yellow]slow: {why}[/]")
    for line in short:
        console.print(f"[bold red]not all recorded: {line} (see the run file's event log)[/]")
    for name, loss in summary.lost.items():
        console.print(
            f"[bold red]lost: {name}: {loss.rows:,} row(s) in {loss.batches:,} batch(es) not stored: {loss.why}[/]"
        )
    for name, loss in summary.unprocessed.items():
        console.print(
            f"[bold red]not processed: {name}: {loss.rows:,} row(s) in {loss.batches:,} batch(es) of {loss.stream}: "
            f"{loss.why}[/]"
        )
    if summary.unreadable:
        console.print(f"[bold red]the run file cannot be read back: {summary.unreadable}[/]")
    for name, drops in summary.drops.items():
        console.print(f"{name}: skipped {drops} batches (a live view shows only the newest)")
    for name, lost in summary.undelivered.items():
        console.print(f"[red]{name}: {lost} batches published after it stopped were not taken[/]")
    for name, error in summary.errors.items():
        if summary.recording_error and error == summary.recording_error:
            continue  # said once, on the run file's line
        if name not in summary.instruments_down:
            console.print(f"[yellow]{name} ({summary.statuses.get(name, '?')}): {error}[/]")
    for name, why in summary.instruments_down.items():
        needed = "required" if name in summary.required else "optional"
        console.print(f"[bold red]{name} ({needed}) was not working at the end: {why}[/]")
    if summary.run_file is not None:
        size = summary.run_file.stat().st_size if summary.run_file.exists() else 0
        failed = f"; recording stopped early: {summary.recording_error}" if summary.recording_error else ""
        print(f"run file: {summary.run_file} ({human_bytes(size)}{failed})", flush=True)
    else:
        print("run file: none (recording is off)", flush=True)
    if summary.exit_status is not ExitStatus.OK:
        print(f"exit status {int(summary.exit_status)}: {exit_reason(summary)}", flush=True)


def exit_reason(summary: RunSummary) -> str:
    """Why the run ends with a non-zero exit status, in one line."""
    if summary.recording_error:
        return f"recording stopped early: {summary.recording_error}"
    if summary.required_down:
        return f"required instrument(s) not working at the end: {', '.join(summary.required_down)}"
    if summary.unreadable and not summary.lost:
        return f"the run file cannot be read back: {summary.unreadable}"
    if not summary.not_stored and not summary.lost and summary.unprocessed:
        listed = ", ".join(
            f"{name} ({loss.rows:,} rows of {loss.stream})" for name, loss in summary.unprocessed.items()
        )
        return f"input not processed: {listed}; their outputs in the run file are short"
    missing = summary.not_stored or {name: loss.rows for name, loss in summary.lost.items()}
    listed = ", ".join(f"{name} ({rows:,} rows)" for name, rows in missing.items())
    return f"not in the run file: {listed}; its event log says why"


def run_and_report(
    config: Config,
    config_text: str,
    args: argparse.Namespace,
    extra: Callable[[InstrumentManager], Coroutine[Any, Any, None]] | None = None,
    source: str = "<config>",
    prepare: Callable[[InstrumentManager], Awaitable[None]] | None = None,
) -> int:
    """Apply ``--data-dir``, run with the terminal view, print the summary; the run's exit status."""
    if args.data_dir is not None:
        config.run.data_dir = Path(args.data_dir)
    summary = execute(config, config_text, args.duration, extra, source, gui=wants_window(args), prepare=prepare)
    previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:  # the run is over: a late Ctrl-C must not hide where the file is
        print_summary(summary)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return int(summary.exit_status)


def wants_window(args: argparse.Namespace) -> bool:
    """--gui / --no-gui; without either (``gui`` None): a window where there is a display."""
    choice = getattr(args, "gui", False)
    if choice is None:
        from .gui_cmd import has_display

        return has_display()
    return bool(choice)


def run(args: argparse.Namespace) -> int:
    path = Path(args.config)
    return run_and_report(load_config(path), read_config_text(path), args, source=str(path))


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "run",
        help="run an acquisition from a configuration file",
        description="Run the instruments, processors and recording of CONFIG until Ctrl-C, SIGTERM or --duration; "
        "the run file is complete after any of these.",
    )
    p.add_argument("config", help="TOML configuration file")
    p.add_argument("--duration", type=positive_seconds, metavar="S", help="stop after S seconds")
    p.add_argument("--data-dir", metavar="DIR", help="where run files go (overrides [run] data_dir)")
    p.add_argument(
        "--gui",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="open the window (arrowdaq gui) when a display exists; it needs [server] enabled",
    )
    p.set_defaults(func=run)
