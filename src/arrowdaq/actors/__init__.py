"""A small asyncio actor runtime: mailboxes, tell/ask, supervision, ordered stop."""

from .actor import Actor, Inbox, Timer
from .messages import Command
from .ref import ActorRef
from .status import STOP_ORDER, ActorStatus, Role, StatusEvent
from .supervisor import RestartPolicy, Supervisor

__all__ = [
    "Actor",
    "ActorRef",
    "ActorStatus",
    "Command",
    "Inbox",
    "RestartPolicy",
    "Role",
    "STOP_ORDER",
    "StatusEvent",
    "Supervisor",
    "Timer",
]
