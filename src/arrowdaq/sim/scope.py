"""A SCPI oscilloscope on the optical table: channel 1 is the chopped photodiode.

It speaks enough IEEE 488.2 / SCPI for the generic ``scpi`` driver to run
unchanged against it (serve it with ``serve(ScopeSim(table), "tcp")`` and open
``TCPIP0::127.0.0.1::<port>::SOCKET``). Headers take the long or short form in
any case (``WAVeform:POINts``), several commands may share a line (``*RST;*CLS``).

Commands (``<n>`` a number):

* ``*IDN?`` ``*RST`` ``*CLS`` ``*OPC?`` ``*ESR?`` ``*STB?`` ``SYST:ERR?``
* ``MEAS:VOLT:DC?`` — mean photodiode voltage (V)
* ``ACQ:SRAT <n>`` / ``ACQ:SRAT?`` — sample rate (Sa/s)
* ``WAV:POIN <n>`` / ``WAV:POIN?`` — samples per trace
* ``WAV:FORM ASC|WORD|REAL`` / ``WAV:FORM?`` — the ``WAV:DATA?`` encoding:
  ``ASC`` comma-separated volts; ``WORD`` a block of little-endian int16 codes,
  volts = (code − YREF) · YINC + YOR; ``REAL`` a block of little-endian float32 volts
* ``WAV:DATA?`` — one trace; ``WAV:XINC?`` ``WAV:XOR?`` ``WAV:XREF?``
  ``WAV:YINC?`` ``WAV:YOR?`` ``WAV:YREF?``; the time of sample ``i`` is
  XOR + (i − XREF) · XINC (the trigger sits mid-screen, so XOR < 0)
* ``WAV:PRE?`` — the ten-field preamble of Keysight InfiniiVision scopes:
  ``format,type,points,count,xinc,xorigin,xref,yinc,yorigin,yref``
  (format 0 = REAL here, 1 = WORD, 4 = ASCii as Keysight numbers them).

Errors go to a queue read by ``SYST:ERR?`` (``+0,"No error"`` when empty):
an unknown header queues ``-113,"Undefined header"`` (and a query gets no
reply, like a real instrument), a bad value ``-222,"Data out of range"`` or
``-224,"Illegal parameter value"``. They set the command/execution error bits
of ``*ESR?`` and the error-available bit (4) of ``*STB?``. Tests inject device
errors with :meth:`ScopeSim.push_error`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import ClassVar

import numpy as np

from .device import SimDevice
from .table import OpticalTable

#: *ESR? bits (IEEE 488.2).
ESR_EXECUTION_ERROR = 16
ESR_COMMAND_ERROR = 32
#: *STB? bits.
STB_ERROR_AVAILABLE = 4
STB_EVENT_SUMMARY = 32

FORMAT_CODES = {"REAL": 0, "WORD": 1, "ASC": 4}
VOWELS = set("AEIOU")


def short_form(node: str) -> str:
    """The SCPI short form of one header node: ``WAVEFORM`` → ``WAV``, ``POINTS`` → ``POIN``."""
    node = node.upper()
    if len(node) <= 4 or node.startswith("*"):
        return node
    return node[:3] if node[3] in VOWELS else node[:4]


def normalize_header(header: str) -> str:
    """``:WAVeform:POINts?`` → ``WAV:POIN?``."""
    query = header.endswith("?")
    nodes = header.rstrip("?").lstrip(":").split(":")
    return ":".join(short_form(n) for n in nodes) + ("?" if query else "")


def ieee_block(payload: bytes) -> bytes:
    """``payload`` as an IEEE 488.2 definite-length block: ``#<n><len><payload>``."""
    length = str(len(payload)).encode()
    return b"#" + str(len(length)).encode() + length + payload


