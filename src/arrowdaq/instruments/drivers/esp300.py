"""Newport ESP300 motion controller, axes 1–3 (RS-232, commands end in CR LF).

Commands are ``{axis}{mnemonic}{value}``: ``1PA12.5`` moves axis 1 to 12.5 mm.
The controller does not answer a command it refuses; it files the error in
its buffer, read with ``TB?`` (``code, timestamp, message``). So every command
that may fail (moves, homing, settings) is followed by ``TB?`` and a non-zero
code raises DeviceStatusError with the controller's own message.

Motion follows the contract of every Movable (DESIGN section 9): ``move_to``
returns on arrival (``wait=False``: once the controller accepted the move),
``wait_motion`` polls ``MD?`` (1 = done) without holding the port between polls,
so ``stop()`` goes out at once, never behind a move.
"""

from __future__ import annotations

import re
import time
from typing import Annotated, Any, Literal

from pydantic import Field

from ...errors import (
    CommandError,
    DeviceStatusError,
    DeviceTimeout,
    InstrumentConfigError,
    MotionStopped,
    ProtocolError,
)
from ...validation import check
from ..driver import Channel, Channels, Control, Driver, Measurement, Stream, command
from ..transports.base import PortSettings, Transport, send_now
from ..validators import InRange, boolean, in_range, int_in_range, steps_within, within_limits

AXES = (1, 2, 3)
#: The axes a configuration may name: at least one of 1, 2, 3.
Axes = Annotated[tuple[Literal[1, 2, 3], ...], Field(min_length=1)]

_ERROR_REPLY = re.compile(r"^\s*(\d+)\s*,\s*(\d+)\s*,\s*(.*?)\s*$")

#: ``SN`` units (instruments.md): 0 encoder count, 1 motor step, 2 mm, 3 µm, 4 in, 5 milli-in, 6 micro-in,
#: 7 deg, 8 grad, 9 rad, 10 mrad, 11 µrad.
UNIT_CODES = ("counts", "steps", "mm", "um", "in", "mil", "uin", "deg", "grad", "rad", "mrad", "urad")


def parse_float(reply: str) -> float:
    try:
        return float(reply.strip())
    except ValueError:
        raise ProtocolError(f"motion controller reply {reply!r} is not a number") from None


def parse_error(reply: str) -> tuple[int, int, str]:
    """A ``TB?`` reply: (code, timestamp, message); code 0 means no error."""
    match = _ERROR_REPLY.match(reply)
    if match is None:
        raise ProtocolError(f"motion controller error-buffer reply {reply!r} is not 'code, time, message'")
    return int(match.group(1)), int(match.group(2)), match.group(3)


def parse_motion_done(reply: str) -> bool:
    text = reply.strip()
    if text not in ("0", "1"):
        raise ProtocolError(f"motion controller MD? reply {reply!r} is not 0 or 1")
    return text == "1"


def parse_int(reply: str) -> int:
    try:
        return int(reply.strip())
    except ValueError:
        raise ProtocolError(f"motion controller reply {reply!r} is not a whole number") from None


class Axis(Channel):
    """One axis: ``{ch}`` is its number. Every set is followed by ``TB?`` (the controller's error buffer)."""

    position = Measurement("{ch}TP?", parse=parse_float, unit="mm", doc="Actual position")
    motion_done = Measurement("{ch}MD?", parse=parse_motion_done, doc="True when the axis stands still")
    stage = Measurement("{ch}ID?", parse=str, doc="Stage model")
    motor = Control(
        "{ch}MO?",
        {True: "{ch}MO", False: "{ch}MF"},
        parse=parse_int,
        validator=boolean,
        check="check_errors",
        doc="Motor power",
    )
    units = Control(
        "{ch}SN?", "{ch}SN{:d}", parse=parse_int, validator=int_in_range(0, 11), check="check_errors", doc="2 = mm"
    )
    velocity = Control(
        "{ch}VA?", "{ch}VA{:.6f}", parse=parse_float, validator=in_range(0, 1000), unit="mm/s", check="check_errors"
    )
    acceleration = Control(
        "{ch}AC?", "{ch}AC{:.6f}", parse=parse_float, validator=in_range(0, 1e5), unit="mm/s2", check="check_errors"
    )
    deceleration = Control(
        "{ch}AG?", "{ch}AG{:.6f}", parse=parse_float, validator=in_range(0, 1e5), unit="mm/s2", check="check_errors"
    )
    left_limit = Control(
        "{ch}SL?", "{ch}SL{:.6f}", parse=parse_float, validator=in_range(-1e4, 1e4), unit="mm", check="check_errors"
    )
    right_limit = Control(
        "{ch}SR?", "{ch}SR{:.6f}", parse=parse_float, validator=in_range(-1e4, 1e4), unit="mm", check="check_errors"
    )


