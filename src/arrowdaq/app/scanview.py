"""What the terminal shows while a scan runs, and its result.

On a terminal: the last points as a table, and a progress bar with the time
left (rich). Otherwise (a log, CI): one plain line per point. At the end: the
exit status, the scan file, and each detector's peak statistics (and the
Malus fit of an angular power scan).
"""

from __future__ import annotations

import math
import threading
from collections import deque
from typing import Any

import pyarrow as pa
from rich.console import Console, Group
from rich.live import Live
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from ..scans import ScanResult, ScanSetup, ScanState

#: Points shown in the live table.
RECENT = 12


def _fmt(value: Any) -> str:
    if value is None:  # NaN, as JSON carries it from a remote scan
        return "-"
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


class ScanView:
    """A ScanObserver that draws the scan; use as a context manager around the run."""

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console()
        self.interactive = self.console.is_terminal
        self.columns: list[str] = []
        self.recent: deque[dict[str, Any]] = deque(maxlen=RECENT)
        self.state_text = ScanState.RUNNING.value
        self._lock = threading.Lock()
        self._live: Live | None = None
        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=self.console,
        )
        self._task: Any = None

    def __enter__(self) -> ScanView:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._live is not None:
            self._live.update(self._renderable())
            self._live.__exit__(None, None, None)
            self._live = None

    # --- ScanObserver -------------------------------------------------------------------
    def start(self, setup: ScanSetup) -> None:
        self.begin(setup.plan.name, setup.plan.num, setup.schema.names)

    def begin(self, plan: str, total: int | None, columns: list[str] | None = None) -> None:
        """Start drawing a scan of ``total`` points (None: not known in advance); ``columns`` of the scan
        table (None: those of the first point, as a remote scan shows them)."""
        self._task = self._progress.add_task(plan, total=total)
        if columns:
            self._columns(columns)
        if self.interactive:
            self._live = Live(self._renderable(), console=self.console, refresh_per_second=8)
            self._live.__enter__()

    def _columns(self, names: list[str]) -> None:
        self.columns = ["index"] + [n for n in names if n not in ("timestamp_ns", "index") and not n.endswith("_index")]
        if not self.interactive:
            self.console.print(" ".join(self.columns), soft_wrap=True)

    def point(self, batch: pa.RecordBatch | None, row: dict[str, Any]) -> None:
        if not self.columns:
            self._columns(list(row))
        with self._lock:
            self.recent.append(row)
            self._progress.advance(self._task)
        if self._live is not None:
            self._live.update(self._renderable())
        else:
            self.console.print(" ".join(_fmt(row[c]) for c in self.columns), soft_wrap=True, highlight=False)

    def state(self, state: ScanState) -> None:
        self.state_text = state.value
        if self._live is None and state is not ScanState.IDLE:
            self.console.print(f"scan {state.value}", highlight=False)

    def end(self, result: ScanResult) -> None:
        if self._live is not None:
            self._live.update(self._renderable())
            self._live.__exit__(None, None, None)
            self._live = None

    def _renderable(self) -> Group:
        table = Table(title=f"scan ({self.state_text})", expand=False)
        for col in self.columns:
            table.add_column(col, justify="right")
        with self._lock:
            for row in self.recent:
                table.add_row(*(_fmt(row[c]) for c in self.columns))
        return Group(table, self._progress)


def print_result(result: ScanResult | Any, console: Console | None = None) -> None:
    """Exit status, file, peak statistics (and fit): what the scan found (a ScanResult, or the
    ScanOutcome of a remote scan: the same names)."""
    console = console or Console()
    style = {"success": "green", "aborted": "yellow"}.get(result.exit_status, "bold red")
    console.print(
        f"[{style}]{result.plan}: {result.exit_status}[/] ({result.reason}), {result.num_points} points"
        f" in {result.duration_s:.1f} s",
        highlight=False,
    )
    if result.statistics:
        table = Table(title="Peak statistics")
        for col in ("detector", "max", "at", "min", "at", "centre of mass", "FWHM", "edge (max slope at)"):
            table.add_column(col, justify="left" if col == "detector" else "right")
        for det, s in result.statistics.items():
            d = s.get("derivative", {})
            table.add_row(
                det,
                *(
                    _fmt(s[k]) if not (isinstance(s[k], float) and math.isnan(s[k])) else "-"
                    for k in ("max", "max_at", "min", "min_at", "com", "fwhm")
                ),
                _fmt(d.get("max_at", math.nan)),
            )
        console.print(table)
    if result.fit:
        f = result.fit
        console.print(
            f"Malus fit P = A cos²(2(θ − θ0)) + B: A = {f['A']:.6g}, θ0 = {f['theta0']:.4g}°, B = {f['B']:.4g},"
            f" residual rms {f['residual_rms']:.3g}",
            highlight=False,
        )
    if result.run_file is not None:
        print(f"scan file: {result.run_file}", flush=True)
