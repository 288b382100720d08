"""Serial transport through pyserial: device paths, pseudo-terminals and URLs.

One :class:`SerialTransport` exists per port string in a process, shared and
reference-counted: every driver opened on ``/dev/ttyUSB0`` gets the same object,
the same lock and the same read buffer, so several devices on one multidrop bus
(an Elliptec line) take turns and never interleave their bytes. ``close()``
releases one reference; the last one closes the port. The port is locked
against other processes while it is open.

Each exchange honours the port's settings: the write terminator, the read
terminator(s), the reply timeout, ``delay`` (wait after a write before reading,
for devices that need time to prepare a reply) and ``min_interval`` (quiet time
between the end of one exchange and the next write, for devices that drop
commands sent too fast).

A link that fails (a pyserial or OS error, a socket closed by the far end) is
reported as ConnectionLost naming the port; the port is then closed and the next
exchange tries to open it again, so a device that comes back is found again.
"""

from __future__ import annotations

import threading
import time

import serial

from ...errors import ConnectionLost, DeviceTimeout, InstrumentConfigError
from ...log import get_logger
from .base import PortSettings

log = get_logger("arrowdaq.instruments.serial")

#: Most bytes taken from the port in one call once a reply has started to arrive.
_CHUNK = 4096

_open_ports: dict[str, SerialTransport] = {}
_open_ports_lock = threading.Lock()


def open_serial(port: str, settings: PortSettings) -> SerialTransport:
    """The shared transport for ``port`` (opened on first use); ``close()`` it when done.

    A second user of a port must ask for the same settings: one bus has one baud
    rate and one framing.
    """
    with _open_ports_lock:
        transport = _open_ports.get(port)
        if transport is None:
            transport = SerialTransport(port, settings)
            transport.reopen()
            _open_ports[port] = transport
        elif not settings.bus:
            raise InstrumentConfigError(
                f"serial port {port!r} is already in use by another instrument; only devices on a multidrop "
                f"bus (Elliptec) share a port"
            )
        elif transport.settings != settings:
            raise InstrumentConfigError(
                f"serial port {port!r} is already open with other settings ({transport.settings}); "
                f"devices sharing a port must use the same settings, got {settings}"
            )
        transport.users += 1
        return transport


