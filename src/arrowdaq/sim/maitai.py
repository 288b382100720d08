"""Simulated Spectra-Physics MaiTai: commands end in CR (LF accepted), replies in LF.

Wavelength, shutter and emission are the optical table's, so the power meter
downstream sees them. ``sim.local_mode = True`` mimics the front-panel LOCAL
mode: sets are accepted and silently not executed. Unknown commands get no
reply, as on the real laser.

The command set is SCPI-like (instruments.md): every keyword has a long and a
short form (``WAVelength`` = ``WAV``), case does not matter, and a set takes its
value after a colon or a space (``WAVELENGTH:790``, ``WAVelength 790``,
``SHUTter 1``). Queries: ``*IDN?``, ``*STB?``, ``WAVelength?`` (setpoint),
``READ:WAVelength?``, ``POWer?``/``READ:POWer?``, ``SHUTter?``,
``READ:PCTWarmedup?``, ``READ:HUMidity?``, ``PLASer:POWer?``/``READ:PLASer:POWer?``,
``MODE?``, ``WAVelength:MIN?``/``MAX?``, ``SYSTem:ERR?``. Sets: ``WAVelength``,
``SHUTter``, ``ON``, ``OFF``, ``MODE``, ``TIMer:WATChdog``, ``SAVe``.
"""

from __future__ import annotations

import re

from .device import SimDevice
from .table import OpticalTable

#: Seconds the real laser takes to answer a query (2–3 s have been seen; 1 s is typical).
QUERY_LATENCY = 1.0

IDN = "Spectra Physics,MaiTai,3227/51054/40856,0245-2.00.34"
WAVELENGTH_RANGE = (690.0, 1040.0)
PUMP_POWER_W = 13.43


def _keyword(long: str) -> str:
    """A regular expression for one SCPI keyword: its long form or its short form (the capitals)."""
    short = "".join(c for c in long if c.isupper())
    return f"(?:{long.upper()}|{short})" if short != long.upper() else short


def _header(*keywords: str) -> str:
    return ":".join(_keyword(k) for k in keywords)


_SET = re.compile(r"^(?P<header>[A-Z*:]+?)(?:[: ]\s*(?P<value>[-+0-9.E]+|ON|OFF|POW|CUR))?$")
_QUERIES = {
    name: re.compile(f"^{pattern}\\?$")
    for name, pattern in {
        "idn": r"\*IDN",
        "stb": r"\*STB",
        "setpoint": _header("WAVelength"),
        "wavelength": _header("READ", "WAVelength"),
        "power": f"(?:READ:)?{_header('POWer')}",
        "shutter": _header("SHUTter"),
        "warmup": _header("READ", "PCTWarmedup"),
        "humidity": _header("READ", "HUMidity"),
        "pump": f"(?:READ:)?{_header('PLASer', 'POWer')}",
        "mode": _header("MODE"),
        "min": _header("WAVelength", "MINimum"),
        "max": _header("WAVelength", "MAXimum"),
        "error": _header("SYSTem", "ERRor"),
        "watchdog": _header("TIMer", "WATChdog"),
    }.items()
}
_SETS = {
    name: re.compile(f"^{pattern}$")
    for name, pattern in {
        "wavelength": _header("WAVelength"),
        "shutter": _header("SHUTter"),
        "mode": _header("MODE"),
        "watchdog": _header("TIMer", "WATChdog"),
        "save": _header("SAVe"),
        "on": "ON",
        "off": "OFF",
    }.items()
}


class MaiTaiSim(SimDevice):
    command_terminator = (b"\r", b"\n")
    reply_terminator = b"\n"
    latency = QUERY_LATENCY

    def __init__(self, table: OpticalTable) -> None:
        super().__init__(table)
        self.local_mode = False
        self.setpoint_nm = table.wavelength_nm
        self.mode = "POW"
        self.watchdog_s = 0.0
        self.errors: list[str] = []
        self._error_next = False

    def inject_error(self) -> None:
        """The next query is answered with an error message instead of its value."""
        self._error_next = True

    def handle(self, command: str) -> str | None:
        cmd = command.strip().upper()
        table = self.table
        with table.lock:
            if cmd.endswith("?"):
                if self._error_next:
                    self._error_next = False
                    return "ERROR: SYSTEM FAULT"
                return self._query(cmd)
            match = _SET.match(cmd)
            if match is None:
                self.errors.append(f"UNKNOWN COMMAND {cmd}")
                return None
            header, value = match.group("header"), match.group("value")
            name = next((n for n, p in _SETS.items() if p.match(header)), None)
            if name is None:
                self.errors.append(f"UNKNOWN COMMAND {cmd}")
                return None
            if self.local_mode:
                return None
            if name == "wavelength" and value is not None:
                nm = float(value)
                if WAVELENGTH_RANGE[0] <= nm <= WAVELENGTH_RANGE[1]:
                    self.setpoint_nm = table.wavelength_nm = nm
                else:
                    self.errors.append(f"WAVELENGTH OUT OF RANGE {value}")
            elif name == "shutter" and value in ("0", "1"):
                table.shutter_open = value == "1"
            elif name == "on":
                table.emission = True
            elif name == "off":
                table.emission = False
            elif name == "mode" and value in ("POW", "CUR"):
                self.mode = value
            elif name == "watchdog" and value is not None:
                self.watchdog_s = float(value)
            elif name != "save":
                self.errors.append(f"BAD VALUE {cmd}")
        return None

    def _query(self, cmd: str) -> str | None:
        table = self.table
        name = next((n for n, p in _QUERIES.items() if p.match(cmd)), None)
        if name == "idn":
            return IDN
        if name == "stb":  # bit 0 emission; 8 as seen on real hardware when on (modelocked)
            return str(9 if table.emission else 0)
        if name == "setpoint":
            return f"{self.setpoint_nm:.0f}nm"
        if name == "wavelength":
            return f"{table.wavelength_nm:.0f}nm"
        if name == "power":
            watts = table.internal_power_w()
            return f"{watts:.3f}W" if watts > 0 else "0.00000W"
        if name == "shutter":
            return "1" if table.shutter_open else "0"
        if name == "warmup":
            return "100.00%"
        if name == "humidity":
            return "7.26%"
        if name == "pump":
            return f"{PUMP_POWER_W:.2f}W" if table.emission else "0.00W"
        if name == "mode":
            return self.mode
        if name in ("min", "max"):
            return f"{WAVELENGTH_RANGE[0 if name == 'min' else 1]:.0f}nm"
        if name == "error":
            return self.errors.pop(0) if self.errors else "0"
        if name == "watchdog":
            return f"{self.watchdog_s:g}"
        self.errors.append(f"UNKNOWN QUERY {cmd}")
        return None  # unknown: no reply, as on the real laser
