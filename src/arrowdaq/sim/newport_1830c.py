"""Simulated Newport 1830-C power meter: LF-terminated commands, the meter's number format.

The head sees the optical table's beam (``OpticalTable.power_meter_w``). A test
makes the meter answer a limit or error instead of a reading with
``sim.force_reply = "OVER"`` (``None`` returns to readings).
"""

from __future__ import annotations

import math

from .device import SimDevice
from .table import OpticalTable

#: Seconds the real meter takes for a reading, and for any other query.
READING_LATENCY = 0.5
QUERY_LATENCY = 0.05


def format_reading(watts: float) -> str:
    """The meter's notation: sign, no leading zero, 4 digits, e.g. ``+.7500E-9``."""
    if watts == 0:
        return "+.0000E+0"
    exponent = math.floor(math.log10(abs(watts))) + 1
    mantissa = abs(watts) / 10**exponent
    if round(mantissa, 4) >= 1.0:  # 0.99996 would print as 1.0000
        mantissa, exponent = mantissa / 10, exponent + 1
    sign = "-" if watts < 0 else "+"
    return f"{sign}{f'{mantissa:.4f}'[1:]}E{exponent}"  # "0.7500" → ".7500"


#: ``Q?`` status byte bits.
PARAMETER_ERROR, COMMAND_ERROR, SATURATED, OVER_RANGE, READING_READY = 1, 2, 4, 8, 128
FLAGS = {"A": "01", "B": "01", "G": "01", "E": "01", "Z": "01", "L": "01", "F": "123", "U": "1234"}


class Newport1830CSim(SimDevice):
    """The meter's command set (instruments.md): the queries, the sets, ``R0``-``R8``, ``S``, ``Q?``.

    A bad setting is ignored and flags a parameter error; an unknown query is answered ``ERR``
    and flags a command error; ``Q?`` reports (and clears) them.
    """

    command_terminator = b"\n"
    reply_terminator = b"\n"
    latency = QUERY_LATENCY

    def __init__(self, table: OpticalTable) -> None:
        super().__init__(table)
        self.force_reply: str | None = None
        self.state = {"A": 0, "F": 2, "B": 0, "G": 1, "W": 800, "U": 1, "E": 0, "Z": 0, "L": 0}
        self.range = 4
        self.auto_range = True
        self.errors = 0  # Q? bits 1 and 2, cleared when read
        self._zero_w = 0.0
        self._reference_w = 0.0
        self._error_next = False

    def inject_error(self) -> None:
        """The next reading is answered ``ERR``."""
        self._error_next = True

    def handle(self, command: str) -> str | None:
        cmd = command.strip()
        if cmd == "D?":
            self.table.delay(READING_LATENCY - self.latency)
            if self._error_next:
                self._error_next = False
                return "ERR"
            return self.force_reply if self.force_reply is not None else self._reading()
        if cmd == "Q?":
            status, self.errors = self.errors | READING_READY, 0
            return str(status)
        if len(cmd) == 2 and cmd[1] == "?" and cmd[0] in "AFBGRWUZL":
            if cmd[0] == "R":
                return str(self._range())
            if cmd[0] == "W":
                return f"{self.state['W']:04d}"
            return str(self.state[cmd[0]])
        if cmd == "CS":
            self.errors = 0
            return None
        if cmd == "S":
            self._reference_w = self._watts()
            return None
        key, value = cmd[:1], cmd[1:]
        if key in FLAGS and len(value) == 1 and value in FLAGS[key]:
            self.state[key] = int(value)
            if key == "Z":
                self._zero_w = self._watts() if value == "1" else 0.0
            return None
        if key == "R" and len(value) == 1 and value in "012345678":
            self.auto_range = value == "0"
            self.range = self.range if self.auto_range else int(value)
            return None
        if key == "W" and len(value) == 4 and value.isdigit() and 400 <= int(value) <= 1100:
            self.state["W"] = int(value)
            return None
        if cmd.endswith("?"):  # an unknown query: ERR
            self.errors |= COMMAND_ERROR
            return "ERR"
        self.errors |= PARAMETER_ERROR if key in FLAGS or key in "RW" else COMMAND_ERROR
        return None  # a bad setting is ignored

    def _range(self) -> int:
        """Auto-range: the range whose full scale (2 mW / 10^(8-r)... as on the meter) holds the reading."""
        if not self.auto_range:
            return self.range
        watts = max(self._watts(), 1e-12)
        return int(min(8, max(1, math.ceil(math.log10(watts / 2e-9)) + 1)))

    def _watts(self) -> float:
        return self.table.power_meter_w()

    def _reading(self) -> str:
        watts = self._watts() - self._zero_w
        reference = self._reference_w or self._zero_w
        if self.state["U"] == 2:  # dBm: a plain decimal
            return f"{10 * math.log10(max(watts, 1e-15) / 1e-3):.2f}"
        if self.state["U"] in (3, 4) and reference > 0:
            ratio = max(watts + self._zero_w, 1e-15) / reference
            return f"{10 * math.log10(ratio):.2f}" if self.state["U"] == 3 else format_reading(ratio)
        return format_reading(watts)
