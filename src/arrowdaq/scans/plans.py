"""Plans: where a scan goes, as plain Python.

A plan is a :class:`Plan`: its name and arguments (recorded in the scan file),
the axes it moves, the detectors it wants by default, and its points, an
iterable of ``{axis: setpoint}`` dicts. The built-in plans below build one.
A user plan is any generator function that yields such dicts; the engine sends
back each point's readings, so a plan may decide where to go next::

    def until_dark(hwp, step=5.0):
        angle = 0.0
        while angle <= 180:
            row = yield {hwp: angle}          # row: setpoints, read-backs, detector means and stds
            if row["pm1"] < 1e-3:
                return
            angle += step

    engine.run(until_dark("hwp"), detectors=["pm1"])

Axes are names (resolved by the engine: ``"hwp"``, ``"stage:1"``) or Axis objects.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import CommandError
from .devices import Axis

AxisRef = str | Axis


def axis_key(axis: AxisRef) -> str:
    return axis if isinstance(axis, str) else axis.name


@dataclass(frozen=True)
class Point:
    """One point: setpoints by axis, and its indices in a grid (None outside grids)."""

    setpoints: dict[AxisRef, float]
    grid: tuple[int, ...] | None = None


@dataclass
class Plan:
    """What the engine runs; see the module docstring."""

    name: str
    args: dict[str, Any]
    axes: list[AxisRef]
    points: Iterable[dict[AxisRef, float] | Point]
    #: Points expected (None when the plan decides as it goes).
    num: int | None = None
    #: (outer, inner) sizes of a grid: the scan file gets a 2-D map.
    grid: tuple[int, ...] | None = None
    #: The setpoints of each grid dimension (for the map's axes).
    grid_axes: list[np.ndarray] = field(default_factory=list)
    #: Setpoints are offsets from where the axes stand when the scan starts; they go back there after it.
    relative: bool = False
    #: Detectors read when the caller names none.
    detectors: list[str] = field(default_factory=list)
    #: Seconds between the starts of successive points (``count``), 0 = as fast as the devices go.
    interval: float = 0.0
    #: A fit made on the result: ``"malus"`` (the angular power scan).
    analysis: str | None = None


def _num(value: Any, what: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise CommandError(f"{what}: expected a number, got {value!r}") from None
    if not math.isfinite(number):
        raise CommandError(f"{what}: expected a finite number, got {value!r}")
    return number


def _count(value: Any, what: str, low: int = 1) -> int:
    number = _num(value, what)
    if number != int(number) or number < low:
        raise CommandError(f"{what}: expected a whole number >= {low}, got {value!r}")
    return int(number)


def _line(name: str, axis: AxisRef, args: dict[str, Any], values: np.ndarray) -> Plan:
    """A plan that moves one axis through ``values``; ``args`` as the caller gave them (the scan file's record)."""
    points = [{axis: float(v)} for v in values]
    return Plan(name, {"axis": axis_key(axis), **args}, [axis], points, num=len(points))


def _span(name: str, start: Any, stop: Any, num: Any) -> tuple[float, float, int]:
    """``start``, ``stop`` and ``num`` of a sweep, checked (CommandError naming the plan and argument)."""
    return _num(start, f"{name}: start"), _num(stop, f"{name}: stop"), _count(num, f"{name}: num")


def count(num: int = 10, interval: float = 0.0, *, duration: float | None = None) -> Plan:
    """A time series: ``num`` readings (or as many as fit ``duration`` s) every ``interval`` s."""
    interval = _num(interval, "count: interval")
    if interval < 0:
        raise CommandError(f"count: interval: expected seconds >= 0, got {interval!r}")
    if duration is not None:
        if interval <= 0:
            raise CommandError("count: a duration needs an interval > 0")
        num = int(_num(duration, "count: duration") / interval) + 1
    num = _count(num, "count: num")
    args = {"num": num, "interval": interval} | ({"duration": duration} if duration is not None else {})
    return Plan("count", args, [], [{} for _ in range(num)], num=num, interval=interval)


def scan(axis: AxisRef, start: float, stop: float, num: int) -> Plan:
    """``num`` evenly spaced points from ``start`` to ``stop`` (both included)."""
    start, stop, num = _span("scan", start, stop, num)
    return _line("scan", axis, {"start": start, "stop": stop, "num": num}, np.linspace(start, stop, num))


def step_scan(axis: AxisRef, start: float, stop: float, step: float) -> Plan:
    """From ``start`` towards ``stop`` in steps of ``step`` (``stop`` included when it falls on a step)."""
    start, stop, step = _num(start, "scan: start"), _num(stop, "scan: stop"), _num(step, "scan: step")
    if step == 0 or (stop - start) * step < 0:
        raise CommandError(f"scan: step {step:g} does not lead from {start:g} to {stop:g}")
    n = int(math.floor((stop - start) / step + 1e-9)) + 1
    return _line("scan", axis, {"start": start, "stop": stop, "step": step}, start + step * np.arange(n))


def list_scan(axis: AxisRef, positions: Sequence[float]) -> Plan:
    """The given positions, in order."""
    values = np.array([_num(p, "list_scan: position") for p in positions])
    if not len(values):
        raise CommandError("list_scan: no positions given")
    return _line("list_scan", axis, {"positions": values.tolist()}, values)


def log_scan(axis: AxisRef, start: float, stop: float, num: int) -> Plan:
    """``num`` points evenly spaced in log10 from ``start`` to ``stop`` (same sign, not 0)."""
    start, stop, num = _span("log_scan", start, stop, num)
    if start * stop <= 0:
        raise CommandError(f"log_scan: start {start:g} and stop {stop:g} must have the same sign and not be 0")
    values = math.copysign(1, start) * np.logspace(math.log10(abs(start)), math.log10(abs(stop)), num)
    return _line("log_scan", axis, {"start": start, "stop": stop, "num": num}, values)


def rel_scan(axis: AxisRef, start: float, stop: float, num: int) -> Plan:
    """Like :func:`scan`, relative to where the axis stands; it returns there afterwards."""
    plan = scan(axis, start, stop, num)
    plan.name, plan.relative = "rel_scan", True
    return plan


def grid_scan(
    outer: AxisRef,
    outer_start: float,
    outer_stop: float,
    outer_num: int,
    inner: AxisRef,
    inner_start: float,
    inner_stop: float,
    inner_num: int,
    snake: bool = False,
) -> Plan:
    """A 2-D grid: ``inner`` sweeps at each step of ``outer``; with ``snake`` it sweeps back and forth."""
    ys = np.linspace(
        _num(outer_start, "grid_scan: outer_start"),
        _num(outer_stop, "grid_scan: outer_stop"),
        _count(outer_num, "grid_scan: outer_num"),
    )
    xs = np.linspace(
        _num(inner_start, "grid_scan: inner_start"),
        _num(inner_stop, "grid_scan: inner_stop"),
        _count(inner_num, "grid_scan: inner_num"),
    )
    if axis_key(outer) == axis_key(inner):
        raise CommandError(f"grid_scan: the outer and inner axes are both {axis_key(outer)!r}")

    points = [
        Point({outer: float(y), inner: float(xs[j])}, (i, j))
        for i, y in enumerate(ys)
        for j in (range(len(xs) - 1, -1, -1) if snake and i % 2 else range(len(xs)))
    ]

    args = {
        "outer": axis_key(outer),
        "outer_start": float(ys[0]),
        "outer_stop": float(ys[-1]),
        "outer_num": len(ys),
        "inner": axis_key(inner),
        "inner_start": float(xs[0]),
        "inner_stop": float(xs[-1]),
        "inner_num": len(xs),
        "snake": bool(snake),
    }
    return Plan(
        "grid_scan", args, [outer, inner], points, num=len(ys) * len(xs), grid=(len(ys), len(xs)), grid_axes=[ys, xs]
    )


def angular_power_scan(
    axis: AxisRef = "hwp", start: float = 0.0, stop: float = 90.0, step: float = 2.0, detector: str = "pm1"
) -> Plan:
    """The optical table's polarization scan: turn the half-wave plate, read the power meter,
    fit Malus's law ``P = A cos²(2(θ − θ0)) + B`` (stored with the scan)."""
    plan = step_scan(axis, start, stop, step)
    plan.name, plan.detectors, plan.analysis = "angular_power_scan", [detector], "malus"
    plan.args["detector"] = detector
    return plan


#: Built-in plans by name (the CLI, the live service and the GUI list these).
PLANS: dict[str, Callable[..., Plan]] = {
    "count": count,
    "scan": scan,
    "step_scan": step_scan,
    "list_scan": list_scan,
    "log_scan": log_scan,
    "rel_scan": rel_scan,
    "grid_scan": grid_scan,
    "angular_power_scan": angular_power_scan,
}


def as_plan(plan: Plan | Generator[Any, Any, Any] | Iterable[dict[AxisRef, float]], num: int | None = None) -> Plan:
    """A Plan from a Plan, a user plan's generator, or any iterable of ``{axis: setpoint}`` dicts.

    A generator's axes are those of its first point (taken here, before the scan starts)."""
    if isinstance(plan, Plan):
        return plan
    name = getattr(plan, "__name__", type(plan).__name__)
    iterator = iter(plan)
    try:
        first = next(iterator)
    except StopIteration:
        raise CommandError(f"plan {name!r} yields no point") from None
    setpoints = first.setpoints if isinstance(first, Point) else first
    if not isinstance(setpoints, dict):
        raise CommandError(f"plan {name!r}: a point is a dict {{axis: setpoint}}, got {first!r}")
    args: dict[str, Any] = {}
    frame = getattr(plan, "gi_frame", None)
    if frame is not None:  # a generator: record the arguments it was called with
        code = frame.f_code
        names = code.co_varnames[: code.co_argcount + code.co_kwonlyargcount]
        args = {n: _plain(frame.f_locals[n]) for n in names if n in frame.f_locals}
    return Plan(name, args, list(setpoints), _Primed(first, iterator), num=num)


def _plain(value: Any) -> Any:
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, (list, tuple, np.ndarray)):
        return [_plain(v) for v in value]
    return getattr(value, "name", repr(value))


class _Primed:
    """An iterator whose first item was already taken; ``send`` reaches the generator behind it."""

    def __init__(self, first: Any, rest: Iterator[Any]) -> None:
        self._first: Any = first
        self._started = False
        self._rest = rest

    def __iter__(self) -> _Primed:
        return self

    def __next__(self) -> Any:
        return self.send(None)

    def send(self, value: Any) -> Any:
        if not self._started:
            self._started = True
            return self._first
        if value is not None and inspect.isgenerator(self._rest):
            return self._rest.send(value)
        return next(self._rest)


def points_of(plan: Plan) -> Iterator[dict[AxisRef, float] | Point] | _Primed:
    return plan.points if isinstance(plan.points, _Primed) else iter(plan.points)