class SerialTransport:
    """A message-level link over one pyserial port; see the module docstring."""

    def __init__(self, port: str, settings: PortSettings) -> None:
        self.port = port
        self.settings = settings
        self.lock = threading.RLock()
        #: Held only while bytes are written: :meth:`send_now` needs it, not the exchange ``lock``.
        self._write_lock = threading.Lock()
        self.users = 0
        #: Addresses claimed by the instruments sharing this port (a multidrop bus).
        self.bus_addresses: set[str] = set()
        self._serial: serial.SerialBase | None = None
        self._buffer = b""
        self._last_command = ""
        self._quiet_since = 0.0  # monotonic time the last exchange ended
        self._write_terminator = settings.write_termination.encode(settings.encoding)
        terminators = [settings.read_termination, *settings.extra_read_terminations]
        self._read_terminators = tuple(t.encode(settings.encoding) for t in terminators if t)
        if not self._read_terminators:
            raise InstrumentConfigError(f"serial port {port!r}: a read terminator is needed to split replies")

    def __repr__(self) -> str:
        state = "open" if self._serial is not None else "closed"
        return f"<SerialTransport {self.port} {state}, {self.users} user(s)>"

    @property
    def is_open(self) -> bool:
        return self._serial is not None

    # --- the link --------------------------------------------------------------------
    def reopen(self) -> None:
        """Open the pyserial port (again); ConnectionLost names the port when it cannot be."""
        with self.lock:
            self._drop()
            s = self.settings
            try:
                self._serial = serial.serial_for_url(
                    self.port,
                    baudrate=s.baudrate,
                    bytesize=serial.EIGHTBITS,
                    parity=serial.PARITY_NONE,
                    stopbits=serial.STOPBITS_ONE,
                    timeout=s.timeout,
                    write_timeout=max(s.timeout, 1.0),
                    xonxoff=s.xonxoff,
                    rtscts=s.rtscts,
                    exclusive=True,  # no other process may open the port meanwhile (POSIX lock)
                )
            except ValueError as exc:  # an unknown URL scheme, an impossible baud rate: the settings are wrong
                raise InstrumentConfigError(f"serial port {self.port!r}: {exc}") from None
            except (serial.SerialException, OSError) as exc:  # absent or refused: it may come back
                raise ConnectionLost(f"cannot open serial port {self.port!r}: {exc}") from exc
            self._buffer = b""
            self._quiet_since = 0.0

    def _drop(self) -> None:
        port, self._serial = self._serial, None
        self._buffer = b""
        if port is not None:
            try:
                port.close()
            except (serial.SerialException, OSError):
                pass

    def _link(self) -> serial.SerialBase:
        if self._serial is None:
            self.reopen()
        assert self._serial is not None
        return self._serial

    def _lost(self, exc: BaseException, doing: str) -> ConnectionLost:
        self._drop()
        return ConnectionLost(f"serial port {self.port!r}: link lost while {doing}: {exc}")

    # --- Transport API ---------------------------------------------------------------
    def write(self, command: str) -> None:
        """Send ``command`` plus the write terminator, after the port's quiet time."""
        data = command.encode(self.settings.encoding) + self._write_terminator
        with self.lock:
            link = self._link()
            wait = self._quiet_since + self.settings.min_interval - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            self._last_command = command
            try:
                with self._write_lock:
                    link.write(data)
                    link.flush()
            except (serial.SerialException, OSError) as exc:
                raise self._lost(exc, f"writing {command!r}") from exc
            finally:
                self._quiet_since = time.monotonic()

    def send_now(self, command: str) -> None:
        """Send ``command`` at once, between the write and the reply of an exchange in progress (a stop
        must not wait ~200 ms for an Elliptec reply): only the bytes of one write are kept whole.
        The caller reads any reply under ``lock`` as usual. An open port is never waited for (the
        caller may hold a lock of its own that an exchange needs): a failed write raises and leaves
        the dead link for the exchange holding ``lock`` to drop."""
        link = self._serial
        if link is None:  # not open: the ordinary path opens it
            self.write(command)
            return
        data = command.encode(self.settings.encoding) + self._write_terminator
        try:
            with self._write_lock:
                link.write(data)
                link.flush()
        except (serial.SerialException, OSError) as exc:
            raise ConnectionLost(f"serial port {self.port!r}: link lost while writing {command!r}: {exc}") from exc

    def read(self, timeout: float | None = None) -> str:
        """The next reply, without its terminator; DeviceTimeout names the port and the command.

        Empty lines are skipped, so a device that ends replies with CR LF can be
        read with CR or LF as the terminator.
        """
        limit = self.settings.timeout if timeout is None else timeout
        deadline = time.monotonic() + limit
        with self.lock:
            link = self._link()
            try:
                while True:
                    reply = self._take_reply()
                    if reply is not None:
                        return reply
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        raise DeviceTimeout(
                            f"serial port {self.port!r}: no reply to {self._last_command!r} within {limit:g} s"
                            + (f" (partial reply {self._buffer!r})" if self._buffer else "")
                        )
                    # Block for the first byte, then take whatever else has arrived in one call.
                    link.timeout = remaining
                    chunk = link.read(1)
                    if chunk:
                        link.timeout = 0
                        self._buffer += chunk + link.read(_CHUNK)
            except DeviceTimeout:
                raise
            except (serial.SerialException, OSError) as exc:
                raise self._lost(exc, f"reading the reply to {self._last_command!r}") from exc
            finally:
                self._quiet_since = time.monotonic()

    def query(self, command: str, timeout: float | None = None) -> str:
        """Write ``command`` and read its reply, holding the port for both.

        Bytes left over from an earlier exchange (a reply that came after its
        timeout) are discarded first, so a reply always belongs to its command.
        """
        with self.lock:
            self.discard_input()
            self.write(command)
            if self.settings.delay > 0:
                time.sleep(self.settings.delay)
            return self.read(timeout)

    def discard_input(self) -> None:
        """Drop unread bytes (stale replies)."""
        with self.lock:
            link = self._link()
            stale = self._buffer
            try:
                link.timeout = 0
                while chunk := link.read(_CHUNK):
                    stale += chunk
            except (serial.SerialException, OSError) as exc:
                raise self._lost(exc, "discarding stale input") from exc
            self._buffer = b""
            if stale.strip(b"\r\n"):
                log.debug(f"{self.port}: discarded stale input {stale!r}")

    def close(self) -> None:
        """Release this user's share; the last user closes the port."""
        with _open_ports_lock:
            self.users = max(self.users - 1, 0)
            if self.users > 0:
                return
            if _open_ports.get(self.port) is self:
                del _open_ports[self.port]
        with self.lock:
            self._drop()

    # --- splitting replies -------------------------------------------------------------
    def _take_reply(self) -> str | None:
        """Cut the first complete reply from the buffer, or None if there is none yet."""
        while True:
            cuts = [(self._buffer.find(t), -len(t), t) for t in self._read_terminators]
            found = [c for c in cuts if c[0] >= 0]
            if not found:
                return None
            at, _, term = min(found)  # earliest; at the same place the longest (CR LF before CR)
            raw, self._buffer = self._buffer[:at], self._buffer[at + len(term) :]
            if raw.strip(b"\r\n"):
                return raw.strip(b"\r\n").decode(self.settings.encoding, errors="replace")
