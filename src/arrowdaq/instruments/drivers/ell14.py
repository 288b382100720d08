"""Thorlabs ELL14 (Elliptec) rotation mount on a multidrop bus.

Several mounts share one port, each with an address ``0``–``F``; give each its
own driver with ``address=`` on the same port: they share the port's transport
and lock, so their exchanges never interleave. Commands are lowercase with no
terminator (``2gp``); replies are uppercase, start with the address and end in
CR LF (``2PO00001000``). Positions are 32-bit two's-complement hex pulses,
143360 pulses per revolution unless the mount's ``in`` reply says otherwise.

Every command is answered: with data (``PO``, ``GV``...) or with a status
(``GS``). A non-zero status raises DeviceStatusError naming the condition.

Motion follows the contract of every Movable (DESIGN section 9). A move
(``ma``, ``mr``, ``ho``, ``fw``, ``bw``) is answered with its position only when
it ends, so the driver never holds the bus while a mount turns: it sends the
move and notes that one ``PO`` is owed; whoever reads from the bus next (a
position poll, ``wait_motion``, ``stop``) takes that ``PO`` as the arrival.
Replies read for another mount on the same bus are kept for it. So ``stop()``
reaches the mount at once, never queued behind the move, and a move is never
re-sent on its own (a moving mount may answer late).

``st`` is sent without the bus (ahead of an exchange in flight), so its ``GS``
may be read by the next exchange rather than by ``stop()``: each write notes
how many ``st`` answers come before its own, and an exchange that meets one
keeps it for the waiting ``stop()`` (decision 0210).
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable
from typing import Any, cast

from ...errors import (
    CommandError,
    DeviceStatusError,
    DeviceTimeout,
    InstrumentConfigError,
    MotionStopped,
    ProtocolError,
)
from ..driver import Control, Driver, Stream, command
from ..transports.base import PortSettings, Transport, send_now
from ..transports.serial import SerialTransport
from ..validators import InRange, in_range, int_in_range, steps_within, within_limits

PULSES_PER_REV = 143360  # 0x23000
TOP_SPEED_DEG_S = 430.0  # at velocity 100 %

STATUS = {
    0x00: "OK",
    0x01: "communication timeout",
    0x02: "mechanical timeout",
    0x03: "command error or not supported",
    0x04: "value out of range",
    0x05: "module isolated",
    0x06: "module out of isolation",
    0x07: "initializing error",
    0x08: "thermal error",
    0x09: "busy",
    0x0A: "sensor error",
    0x0B: "motor error",
    0x0C: "out of range",
    0x0D: "over current error",
}
BUSY = 0x09

ADDRESSES = "0123456789ABCDEF"

#: The reply mnemonic of each query; every other command is answered with a status (``GS``).
REPLY_OF = {"in": "IN", "gp": "PO", "gs": "GS", "gv": "GV", "gj": "GJ", "go": "HO"}
#: Seconds a waiting call holds the bus at a time: ``stop()`` from another thread gets in between.
WAIT_SLICE = 0.02


class Bus:
    """What the mounts sharing one port share besides the lock: replies read for another mount."""

    def __init__(self) -> None:
        self.kept: dict[str, deque[str]] = defaultdict(deque)

    @staticmethod
    def of(transport: Transport) -> Bus:
        bus = getattr(transport, "elliptec_bus", None)
        if bus is None:
            bus = Bus()
            transport.elliptec_bus = bus  # type: ignore[attr-defined]  # kept on the shared port's transport
        return bus


def _is_hex(text: str) -> bool:
    return all(c in "0123456789ABCDEFabcdef" for c in text)


def to_hex32(value: int) -> str:
    """A signed 32-bit integer as 8 hex digits, two's complement (``-1`` → ``FFFFFFFF``)."""
    if not -(2**31) <= value < 2**31:
        raise CommandError(f"{value} pulses do not fit in a 32-bit position")
    return f"{value & 0xFFFFFFFF:08X}"


