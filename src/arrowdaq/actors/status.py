"""Actor lifecycle states and the events that report them."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from enum import Enum


class ActorStatus(str, Enum):
    STARTING = "Starting"
    RUNNING = "Running"
    RESTARTING = "Restarting"
    #: The outside world went away (a device link): retried for as long as the actor lives.
    RECONNECTING = "Reconnecting"
    FAILED = "Failed"
    STOPPED = "Stopped"

    @property
    def alive(self) -> bool:
        """True while the actor may still take messages."""
        return self not in (ActorStatus.FAILED, ActorStatus.STOPPED)


@dataclass(frozen=True)
class StatusEvent:
    """Published on every status change; the GUI, the logs and the CLI show these."""

    actor: str
    status: ActorStatus
    error: str | None = None
    restarts: int = 0
    time_ns: int = field(default_factory=time.time_ns)


class Role(str, Enum):
    """What an actor is in the graph; decides the order of an orderly stop."""

    SOURCE = "source"  # instruments: stop first, so nothing new enters
    PROCESSOR = "processor"  # drain what is queued, publish the last results
    SINK = "sink"  # storage, live service: drain and close last
    SERVICE = "service"


STOP_ORDER = (Role.SOURCE, Role.PROCESSOR, Role.SINK, Role.SERVICE)
