"""What the terminal shows while a run goes on.

On a terminal: a live panel (rich) with the instruments and their status and
last error, the streams with their rates, subscriber queues and drops, the run
file and its size, and a progress bar when the run has a duration. When stdout
is not a terminal (a log file, CI): plain lines, one per status change and a
rates line every few seconds.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from ..actors import StatusEvent
from ..hub import Alarm

STATUS_STYLE = {
    "Running": "green",
    "Starting": "yellow",
    "Restarting": "yellow",
    "Failed": "bold red",
    "Stopped": "dim",
}


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


def render(status: dict[str, Any], run_file: Path | None) -> Group:
    """The live panel for one status snapshot."""
    actors = Table(title="Actors", expand=True)
    for col in ("id", "role", "status", "restarts", "last error"):
        actors.add_column(col, overflow="fold")
    for name, a in status["actors"].items():
        style = STATUS_STYLE.get(a["status"], "")
        actors.add_row(name, a["role"], f"[{style}]{a['status']}[/]", str(a["restarts"]), a["error"] or "")
    streams = Table(title="Streams", expand=True)
    for col in ("stream", "kind", "rows", "rows/s", "batches/s", "bytes/s"):
        streams.add_column(col, justify="right" if col not in ("stream", "kind") else "left")
    for name, s in status["streams"].items():
        streams.add_row(
            name,
            s["kind"] or "",
            f"{s['rows']:,}",
            f"{s['rows_per_s']:,.1f}",
            f"{s['batches_per_s']:,.1f}",
            human_bytes(s["bytes_per_s"]) + "/s",
        )
    subs = Table(title="Subscribers", expand=True)
    for col in ("subscriber", "policy", "queued", "drops", "lag"):
        subs.add_column(col)
    for name, s in status["subscribers"].items():
        drops = f"[red]{s['drops']}[/]" if s["drops"] else "0"
        subs.add_row(
            name, s["policy"], f"{s['queued']} ({human_bytes(s['queued_bytes'])})", drops, f"{s['lag_s'] * 1e3:.1f} ms"
        )
    parts: list[Any] = [actors, streams, subs]
    if run_file is not None:
        size = run_file.stat().st_size if run_file.exists() else 0
        parts.append(f"run file: [bold]{run_file}[/] ({human_bytes(size)})")
    return Group(*parts)


class TerminalView:
    """Shows a run's progress; ``update()`` is called a few times a second by the runner."""

    def __init__(
        self,
        status: Callable[[], dict[str, Any]],
        run_file: Callable[[], Path | None],
        duration: float | None,
        console: Console | None = None,
    ) -> None:
        self.status = status
        self.run_file = run_file
        self.duration = duration
        self.console = console or Console(stderr=False)
        self.interactive = self.console.is_terminal
        self._started = time.monotonic()
        self._last_line = -float("inf")
        self._shown_errors: dict[str, str] = {}
        self._live: Live | None = None
        self._progress: Progress | None = None
        self._task: Any = None

    def __enter__(self) -> TerminalView:
        if self.interactive:
            if self.duration:
                self._progress = Progress(
                    TextColumn("run"),
                    BarColumn(),
                    TextColumn("{task.completed:.0f}/{task.total:.0f} s"),
                    TimeRemainingColumn(),
                )
                self._task = self._progress.add_task("run", total=self.duration)
            self._live = Live(self._renderable(), console=self.console, refresh_per_second=4, transient=False)
            self._live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._live is not None:
            self._live.update(self._renderable())
            self._live.__exit__(*exc)  # type: ignore[arg-type]

    def _renderable(self) -> Any:
        panel = render(self.status(), self.run_file())
        return Group(panel, self._progress) if self._progress is not None else panel

    def event(self, event: StatusEvent | Alarm) -> None:
        """A status change or alarm: a plain line when not interactive (the panel shows it otherwise)."""
        if self.interactive:
            return
        if isinstance(event, StatusEvent):
            # a new error while Running is a reported problem (an OVER reading); Starting repeats the last one
            new_error = event.error and event.error != self._shown_errors.get(event.actor)
            show_error = event.status.value in ("Restarting", "Failed") or (
                event.status.value == "Running" and new_error
            )
            if event.error:
                self._shown_errors[event.actor] = event.error
            self._print(f"{event.actor} {event.status.value}" + (f": {event.error}" if show_error else ""))
        else:
            self._print(f"ALARM {event.source}: {event.message}")

    def update(self) -> None:
        elapsed = time.monotonic() - self._started
        if self.interactive:
            if self._progress is not None:
                self._progress.update(self._task, completed=min(elapsed, self.duration or elapsed))
            if self._live is not None:
                self._live.update(self._renderable())
            return
        if elapsed - self._last_line >= 5.0:
            self._last_line = elapsed
            streams = self.status()["streams"]
            rates = ", ".join(f"{n} {s['rows_per_s']:.1f}/s" for n, s in streams.items())
            self._print(f"t={elapsed:.0f}s {rates}")

    def _print(self, line: str) -> None:
        print(f"{time.strftime('%H:%M:%S')} {line}", file=sys.stdout, flush=True)