def from_hex32(text: str) -> int:
    """8 hex digits, two's complement, as a signed integer (``FFFFFFFF`` → ``-1``)."""
    if len(text) != 8 or not _is_hex(text):
        raise ProtocolError(f"Elliptec value {text!r} is not 8 hex digits")
    value = int(text, 16)
    return value - 2**32 if value >= 2**31 else value


def hex_field(mnemonic: str, digits: int = 2) -> Callable[[str], int]:
    """Parser for a reply body such as ``GV32``: the hex number after the mnemonic."""

    def parse(body: str) -> int:
        data = body[len(mnemonic) :]
        if not body.startswith(mnemonic) or len(data) != digits or not _is_hex(data):
            raise ProtocolError(f"Elliptec reply {body!r} is not {mnemonic} with {digits} hex digits")
        return int(data, 16)

    return parse


def degrees_field(mnemonic: str) -> Callable[[str], float]:
    """Parser for ``GJ00000E38``-style replies: 8 hex pulses after the mnemonic, in degrees."""

    def parse(body: str) -> float:
        if not body.startswith(mnemonic):
            raise ProtocolError(f"Elliptec reply {body!r} is not {mnemonic}")
        return from_hex32(body[len(mnemonic) :]) * 360.0 / PULSES_PER_REV

    return parse


def degrees_to_hex(degrees: float) -> str:
    """Degrees as the 8 hex digits of pulses the mount takes (``sj``, ``so``, ``ma``)."""
    return to_hex32(round(degrees * PULSES_PER_REV / 360.0))


