"""Scans: plans as plain Python, a run engine with pause/resume/abort, scan files.

* :mod:`.plans` — ``count``, ``scan``, ``list_scan``, ``log_scan``, ``rel_scan``,
  ``grid_scan``, ``angular_power_scan``; user plans are generator functions;
* :class:`RunEngine` — moves, settles, reads, keeps mean and std per point;
* :class:`ScanService` — the engine in the daemon: instruments through the hub,
  the scan's own run file, the ``scan/points`` stream, axes reserved.
"""

from .devices import Axis, Detector, SoftAxis, SoftDetector
from .engine import ABORTED, FAILED, SUCCESS, DryRun, RunEngine, ScanResult, ScanSetup, ScanState
from .plans import (
    PLANS,
    Plan,
    Point,
    angular_power_scan,
    count,
    grid_scan,
    list_scan,
    log_scan,
    rel_scan,
    scan,
    step_scan,
)
from .stats import derivative_stats, malus_fit, peak_stats
from .table import POINTS_STREAM

__all__ = [
    "ABORTED",
    "FAILED",
    "PLANS",
    "POINTS_STREAM",
    "SUCCESS",
    "Axis",
    "Detector",
    "DryRun",
    "Plan",
    "Point",
    "RunEngine",
    "ScanResult",
    "ScanSetup",
    "ScanState",
    "SoftAxis",
    "SoftDetector",
    "angular_power_scan",
    "count",
    "derivative_stats",
    "grid_scan",
    "list_scan",
    "log_scan",
    "malus_fit",
    "peak_stats",
    "rel_scan",
    "scan",
    "step_scan",
]
