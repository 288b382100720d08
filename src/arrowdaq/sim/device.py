"""SimDevice: a simulated instrument's wire protocol, bytes in and bytes out.

A simulator subclasses it and answers one command at a time in :meth:`handle`;
the server (:mod:`arrowdaq.sim.server`) carries the bytes over a pseudo-terminal
or a TCP socket, so a real driver talks to it unchanged.
"""

from __future__ import annotations

import heapq
import itertools
import time
from collections.abc import Sequence
from typing import Any, ClassVar

from .table import OpticalTable


class SimDevice:
    """Splits incoming bytes into commands and joins the replies.

    ``command_terminator`` ends each command (``b"\\n"``; a tuple accepts any of
    several, e.g. CR or LF). Devices whose commands have no terminator (the
    Elliptec bus) override :meth:`feed`.
    """

    command_terminator: bytes | tuple[bytes, ...] = b"\n"
    reply_terminator: bytes = b"\n"
    #: Seconds a real device takes to answer (scaled by the table's latency_scale).
    latency: float = 0.0
    encoding = "ascii"
    #: How drivers reach it: ``"pty"`` (a serial device path) or ``"tcp"`` (loopback).
    transport: ClassVar[str] = "pty"
    #: A TCP simulator whose driver opens a VISA socket resource (``TCPIP0::127.0.0.1::PORT::SOCKET``).
    visa: ClassVar[bool] = False
    #: Several instruments share one simulated port (a multidrop bus): one device serves them all.
    shared_bus: ClassVar[bool] = False

    @classmethod
    def for_instruments(cls, table: OpticalTable, settings: Sequence[dict[str, Any]]) -> SimDevice:
        """The device serving instruments with these settings (one, unless ``shared_bus``)."""
        return cls(table)

    @classmethod
    def driver_settings(cls, settings: dict[str, Any]) -> dict[str, Any]:
        """Settings a driver needs to read this simulator, under the configured ones (none by default)."""
        return {}

    def inject_error(self) -> None:
        """Answer the next command with the device's own error form (``arrowdaq sim --fault error``)."""
        raise NotImplementedError(f"{type(self).__name__} has no error reply to inject")

    def __init__(self, table: OpticalTable) -> None:
        self.table = table
        self._buffer = b""
        #: Replies sent later (a move answered on arrival): (due time, order, bytes), a heap.
        self._later: list[tuple[float, int, bytes]] = []
        self._order = itertools.count()

    # --- replies that come later (a move answered when it ends) ------------------------------
    def reply_at(self, due: float, data: bytes) -> None:
        """Send ``data`` (terminator included) at monotonic time ``due``; the server delivers it."""
        heapq.heappush(self._later, (due, next(self._order), data))

    def next_due(self) -> float | None:
        """When the next deferred reply is due (monotonic), or None."""
        return self._later[0][0] if self._later else None

    def due(self, now: float | None = None) -> bytes:
        """The deferred replies whose time has come, in order."""
        now = time.monotonic() if now is None else now
        out = b""
        while self._later and self._later[0][0] <= now:
            out += heapq.heappop(self._later)[2]
        return out

    def handle(self, command: str) -> str | bytes | None:
        """Answer one command (without terminator); None when the command has no reply.

        Text is encoded; bytes (an IEEE 488.2 binary block) are sent unchanged.
        Either way the reply terminator follows.
        """
        raise NotImplementedError

    def feed(self, data: bytes) -> bytes:
        """Take received bytes; return the bytes to send back (possibly empty)."""
        self._buffer += data
        terms = self.command_terminator if isinstance(self.command_terminator, tuple) else (self.command_terminator,)
        out = b""
        while True:
            cuts = [(self._buffer.find(t), t) for t in terms if t in self._buffer]
            if not cuts:
                return out
            cut, term = min(cuts)
            raw, self._buffer = self._buffer[:cut], self._buffer[cut + len(term) :]
            command = raw.decode(self.encoding, errors="replace").strip("\r\n")
            if not command:
                continue
            reply = self.handle(command)
            if reply is not None:
                self.table.delay(self.latency)
                out += (reply if isinstance(reply, bytes) else reply.encode(self.encoding)) + self.reply_terminator

    def reset(self) -> None:
        """Forget a half-received command and replies not yet sent (the link was dropped)."""
        self._buffer = b""
        self._later.clear()