def axis_streams(axis: int) -> tuple[Stream, Stream]:
    """The channels of one axis: its position, and its velocity setting (``VA?``)."""
    return (
        Stream(f"axis{axis}_position", unit="mm", poll_hz=5.0, long_name=f"Axis {axis} position"),
        Stream(f"axis{axis}_velocity", unit="mm/s", poll_hz=1.0, long_name=f"Axis {axis} velocity setting"),
    )


class ESP300(Driver):
    driver_name = "esp300"
    simulator = "arrowdaq.sim.esp300:ESP300Sim"
    port_settings = PortSettings(
        baudrate=19200,
        write_termination="\r\n",
        read_termination="\r",
        extra_read_terminations=("\n",),
        timeout=1.0,
        rtscts=True,
    )
    streams = ()  # two per configured axis: see streams_for
    #: ``stage.axis[2].velocity = 1.5``; the config sets them as ``[instruments.settings.axis2]``.
    axis = Channels(Axis, ids="axes", prefix="axis")

    def __init__(
        self,
        transport: Transport | None,
        *,
        name: str = "",
        axes: list[int] | tuple[int, ...] = (1,),
        motion_timeout: float = 60.0,
        motion_poll: float = 0.1,
        motor_on: bool = True,
    ) -> None:
        """``axes``: the connected axes (1–3); ``motion_timeout``: longest move or homing, in s."""
        super().__init__(transport, name=name)
        self.axes = self.check_axes(axes, self.name)
        self.motion_timeout = motion_timeout
        self.motion_poll = motion_poll
        self.motor_on = motor_on
        self._version = ""
        self._moving = {a: False for a in AXES}  # a move was started and not yet seen to end
        self._stopped = {a: False for a in AXES}  # stop() cut the move short
        #: Each axis's software limits (SL, SR) as last read with the settings: moves are checked against them.
        self._travel: dict[int, tuple[float, float]] = {}

    @staticmethod
    def check_axes(axes: Any, where: str) -> tuple[int, ...]:
        """The configured axes as a tuple; InstrumentConfigError naming them when one is not 1, 2 or 3."""
        listed = axes if isinstance(axes, (list, tuple)) else [axes]
        return tuple(check(Axes, listed, "axes", where, error=InstrumentConfigError))

    # --- streams: axis{n}_position for each configured axis -----------------------------
    @classmethod
    def streams_for(cls, settings: dict[str, Any]) -> tuple[Stream, ...]:
        axes = cls.check_axes(settings.get("axes", (1,)), cls.driver_name)
        return tuple(s for a in axes for s in axis_streams(a))

    def read(self, stream: str) -> float:
        for number, axis in self.axis.items():
            if stream == f"axis{number}_position":
                return axis.position
            if stream == f"axis{number}_velocity":
                return axis.velocity
        return super().read(stream)  # raises, listing the streams

    # --- lifecycle ---------------------------------------------------------------------
    def connect(self) -> None:
        self._version = self.query("VE?")
        if "ESP" not in self._version.upper():
            raise ProtocolError(f"{self.name}: VE? answered {self._version!r}, not an ESP300")
        self.clear_errors()
        if self.motor_on:  # before the configured settings, which may turn a motor off again
            for axis in self.axes:
                self.write(f"{axis}MO")
            self.check_errors("motor on")

    def identity(self) -> dict[str, str]:
        ids = {f"axis{n}_stage": axis.stage for n, axis in self.axis.items()}
        return {"driver": self.driver_name, "model": "Newport ESP300", "version": self._version, **ids}

    def settings(self) -> dict[str, Any]:
        """The settings, and each axis's software limits kept for :meth:`travel` (read at start and after
        every command that changes the controller, a ``set`` of ``axis1.right_limit`` too)."""
        out = {"axes": list(self.axes)} | super().settings()
        self._travel = {n: (out[f"axis{n}"]["left_limit"], out[f"axis{n}"]["right_limit"]) for n in self.axes}
        return out

    # --- the error buffer --------------------------------------------------------------
    def check_errors(self, after: str) -> None:
        """Read ``TB?``; a filed error raises DeviceStatusError with the controller's message."""
        code, _, message = parse_error(self.query("TB?"))
        if code != 0:
            raise DeviceStatusError(f"{self.name}: {after}: controller error {code}: {message}", code=code)

    def clear_errors(self) -> None:
        """Empty the error buffer (it holds up to 10 entries)."""
        for _ in range(10):
            if parse_error(self.query("TB?"))[0] == 0:
                return

    def _axis(self, axis: Any) -> int:
        """A configured axis number; None means the first configured axis."""
        if axis is None:
            return self.axes[0]
        try:
            number = int(axis)
            if number != float(axis):  # 1.7 is no axis
                number = -1
        except (TypeError, ValueError):
            number = -1
        if number not in self.axes:
            raise CommandError(f"{self.name}: axis {axis!r} is not configured (axes: {', '.join(map(str, self.axes))})")
        return number

    # --- Movable: the motion contract (DESIGN section 9) ------------------------------------
    def travel(self, axis: int | None = None) -> InRange | None:
        """The axis's software limits as last read (None before): a ``move_to`` beyond them, or to an axis
        not configured, is refused before it queues."""
        limits = self._travel.get(self._axis(axis))
        return None if limits is None else within_limits(*limits, "mm")

    def travel_steps(self, axis: int | None = None) -> InRange | None:
        """A ``move_by`` longer than the axis's limits are wide is refused before it queues (a shorter one
        is the controller's to refuse, from where the axis is)."""
        travel = self.travel(axis)
        return None if travel is None else steps_within(travel)

    @command(changes=False, validate={"target": "travel"})
    def move_to(self, target: float, wait: bool = True, axis: int | None = None) -> float | None:
        """Move to ``target`` mm; with ``wait`` (default) return the position on arrival."""
        return self._move("PA", "target", "to", target, axis, wait)

    @command(changes=False, validate={"distance": "travel_steps"})
    def move_by(self, distance: float, wait: bool = True, axis: int | None = None) -> float | None:
        """Move by ``distance`` mm; with ``wait`` (default) return the position on arrival."""
        return self._move("PR", "distance", "by", distance, axis, wait)

    def _move(
        self, mnemonic: str, what: str, preposition: str, value: float, axis: int | None, wait: bool
    ) -> float | None:
        number = self._axis(axis)
        amount = in_range(-1e4, 1e4)(value, f"{self.name}.axis{number}.{what}")
        self._moving[number], self._stopped[number] = True, False
        self.write(f"{number}{mnemonic}{amount:.6f}")
        try:
            self.check_errors(f"move axis {number} {preposition} {amount:g} mm")
        except DeviceStatusError:
            self._moving[number] = False
            raise
        return self.wait_motion(axis=number) if wait else None

    @command(changes=False)
    def position(self, axis: int | None = None) -> float:
        return self.axis[self._axis(axis)].position

    @command(changes=False)
    def is_moving(self, axis: int | None = None) -> bool:
        return not self.axis[self._axis(axis)].motion_done

    @command(changes=False)
    def stop(self, axis: int | None = None) -> None:
        """Stop one axis at once, or every axis when ``axis`` is None; a waiting move raises MotionStopped.

        ``ST`` goes out at once, between the write and the reply of an exchange in progress (a
        position poll) if need be, and never waits behind a move (``wait_motion`` holds the port
        only for single ``MD?`` polls).
        """
        if self.transport is None:
            raise CommandError(f"{self.name} has no transport")
        stopped = self.axes if axis is None else (self._axis(axis),)
        for number in stopped:
            self._stopped[number] = self._moving[number]
        send_now(self.transport, "ST" if axis is None else f"{stopped[0]}ST")

    @command(changes=False)
    def home(self, axis: int | None = None, wait: bool = True) -> float | None:
        """Search for the origin (``OR``); with ``wait`` (default) return the position once there."""
        number = self._axis(axis)
        self._moving[number], self._stopped[number] = True, False
        self.write(f"{number}OR")
        self.check_errors(f"home axis {number}")
        return self.wait_motion(axis=number) if wait else None

    @command(changes=False)
    def wait_motion(self, max_wait: float | None = None, axis: int | None = None) -> float:
        """Poll ``MD?`` until the axis stops, then the error buffer; the position. DeviceTimeout if it keeps
        moving, MotionStopped if ``stop()`` cut the move short, DeviceStatusError if the controller filed one."""
        number = self._axis(axis)
        limit = self.motion_timeout if max_wait is None else float(max_wait)
        deadline = time.monotonic() + limit
        while self.is_moving(number):
            if time.monotonic() >= deadline:
                raise DeviceTimeout(f"{self.name}: axis {number} still moving after {limit:g} s")
            time.sleep(self.motion_poll)
        was_moving, self._moving[number] = self._moving[number], False
        if was_moving:
            self.check_errors(f"motion of axis {number}")
        if self._stopped[number]:
            self._stopped[number] = False
            raise MotionStopped(f"{self.name}: the move of axis {number} was stopped at {self.position(number):g} mm")
        return self.position(number)
