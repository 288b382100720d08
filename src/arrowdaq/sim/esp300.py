"""Simulated Newport ESP300: ``{axis}{mnemonic}{value}`` commands, an error buffer, real motion.

Axes 1–3 are the optical table's stage (axis 1 carries the knife edge, axes 2
and 3 steer the spot on the camera), so a move changes what the power meter and
the camera see while it happens. Motion runs at the axis velocity divided by the
table's ``latency_scale`` (a fast test moves fast).

The command set is the manual's, as published clients use it (PyMeasure's
``ESP300``): ``PA``/``PR`` moves, ``TP``/``TP?`` position, ``MD?`` motion done,
``MO``/``MF``/``MO?`` motor power, ``ST`` stop (one axis or, without one, all),
``OR[k]`` home, ``DH[x]`` define home, ``WS[ms]`` wait for stop, ``VA``/``AC``/``AG``
(and their queries), ``SN`` units, ``SL``/``SR`` software limits, ``ID?`` stage,
``VE?``/``*IDN?`` version, ``TB?`` (code, timestamp, message) and ``TE?`` (code)
for the error buffer.

Refused commands get no reply: they file an error read with ``TB?`` or ``TE?``
(axis errors are 100 × axis + code, as in the manual: 13 motor not enabled,
6/7 positive/negative software limit). A test files one itself with
``sim.push_error(code, message)``.
"""

from __future__ import annotations

import math
import re
import time
from collections import deque

from .device import SimDevice
from .table import Motion, OpticalTable

REPLY_LATENCY = 0.02

#: Software travel limits per axis (mm) at power-up.
TRAVEL = {1: (0.0, 25.0), 2: (-12.5, 12.5), 3: (-12.5, 12.5)}

NO_ERROR = "NO ERROR DETECTED"
COMMAND_DOES_NOT_EXIST = (6, "COMMAND DOES NOT EXIST")
PARAMETER_OUT_OF_RANGE = (7, "PARAMETER OUT OF RANGE")
AXIS_OUT_OF_RANGE = (9, "AXIS NUMBER OUT OF RANGE")
AXIS_MISSING = (37, "AXIS NUMBER MISSING")
PARAMETER_MISSING = (38, "COMMAND PARAMETER MISSING")
#: Axis error codes (added to 100 × axis).
AXIS_PARAMETER_OUT_OF_RANGE = (1, "PARAMETER OUT OF RANGE")
POSITIVE_LIMIT = (6, "POSITIVE SOFTWARE LIMIT DETECTED")
NEGATIVE_LIMIT = (7, "NEGATIVE SOFTWARE LIMIT DETECTED")
MOTOR_NOT_ENABLED = (13, "MOTOR NOT ENABLED")

_COMMAND = re.compile(r"^(\d*)([A-Z]{2})(\?)?\s*(.*)$")
#: Mnemonics that answer without ``?`` too (``1TP`` as well as ``1TP?``).
_QUERY_WITHOUT_MARK = {"TP"}


