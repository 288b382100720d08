"""Run events: one line of a run's event log, whatever reported it.

Everything worth a line in the run file's event log reaches the hub's event
listeners: actor status changes (:class:`StatusEvent`), alarms, and
:class:`RunEvent` objects any actor reports with
:meth:`InstrumentManager.record_event` (storage problems, lost batches, commands).
:func:`as_run_event` gives each the same five fields (time, source, kind, level,
message) plus ``details``, a JSON-able dict for what a table of its kind needs
(a command's client, instrument, arguments and result; a loss's stream and rows).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..actors import ActorStatus, StatusEvent

#: Event kinds arrowdaq itself reports; any other short word is allowed.
STATUS, ALARM, LOST, STORAGE, COMMAND = "status", "alarm", "lost", "storage", "command"
INFO, WARNING, ERROR = "info", "warning", "error"
LEVELS = (INFO, WARNING, ERROR)
#: Levels that make a run "complete, with N problems".
PROBLEMS = (WARNING, ERROR)


@dataclass(frozen=True)
class RunEvent:
    """One line of the event log; ``details`` must be JSON-able (it is stored as JSON text)."""

    source: str
    kind: str
    message: str
    level: str = INFO
    details: Mapping[str, Any] = field(default_factory=dict)
    time_ns: int = field(default_factory=time.time_ns)

    def __post_init__(self) -> None:
        if self.level not in LEVELS:
            raise ValueError(f"event level {self.level!r}: expected one of {', '.join(LEVELS)}")

    @property
    def problem(self) -> bool:
        return self.level in PROBLEMS


#: Status changes that are normal life: info. Failed is an error; anything else
#: (Restarting, Reconnecting) a warning.
_NORMAL = {ActorStatus.STARTING.value, ActorStatus.RUNNING.value, ActorStatus.STOPPED.value}


def as_run_event(event: Any) -> RunEvent:
    """A StatusEvent, an Alarm or a RunEvent as a RunEvent."""
    if isinstance(event, RunEvent):
        return event
    if isinstance(event, StatusEvent):
        status = getattr(event.status, "value", str(event.status))
        level = ERROR if status == ActorStatus.FAILED.value else INFO if status in _NORMAL else WARNING
        if status == ActorStatus.STOPPED.value and event.error:
            level = WARNING
        message = f"{status}: {event.error}" if event.error else status
        return RunEvent(
            event.actor, STATUS, message, level, {"status": status, "restarts": event.restarts}, event.time_ns
        )
    # an Alarm (or anything alarm-like: source, message, optional level)
    level = getattr(event, "level", WARNING)
    level = level if level in LEVELS else WARNING
    return RunEvent(
        str(getattr(event, "source", "?")),
        ALARM,
        str(getattr(event, "message", event)),
        level,
        {},
        int(getattr(event, "time_ns", time.time_ns())),
    )