class ELL14(Driver):
    driver_name = "ell14"
    simulator = "arrowdaq.sim.ell14:ELL14Sim"
    port_settings = PortSettings(baudrate=9600, write_termination="", read_termination="\r\n", timeout=1.0, bus=True)
    streams = (Stream("position", unit="deg", poll_hz=2.0, long_name="Rotation angle"),)

    velocity = Control(
        "gv",
        "sv{:02X}",
        parse=hex_field("GV"),
        validator=int_in_range(0, 100),
        unit="%",
        doc="Speed, percent of maximum",
    )
    jog_step = Control(
        "gj",
        "sj{}",
        parse=degrees_field("GJ"),
        validator=in_range(-360, 360),
        encode=degrees_to_hex,
        unit="deg",
        tolerance=360 / PULSES_PER_REV,
        doc="Step of one jog (fw/bw)",
    )
    home_offset = Control(
        "go",
        "so{}",
        parse=degrees_field("HO"),
        validator=in_range(0, 360),
        encode=degrees_to_hex,
        unit="deg",
        tolerance=360 / PULSES_PER_REV,
        doc="Where homing ends",
    )
    #: The velocity setting as the mount rounded it, read before the next move (None: not read yet).
    _velocity_percent: int | None

    def __setattr__(self, name: str, value: Any) -> None:
        super().__setattr__(name, value)
        if name == "velocity":
            self._velocity_percent = None  # read back on the next move: the mount may have rounded it

    def __init__(
        self,
        transport: Transport | None,
        *,
        name: str = "",
        address: str = "0",
        move_timeout: float = 3.0,
        limits: tuple[float, float] | list[float] | None = None,
    ) -> None:
        """``address``: the mount's bus address (0–F); ``move_timeout``: seconds allowed for a move's reply
        beyond the travel time at the mount's velocity setting; ``limits``: ``[low, high]`` degrees a move
        may not leave (the mount itself turns without end)."""
        super().__init__(transport, name=name)
        address = str(address).upper()
        if len(address) != 1 or address not in ADDRESSES:
            raise InstrumentConfigError(f"{self.name}.address: {address!r} is not an Elliptec address 0-F")
        self.address = address
        self.limits = self._check_limits(limits)
        claimed = getattr(transport, "bus_addresses", None)
        if claimed is not None:
            if address in claimed:
                raise InstrumentConfigError(
                    f"{self.name}.address: {address} is already used by another mount on this bus"
                )
            claimed.add(address)
        self.move_timeout = move_timeout
        self._last_position: float | None = None
        self._velocity_percent = None
        self.pulses_per_rev = PULSES_PER_REV
        self.info: dict[str, Any] = {}
        # the move in progress: one PO owed by the mount (guarded by the transport's lock)
        self._moving = False
        self._target_pulses: int | None = None  # where the running move ends (None: not known, homing)
        self._owed_gp = 0  # gp answers still to come whose place an arrival took
        self._move_deadline = 0.0
        self._move_sent = ""
        self._stopped = False
        self._stopping = False
        self._move_error: DeviceStatusError | None = None
        # answers to st, which goes out without the bus lock: a write and its place among them are taken together
        self._order = threading.Lock()
        self._writes = 0  # commands written by _send (under the bus lock)
        self._move_write = 0  # the running move's number among them
        self._st_owed = 0  # st answers not read yet (guarded by _order)
        self._st_ahead = 0  # of those, how many come before the answer to the last command written
        self._st_answers: deque[int] = deque()  # st status codes another exchange read, for the waiting stop()

    def _check_limits(self, limits: Any) -> tuple[float, float] | None:
        if limits is None:
            return None
        try:
            low, high = (float(x) for x in limits)
        except (TypeError, ValueError):
            raise InstrumentConfigError(f"{self.name}.limits: {limits!r} is not [low, high] in degrees") from None
        if not low < high:
            raise InstrumentConfigError(f"{self.name}.limits: {limits!r}: low must be below high")
        return low, high

    # --- exchanges on the bus ------------------------------------------------------------
    def _bus_lock(self) -> Any:
        if self.transport is None:
            raise CommandError(f"{self.name} has no transport")
        return self.transport.lock

    def _send(self, command: str) -> str:
        """Write ``command`` (bus lock held), noting the st answers the mount gives before its answer."""
        if self.transport is None:
            raise CommandError(f"{self.name} has no transport")
        sent = self.address + command
        with self._order:
            self.transport.write(sent)
            self._writes += 1
            self._st_ahead = self._st_owed
        return sent

    def _keep_stop_answer(self, body: str) -> None:
        """An exchange read st's ``GS``: kept for the stop() waiting for the bus."""
        code = hex_field("GS")(body)
        with self._order:
            self._st_owed -= 1
        self._st_answers.append(code)

    def _next_reply(self, deadline: float, sent: str) -> str:
        """This mount's next reply body (without the address); replies for other mounts are kept for them."""
        assert self.transport is not None
        kept = Bus.of(self.transport).kept
        if kept[self.address]:
            return kept[self.address].popleft()
        others: set[str] = getattr(self.transport, "bus_addresses", set())
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise DeviceTimeout(f"{self.name}: no reply to {sent!r}")
            # the mounts share one serial port, whose reads take a timeout
            reply = cast(SerialTransport, self.transport).read(remaining)
            if len(reply) >= 3 and reply[0] == self.address:
                return reply[1:]
            if len(reply) >= 3 and reply[0] in others and reply[0] != self.address:
                kept[reply[0]].append(reply[1:])
                continue
            raise ProtocolError(f"{self.name}: reply {reply!r} to {sent!r} is not from address {self.address}")

    def _position_reply(self, body: str, wanted: bool) -> bool:
        """Sort out a ``PO``: True if it answers the ``gp`` being read (``wanted``).

        A move's arrival and a ``gp`` answer look alike, and the arrival comes whenever
        the move ends. Immediate answers keep their order, so: a ``PO`` at the move's
        target (or, during ``stop``, any ``PO``) is the arrival; a ``gp`` answer that
        the arrival stood in for is owed and dropped when it comes.
        """
        pulses = from_hex32(body[2:])
        at_target = self._target_pulses is not None and abs(pulses - self._target_pulses) <= 2
        if self._moving and at_target:
            self._arrive(pulses)
            if wanted:
                self._owed_gp += 1  # this gp's own answer is still to come
            return wanted
        if self._owed_gp:
            self._owed_gp -= 1  # an earlier gp's answer: already given
            return False
        if self._moving and not wanted and (self._target_pulses is None or self._stopping):
            self._arrive(pulses)
            return False
        return wanted

    def _arrive(self, pulses: int) -> None:
        self._moving = False
        self._last_position = pulses * 360.0 / self.pulses_per_rev

    def _move_status(self, body: str) -> bool:
        """A failure status while a move runs is the move's answer: kept for ``wait_motion`` to raise."""
        code = hex_field("GS")(body)
        if not self._moving or code in (0, BUSY):
            return False
        self._moving = False
        self._move_error = self._status_error(code, self._move_sent)
        return True

    def query(self, command: str, timeout: float | None = None) -> str:
        """Send ``command`` to this mount; its reply without the address. A non-zero GS raises."""
        with self._bus_lock():
            return self._answer(command, self._send(command), timeout)

    def _answer(self, command: str, sent: str, timeout: float | None = None) -> str:
        """Read this mount's answer to ``command`` (sent as ``sent``); hold the bus lock."""
        expect = REPLY_OF.get(command[:2], "GS")
        assert self.transport is not None  # _send refused a mount without one
        limit = self.transport.settings.timeout if timeout is None else timeout
        deadline = time.monotonic() + limit
        ahead = self._st_ahead  # st went out before this command: the mount answers it first
        while True:
            body = self._next_reply(deadline, sent)
            if ahead and body.startswith("GS"):
                ahead -= 1
                self._keep_stop_answer(body)
                continue
            if ahead and body.startswith("PO"):  # a move's end, which the mount answers before st's GS
                self._position_reply(body, wanted=False)
                continue
            if body.startswith("PO"):
                if self._position_reply(body, wanted=expect == "PO"):
                    return body
                continue
            if body.startswith(expect):
                if expect == "GS" and command[:2] != "gs":
                    code = hex_field("GS")(body)
                    if code != 0:
                        raise self._status_error(code, sent)
                return body
            if body.startswith("GS"):
                if self._move_status(body):
                    continue
                raise self._status_error(hex_field("GS")(body), sent)
            raise ProtocolError(f"{self.name}: reply {body!r} to {sent!r} is not {expect}")

    def write(self, command: str) -> None:
        """Elliptec mounts answer every command (GS00 or data): read and check the answer."""
        self.query(command)

    def _status_error(self, code: int, sent: str) -> DeviceStatusError:
        condition = STATUS.get(code, "unknown status")
        return DeviceStatusError(f"{self.name}: {sent!r} answered status {code:02X}: {condition}", code=code)

    def _degrees(self, body: str) -> float:
        if not body.startswith("PO"):
            raise ProtocolError(f"{self.name}: reply {body!r} is not a position (PO)")
        return from_hex32(body[2:]) * 360.0 / self.pulses_per_rev

    def _pulses(self, degrees: Any, what: str) -> str:
        value = in_range(-1e6, 1e6)(degrees, f"{self.name}.{what}")
        return to_hex32(round(value * self.pulses_per_rev / 360.0))

    # --- lifecycle ---------------------------------------------------------------------
    def connect(self) -> None:
        body = self.query("in")
        if not body.startswith("IN") or len(body) < 32:
            raise ProtocolError(f"{self.name}: info reply {body!r} is not IN + 30 characters")
        data = body[2:]
        try:
            self.info = {
                "type": int(data[0:2], 16),
                "serial": data[2:10],
                "year": data[10:14],
                "firmware": data[14:16],
                "hardware": data[16:18],
                "travel": int(data[18:22], 16),
                "pulses_per_unit": int(data[22:30], 16),
            }
        except ValueError:
            raise ProtocolError(f"{self.name}: info reply {body!r} has non-hex fields") from None
        if self.info["pulses_per_unit"] > 0:
            self.pulses_per_rev = self.info["pulses_per_unit"]

    def close(self) -> None:
        claimed = getattr(self.transport, "bus_addresses", None)
        if claimed is not None:
            claimed.discard(self.address)
        super().close()

    def identity(self) -> dict[str, str]:
        return {
            "driver": self.driver_name,
            "model": "Thorlabs ELL14",
            "address": self.address,
            **{k: str(v) for k, v in self.info.items()},
        }

    def settings(self) -> dict[str, Any]:
        return {"address": self.address} | super().settings() | {"pulses_per_rev": self.pulses_per_rev}

    # --- Movable: the motion contract (one axis; ``axis`` is accepted for the common interface) ----------
    def _move_timeout(self, degrees: float) -> float:
        """How long a move of ``degrees`` may take at the mount's velocity (read once), plus ``move_timeout``."""
        if self._velocity_percent is None:
            self._velocity_percent = self.velocity
        return self.move_timeout + abs(degrees) / (TOP_SPEED_DEG_S * max(self._velocity_percent, 1) / 100)

    def _start(self, command: str, travel_deg: float, wait: bool, target: float | None) -> float | None:
        """Send a move; its PO is owed until it arrives. With ``wait``, return the arrival position."""
        with self._bus_lock():
            timeout = self._move_timeout(travel_deg)
            self._target_pulses = None if target is None else round(target * self.pulses_per_rev / 360.0)
            self._move_sent = self._send(command)
            self._move_write = self._writes
            self._moving, self._stopped, self._move_error = True, False, None
            self._move_deadline = time.monotonic() + timeout
        return self.wait_motion() if wait else None

    def _check_target(self, target: float) -> float:
        if self.limits is not None and not self.limits[0] <= target <= self.limits[1]:
            low, high = self.limits
            raise CommandError(f"{self.name}: target {target:g} deg is outside the limits {low:g}..{high:g} deg")
        return target

    def travel(self) -> InRange | None:
        """The configured limits (None: the mount turns without end): a ``move_to`` beyond them is
        refused before it queues."""
        return None if self.limits is None else within_limits(*self.limits, "deg")

    def travel_steps(self) -> InRange | None:
        """A ``move_by`` longer than the limits are wide is refused before it queues (a shorter one
        is checked from the position it starts from, when it runs)."""
        travel = self.travel()
        return None if travel is None else steps_within(travel)

    @command(changes=False, validate={"target": "travel"})
    def move_to(self, target: float, wait: bool = True, axis: int | None = None) -> float | None:
        """Rotate to ``target`` degrees; with ``wait`` (default) return the position on arrival."""
        target = self._check_target(in_range(-1e6, 1e6)(target, f"{self.name}.target"))
        travel = target - self._last_position if self._last_position is not None else 360.0
        return self._start(f"ma{self._pulses(target, 'target')}", travel, wait, target)

    @command(changes=False, validate={"degrees": "travel_steps"})
    def move_by(self, degrees: float, wait: bool = True, axis: int | None = None) -> float | None:
        """Rotate by ``degrees``; with ``wait`` (default) return the position on arrival."""
        step = in_range(-1e6, 1e6)(degrees, f"{self.name}.step")
        start = self._last_position if self._last_position is not None else self.position()
        target = self._check_target(start + step)
        return self._start(f"mr{self._pulses(step, 'step')}", step, wait, target)

    @command(changes=False)
    def wait_motion(self, max_wait: float | None = None, axis: int | None = None) -> float:
        """Wait for the running move to end; its arrival position. MotionStopped if ``stop()`` cut it short."""
        deadline = self._move_deadline if max_wait is None else time.monotonic() + float(max_wait)
        while True:
            with self._bus_lock():
                if not self._moving:
                    break
                now = time.monotonic()
                if now >= deadline:
                    raise DeviceTimeout(
                        f"{self.name}: no arrival reply to {self._move_sent!r} in time; the mount may still be moving"
                    )
                try:
                    body = self._next_reply(min(deadline, now + WAIT_SLICE), self._move_sent)
                except DeviceTimeout:
                    continue
                if body.startswith("PO"):
                    self._position_reply(body, wanted=False)
                elif body.startswith("GS") and self._move_status(body):
                    pass  # the move failed: raised below
                elif body.startswith("GS") and self._st_owed:
                    self._keep_stop_answer(body)  # st went out before this move: it stopped nothing
                else:
                    raise ProtocolError(f"{self.name}: reply {body!r} while waiting for {self._move_sent!r}")
            time.sleep(0)  # let another thread (stop) take the bus between slices
        if self._move_error is not None:
            error, self._move_error = self._move_error, None
            raise error
        if self._stopped:
            raise MotionStopped(f"{self.name}: the move {self._move_sent!r} was stopped at {self._last_position:g} deg")
        assert self._last_position is not None
        return self._last_position

    @command(changes=False)
    def position(self, axis: int | None = None) -> float:
        position = self._degrees(self.query("gp"))
        if not self._moving:
            self._last_position = position
        return position

    @command(changes=False)
    def status(self) -> int:
        """The mount's status code (0 OK, 9 busy...)."""
        return hex_field("GS")(self.query("gs"))

    @command(changes=False)
    def is_moving(self, axis: int | None = None) -> bool:
        code = self.status()
        if code not in (0, BUSY):
            raise self._status_error(code, f"{self.address}gs")
        return self._moving or code == BUSY

    @command(changes=False)
    def stop(self, axis: int | None = None) -> None:
        """Stop at once; a waiting ``move_to`` raises MotionStopped.

        ``st`` goes out ahead of the move's reply and of an exchange in progress (a position
        poll waiting ~200 ms for its answer): the mount acts on a packet when it arrives. Its
        answer is read in turn, once the bus is free.
        """
        if self.transport is None:
            raise CommandError(f"{self.name} has no transport")
        sent = self.address + "st"
        try:
            with self._order:  # never waits for the bus while held (an exchange's _send takes it)
                self._stopped, self._stopping = self._moving, True
                at_once = bool(getattr(self.transport, "is_open", False))
                if at_once:
                    send_now(self.transport, sent)
                    self._st_owed += 1
                    before = self._writes  # a move written after st is not stopped by it
            with self._bus_lock():
                if not at_once:  # the port is closed (being reopened): st goes out in turn
                    self._send("st")
                    with self._order:
                        self._st_owed += 1
                        before = self._writes
                try:
                    code = self._stop_answer(sent)
                finally:
                    if self._move_write <= before:
                        self._moving = False  # stopped, whether or not the mount answered the move
            if code != 0:
                raise self._status_error(code, sent)
        finally:
            self._stopping = False

    def _stop_answer(self, sent: str) -> int:
        """The status answering ``st`` (bus lock held): one an exchange read meanwhile, else the next GS."""
        if self._st_answers:
            return self._st_answers.popleft()
        assert self.transport is not None
        deadline = time.monotonic() + self.transport.settings.timeout
        while True:
            body = self._next_reply(deadline, sent)
            if body.startswith("PO"):  # the interrupted move's end comes first
                self._position_reply(body, wanted=False)
                continue
            if not body.startswith("GS"):
                raise ProtocolError(f"{self.name}: reply {body!r} to {sent!r} is not GS")
            with self._order:
                self._st_owed -= 1
            return hex_field("GS")(body)

    @command(changes=False)
    def home(self, clockwise: bool = True, wait: bool = True, axis: int | None = None) -> float | None:
        """Search for home; with ``wait`` (default) return the position once there."""
        return self._start("ho0" if clockwise else "ho1", 360.0, wait, None)

    @command(changes=False)
    def jog(self, forward: bool = True, wait: bool = True) -> float | None:
        """One jog step forward (``fw``) or backward (``bw``)."""
        step = self.jog_step * (1 if forward else -1)
        start = self._last_position if self._last_position is not None else self.position()
        return self._start("fw" if forward else "bw", step, wait, start + step)

    def read(self, stream: str) -> float:
        if stream == "position":
            return self.position()
        return super().read(stream)
