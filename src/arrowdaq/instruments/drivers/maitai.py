"""Spectra-Physics MaiTai Ti:Sapphire laser (RS-232, XON/XOFF, commands end in CR, replies in LF).

Replies carry their unit (``820nm``, ``3.000W``): the parsers accept it.
In front-panel LOCAL mode the laser accepts commands without executing them,
so every declared setting verifies its set by reading the value back (a
DeviceErrorReply says it was not executed). Settable from the configuration:
``wavelength`` (nm) and ``shutter`` (``"open"``/``"closed"``). Safety: emission is never switched on with the shutter open,
and ``close()`` closes the shutter before the port is released.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

from ...errors import CommandError, DeviceErrorReply, InstrumentError, ProtocolError
from ...log import get_logger
from ..driver import Control, Driver, Measurement, Stream, command
from ..transports.base import PortSettings, Transport
from ..validators import in_range

log = get_logger("arrowdaq.instruments.maitai")

_NUMBER_WITH_UNIT = re.compile(r"^\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*([A-Za-z%]*)\s*$")


def number_with_unit(unit: str) -> Callable[[str], float]:
    """A parser for replies such as ``820nm`` or ``3.000W``: the number, the unit checked if present."""

    def parse(reply: str) -> float:
        match = _NUMBER_WITH_UNIT.match(reply)
        if match is None or (match.group(2) and match.group(2).lower() != unit.lower()):
            raise ProtocolError(f"laser reply {reply!r} is not a value in {unit}")
        return float(match.group(1))

    return parse


def parse_flag(reply: str) -> int:
    """``0`` or ``1`` (the shutter state)."""
    text = reply.strip()
    if text not in ("0", "1"):
        raise ProtocolError(f"laser reply {reply!r} is not 0 or 1")
    return int(text)


def parse_status_byte(reply: str) -> int:
    try:
        value = int(reply.strip())
    except ValueError:
        raise ProtocolError(f"laser status reply {reply!r} is not a status byte") from None
    if not 0 <= value <= 255:
        raise ProtocolError(f"laser status reply {reply!r} is not a status byte")
    return value


class MaiTai(Driver):
    driver_name = "maitai"
    simulator = "arrowdaq.sim.maitai:MaiTaiSim"
    port_settings = PortSettings(
        baudrate=9600, write_termination="\r", read_termination="\n", timeout=3.0, min_interval=0.5, xonxoff=True
    )
    close_timeout = 15.0  # closing the shutter and reading it back: replies take 2-3 s on real hardware
    streams = (
        Stream("wavelength", unit="nm", poll_hz=1.0, read="wavelength_now", long_name="Laser wavelength"),
        Stream("power", unit="W", poll_hz=1.0, long_name="Laser output power"),
        Stream("shutter", unit=None, poll_hz=1.0, long_name="Shutter open (1) or closed (0)"),
    )

    # settings: each set is read back until it shows (LOCAL mode ignores commands), see verify_timeout
    wavelength = Control(
        "WAVELENGTH?",
        "WAVELENGTH:{:g}",
        parse=number_with_unit("nm"),
        validator=in_range(690, 1040),
        unit="nm",
        verify=True,
        tolerance=0.5,
        doc="Wavelength setpoint",
    )
    shutter = Control(
        "SHUTTER?", "SHUTTER:{:d}", parse=parse_flag, values={"closed": 0, "open": 1}, verify=True, doc="Shutter"
    )
    # readings
    wavelength_now = Measurement("READ:WAVELENGTH?", parse=number_with_unit("nm"), unit="nm", doc="Wavelength now")
    power = Measurement("READ:POWER?", parse=number_with_unit("W"), unit="W", doc="Output power")
    pump_power = Measurement("PLASER:POWER?", parse=number_with_unit("W"), unit="W", doc="Pump laser power")
    warmed_up = Measurement("READ:PCTWARMEDUP?", parse=number_with_unit("%"), unit="%", doc="Warm-up, percent")
    humidity = Measurement("READ:HUM?", parse=number_with_unit("%"), unit="%", doc="Relative humidity in the head")
    status_byte = Measurement("*STB?", parse=parse_status_byte, doc="Bit 0: emission on")

    def __init__(
        self, transport: Transport | None, *, name: str = "", verify_timeout: float = 3.0, verify_interval: float = 0.2
    ) -> None:
        """``verify_timeout``: how long a set may take to show in the read-back before it counts as refused."""
        super().__init__(transport, name=name)
        self.verify_timeout = verify_timeout
        self.verify_interval = verify_interval
        self._idn = ""

    # --- lifecycle -----------------------------------------------------------------
    def connect(self) -> None:
        self._idn = self.query("*IDN?")
        if "maitai" not in self._idn.lower().replace(" ", "").replace("-", ""):
            raise ProtocolError(f"{self.name}: *IDN? answered {self._idn!r}, not a MaiTai")

    def close(self) -> None:
        """Close the shutter and check it closed (best effort: the link may be gone), then release the port."""
        try:
            if self.transport is not None:
                self.close_shutter()
        except InstrumentError as exc:
            log.warning(f"{self.name}: could not close the shutter on close: {exc}")
        finally:
            super().close()

    def identity(self) -> dict[str, str]:
        parts = [p.strip() for p in self._idn.split(",")] + ["", "", "", ""]
        return {
            "driver": self.driver_name,
            "manufacturer": parts[0],
            "model": parts[1],
            "serial": parts[2],
            "firmware": parts[3],
        }

    def settings(self) -> dict[str, Any]:
        return super().settings() | {"emission": self.emission_is_on()}

    # --- capabilities: WavelengthTunable, ShutterControl, EmissionControl -------------------
    @command(validate={"nm": "wavelength"})
    def set_wavelength(self, nm: float) -> None:
        self.wavelength = nm

    @command(changes=False)
    def get_wavelength(self) -> float:
        return self.wavelength_now

    @command
    def open_shutter(self) -> None:
        self.shutter = "open"

    @command
    def close_shutter(self) -> None:
        self.shutter = "closed"

    @command(changes=False)
    def shutter_is_open(self) -> bool:
        return self.shutter == "open"

    # emission is a sequence, not a declaration: never on with the shutter open
    @command
    def emission_on(self) -> None:
        if self.shutter_is_open():
            raise CommandError(f"{self.name}: refusing to turn emission on with the shutter open; close it first")
        self.write("ON")
        self._verify("ON", self.emission_is_on)

    @command
    def emission_off(self) -> None:
        self.write("OFF")
        self._verify("OFF", lambda: not self.emission_is_on())

    @command(changes=False)
    def emission_is_on(self) -> bool:
        return bool(self.status_byte & 0x01)

    # --- helpers ---------------------------------------------------------------------
    def _verify(self, sent: str, done: Callable[[], bool]) -> None:
        """Read back until ``done()``; the laser ignores commands in LOCAL mode."""
        deadline = time.monotonic() + self.verify_timeout
        while not done():
            if time.monotonic() >= deadline:
                raise DeviceErrorReply(
                    f"{self.name}: {sent!r} was not executed (read-back unchanged after {self.verify_timeout:g} s); "
                    "is the laser in front-panel LOCAL mode?"
                )
            time.sleep(self.verify_interval)