#: The scope's settings as the ``scpi`` driver declares them (``controls``): set with ``set``, recorded.
CONTROLS = {
    "sample_rate": {"get": "ACQ:SRAT?", "set": "ACQ:SRAT {:g}", "limits": [1, 1e10], "unit": "Sa/s"},
    "points": {"get": "WAV:POIN?", "set": "WAV:POIN {:d}", "limits": [2, 1_000_000], "doc": "Samples per trace"},
}


def driver_settings(points: int = 2_000, sample_rate: float = 100_000.0, trace_hz: float = 5.0) -> dict:
    """Settings with which the ``scpi`` driver reads this simulator: ``voltage`` and a binary ``trace``,
    with the sample rate and the trace length as declared controls."""
    return {
        "controls": {
            "sample_rate": {**CONTROLS["sample_rate"], "value": sample_rate},
            "points": {**CONTROLS["points"], "value": points},
        },
        "queries": {"voltage": {"query": "MEAS:VOLT:DC?", "unit": "V", "poll_hz": 2.0}},
        "traces": {
            "trace": {
                "query": "WAV:DATA?",
                "format": "binary",
                "dtype": "<f4",
                "select": ["WAV:FORM REAL"],
                "x_increment": "WAV:XINC?",
                "x_origin": "WAV:XOR?",
                "unit": "V",
                "x_unit": "s",
                "poll_hz": trace_hz,
            }
        },
    }


