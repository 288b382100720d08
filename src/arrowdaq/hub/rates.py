"""Honest rates: an alarm when a stream stays below the rate it was asked for.

A producer says what it was asked for (:meth:`InstrumentManager.request_rate`:
a polling rate, a camera's frame rate) and counts the readings it gave up
(:meth:`InstrumentManager.count_missed`: a fast poll more than a second behind).
:class:`RateWatch` is the one judge of both, while the producer is Running: a
stream that misses readings, or carries less than ``fraction`` of its request
(the hub's ~3 s window) for ``hold_s`` seconds, raises one alarm; back at its
rate it records an info event. It also marks the stream ``slow`` for status and
the terminal. A producer that is not Running (reconnecting, failed) says so in
its own status, so its streams are not also reported here.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..actors import ActorStatus
from .metrics import FlowMeter

if TYPE_CHECKING:
    from .manager import InstrumentManager
    from .streams import StreamSpec

#: A stream below this fraction of its requested rate ...
SLOW_FRACTION = 0.8
#: ... for this many seconds raises an alarm.
SLOW_FOR_S = 5.0


@dataclass
class _Watch:
    running_since: float | None = None
    slow_since: float | None = None
    alarmed: bool = False
    missed: int = 0  # the stream's missed readings at the last check


class RateWatch:
    """Call :meth:`check` a few times a second (the application's run loop does)."""

    def __init__(self, hub: InstrumentManager, fraction: float = SLOW_FRACTION, hold_s: float = SLOW_FOR_S) -> None:
        self.hub = hub
        self.fraction = fraction
        self.hold_s = hold_s
        self._watches: dict[str, _Watch] = {}
        #: Streams that raised a rate alarm during the run: name → the alarm's text.
        self.slow: dict[str, str] = {}

    def check(self, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        hub = self.hub
        for name, spec in hub.streams.items():
            if spec.requested_rate is None:
                continue
            watch = self._watches.setdefault(name, _Watch())
            ref = hub.supervisor.actors.get(spec.producer or "")
            if ref is None or ref.status is not ActorStatus.RUNNING:
                watch.running_since = watch.slow_since = None
                watch.missed = spec.missed
                spec.slow = False
                continue
            if watch.running_since is None:
                watch.running_since = now
            missed, watch.missed = spec.missed - watch.missed, spec.missed
            if missed == 0 and now - watch.running_since < FlowMeter.WINDOW:
                continue  # the measured rate still counts time before the producer ran
            achieved = spec.meter.snapshot()["rows_per_s"]
            spec.slow = bool(missed) or achieved < self.fraction * spec.requested_rate
            if spec.slow:
                if watch.slow_since is None:
                    watch.slow_since = now
                if not watch.alarmed and (missed or now - watch.slow_since >= self.hold_s):
                    self._alarm(name, spec, achieved, missed)
            else:
                watch.slow_since = None
                if watch.alarmed:
                    watch.alarmed = False
                    hub.record_event(
                        spec.producer or name,
                        "rate",
                        f"{name} is back to {achieved:.3g} rows/s of the {spec.requested_rate:.3g}/s requested",
                        stream=name,
                    )

    def _alarm(self, name: str, spec: StreamSpec, achieved: float, missed: int) -> None:
        self._watches[name].alarmed = True
        requested = spec.requested_rate or 0.0
        if missed:
            message = (
                f"{name} missed {spec.missed:,} readings of the {requested:.3g}/s requested (more than a second"
                f" behind: the driver or the machine is too slow for that rate); it carries {achieved:.3g} rows/s"
            )
        else:
            message = (
                f"{name} has carried {achieved:.3g} rows/s for {self.hold_s:g} s, below "
                f"{self.fraction:.0%} of the {requested:.3g}/s requested"
            )
        self.slow[name] = message
        self.hub.alarm(spec.producer or name, message)
