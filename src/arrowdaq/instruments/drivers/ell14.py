"""Thorlabs ELL14 (Elliptec) rotation mount on a multidrop bus.

Several mounts share one port, each with an address ``0``–``F``; give each its
own driver with ``address=`` on the same port: they share the port's transport
and lock, so their exchanges never interleave. Commands are lowercase with no
terminator (``2gp``); replies are uppercase, start with the address and end in
CR LF (``2PO00001000``). Positions are 32-bit two's-complement hex pulses,
143360 pulses per revolution unless the mount's ``in`` reply says otherwise.

Every command is answered: with data (``PO``, ``GV``...) or with a status
(``GS``). A non-zero status raises DeviceStatusError naming the condition.
A moving mount may answer late: moves wait up to ``move_timeout`` for their
reply and are never re-sent on their own.
"""

from __future__ import annotations

from typing import Any

from ...errors import CommandError, DeviceStatusError, InstrumentConfigError, ProtocolError
from ..driver import Control, Driver, Stream, command
from ..transports.base import PortSettings, Transport
from ..validators import in_range, int_in_range

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


def hex_field(mnemonic: str, digits: int = 2):
    """Parser for a reply body such as ``GV32``: the hex number after the mnemonic."""

    def parse(body: str) -> int:
        data = body[len(mnemonic) :]
        if not body.startswith(mnemonic) or len(data) != digits or not _is_hex(data):
            raise ProtocolError(f"Elliptec reply {body!r} is not {mnemonic} with {digits} hex digits")
        return int(data, 16)

    return parse


class ELL14(Driver):
    driver_name = "ell14"
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

    def __setattr__(self, name: str, value: Any) -> None:
        super().__setattr__(name, value)
        if name == "velocity":
            self._velocity_percent = None  # read back on the next move: the mount may have rounded it

    def __init__(
        self, transport: Transport | None, *, name: str = "", address: str = "0", move_timeout: float = 3.0
    ) -> None:
        """``address``: the mount's bus address (0–F); ``move_timeout``: seconds allowed for a move's reply
        beyond the travel time at the mount's velocity setting."""
        super().__init__(transport, name=name)
        address = str(address).upper()
        if len(address) != 1 or address not in ADDRESSES:
            raise InstrumentConfigError(f"{self.name}.address: {address!r} is not an Elliptec address 0-F")
        self.address = address
        claimed = getattr(transport, "bus_addresses", None)
        if claimed is not None:
            if address in claimed:
                raise InstrumentConfigError(
                    f"{self.name}.address: {address} is already used by another mount on this bus"
                )
            claimed.add(address)
        self.move_timeout = move_timeout
        self._last_position: float | None = None
        self._velocity_percent: int | None = None
        self.pulses_per_rev = PULSES_PER_REV
        self.info: dict[str, Any] = {}

    # --- one exchange on the bus ----------------------------------------------------------
    def query(self, command: str, timeout: float | None = None) -> str:
        """Send ``command`` to this mount; its reply without the address. A non-zero GS raises."""
        if self.transport is None:
            raise CommandError(f"{self.name} has no transport")
        sent = self.address + command
        reply = self.transport.query(sent) if timeout is None else self.transport.query(sent, timeout=timeout)
        if not reply.startswith(self.address) or len(reply) < 3:
            raise ProtocolError(f"{self.name}: reply {reply!r} to {sent!r} is not from address {self.address}")
        body = reply[1:]
        if body.startswith("GS") and not command.startswith("gs"):
            self._raise_status(hex_field("GS")(body), sent)
        return body

    def write(self, command: str) -> None:
        """Elliptec mounts answer every command (GS00 or data): read and check the answer."""
        self.query(command)

    def _raise_status(self, code: int, sent: str) -> None:
        if code != 0:
            condition = STATUS.get(code, "unknown status")
            raise DeviceStatusError(f"{self.name}: {sent!r} answered status {code:02X}: {condition}", code=code)

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
        return {
            "address": self.address,
            "velocity_percent": self.velocity,
            "jog_step_deg": self.jog_step(),
            "pulses_per_rev": self.pulses_per_rev,
        }

    # --- Movable (one axis: ``axis`` is accepted for the common interface) ----------------------
    def _move_timeout(self, degrees: float) -> float:
        """How long a move of ``degrees`` may take at the mount's velocity (read once), plus ``move_timeout``."""
        if self._velocity_percent is None:
            self._velocity_percent = self.velocity
        return self.move_timeout + abs(degrees) / (TOP_SPEED_DEG_S * max(self._velocity_percent, 1) / 100)

    @command
    def move_to(self, position: float, axis: int = 1) -> float:
        """Rotate to ``position`` degrees; returns where the mount reports it arrived."""
        travel = float(position) - self._last_position if self._last_position is not None else 360.0
        pulses = self._pulses(position, "position")
        return self._arrived(self.query(f"ma{pulses}", timeout=self._move_timeout(travel)))

    @command
    def move_by(self, degrees: float, axis: int = 1) -> float:
        pulses = self._pulses(degrees, "step")
        return self._arrived(self.query(f"mr{pulses}", timeout=self._move_timeout(float(degrees))))

    def _arrived(self, body: str) -> float:
        self._last_position = self._degrees(body)
        return self._last_position

    @command
    def position(self, axis: int = 1) -> float:
        self._last_position = self._degrees(self.query("gp"))
        return self._last_position

    @command
    def status(self) -> int:
        """The mount's status code (0 OK, 9 busy...)."""
        return hex_field("GS")(self.query("gs"))

    @command
    def is_moving(self, axis: int = 1) -> bool:
        code = self.status()
        if code not in (0, BUSY):
            self._raise_status(code, f"{self.address}gs")
        return code == BUSY

    @command
    def stop_motion(self, axis: int | None = None) -> None:
        self.query("st")

    @command
    def home(self, axis: int = 1, clockwise: bool = True) -> float:
        return self._arrived(self.query("ho0" if clockwise else "ho1", timeout=self._move_timeout(360.0)))

    @command
    def jog(self, forward: bool = True) -> float:
        """One jog step forward (``fw``) or backward (``bw``)."""
        return self._arrived(self.query("fw" if forward else "bw", timeout=self._move_timeout(self.jog_step())))

    @command
    def jog_step(self) -> float:
        body = self.query("gj")
        if not body.startswith("GJ"):
            raise ProtocolError(f"{self.name}: reply {body!r} is not a jog step (GJ)")
        return from_hex32(body[2:]) * 360.0 / self.pulses_per_rev

    @command
    def set_jog_step(self, degrees: float) -> None:
        self.write(f"sj{self._pulses(degrees, 'jog_step')}")

    def read(self, stream: str) -> float:
        if stream == "position":
            return self.position()
        return super().read(stream)
