"""What the engine moves and reads, seen through the motion contract (DESIGN section 9).

An :class:`Axis` is any Movable: ``move_to(target)`` returns on arrival,
``move_to(target, wait=False)`` starts and returns, ``wait_motion()``,
``stop()`` (at once, never queued behind a move) and ``position()``. A
:class:`Detector` gives one number per ``read()``. Both are blocking: the
engine calls them from its own thread.

:class:`SoftAxis` and :class:`SoftDetector` are zero-latency, in-process
devices: for plans tried without hardware, tests and the engine benchmark.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, runtime_checkable


@runtime_checkable
class Axis(Protocol):
    #: The column name in the scan table (``hwp``, ``stage_axis1``).
    name: str
    unit: str
    #: (low, high) the axis may go to, or None when unknown.
    limits: tuple[float, float] | None
    #: Units per second, for the dry run's time estimate (None when unknown).
    speed: float | None

    def move_to(self, target: float, wait: bool = True) -> float | None: ...

    def wait_motion(self) -> float: ...

    def stop(self) -> None: ...

    def position(self) -> float: ...


@runtime_checkable
class Detector(Protocol):
    name: str
    unit: str

    def read(self) -> float: ...


class SoftAxis:
    """An axis that arrives at once; ``limits`` are enforced like a device would."""

    def __init__(
        self,
        name: str,
        unit: str = "",
        *,
        position: float = 0.0,
        limits: tuple[float, float] | None = None,
        speed: float | None = None,
    ) -> None:
        self.name = name
        self.unit = unit
        self.limits = limits
        self.speed = speed
        self.value = float(position)
        self.moves = 0

    def __repr__(self) -> str:
        return f"<SoftAxis {self.name}={self.value:g}>"

    def move_to(self, target: float, wait: bool = True) -> float | None:
        target = float(target)
        if self.limits is not None and not self.limits[0] <= target <= self.limits[1]:
            raise ValueError(f"{self.name}: {target:g} is outside the limits {self.limits[0]:g}..{self.limits[1]:g}")
        self.value = target
        self.moves += 1
        return self.value if wait else None

    def wait_motion(self) -> float:
        return self.value

    def stop(self) -> None:
        pass

    def position(self) -> float:
        return self.value


class SoftDetector:
    """Reads ``signal()``: e.g. ``SoftDetector("pm1", lambda: np.cos(np.radians(hwp.value)) ** 2)``."""

    def __init__(self, name: str, signal: Callable[[], float], unit: str = "") -> None:
        self.name = name
        self.unit = unit
        self.signal = signal

    def __repr__(self) -> str:
        return f"<SoftDetector {self.name}>"

    def read(self) -> float:
        return float(self.signal())
