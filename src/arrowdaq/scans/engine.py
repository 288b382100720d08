"""The run engine: runs a plan point by point, with pause, resume, stop and abort.

At each point the engine moves every axis (all started, then all awaited),
settles, reads the positions back, reads each detector ``reads`` times and
keeps the mean and standard deviation: one row of the scan table.

States: ``idle`` → ``running`` ⇄ ``paused``; ``stopping`` (ends after the
current point, exit status success) and ``aborting`` (motion stopped at once,
exit status aborted). Pause is deferred to the next point boundary, or
immediate: motion is stopped and the interrupted point is measured again after
resume. Resume first returns the axes to where they stood when the scan paused
(someone may have moved them meanwhile), so every point is measured exactly
once, in order. Pause, resume, stop and abort are method calls, safe from any
thread: the CLI's Ctrl-C, the live service and the GUI all use them.

The engine is synchronous: :meth:`~arrowdaq.scans.RunEngine.run` blocks its caller (a thread of
its own in the daemon, see ``arrowdaq.scans.service``), and devices are blocking objects
with the motion contract (``arrowdaq.scans.devices``).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Protocol

import numpy as np
import pyarrow as pa

from ..errors import ArrowDAQError, CommandError, describe
from ..log import get_logger
from .devices import Axis, Detector
from .plans import AxisRef, Plan, Point, as_plan, axis_key, points_of
from .stats import malus_fit, scan_statistics
from .table import ScanTable, table_schema

log = get_logger("arrowdaq.scans")


class ScanState(str, Enum):
    IDLE = "idle"
    RUNNING = "running"
    PAUSED = "paused"
    STOPPING = "stopping"
    ABORTING = "aborting"


SUCCESS, ABORTED, FAILED = "success", "aborted", "failed"

_PAUSE, _PAUSE_NOW, _STOP, _ABORT = "pause", "pause now", "stop", "abort"


class _Interrupted(Exception):
    """The point in progress was cut short (immediate pause or abort): it is measured again or dropped."""


class _Ended(Exception):
    def __init__(self, status: str, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass
class ScanSetup:
    """A scan about to start: what observers need before the first point."""

    plan: Plan
    axes: list[Axis]
    detectors: list[Detector]
    schema: pa.Schema
    settle: float
    reads: int


@dataclass
class ScanResult:
    plan: str
    args: dict[str, Any]
    exit_status: str  # success, aborted, failed
    reason: str  # why it ended ("completed", "aborted by request after 12 of 46 points", the error)
    table: pa.Table
    statistics: dict[str, Any] = field(default_factory=dict)
    fit: dict[str, float] | None = None
    duration_s: float = 0.0
    run_file: Any = None  # the scan file (set by the service that recorded it)

    @property
    def num_points(self) -> int:
        return self.table.num_rows


@dataclass
class DryRun:
    """What a plan would do: its points, time estimate, and the problems found (limits)."""

    points: int
    estimated_s: float
    problems: list[str]
    decided_as_it_goes: bool = False

    @property
    def ok(self) -> bool:
        return not self.problems


class ScanObserver(Protocol):
    """Told what the engine does; called from the engine's thread (and ``state`` from the caller of a
    control method). Must not block on the engine."""

    def start(self, setup: ScanSetup) -> None: ...

    def point(self, batch: pa.RecordBatch, row: dict[str, Any]) -> None: ...

    def state(self, state: ScanState) -> None: ...

    def end(self, result: ScanResult) -> None: ...


class RunEngine:
    """Runs plans point by point, with pause, resume, stop and abort (see :mod:`arrowdaq.scans.engine`).

    ``axis`` and ``detector`` turn names used in plans (``"hwp"``, ``"pm1"``) into
    devices; without them plans must name Axis and Detector objects.
    """

    def __init__(
        self,
        axis: Callable[[str], Axis] | None = None,
        detector: Callable[[str], Detector] | None = None,
        *,
        settle: float = 0.0,
        reads: int = 1,
    ) -> None:
        self._resolve_axis = axis
        self._resolve_detector = detector
        self.settle = settle
        self.reads = reads
        self._cond = threading.Condition()
        self._state = ScanState.IDLE
        self._request: str | None = None
        self._axes: list[Axis] = []
        self._observers: list[ScanObserver] = []
        self._begun: ScanSetup | None = None
        self.done = 0
        self.total: int | None = None
        self._t0 = 0.0
        self.name = ""

    # --- control (any thread) ---------------------------------------------------------
    @property
    def state(self) -> ScanState:
        return self._state

    def progress(self) -> dict[str, Any]:
        """State, points done and expected, elapsed and estimated remaining seconds."""
        elapsed = time.monotonic() - self._t0 if self._state is not ScanState.IDLE else 0.0
        eta = None
        if self.total and self.done:
            eta = elapsed / self.done * (self.total - self.done)
        return {
            "state": self._state.value,
            "plan": self.name,
            "done": self.done,
            "total": self.total,
            "elapsed_s": elapsed,
            "eta_s": eta,
        }

    def pause(self, immediate: bool = False) -> None:
        """Pause at the next point boundary; ``immediate``: stop motion now and redo the point after resume."""
        with self._cond:
            if self._state not in (ScanState.RUNNING, ScanState.PAUSED):
                raise CommandError(f"cannot pause: the scan engine is {self._state.value}")
            if self._state is ScanState.PAUSED or self._request in (_STOP, _ABORT):
                return
            self._request = _PAUSE_NOW if immediate else _PAUSE
            self._cond.notify_all()
        if immediate:
            self._stop_axes()

    def resume(self) -> None:
        with self._cond:
            if self._request not in (_PAUSE, _PAUSE_NOW):
                raise CommandError(f"cannot resume: no scan is paused (the engine is {self._state.value})")
            self._request = None
            self._cond.notify_all()

    def stop(self) -> None:
        """End after the current point (exit status success)."""
        self._end_request(_STOP, ScanState.STOPPING)

    def abort(self) -> None:
        """Stop motion at once and end (exit status aborted); the measured points are kept."""
        self._end_request(_ABORT, ScanState.ABORTING)
        self._stop_axes()

    def _end_request(self, request: str, state: ScanState) -> None:
        with self._cond:
            if self._state is ScanState.IDLE:
                raise CommandError(f"cannot {request}: no scan is running")
            if self._request == _ABORT:
                return
            self._request = request
            changed, self._state = self._state is not state, state  # with the request: the scan cannot end between
            self._cond.notify_all()
        if changed:
            for obs in self._observers:
                obs.state(state)

    def _stop_axes(self) -> None:
        for ax in list(self._axes):
            try:
                ax.stop()
            except Exception as exc:  # the scan ends anyway; say why the axis may still move
                log.error(f"scan {self.name!r}: stopping {ax.name} failed: {describe(exc)}")

    def _set_state(self, state: ScanState) -> None:
        with self._cond:
            if self._state is state:
                return
            self._state = state
            self._cond.notify_all()
        for obs in self._observers:
            obs.state(state)

    def wait_state(self, *states: ScanState, timeout: float | None = None) -> ScanState:
        """Block until the engine is in one of ``states`` (for tests and scripts)."""
        with self._cond:
            if not self._cond.wait_for(lambda: self._state in states, timeout):
                raise TimeoutError(f"scan engine still {self._state.value} after {timeout} s")
            return self._state

    # --- set-up ----------------------------------------------------------------------------
    def axis(self, ref: AxisRef) -> Axis:
        if not isinstance(ref, str):
            return ref
        if self._resolve_axis is None:
            raise CommandError(f"axis {ref!r}: this engine resolves no names; pass an Axis object")
        return self._resolve_axis(ref)

    def detector(self, ref: str | Detector) -> Detector:
        if not isinstance(ref, str):
            return ref
        if self._resolve_detector is None:
            raise CommandError(f"detector {ref!r}: this engine resolves no names; pass a Detector object")
        return self._resolve_detector(ref)

    def prepare(
        self,
        plan: Plan | Any,
        detectors: Sequence[str | Detector] = (),
        *,
        settle: float | None = None,
        reads: int | None = None,
    ) -> ScanSetup:
        """Resolve the plan's axes and detectors and build its table schema (nothing moves)."""
        plan = as_plan(plan)
        settle = self.settle if settle is None else float(settle)
        reads = self.reads if reads is None else int(reads)
        if reads < 1:
            raise CommandError(f"reads: expected at least 1 reading per point, got {reads}")
        if settle < 0 or not math.isfinite(settle):
            raise CommandError(f"settle: expected seconds >= 0, got {settle}")
        axes = [self.axis(a) for a in plan.axes]
        dets = [self.detector(d) for d in (detectors or plan.detectors)]
        if not dets:
            raise CommandError(f"plan {plan.name!r}: no detector to read (give at least one, e.g. -d pm1)")
        try:
            schema = table_schema(axes, dets, plan.grid, plan.name)
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        return ScanSetup(plan, axes, dets, schema, settle, reads)

    # --- dry run ---------------------------------------------------------------------------
    def dry_run(self, setup: ScanSetup) -> DryRun:
        """Check every setpoint against the axes' limits and estimate the time (moves at the
        axes' speeds, settle, one timed read of each detector × reads). Nothing moves."""
        plan = setup.plan
        keys = {axis_key(ref): ax for ref, ax in zip(plan.axes, setup.axes, strict=True)}
        here = {ax.name: ax.position() for ax in setup.axes}
        read_s = 0.0
        for det in setup.detectors:
            t = time.perf_counter()
            det.read()
            read_s += time.perf_counter() - t
        problems: list[str] = []
        n, seconds, adaptive = 0, 0.0, False
        where = dict(here)
        try:
            for raw in points_of(plan):
                point = raw if isinstance(raw, Point) else Point(raw)
                step = 0.0
                for ref, value in point.setpoints.items():
                    ax = keys.get(axis_key(ref))
                    if ax is None:
                        raise CommandError(f"point {n} moves {axis_key(ref)!r}, which is not among the plan's axes")
                    target = value + (here[ax.name] if plan.relative else 0.0)
                    problem = _limit_problem(ax, target, n)
                    if problem and len(problems) < 10:
                        problems.append(problem)
                    if ax.speed:
                        step = max(step, abs(target - where[ax.name]) / ax.speed)
                    where[ax.name] = target
                seconds += max(step + setup.settle + read_s * setup.reads, plan.interval)
                n += 1
        except (TypeError, KeyError):  # an adaptive plan needs the readings it is sent
            adaptive = True
        return DryRun(n, seconds, problems, adaptive)

    # --- running -----------------------------------------------------------------------------
    def begin(self, setup: ScanSetup) -> None:
        """Claim the engine for ``setup`` (state running) before :meth:`run` starts in its thread,
        so that the state is right from the moment a scan is submitted."""
        with self._cond:
            if self._state is not ScanState.IDLE:
                raise CommandError(f"scan {self.name!r} is {self._state.value}: one scan at a time")
            self._state, self._request = ScanState.RUNNING, None
            self._axes = list(setup.axes)
            self.name, self.done, self.total = setup.plan.name, 0, setup.plan.num
            self._t0 = time.monotonic()
            self._begun = setup

    def run(
        self,
        plan: Plan | Any,
        detectors: Sequence[str | Detector] = (),
        *,
        settle: float | None = None,
        reads: int | None = None,
        observers: Sequence[ScanObserver] = (),
        setup: ScanSetup | None = None,
    ) -> ScanResult:
        """Run ``plan`` to its end (or stop/abort); blocks. Failures end the scan with exit status
        ``failed`` and the reason (they are not raised): the points measured are in the result.

        Args:
            plan: a built-in plan (``scan(hwp, 0, 90, 46)``) or a generator of ``{axis: setpoint}``.
            detectors: what to read at each point (names, resolved by ``detector``, or objects).
            settle: seconds to wait after each move (default: the plan's, else 0).
            reads: readings per detector per point; the mean and standard deviation are kept.
            observers: told of each point (the daemon's scan file and ``scan/points``).
            setup: a :meth:`prepare`-d scan, to run what was checked.

        Returns:
            The :class:`ScanResult` with ``exit_status``, ``reason``, ``num_points``, the table
            and the peak ``statistics`` per detector.

        Example: ``RunEngine().run(scan(hwp, 0, 90, 46), [pm1], settle=0.1, reads=3)``.
        """
        setup = setup or self.prepare(plan, detectors, settle=settle, reads=reads)
        plan = setup.plan
        if self._begun is not setup:
            self.begin(setup)
        self._begun = None
        self._observers = list(observers)
        table = ScanTable(setup.schema)
        self._t0 = time.monotonic()
        status, reason = SUCCESS, "completed"
        starts: dict[str, float] = {}
        started = []
        try:
            for obs in self._observers:
                obs.start(setup)
                started.append(obs)
            if plan.relative:
                starts = {ax.name: ax.position() for ax in setup.axes}
            self._run_points(setup, table, starts)
        except _Ended as end:
            status, reason = end.status, end.reason
        except Exception as exc:
            status, reason = FAILED, _why(exc)
            log.error(f"scan {plan.name!r} failed after {table.rows} points: {reason}")
        if starts and status == SUCCESS:
            try:
                self._move_all(dict(zip(setup.axes, starts.values(), strict=True)))
            except Exception as exc:
                status, reason = FAILED, f"returning the axes to their start failed: {_why(exc)}"
        result = self._result(setup, table, status, reason)
        for obs in started:
            try:
                obs.end(result)
            except Exception as exc:
                log.error(f"scan {plan.name!r}: {_why(exc)}")
                if result.exit_status == SUCCESS:
                    result.exit_status, result.reason = FAILED, _why(exc)
        with self._cond:
            self._axes, self._request = [], None
        self._set_state(ScanState.IDLE)
        self._observers = []
        return result

    def _run_points(self, setup: ScanSetup, table: ScanTable, starts: dict[str, float]) -> None:
        plan = setup.plan
        keys = {axis_key(ref): ax for ref, ax in zip(plan.axes, setup.axes, strict=True)}
        points = points_of(plan)
        send = getattr(points, "send", None)
        sent: dict[str, Any] | None = None
        while True:
            try:
                raw = send(sent) if send is not None and sent is not None else next(points)
            except StopIteration:
                return
            point = raw if isinstance(raw, Point) else Point(raw)
            targets: dict[Axis, float] = {}
            for ref, value in point.setpoints.items():
                ax = keys.get(axis_key(ref))
                if ax is None:
                    raise CommandError(
                        f"point {table.rows} moves {axis_key(ref)!r}, which is not among the plan's axes"
                        f" ({', '.join(keys) or 'none'})"
                    )
                targets[ax] = float(value) + starts.get(ax.name, 0.0)
            while True:
                self._boundary(table.rows, setup.axes)
                try:
                    row = self._measure(setup, targets, point, table.rows)
                    break
                except _Interrupted:
                    continue
            batch = table.add(row)
            self.done = table.rows
            for obs in self._observers:
                obs.point(batch, row)
            sent = row
            if plan.interval:
                self._sleep(self._t0 + table.rows * plan.interval - time.monotonic())

    def _boundary(self, done: int, axes: Sequence[Axis]) -> None:
        """Between points: end on stop/abort; on pause wait, then bring the axes back."""
        while True:
            request = self._request
            if request is None:
                return
            total = f" of {self.total}" if self.total else ""
            if request == _STOP:
                raise _Ended(SUCCESS, f"stopped by request after {done}{total} points")
            if request == _ABORT:
                raise _Ended(ABORTED, f"aborted by request after {done}{total} points")
            paused_at = {ax: ax.position() for ax in axes}
            self._set_state(ScanState.PAUSED)
            with self._cond:
                self._cond.wait_for(lambda: self._request not in (_PAUSE, _PAUSE_NOW))
                if self._request is not None:
                    continue  # stop or abort while paused
            self._set_state(ScanState.RUNNING)
            try:
                self._move_all(paused_at)
            except Exception:
                if self._request in (_PAUSE_NOW, _ABORT):
                    continue
                raise

    def _interrupted(self) -> bool:
        return self._request in (_PAUSE_NOW, _ABORT)

    def _move_all(self, targets: dict[Axis, float]) -> None:
        for ax, target in targets.items():
            ax.move_to(target, wait=False)
        if self._interrupted():  # the stop may have reached an axis before its move did: stop what was started
            self._stop_axes()
        for ax in targets:
            ax.wait_motion()

    def _measure(self, setup: ScanSetup, targets: dict[Axis, float], point: Point, index: int) -> dict[str, Any]:
        for ax, target in targets.items():
            problem = _limit_problem(ax, target, index)
            if problem:
                raise CommandError(problem)
        try:
            return self._move_and_read(setup, targets, point, index)
        except _Interrupted:
            raise
        except Exception as exc:
            if self._interrupted():  # the stop of an abort or immediate pause may cut any device call short
                log.warning(f"scan {self.name!r}: point {index} cut short by the {self._request}: {_why(exc)}")
                raise _Interrupted() from None
            raise

    def _move_and_read(self, setup: ScanSetup, targets: dict[Axis, float], point: Point, index: int) -> dict[str, Any]:
        self._move_all(targets)
        if setup.settle:
            self._sleep(setup.settle)
        if self._interrupted():
            raise _Interrupted()
        row: dict[str, Any] = {"index": index}
        if setup.plan.grid is not None:
            for ax, i in zip(setup.axes, point.grid or (), strict=False):
                row[f"{ax.name}_index"] = int(i)
        for ax in setup.axes:
            row[ax.name] = targets.get(ax, math.nan)
            row[f"{ax.name}_readback"] = float(ax.position())
        t_before = time.time_ns()
        elapsed = time.monotonic() - self._t0
        for det in setup.detectors:
            if setup.reads == 1:
                row[det.name], row[f"{det.name}_std"] = float(det.read()), 0.0
            else:
                values = np.array([det.read() for _ in range(setup.reads)], float)
                row[det.name], row[f"{det.name}_std"] = float(values.mean()), float(values.std(ddof=1))
            if self._interrupted():
                raise _Interrupted()
        row["timestamp_ns"] = (t_before + time.time_ns()) // 2
        row["elapsed"] = elapsed
        return row

    def _sleep(self, seconds: float) -> None:
        """Wait, but wake at once for an immediate pause, stop or abort."""
        if seconds <= 0:
            return
        with self._cond:
            self._cond.wait_for(lambda: self._request in (_PAUSE_NOW, _ABORT, _STOP), seconds)

    def _result(self, setup: ScanSetup, table: ScanTable, status: str, reason: str) -> ScanResult:
        plan = setup.plan
        arrow = table.to_arrow()
        signals = {d.name: table.column(d.name) for d in setup.detectors}
        x = table.column(setup.axes[0].name) if setup.axes and plan.grid is None else table.column("elapsed")
        fit = None
        if plan.analysis == "malus" and setup.axes and table.rows:
            fit = malus_fit(table.column(setup.axes[0].name), signals[setup.detectors[0].name])
        return ScanResult(
            plan.name,
            dict(plan.args),
            status,
            reason,
            arrow,
            scan_statistics(x, signals) if table.rows else {},
            fit,
            time.monotonic() - self._t0,
        )


def _why(exc: BaseException) -> str:
    """arrowdaq's own errors say what happened; others get their type named."""
    return str(exc) if isinstance(exc, ArrowDAQError) else describe(exc)


def _limit_problem(ax: Axis, target: float, index: int) -> str | None:
    limits = getattr(ax, "limits", None)
    if limits is not None and not (limits[0] <= target <= limits[1]):
        unit = f" {ax.unit}" if ax.unit else ""
        return f"point {index}: {ax.name} {target:g}{unit} is outside its limits {limits[0]:g}..{limits[1]:g}{unit}"
    return None
