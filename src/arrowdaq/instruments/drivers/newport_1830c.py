"""Newport 1830-C optical power meter (RS-232, LF both ways; not SCPI).

``D?`` gives the power in watts in the meter's own scientific notation
(``5E-9``, ``+.75E-9``, ``1.234E-3``). Instead of a number the meter may answer
``OVER``, ``UNDER``, ``SAT`` (range limits) or ``ERR``: these are conditions,
never readings, so they raise typed errors and no number is published.
The meter is forced to watts (``U1``) on connect: in dBm it answers plain
decimals that would be mistaken for watts. Settable from the configuration:
``wavelength``, ``attenuator``, ``filter``, ``beep``, ``go``, ``zero``, ``lockout``.
"""

from __future__ import annotations

from typing import Any

from ...errors import DeviceErrorReply, ProtocolError, ReadingOutOfRange
from ..driver import Control, Driver, Measurement, Stream, command
from ..transports.base import PortSettings
from ..validators import boolean, in_range, int_in_range, one_of

#: Replies that stand for a condition instead of a reading.
LIMIT_REPLIES = {
    "OVER": "over range (increase the range or add the attenuator)",
    "UNDER": "under range (decrease the range)",
    "SAT": "detector saturated (add the attenuator)",
}

UNITS = {1: "W", 2: "dBm", 3: "dB", 4: "REL"}


def parse_power(reply: str) -> float:
    """A ``D?`` reply in watts; OVER/UNDER/SAT raise ReadingOutOfRange, ERR DeviceErrorReply."""
    text = reply.strip()
    if text in LIMIT_REPLIES:
        raise ReadingOutOfRange(f"power meter reading {text}: {LIMIT_REPLIES[text]}", condition=text)
    if text == "ERR":
        raise DeviceErrorReply("power meter replied ERR (command error or no detector)")
    try:
        value = float(text)
    except ValueError:
        raise ProtocolError(f"power meter reply {reply!r} is not a power reading") from None
    if "E" not in text.upper():
        # in W the meter always answers in scientific notation; a plain decimal is dBm, dB or REL
        raise ProtocolError(f"power meter reply {reply!r} is not in watts (units changed on the front panel?)")
    return value


def parse_int(reply: str) -> int:
    """An integer query reply (``A?``, ``F?``, ``W?``...), checked for ERR and garbage."""
    text = reply.strip()
    if text == "ERR":
        raise DeviceErrorReply("power meter replied ERR")
    try:
        return int(float(text))
    except ValueError:
        raise ProtocolError(f"power meter reply {reply!r} is not a number") from None


def parse_flag(reply: str) -> int:
    """``0`` or ``1`` (attenuator, beep, hold/go, zero, lockout)."""
    value = parse_int(reply)
    if value not in (0, 1):
        raise ProtocolError(f"power meter reply {reply!r} is not 0 or 1")
    return value


class Newport1830C(Driver):
    driver_name = "newport_1830c"
    simulator = "arrowdaq.sim.newport_1830c:Newport1830CSim"
    port_settings = PortSettings(baudrate=9600, write_termination="\n", read_termination="\n", timeout=1.0, delay=0.1)
    streams = (Stream("power", unit="W", poll_hz=2.0, long_name="Optical power"),)

    power = Measurement("D?", parse=parse_power, unit="W", doc="Optical power (W)")
    # settable from the configuration, applied in this order at connect and read back
    wavelength = Control(
        "W?", "W{:04.0f}", parse=parse_int, validator=in_range(400, 1100), unit="nm", doc="Calibration wavelength"
    )
    attenuator = Control("A?", "A{:d}", parse=parse_flag, validator=boolean, doc="Attenuator in (1) or out (0)")
    filter = Control("F?", "F{:d}", parse=parse_int, validator=one_of([1, 2, 3]), doc="1 slow, 2 medium, 3 fast")
    beep = Control("B?", "B{:d}", parse=parse_flag, validator=boolean)
    go = Control("G?", "G{:d}", parse=parse_flag, validator=boolean, doc="1 go (measuring), 0 hold")
    zero = Control("Z?", "Z{:d}", parse=parse_flag, validator=boolean, doc="1: subtract the reading taken when set")
    lockout = Control("L?", "L{:d}", parse=parse_flag, validator=boolean, doc="1: front panel locked")
    range = Measurement("R?", parse=parse_int, doc="Range 1-8 (the meter ranges automatically after R0)")
    units = Measurement("U?", parse=parse_int, doc="1 W, 2 dBm, 3 dB, 4 REL")
    status_byte = Measurement(
        "Q?", parse=parse_int, doc="1 parameter error, 2 command error, 4 saturated, 8 over range"
    )

    def connect(self) -> None:
        self.write("E0")  # no echo: replies are the answer only
        self.write("U1")  # watts: the only unit published
        units = self.units
        if units != 1:
            raise DeviceErrorReply(f"{self.name}: meter stays in units {units} ({UNITS.get(units, '?')}) after U1")

    def identity(self) -> dict[str, str]:
        return {"driver": self.driver_name, "model": "Newport 1830-C"}

    def settings(self) -> dict[str, Any]:
        return super().settings() | {"range": self.range, "units": UNITS.get(self.units, "?")}

    @command
    def auto_range(self) -> None:
        """Let the meter choose its range (``R0``)."""
        self.write("R0")

    @command
    def set_range(self, range: int) -> None:
        """A fixed range 1-8 (``R1``..``R8``)."""
        self.write(f"R{int_in_range(1, 8)(range, f'{self.name}.range')}")

    @command
    def store_reference(self) -> None:
        """Store the present reading as the reference for dB and REL (``S``)."""
        self.write("S")

    @command
    def clear_status(self) -> None:
        self.write("CS")