class ESP300Sim(SimDevice):
    command_terminator = (b"\r\n", b"\r", b"\n")
    reply_terminator = b"\r\n"
    latency = REPLY_LATENCY

    def __init__(self, table: OpticalTable) -> None:
        super().__init__(table)
        self.velocity = {axis: 5.0 for axis in TRAVEL}  # mm/s
        self.acceleration = {axis: 20.0 for axis in TRAVEL}
        self.deceleration = {axis: 20.0 for axis in TRAVEL}
        self.motor_on = {axis: False for axis in TRAVEL}
        self.units = {axis: 2 for axis in TRAVEL}  # SN: 2 = mm
        self.limits = {axis: list(TRAVEL[axis]) for axis in TRAVEL}
        #: Controller coordinate minus the table's physical position (``DH`` moves the origin).
        self.offset = {axis: 0.0 for axis in TRAVEL}
        self.errors: deque[tuple[int, int, str]] = deque(maxlen=10)
        self._t0 = time.monotonic()

    def push_error(self, code: int, message: str) -> None:
        """File an error, as the controller does for a command it refuses."""
        self.errors.append((code, int((time.monotonic() - self._t0) * 1000), message))

    def inject_error(self) -> None:
        """File a following error on axis 1 (the next check of the error buffer finds it)."""
        self._axis_error(1, (3, "FOLLOWING ERROR THRESHOLD EXCEEDED"))

    def _axis_error(self, axis: int, error: tuple[int, str]) -> None:
        self.push_error(axis * 100 + error[0], f"AXIS-{axis} {error[1]}")

    def handle(self, command: str) -> str | None:
        # several commands may share a line, separated by ';' (as in the manual)
        replies = [r for part in command.split(";") if (r := self._one(part.strip().upper())) is not None]
        return ";".join(replies) if replies else None

    def _one(self, text: str) -> str | None:
        if not text:
            return None
        if text in ("*IDN?", "VE?", "VE"):
            return "ESP300 Version 3.04 07/27/01"
        if text in ("TB?", "TB"):
            if not self.errors:
                return f"0, {int((time.monotonic() - self._t0) * 1000)}, {NO_ERROR}"
            code, stamp, message = self.errors.popleft()
            return f"{code}, {stamp}, {message}"
        if text in ("TE?", "TE"):
            return str(self.errors.popleft()[0]) if self.errors else "0"
        match = _COMMAND.match(text)
        if match is None:
            self.push_error(*COMMAND_DOES_NOT_EXIST)
            return None
        axis_text, mnemonic, query, value = match.groups()
        if mnemonic == "ST" and axis_text in ("", "0"):
            for axis in TRAVEL:
                self._stage(axis).stop(time.monotonic())
            return None
        if not axis_text:
            self.push_error(*AXIS_MISSING)
            return None
        if int(axis_text) not in TRAVEL:
            self.push_error(*AXIS_OUT_OF_RANGE)
            return None
        return self._axis_command(int(axis_text), mnemonic, bool(query), value.strip())

    def _stage(self, axis: int) -> Motion:
        return self.table.stage[axis]

    def _speed(self, axis: int) -> float:
        scale = self.table.latency_scale
        return self.velocity[axis] / scale if scale > 0 else math.inf

    def _where(self, axis: int, now: float) -> float:
        """The axis position in the controller's coordinates."""
        return self._stage(axis).at(now) + self.offset[axis]

    def _axis_command(self, axis: int, mnemonic: str, query: bool, value: str) -> str | None:
        now = time.monotonic()
        stage = self._stage(axis)
        if mnemonic == "WS" and not query:  # later commands wait until the axis stops, then the delay
            with self.table.lock:
                remaining = abs(stage.target - stage.at(now)) / stage.speed if stage.speed > 0 else 0.0
            self._block(remaining + (_number(value) or 0.0) / 1000 * self.table.latency_scale)
            return None
        with self.table.lock:
            if mnemonic in _QUERY_WITHOUT_MARK or query:
                return self._query(axis, mnemonic, now)
            if mnemonic == "ST":
                stage.stop(now)
                return None
            if mnemonic in ("MO", "MF"):
                self.motor_on[axis] = mnemonic == "MO"
                if mnemonic == "MF":
                    stage.stop(now)
                return None
            if mnemonic == "OR":  # search for the origin: the physical home, where the coordinate is 0
                if value and (not value.isdigit() or int(value) > 6):
                    self.push_error(*PARAMETER_OUT_OF_RANGE)
                    return None
                if not self.motor_on[axis]:
                    self._axis_error(axis, MOTOR_NOT_ENABLED)
                    return None
                self.offset[axis] = 0.0
                stage.move_to(0.0, self._speed(axis), now)
                return None
            number = _number(value)
            if mnemonic == "DH":  # define home: the present position is `value` (default 0)
                self.offset[axis] = (number or 0.0) - stage.at(now)
                return None
            if mnemonic in ("PA", "PR", "VA", "AC", "AG", "SN", "SL", "SR"):
                if number is None:
                    self.push_error(*(PARAMETER_MISSING if not value else PARAMETER_OUT_OF_RANGE))
                    return None
                self._set_number(axis, mnemonic, number)
                return None
        self.push_error(*COMMAND_DOES_NOT_EXIST)
        return None

    def _query(self, axis: int, mnemonic: str, now: float) -> str | None:
        if mnemonic == "TP":
            return f"{self._where(axis, now):.5f}"
        if mnemonic == "MD":
            return "0" if self._stage(axis).moving(now) else "1"
        if mnemonic == "MO":
            return "1" if self.motor_on[axis] else "0"
        if mnemonic == "ID":
            return f"UTM{int(TRAVEL[axis][1] - TRAVEL[axis][0])}PP.1, simulated stage {axis}"
        if mnemonic in ("VA", "AC", "AG"):
            table = {"VA": self.velocity, "AC": self.acceleration, "AG": self.deceleration}[mnemonic]
            return f"{table[axis]:.5f}"
        if mnemonic == "SN":
            return str(self.units[axis])
        if mnemonic in ("SL", "SR"):
            return f"{self.limits[axis][0 if mnemonic == 'SL' else 1]:.5f}"
        if mnemonic == "DP":  # desired position: the target
            return f"{self._stage(axis).target + self.offset[axis]:.5f}"
        self.push_error(*COMMAND_DOES_NOT_EXIST)
        return None

    def _set_number(self, axis: int, mnemonic: str, number: float) -> None:
        """A command with a numeric argument (under the table lock)."""
        if mnemonic == "PA":
            self._move(axis, number)
        elif mnemonic == "PR":
            self._move(axis, self._stage(axis).target + self.offset[axis] + number)
        elif mnemonic == "VA":
            if not 0 < number <= 1000:
                self._axis_error(axis, AXIS_PARAMETER_OUT_OF_RANGE)
            else:
                self.velocity[axis] = number
        elif mnemonic in ("AC", "AG"):
            if not 0 < number <= 1e5:
                self._axis_error(axis, AXIS_PARAMETER_OUT_OF_RANGE)
            else:
                (self.acceleration if mnemonic == "AC" else self.deceleration)[axis] = number
        elif mnemonic == "SN":
            if number != int(number) or not 0 <= number <= 11:
                self._axis_error(axis, AXIS_PARAMETER_OUT_OF_RANGE)
            else:
                self.units[axis] = int(number)
        elif mnemonic in ("SL", "SR"):
            self.limits[axis][0 if mnemonic == "SL" else 1] = number

    def _move(self, axis: int, target: float) -> None:
        if not self.motor_on[axis]:
            self._axis_error(axis, MOTOR_NOT_ENABLED)
            return None
        low, high = self.limits[axis]
        if target > high:
            self._axis_error(axis, POSITIVE_LIMIT)
            return None
        if target < low:
            self._axis_error(axis, NEGATIVE_LIMIT)
            return None
        self._stage(axis).move_to(target - self.offset[axis], self._speed(axis), time.monotonic())
        return None

    def _block(self, seconds: float) -> None:
        """Hold the command queue (``WS``): the controller answers nothing meanwhile."""
        if seconds > 0:
            time.sleep(min(seconds, 60.0))


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None
