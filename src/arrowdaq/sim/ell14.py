"""Simulated Elliptec bus: one or more ELL14 rotation mounts on one port.

Commands have no terminator, so packets are cut by the protocol itself: an
address, a two-letter lowercase mnemonic and a data field whose length the
mnemonic fixes (``ma`` 8 hex digits, ``sv`` 2, ``ho`` 1...). A packet left
incomplete for more than 2 s is discarded, as the real mounts do.

The mount at ``hwp_address`` carries the table's half-wave plate, so turning it
changes the power meter's reading (Malus's law). A test makes a mount answer a
status code instead of its next reply with ``sim.inject_status("0", 0x0B)``.

Timing, as on the real bus: a command takes effect when it arrives and is
answered ``COMMAND_LATENCY`` later; a move (``ma``, ``mr``, ``ho``, ``fw``,
``bw``) is answered with its position when it ends, and meanwhile the mount
answers other packets (``gs`` → ``GS09`` busy, ``gp`` the position so far).
``st`` stops at once: the interrupted move is answered with where it stopped,
then ``st`` with ``GS00``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import Any

from .device import SimDevice
from .table import Motion, OpticalTable

COMMAND_LATENCY = 0.2  # seconds per command on the real bus
TOP_SPEED = 430.0  # degrees per second at 100 % velocity
PULSES_PER_REV = 143360
PACKET_GAP = 2.0  # seconds of silence that discard a half-received packet

#: Length of the data field per command mnemonic (the rest take none).
DATA_LENGTH = {"ma": 8, "mr": 8, "sj": 8, "so": 8, "sv": 2, "ca": 1, "ho": 1}
KNOWN = {
    "in",
    "gp",
    "gs",
    "ma",
    "mr",
    "ho",
    "st",
    "fw",
    "bw",
    "sj",
    "gj",
    "sv",
    "gv",
    "so",
    "go",
    "ca",
    "us",
    "i1",
    "i2",
}
HEX = "0123456789ABCDEF"


class Mount:
    """One ELL14 on the bus."""

    def __init__(self, address: str, motion: Motion, serial: int) -> None:
        self.address = address
        self.motion = motion
        self.serial = serial
        self.velocity = 100  # percent
        self.jog_step = PULSES_PER_REV // 36  # 10 degrees
        self.home_offset = 0
        self.injected: int | None = None
        #: Monotonic time the running move ends and is answered (None: no move to answer).
        self.move_due: float | None = None


def _hex32(value: int) -> str:
    return f"{value & 0xFFFFFFFF:08X}"


def _signed(text: str) -> int | None:
    try:
        value = int(text, 16)
    except ValueError:
        return None
    return value - 2**32 if value >= 2**31 else value


class ELL14Sim(SimDevice):
    command_terminator = b""  # none: see feed
    reply_terminator = b"\r\n"
    latency = COMMAND_LATENCY
    shared_bus = True

    @classmethod
    def for_instruments(cls, table: OpticalTable, settings: Sequence[dict[str, Any]]) -> ELL14Sim:
        """One bus with a mount per configured address; the first is the half-wave plate."""
        addresses = [str(s.get("address", "0")).upper() for s in settings] or ["0"]
        return cls(table, addresses="".join(dict.fromkeys(addresses)), hwp_address=addresses[0])

    def inject_error(self) -> None:
        """Every mount answers its next packet with status 0B (motor error)."""
        for address in self.mounts:
            self.inject_status(address, 0x0B)

    def __init__(self, table: OpticalTable, addresses: str = "0", hwp_address: str = "0") -> None:
        super().__init__(table)
        self.mounts: dict[str, Mount] = {}
        for i, address in enumerate(addresses.upper()):
            motion = table.hwp if address == hwp_address.upper() else Motion(speed=TOP_SPEED)
            self.mounts[address] = Mount(address, motion, 11400517 + i)
        self._last_byte = time.monotonic()
        self._reply_due = 0.0  # replies leave in order: none before the previous one

    def inject_status(self, address: str, code: int) -> None:
        """The mount at ``address`` answers ``GS<code>`` instead of its next reply."""
        self.mounts[address.upper()].injected = code

    # --- bytes in, bytes out ----------------------------------------------------------------
    def feed(self, data: bytes) -> bytes:
        """Take packets; every reply is scheduled (see the module docstring) and sent by the server."""
        now = time.monotonic()
        if self._buffer and now - self._last_byte > PACKET_GAP:
            self._buffer = b""
        self._last_byte = now
        self._buffer += data
        while len(self._buffer) >= 3:
            head = self._buffer[:3].decode("ascii", errors="replace")
            address, mnemonic = head[0], head[1:3]
            if address not in HEX or mnemonic not in KNOWN:
                self._buffer = self._buffer[1:]  # not a packet start: resynchronise
                if address in self.mounts and mnemonic.isalpha() and mnemonic.islower():
                    self._answer(address, "GS03")  # an unknown command to a mount on the bus
                    self._buffer = b""
                continue
            size = 3 + DATA_LENGTH.get(mnemonic, 0)
            if len(self._buffer) < size:
                break
            packet, self._buffer = self._buffer[:size].decode("ascii", errors="replace"), self._buffer[size:]
            mount = self.mounts.get(address)
            if mount is None:
                continue  # no mount with this address: nobody answers
            if mount.injected is not None:
                code, mount.injected = mount.injected, None
                self._answer(address, f"GS{code:02X}")
                continue
            body = self.handle_packet(mount, mnemonic, packet[3:])
            if body is not None:
                self._answer(mount.address, body)  # after `ca`, the new address answers
        return b""

    def _answer(self, address: str, body: str) -> None:
        """Answer one command after the bus latency, never before an earlier answer."""
        due = max(time.monotonic() + self.latency * self.table.latency_scale, self._reply_due)
        self._reply_due = due
        self.reply_at(due, self._reply(address, body))

    def next_due(self) -> float | None:
        dues = [m.move_due for m in self.mounts.values() if m.move_due is not None]
        base = super().next_due()
        if base is not None:
            dues.append(base)
        return min(dues) if dues else None

    def due(self, now: float | None = None) -> bytes:
        """Answers due now, and the position of every mount whose move has ended."""
        now = time.monotonic() if now is None else now
        out = super().due(now)
        for mount in self.mounts.values():
            if mount.move_due is not None and mount.move_due <= now:
                mount.move_due = None
                out += self._reply(mount.address, self._position(mount))
        return out

    def reset(self) -> None:
        super().reset()
        for mount in self.mounts.values():
            mount.move_due = None

    def handle(self, command: str) -> str | None:  # pragma: no cover - feed cuts packets itself
        raise NotImplementedError

    def _reply(self, address: str, body: str) -> bytes:
        return f"{address}{body}".encode("ascii") + self.reply_terminator

    # --- one mount ------------------------------------------------------------------------
    def _angle(self, mount: Mount) -> float:
        return mount.motion.at(time.monotonic())

    def _position(self, mount: Mount) -> str:
        return "PO" + _hex32(round(self._angle(mount) * PULSES_PER_REV / 360.0))

    def _move(self, mount: Mount, target_deg: float) -> None:
        """Start turning to ``target_deg``; the position is answered when the move ends (see :meth:`due`)."""
        speed = TOP_SPEED * max(mount.velocity, 1) / 100.0
        scale = self.table.latency_scale
        now = time.monotonic()
        with self.table.lock:
            start = mount.motion.at(now)
            mount.motion.move_to(target_deg, speed / scale if scale > 0 else math.inf, now)
        travel_s = abs(target_deg - start) / speed * scale
        mount.move_due = max(now + max(travel_s, self.latency * scale), self._reply_due)
        return None

    def handle_packet(self, mount: Mount, mnemonic: str, data: str) -> str | None:
        """The answer to one packet, or None for a move (answered when it ends)."""
        pulses_per_deg = PULSES_PER_REV / 360.0
        if mnemonic == "in":
            return f"IN0E{mount.serial:08d}20231701{360:04X}{PULSES_PER_REV:08X}"
        if mnemonic == "gp":
            return self._position(mount)
        if mnemonic in ("i1", "i2"):  # motor info: loop on, motor on, current, ramps, periods (hex)
            return f"{mnemonic.upper()}11{1866:04X}FFFF{0:04X}{0x0138:04X}{0x0138:04X}"
        if mnemonic == "gs":
            return "GS09" if mount.motion.moving(time.monotonic()) else "GS00"
        if mnemonic in ("ma", "mr", "sj", "so"):
            value = _signed(data)
            if value is None:
                return "GS04"
            if mnemonic == "ma":
                self._move(mount, value / pulses_per_deg)
                return None
            if mnemonic == "mr":
                self._move(mount, mount.motion.target + value / pulses_per_deg)
                return None
            if mnemonic == "sj":
                mount.jog_step = value
            else:
                mount.home_offset = value
            return "GS00"
        if mnemonic == "ho":
            self._move(mount, mount.home_offset / pulses_per_deg)
            return None
        if mnemonic in ("fw", "bw"):
            step = mount.jog_step / pulses_per_deg
            self._move(mount, mount.motion.target + (step if mnemonic == "fw" else -step))
            return None
        if mnemonic == "st":
            mount.motion.stop(time.monotonic())
            if mount.move_due is not None:  # the interrupted move is answered with where it stopped
                mount.move_due = None
                self._answer(mount.address, self._position(mount))
            return "GS00"
        if mnemonic == "gj":
            return "GJ" + _hex32(mount.jog_step)
        if mnemonic == "go":
            return "HO" + _hex32(mount.home_offset)
        if mnemonic == "gv":
            return f"GV{mount.velocity:02X}"
        if mnemonic == "sv":
            try:
                percent = int(data, 16)
            except ValueError:
                return "GS04"
            if not 0 <= percent <= 100:
                return "GS04"
            mount.velocity = percent
            return "GS00"
        if mnemonic == "ca":
            if data not in HEX or data in self.mounts:
                return "GS04"
            del self.mounts[mount.address]
            mount.address = data
            self.mounts[data] = mount
            return "GS00"
        return "GS00"  # us: settings saved
