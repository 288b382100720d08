"""Simulated Newport ESP300: ``{axis}{mnemonic}{value}`` commands, an error buffer, real motion.

Axes 1–3 are the optical table's stage (axis 1 carries the knife edge, axes 2
and 3 steer the spot on the camera), so a move changes what the power meter and
the camera see while it happens. Motion runs at the axis velocity divided by the
table's ``latency_scale`` (a fast test moves fast).

Refused commands get no reply: they file an error read with ``TB?``. A test
files one itself with ``sim.push_error(code, message)``.
"""

from __future__ import annotations

import math
import re
import time
from collections import deque

from .device import SimDevice
from .table import OpticalTable

REPLY_LATENCY = 0.02

#: Software travel limits per axis (mm).
TRAVEL = {1: (0.0, 25.0), 2: (-12.5, 12.5), 3: (-12.5, 12.5)}

NO_ERROR = "NO ERROR DETECTED"
COMMAND_DOES_NOT_EXIST = (6, "COMMAND DOES NOT EXIST")
PARAMETER_OUT_OF_RANGE = (7, "PARAMETER OUT OF RANGE")
AXIS_OUT_OF_RANGE = (9, "AXIS NUMBER OUT OF RANGE")

_COMMAND = re.compile(r"^(\d?)([A-Z]{2})(\?)?\s*(.*)$")


class ESP300Sim(SimDevice):
    command_terminator = (b"\r\n", b"\r", b"\n")
    reply_terminator = b"\r\n"
    latency = REPLY_LATENCY

    def __init__(self, table: OpticalTable) -> None:
        super().__init__(table)
        self.velocity = {axis: 5.0 for axis in TRAVEL}  # mm/s
        self.acceleration = {axis: 20.0 for axis in TRAVEL}
        self.motor_on = {axis: False for axis in TRAVEL}
        self.errors: deque[tuple[int, int, str]] = deque(maxlen=10)
        self._t0 = time.monotonic()

    def push_error(self, code: int, message: str) -> None:
        """File an error, as the controller does for a command it refuses."""
        self.errors.append((code, int((time.monotonic() - self._t0) * 1000), message))

    def handle(self, command: str) -> str | None:
        text = command.strip().upper()
        if text == "*IDN?" or text == "VE?":
            return "ESP300 Version 3.04 07/27/01"
        if text == "TB?":
            if not self.errors:
                return f"0, {int((time.monotonic() - self._t0) * 1000)}, {NO_ERROR}"
            code, stamp, message = self.errors.popleft()
            return f"{code}, {stamp}, {message}"
        match = _COMMAND.match(text)
        if match is None:
            self.push_error(*COMMAND_DOES_NOT_EXIST)
            return None
        axis_text, mnemonic, query, value = match.groups()
        if mnemonic == "ST" and not axis_text:
            for axis in TRAVEL:
                self._stage(axis).stop(time.monotonic())
            return None
        if not axis_text or int(axis_text) not in TRAVEL:
            self.push_error(*AXIS_OUT_OF_RANGE)
            return None
        return self._axis_command(int(axis_text), mnemonic, bool(query), value)

    def _stage(self, axis: int):
        return self.table.stage[axis]

    def _speed(self, axis: int) -> float:
        scale = self.table.latency_scale
        return self.velocity[axis] / scale if scale > 0 else math.inf

    def _axis_command(self, axis: int, mnemonic: str, query: bool, value: str) -> str | None:
        now = time.monotonic()
        stage = self._stage(axis)
        with self.table.lock:
            if mnemonic == "TP":
                return f"{stage.at(now):.5f}"
            if mnemonic == "MD" and query:
                return "0" if stage.moving(now) else "1"
            if mnemonic == "ID" and query:
                return f"UTM{int(TRAVEL[axis][1] - TRAVEL[axis][0])}PP.1, simulated stage {axis}"
            if mnemonic in ("VA", "AC") and query:
                table = self.velocity if mnemonic == "VA" else self.acceleration
                return f"{table[axis]:.5f}"
            if mnemonic == "ST":
                stage.stop(now)
                return None
            if mnemonic in ("MO", "MF"):
                self.motor_on[axis] = mnemonic == "MO"
                if mnemonic == "MF":
                    stage.stop(now)
                return None
            if mnemonic == "OR":
                return self._move(axis, 0.0)
            number = _number(value)
            if mnemonic in ("PA", "PR", "VA", "AC", "AG") and number is None:
                self.push_error(*PARAMETER_OUT_OF_RANGE)
                return None
            if mnemonic == "PA" and number is not None:
                return self._move(axis, number)
            if mnemonic == "PR" and number is not None:
                return self._move(axis, stage.target + number)
            if mnemonic == "VA" and number is not None:
                if not 0 < number <= 1000:
                    self.push_error(axis * 100 + 1, f"AXIS-{axis} PARAMETER OUT OF RANGE")
                    return None
                self.velocity[axis] = number
                return None
            if mnemonic in ("AC", "AG") and number is not None:
                self.acceleration[axis] = number
                return None
        self.push_error(*COMMAND_DOES_NOT_EXIST)
        return None

    def _move(self, axis: int, target: float) -> None:
        if not self.motor_on[axis]:
            self.push_error(axis * 100 + 8, f"AXIS-{axis} MOTOR NOT ENABLED")
            return None
        low, high = TRAVEL[axis]
        if target > high:
            self.push_error(axis * 100 + 6, f"AXIS-{axis} POSITIVE SOFTWARE LIMIT DETECTED")
            return None
        if target < low:
            self.push_error(axis * 100 + 7, f"AXIS-{axis} NEGATIVE SOFTWARE LIMIT DETECTED")
            return None
        self._stage(axis).move_to(target, self._speed(axis), time.monotonic())
        return None


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None
