"""VISA transport: pyvisa with the pure-Python pyvisa-py backend (``@py``).

Resources are opened by explicit name only (``TCPIP0::127.0.0.1::5025::SOCKET``,
``TCPIP0::scope.lab::INSTR``, ``ASRL/dev/ttyUSB0::INSTR``, ``GPIB0::20::INSTR``).
We never call ``list_resources()``: pyvisa-py answers it with a network broadcast.

pyvisa's own errors are translated at this boundary, naming the resource:
a reply that does not come in time is :class:`DeviceTimeout`, a dropped or
refused link is :class:`ConnectionLost`, bytes that break the protocol are
:class:`ProtocolError`. Drivers never see a pyvisa exception.

IEEE 488.2 definite-length binary blocks (``#<n><len><bytes>``, how scopes send
waveforms) are read with :meth:`VisaTransport.query_binary`; the header is
parsed by the pure functions :func:`block_header` and :func:`parse_block`.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from typing import Any

from ...errors import ConnectionLost, DeviceTimeout, ProtocolError
from .base import PortSettings

#: Longest header a definite-length block can have: ``#`` + 1 digit + up to 9 length digits.
MAX_BLOCK_HEADER = 11


# --- IEEE 488.2 binary blocks (pure functions) ------------------------------------------
def block_header(head: bytes, *, source: str = "reply") -> tuple[int, int]:
    """Parse the start of a definite-length block: ``(header length, payload length)``.

    ``head`` must hold at least the whole header (``#``, the digit count ``n``,
    then ``n`` length digits); extra bytes after it are ignored. Indefinite
    blocks (``#0``) are refused: over a socket nothing marks their end.
    """
    if len(head) < 2 or head[:1] != b"#":
        raise ProtocolError(f"{source}: expected an IEEE 488.2 block starting with '#<digit>', got {head[:16]!r}")
    ndigits = head[1:2]
    if not ndigits.isdigit():
        raise ProtocolError(f"{source}: block header {head[:16]!r}: the byte after '#' must be a digit")
    n = int(ndigits)
    if n == 0:
        raise ProtocolError(
            f"{source}: indefinite-length block '#0' is not supported (ask the instrument for a definite length)"
        )
    digits = head[2 : 2 + n]
    if len(digits) < n or not digits.isdigit():
        raise ProtocolError(f"{source}: block header {head[:16]!r}: expected {n} length digits after '#{n}'")
    return 2 + n, int(digits)


def parse_block(data: bytes, *, source: str = "reply", terminator: bytes = b"") -> bytes:
    """The payload of one complete block; ``data`` may end with ``terminator`` (e.g. ``b"\\n"``).

    Raises ProtocolError when the header is malformed or the length disagrees
    with the bytes present (a short read or trailing junk).
    """
    header_len, length = block_header(data[:MAX_BLOCK_HEADER], source=source)
    body = data[header_len:]
    if terminator and len(body) == length + len(terminator) and body.endswith(terminator):
        body = body[:length]
    if len(body) != length:
        raise ProtocolError(f"{source}: block header announces {length} bytes, got {len(body)}")
    return body


# --- the transport -------------------------------------------------------------------
_manager: Any = None
_manager_lock = threading.Lock()


def resource_manager() -> Any:
    """The process's pyvisa-py ResourceManager (created on first use)."""
    global _manager
    with _manager_lock:
        if _manager is None:
            import pyvisa

            _manager = pyvisa.ResourceManager("@py")
        return _manager


class VisaTransport:
    """One opened VISA resource; every exchange holds :attr:`lock`."""

    def __init__(self, resource_name: str, settings: PortSettings) -> None:
        import pyvisa
        from pyvisa import constants

        self.resource_name = resource_name
        self.settings = settings
        self.lock = threading.RLock()
        self._last_exchange = 0.0
        self._late_reply_possible = False
        self._errors = pyvisa.errors
        self._timeout_code = constants.StatusCode.error_timeout
        try:
            self._resource = resource_manager().open_resource(resource_name)
        except Exception as exc:  # pyvisa-py raises bare Exception for refused sockets
            raise ConnectionLost(f"{resource_name}: cannot open VISA resource: {exc}") from exc
        try:
            self._configure(constants)
        except Exception:
            self._close_quietly()
            raise

    def __repr__(self) -> str:
        return f"<VisaTransport {self.resource_name}>"

    def _configure(self, constants: Any) -> None:
        res, s = self._resource, self.settings
        res.read_termination = s.read_termination or None
        res.write_termination = s.write_termination
        res.timeout = s.timeout * 1000.0  # pyvisa counts milliseconds
        res.encoding = s.encoding
        if res.interface_type == constants.InterfaceType.asrl:
            res.baud_rate = s.baudrate
            flow = constants.ControlFlow.none
            if s.xonxoff:
                flow |= constants.ControlFlow.xon_xoff
            if s.rtscts:
                flow |= constants.ControlFlow.rts_cts
            res.flow_control = flow
        sock = self._socket()
        if sock is not None:
            err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err:
                raise ConnectionLost(f"{self.resource_name}: cannot connect: {os.strerror(err)}")
            # A command and the query after it are two small writes: without this, Nagle's
            # algorithm holds the second until the device's delayed ACK (~40 ms per exchange).
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def _socket(self) -> socket.socket | None:
        """The TCP socket under a SOCKET resource, to tell a dropped link from a silent device."""
        try:
            session = self._resource.visalib.sessions[self._resource.session]
        except Exception:
            return None
        sock = getattr(session, "interface", None)
        return sock if isinstance(sock, socket.socket) else None

    def _peer_closed(self) -> bool:
        sock = self._socket()
        if sock is None:
            return False
        try:
            return sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
        except BlockingIOError:
            return False
        except OSError:
            return True

    # --- error translation ------------------------------------------------------------
    def _failure(self, exc: Exception, what: str) -> Exception:
        if isinstance(exc, self._errors.VisaIOError) and exc.error_code == self._timeout_code:
            self._late_reply_possible = True
            if self._peer_closed():
                return ConnectionLost(f"{self.resource_name}: link closed by the device during {what}")
            return DeviceTimeout(f"{self.resource_name}: no reply to {what} within {self.settings.timeout:g} s")
        if isinstance(exc, (OSError, self._errors.Error)):
            return ConnectionLost(f"{self.resource_name}: {what} failed: {exc}")
        return exc

    def _pace(self) -> None:
        """Respect the port's minimum interval between exchanges."""
        wait = self.settings.min_interval - (time.monotonic() - self._last_exchange)
        if wait > 0:
            time.sleep(wait)

    # --- Transport protocol ---------------------------------------------------------------
    def write(self, command: str) -> None:
        with self.lock:
            self._pace()
            try:
                self._resource.write(command)
            except Exception as exc:
                raise self._failure(exc, f"writing {command!r}") from exc
            finally:
                self._last_exchange = time.monotonic()

    def read_raw(self, what: str = "a reply") -> bytes:
        """One message up to the read terminator, terminator included."""
        with self.lock:
            try:
                return self._resource.read_raw()
            except Exception as exc:
                raise self._failure(exc, what) from exc
            finally:
                self._last_exchange = time.monotonic()

    def read(self, what: str = "a reply") -> str:
        raw = self.read_raw(what)
        term = self.settings.read_termination.encode(self.settings.encoding)
        if term and raw.endswith(term):
            raw = raw[: -len(term)]
        try:
            return raw.decode(self.settings.encoding)
        except UnicodeDecodeError:
            raise ProtocolError(
                f"{self.resource_name}: {what} is not {self.settings.encoding} text: {raw[:40]!r}"
            ) from None

    def query(self, command: str) -> str:
        with self.lock:
            self._discard_late_reply()
            self.write(command)
            if self.settings.delay:
                time.sleep(self.settings.delay)
            return self.read(f"{command!r}")

    def read_bytes(self, count: int, what: str) -> bytes:
        """Exactly ``count`` bytes, terminators inside included (binary payloads)."""
        with self.lock:
            try:
                data = self._resource.read_bytes(count)
            except Exception as exc:
                raise self._failure(exc, what) from exc
            finally:
                self._last_exchange = time.monotonic()
            if len(data) != count:
                raise ProtocolError(f"{self.resource_name}: {what}: expected {count} bytes, got {len(data)}")
            return data

    def query_binary(self, command: str) -> bytes:
        """Send ``command`` and return the payload of the definite-length block it answers.

        The header is read first, so exactly the announced bytes are read; the
        read terminator that follows the block is consumed and checked. On a
        malformed reply the rest of it is discarded, so the next exchange starts clean.
        """
        what = f"{command!r}"
        with self.lock:
            self._discard_late_reply()
            self.write(command)
            if self.settings.delay:
                time.sleep(self.settings.delay)
            try:
                head = self.read_bytes(2, what)
                digits = int(head[1:2]) if head[1:2].isdigit() else 0
                if digits:
                    head += self.read_bytes(digits, what)
                header_len, length = block_header(head, source=f"{self.resource_name}: reply to {what}")
                payload = self.read_bytes(length, what) if length else b""
                term = self.settings.read_termination.encode(self.settings.encoding)
                if term:
                    tail = self.read_bytes(len(term), what)
                    if tail != term:
                        raise ProtocolError(
                            f"{self.resource_name}: reply to {what}: expected the terminator {term!r} after "
                            f"the {length}-byte block, got {tail!r}"
                        )
                return payload
            except ProtocolError:
                self.discard_input()
                raise

    def _discard_late_reply(self) -> None:
        """After a timeout the reply may still come: drop it so it is not taken for the next one."""
        if self._late_reply_possible:
            self._late_reply_possible = False
            self.discard_input()

    def discard_input(self) -> None:
        """Throw away whatever the device has sent and nobody asked for."""
        with self.lock:
            try:
                self._resource.clear()
            except Exception:
                pass

    def close(self) -> None:
        with self.lock:
            self._close_quietly()

    def _close_quietly(self) -> None:
        try:
            self._resource.close()
        except Exception:
            pass


def open_visa(port: str, settings: PortSettings) -> VisaTransport:
    """Open the VISA resource named ``port`` with the driver's port settings."""
    return VisaTransport(port, settings)
