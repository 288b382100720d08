"""What the terminal shows while a run goes on.

On a terminal, one panel redrawn in place (rich), always fitting the screen:

* the values: per stream its last value with its unit, rows/s achieved and
  requested, and the status of the instrument or processor behind it;
* the log: the run's warnings and errors, newest last, a repeat folded into
  its first line with a count (``×12``), so a warning stays readable however
  often it comes back. While the panel is up, log records go to the panel, not
  to the terminal under it (that is what scrolled copies of the panel into the
  scrollback and overwrote warnings);
* the run file and its size, the progress of a bounded run and, after Ctrl-C,
  a "stopping…" line that follows the ordered stop (instruments, processors,
  storage).

When stdout is not a terminal (a log file, CI): plain lines, one per status
change or alarm and the rates every 5 s; log records go where logging sends them.
"""

from __future__ import annotations

import logging
import re
import sys
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from ..actors import ActorStatus, Role, StatusEvent
from ..data import unit_of
from ..hub import InstrumentManager, as_run_event

STATUS_STYLE = {
    "Running": "green",
    "Starting": "yellow",
    "Restarting": "yellow",
    "Reconnecting": "bold yellow",
    "Failed": "bold red",
    "Stopped": "dim",
}
LEVEL_STYLE = {"WARNING": "yellow", "ERROR": "bold red", "CRITICAL": "bold red"}

#: Lines of the log pane.
LOG_LINES = 8
_NUMBER = re.compile(r"\d+(?:\.\d+)?")


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


@dataclass
class LogEntry:
    level: str
    text: str
    count: int
    first: float
    last: float


class LogPane(logging.Handler):
    """The run's warnings and errors; a message that comes back (numbers aside) bumps its count."""

    def __init__(self, keep: int = 200) -> None:
        super().__init__(logging.WARNING)
        self.keep = keep
        self.entries: OrderedDict[str, LogEntry] = OrderedDict()

    def add(self, level: str, text: str, when: float | None = None) -> None:
        when = time.time() if when is None else when
        key = _NUMBER.sub("#", text)
        entry = self.entries.pop(key, None)
        if entry is None:
            entry = LogEntry(level, text, 0, when, when)
        entry.count, entry.text, entry.last = entry.count + 1, text, when  # the newest numbers
        self.entries[key] = entry
        while len(self.entries) > self.keep:
            self.entries.popitem(last=False)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.add(record.levelname, record.getMessage(), record.created)
        except Exception:  # a log call must never break the run
            self.handleError(record)

    def render(self, lines: int = LOG_LINES) -> Table:
        table = Table.grid(padding=(0, 1), expand=True)
        table.add_column(no_wrap=True)
        table.add_column(ratio=1, overflow="fold")
        for entry in list(self.entries.values())[-lines:]:
            count = f" (×{entry.count}, first {time.strftime('%H:%M:%S', time.localtime(entry.first))})"
            text = Text(entry.text + (count if entry.count > 1 else ""), style=LEVEL_STYLE.get(entry.level, ""))
            table.add_row(time.strftime("%H:%M:%S", time.localtime(entry.last)), text)
        if not self.entries:
            table.add_row("", Text("no warnings", style="dim"))
        return table


def last_value(spec: Any) -> str:
    """The newest reading of a stream, with its unit: ``1.234e-03 W``, ``1000 pts V``, ``frame #42``."""
    batch = getattr(spec, "last", None)
    if batch is None or batch.num_rows == 0:
        return ""
    unit = unit_of(spec.schema) or ""
    names = batch.schema.names
    if "value" in names:
        return f"{batch.column('value')[-1].as_py():.6g} {unit}".rstrip()
    if "frame_number" in names:
        return f"frame #{batch.column('frame_number')[-1].as_py()}"
    if "values" in names:
        return f"{len(batch.column('values')[-1].values)} pts {unit}".rstrip()
    return f"{batch.num_rows} rows"


def render_values(hub: InstrumentManager, status: dict[str, Any], max_rows: int | None = None) -> Table:
    """One row per stream: last value, rates, and the status of its producer."""
    table = Table(expand=True, title="Values", title_justify="left")
    for col in ("stream", "last value", "rows/s", "requested/s", "status"):
        table.add_column(col, justify="right" if col in ("rows/s", "requested/s") else "left", no_wrap=True)
    actors = status["actors"]
    names = list(status["streams"])
    shown = names if max_rows is None or len(names) <= max_rows else names[: max(max_rows - 1, 0)]
    for name in shown:
        s = status["streams"][name]
        producer = actors.get(s["producer"] or "", {})
        state = producer.get("status", "")
        requested = s.get("requested_per_s")
        slow = s.get("slow", False)  # the rate watch's verdict (below the requested rate, or missing readings)
        table.add_row(
            name,
            last_value(hub.streams[name]) if name in hub.streams else "",
            Text(f"{s['rows_per_s']:,.1f}", style="yellow" if slow else ""),
            f"{requested:,.1f}" if requested else "",
            Text(state, style=STATUS_STYLE.get(state, "")),
        )
    if len(shown) < len(names):
        table.add_row(f"… {len(names) - len(shown)} more (a taller terminal shows them)", "", "", "", "")
    silent = [n for n, a in actors.items() if not any(s["producer"] == n for s in status["streams"].values())]
    for name in silent:  # storage, processors without outputs yet: their status still counts
        state = actors[name]["status"]
        table.add_row(Text(name, style="dim"), "", "", "", Text(state, style=STATUS_STYLE.get(state, "")))
    return table