class ScopeSim(SimDevice):
    """See the module docstring."""

    transport = "tcp"
    visa = True

    @classmethod
    def driver_settings(cls, settings: dict) -> dict:
        """Without configured queries or traces the ``scpi`` driver reads ``voltage`` and ``trace``."""
        return {} if settings.get("queries") or settings.get("traces") else driver_settings()

    def inject_error(self) -> None:
        self.push_error(-350, "Queue overflow")

    latency = 0.002  # seconds per reply on a LAN scope
    transfer_s_per_byte = 1e-7  # ~10 MB/s readout
    reset_s = 1.0  # *RST takes about a second
    identity = "ArrowDAQ,SimScope-1000,SIM00042,1.0.0"
    y_increment = 2e-4  # V per WORD code: ±6.55 V full scale

    def __init__(self, table: OpticalTable) -> None:
        super().__init__(table)
        self.errors: list[tuple[int, str]] = []
        self.esr = 0
        self.sample_rate = 0.0
        self.points = 0
        self.format = "ASC"
        self.reset_settings()

    def reset_settings(self) -> None:
        self.sample_rate = 100_000.0
        self.points = 2_000
        self.format = "ASC"

    # --- error queue ------------------------------------------------------------------
    def push_error(self, code: int, message: str) -> None:
        """Queue a device error, as the instrument would after a failed command."""
        self.errors.append((code, message))
        self.esr |= ESR_COMMAND_ERROR if -199 <= code <= -100 else ESR_EXECUTION_ERROR

    def status_byte(self) -> int:
        return (STB_ERROR_AVAILABLE if self.errors else 0) | (STB_EVENT_SUMMARY if self.esr else 0)

    # --- the trace ----------------------------------------------------------------------
    @property
    def x_increment(self) -> float:
        return 1.0 / self.sample_rate

    @property
    def x_origin(self) -> float:
        return -(self.points // 2) * self.x_increment

    def trace(self) -> np.ndarray:
        return self.table.photodiode_trace(self.points, self.x_increment, t0=time.time())

    def waveform(self) -> str | bytes:
        volts = self.trace()
        if self.format == "ASC":
            return ",".join(np.char.mod("%.6e", volts))
        if self.format == "REAL":
            payload = volts.astype("<f4").tobytes()
        else:
            codes = np.clip(np.round(volts / self.y_increment), -32768, 32767)
            payload = codes.astype("<i2").tobytes()
        self.table.delay(len(payload) * self.transfer_s_per_byte)
        return ieee_block(payload)

    def preamble(self) -> str:
        fields = [
            FORMAT_CODES[self.format],
            0,
            self.points,
            1,
            self.x_increment,
            self.x_origin,
            0,
            self.y_increment,
            0.0,
            0,
        ]
        return ",".join(f"{v:.9e}" if isinstance(v, float) else str(v) for v in fields)

    # --- the protocol --------------------------------------------------------------------
    def handle(self, command: str) -> str | bytes | None:
        replies = [
            r for part in command.split(";") if part.strip() and (r := self.handle_one(part.strip())) is not None
        ]
        if not replies:
            return None
        if len(replies) == 1:
            return replies[0]
        return b";".join(r if isinstance(r, bytes) else r.encode(self.encoding) for r in replies)

    def handle_one(self, command: str) -> str | bytes | None:
        header, _, arg = command.partition(" ")
        key = normalize_header(header)
        arg = arg.strip()
        if key.endswith("?"):
            query = self.QUERIES.get(key)
            if query is None or arg:
                self.push_error(-113, "Undefined header")
                return None
            return query(self)
        setter = self.SETTERS.get(key)
        if setter is None:
            self.push_error(-113, "Undefined header")
            return None
        setter(self, arg)
        return None

    def _cls(self, arg: str) -> None:
        self.errors.clear()
        self.esr = 0

    def _rst(self, arg: str) -> None:
        self.reset_settings()
        self.table.delay(self.reset_s)

    def _esr(self) -> str:
        value, self.esr = self.esr, 0
        return str(value)

    def _syst_err(self) -> str:
        if not self.errors:
            return '+0,"No error"'
        code, message = self.errors.pop(0)
        return f'{code:+d},"{message}"'

    def _number(self, arg: str, low: float, high: float) -> float | None:
        try:
            value = float(arg)
        except ValueError:
            self.push_error(-224, "Illegal parameter value")
            return None
        if not low <= value <= high:
            self.push_error(-222, "Data out of range")
            return None
        return value

    def _set_points(self, arg: str) -> None:
        value = self._number(arg, 2, 1_000_000)
        if value is not None:
            self.points = int(value)

    def _set_rate(self, arg: str) -> None:
        value = self._number(arg, 1.0, 1e10)
        if value is not None:
            self.sample_rate = value

    def _set_format(self, arg: str) -> None:
        fmt = short_form(arg) if arg else ""
        if fmt not in FORMAT_CODES:
            self.push_error(-224, "Illegal parameter value")
            return
        self.format = fmt

    def _mean_volts(self) -> str:
        return f"{float(self.table.photodiode_trace(1_000, 1e-5).mean()):.6e}"

    SETTERS: ClassVar[dict[str, Callable[[ScopeSim, str], None]]] = {
        "*CLS": _cls,
        "*RST": _rst,
        "WAV:POIN": _set_points,
        "ACQ:SRAT": _set_rate,
        "WAV:FORM": _set_format,
    }
    QUERIES: ClassVar[dict[str, Callable[[ScopeSim], str | bytes]]] = {
        "*IDN?": lambda self: self.identity,
        "*OPC?": lambda self: "1",
        "*ESR?": _esr,
        "*STB?": lambda self: str(self.status_byte()),
        "SYST:ERR?": _syst_err,
        "MEAS:VOLT:DC?": _mean_volts,
        "ACQ:SRAT?": lambda self: f"{self.sample_rate:.9e}",
        "WAV:POIN?": lambda self: str(self.points),
        "WAV:FORM?": lambda self: self.format,
        "WAV:XINC?": lambda self: f"{self.x_increment:.9e}",
        "WAV:XOR?": lambda self: f"{self.x_origin:.9e}",
        "WAV:XREF?": lambda self: "0",
        "WAV:YINC?": lambda self: f"{self.y_increment:.9e}",
        "WAV:YOR?": lambda self: "0.0",
        "WAV:YREF?": lambda self: "0",
        "WAV:PRE?": preamble,
        "WAV:DATA?": waveform,
    }
