"""A small asyncio actor runtime: mailboxes, tell/ask, supervision, ordered stop."""

from ..errors import describe
from .actor import Actor, Inbox, Timer
from .messages import Command
from .ref import ActorRef, RestartPolicy
from .status import STOP_ORDER, ActorStatus, Role, StatusEvent
from .supervisor import Supervisor

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
    "describe",
]