def stop_progress(status: dict[str, Any]) -> str:
    """How far the ordered stop is: ``instruments 6/6 · processors 1/3 · storage 0/1``."""
    parts = []
    for role, label in ((Role.SOURCE, "instruments"), (Role.PROCESSOR, "processors"), (Role.SINK, "storage")):
        group = [a for a in status["actors"].values() if a["role"] == role.value]
        if group:
            done = sum(a["status"] in (ActorStatus.STOPPED.value, ActorStatus.FAILED.value) for a in group)
            parts.append(f"{label} {done}/{len(group)}")
    return " · ".join(parts)


class TerminalView:
    """Shows a run's progress; ``update()`` is called a few times a second by the runner."""

    def __init__(
        self,
        hub: InstrumentManager,
        run_file: Callable[[], Path | None],
        duration: float | None,
        console: Console | None = None,
    ) -> None:
        self.hub = hub
        self.run_file = run_file
        self.duration = duration
        self.console = console or Console(stderr=False)
        self.interactive = self.console.is_terminal
        self.log = LogPane()
        self._started = time.monotonic()
        self._stopping_since: float | None = None
        self._stopped_after: float | None = None
        self._last_line = -float("inf")
        self._shown_errors: dict[str, str] = {}
        self._live: Live | None = None
        self._muted: list[tuple[logging.Handler, int]] = []

    # --- lifecycle ---------------------------------------------------------------------------
    def __enter__(self) -> TerminalView:
        if self.interactive:
            root = logging.getLogger()
            for handler in root.handlers:  # they would write under the panel and be overwritten
                if isinstance(handler, logging.StreamHandler) and not isinstance(handler, logging.FileHandler):
                    self._muted.append((handler, handler.level))
                    handler.setLevel(logging.CRITICAL + 1)
            root.addHandler(self.log)
            self._live = Live(
                self._renderable(),
                console=self.console,
                auto_refresh=False,
                transient=False,
                vertical_overflow="crop",
            )
            self._live.__enter__()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._live is not None:
            if self._stopping_since is not None and self._stopped_after is None:
                self._stopped_after = time.monotonic() - self._stopping_since
            self._live.update(self._renderable(), refresh=True)
            self._live.__exit__(exc_type, exc, tb)
            self._live = None
            logging.getLogger().removeHandler(self.log)
            for handler, level in self._muted:
                handler.setLevel(level)
            self._muted.clear()

    def stopping(self) -> None:
        """The ordered stop began (Ctrl-C, SIGTERM, the duration): say so until it ends."""
        if self._stopping_since is None:
            self._stopping_since = time.monotonic()
            if not self.interactive:
                self._print("stopping: instruments first, then processors, then storage closes the run file")
        self.update()

    # --- drawing -------------------------------------------------------------------------------
    def _footer(self, status: dict[str, Any]) -> Text:
        elapsed = time.monotonic() - self._started
        line = Text()
        run_file = self.run_file()
        if run_file is not None:
            size = run_file.stat().st_size if run_file.exists() else 0
            line.append("run file: ").append(str(run_file), style="bold").append(f" ({human_bytes(size)})  ")
        if self._stopped_after is not None:
            line.append(f"stopped in {self._stopped_after:.1f} s: {stop_progress(status)}", style="bold green")
        elif self._stopping_since is not None:
            waited = time.monotonic() - self._stopping_since
            line.append(f"stopping… {stop_progress(status)} ({waited:.0f} s)", style="bold yellow")
        elif self.duration:
            line.append(f"{min(elapsed, self.duration):.0f}/{self.duration:.0f} s")
        else:
            line.append(f"{elapsed:.0f} s (Ctrl-C stops and completes the run file)", style="dim")
        return line

    def _renderable(self) -> Group:
        status = self.hub.status()
        height = self.console.size.height
        log_lines = min(LOG_LINES, max(height // 4, 2))
        # values table: title, header, borders (4 lines); the log pane: its title; the footer: 2 lines
        rows = max(height - log_lines - 9 - len(status["actors"]) // 4, 3)
        return Group(
            render_values(self.hub, status, max_rows=rows),
            Text("Log (warnings and errors; repeats folded)", style="bold"),
            self.log.render(log_lines),
            self._footer(status),
        )

    def event(self, event: Any) -> None:
        """A status change, an alarm or a run event: a plain line when not on a terminal
        (on a terminal, the panel shows statuses and the log pane the warnings)."""
        if self.interactive:
            return
        if isinstance(event, StatusEvent):
            # a new error while Running is a reported problem (an OVER reading)
            new_error = event.error and event.error != self._shown_errors.get(event.actor)
            show_error = event.status.value in ("Restarting", "Reconnecting", "Failed") or (
                event.status.value == "Running" and new_error
            )
            if event.error:
                self._shown_errors[event.actor] = event.error
            self._print(f"{event.actor} {event.status.value}" + (f": {event.error}" if show_error else ""))
            return
        line = as_run_event(event)
        if line.level != "info" or line.kind == "alarm":
            self._print(f"{line.kind.upper()} {line.level} {line.source}: {line.message}")

    def update(self) -> None:
        if self._live is not None:
            self._live.update(self._renderable(), refresh=True)
            return
        if self.interactive:
            return
        elapsed = time.monotonic() - self._started
        if elapsed - self._last_line >= 5.0:
            self._last_line = elapsed
            streams = self.hub.status()["streams"]
            rates = ", ".join(f"{n} {s['rows_per_s']:.1f}/s" for n, s in streams.items())
            self._print(f"t={elapsed:.0f}s {rates}")

    def _print(self, line: str) -> None:
        print(f"{time.strftime('%H:%M:%S')} {line}", file=sys.stdout, flush=True)
