"""Axes reserved by a running scan: only the scan may move them.

A scan reserves each axis it moves (an instrument, or one axis of a multi-axis
controller) with a token only it holds, and sends its own motion commands as
:class:`HeldCommand` carrying that token. The hub refuses any other motion
command to a reserved axis, naming the scan; ``stop`` is never refused.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from ..actors import Command
from ..errors import CommandError

#: Commands that move an axis (refused on a reserved axis unless sent by the holder).
MOTION_COMMANDS = frozenset({"move_to", "move_by", "home", "jog"})


@dataclass(frozen=True)
class HeldCommand(Command):
    """A command sent by the holder of a reservation (the scan engine)."""

    token: object = field(default=None, compare=False)


@dataclass(frozen=True)
class Reservation:
    instrument: str
    #: The reserved axis number, or None for the whole instrument (single-axis devices).
    axis: int | None
    #: Who holds it, as users see it: ``scan 'knife' (run 20261127T...)``.
    holder: str
    #: The reserved axis is the one a command without ``axis=`` moves.
    default_axis: bool = True
    token: object = field(default_factory=object, compare=False, repr=False)

    def covers(self, instrument: str, args: dict[str, Any]) -> bool:
        if instrument != self.instrument:
            return False
        axis = args.get("axis")
        if self.axis is None:
            return True
        if axis is None:
            return self.default_axis
        try:
            return int(axis) == self.axis
        except (TypeError, ValueError):
            return False


class Reservations:
    """The hub's table of reserved axes."""

    def __init__(self) -> None:
        self._held: list[Reservation] = []

    def reserve(
        self, instrument: str, axis: int | None, holder: str, *, default_axis: bool = True, token: object = None
    ) -> Reservation:
        """Reserve an axis for ``holder``; its commands must carry ``token`` (a new one if None)."""
        for r in self._held:
            if r.instrument == instrument and (r.axis is None or axis is None or r.axis == axis):
                where = instrument if axis is None else f"{instrument} axis {axis}"
                raise CommandError(f"{where} is already in use by {r.holder}")
        res = Reservation(instrument, axis, holder, default_axis, token if token is not None else object())
        self._held.append(res)
        return res

    def release(self, res: Reservation) -> None:
        if res in self._held:
            self._held.remove(res)

    def check(self, actor: str, message: Command) -> None:
        """Raise CommandError if ``message`` would move an axis someone else holds."""
        if not self._held or message.action not in MOTION_COMMANDS:
            return
        token = getattr(message, "token", None)
        for r in self._held:
            if r.covers(actor, message.args) and token is not r.token:
                where = actor if r.axis is None else f"{actor} axis {r.axis}"
                raise CommandError(
                    f"{actor}.{message.action} refused: {where} is in use by {r.holder}; pause or abort the scan first"
                )

    def __iter__(self) -> Iterator[Reservation]:
        return iter(list(self._held))
