"""Serve a SimDevice on a TCP port (loopback) or a pseudo-terminal, with fault injection.

``serve(device, "tcp")`` gives an address a driver opens as a pyserial URL
(``socket://127.0.0.1:PORT``); ``serve(device, "pty")`` gives a device path
(``/dev/pts/N``) that pyserial opens like a real serial port.

Faults, switched at any time from a test or the CLI:
``disconnect()`` / ``reconnect()`` (TCP: the link drops and connections are
refused until reconnect), ``faults.silent`` (no replies), ``faults.extra_delay``
(slow replies), ``faults.garbage`` (replies replaced by noise).
"""

from __future__ import annotations

import os
import select
import socket
import threading
import time
import tty
from dataclasses import dataclass

from ..log import get_logger
from .device import SimDevice

log = get_logger("arrowdaq.sim")


@dataclass
class Faults:
    silent: bool = False
    garbage: bool = False
    extra_delay: float = 0.0  # seconds added before each reply (not scaled)


GARBAGE = b"\x8f#\xfe?!\x00~\x91"


class SimServer:
    """A running simulator; ``address`` is what a driver's ``port`` setting takes."""

    def __init__(self, device: SimDevice) -> None:
        self.device = device
        self.faults = Faults()
        self.address = ""
        #: Every byte the device received, in order (byte-level protocol tests read it).
        self.received = bytearray()
        #: Every byte the device sent, in order, once written to the link (a test waits on it for a late reply).
        self.sent = bytearray()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> SimServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _respond(self, data: bytes) -> bytes:
        self.received += data
        return self._outgoing(self.device.feed(data))

    def _due(self) -> bytes:
        """Deferred replies (a move answered on arrival) whose time has come, with the faults applied."""
        return self._outgoing(self.device.due())

    def _wait_s(self) -> float:
        """How long the serving loop may wait for input: until the next deferred reply, at most 50 ms."""
        due = self.device.next_due()
        return 0.05 if due is None else min(0.05, max(due - time.monotonic(), 0.0))

    def _outgoing(self, reply: bytes) -> bytes:
        if not reply or self.faults.silent:
            return b""
        if self.faults.extra_delay:
            self._stop.wait(self.faults.extra_delay)
        # Line noise still ends like a reply, so the driver sees garbage, not silence.
        return GARBAGE + self.device.reply_terminator if self.faults.garbage else reply

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def disconnect(self) -> None:
        raise NotImplementedError

    def reconnect(self) -> None:
        raise NotImplementedError


class TcpSimServer(SimServer):
    """One client at a time on 127.0.0.1."""

    def __init__(self, device: SimDevice, port: int = 0) -> None:
        super().__init__(device)
        listener = self._listen(port)
        self._listener: socket.socket | None = listener
        self.port = listener.getsockname()[1]
        self.address = f"socket://127.0.0.1:{self.port}"
        #: The same port as a VISA socket resource (what the ``scpi`` driver opens).
        self.visa_resource = f"TCPIP0::127.0.0.1::{self.port}::SOCKET"
        self._connected = threading.Event()
        self._connected.set()
        self._client: socket.socket | None = None
        self._thread = threading.Thread(target=self._run, name=f"sim-tcp-{self.port}", daemon=True)
        self._thread.start()

    @staticmethod
    def _listen(port: int) -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))
        sock.listen(1)
        return sock

    def _run(self) -> None:
        while not self._stop.is_set():
            listener = self._listener
            if listener is None:
                self._stop.wait(0.02)
                continue
            try:
                ready, _, _ = select.select([listener], [], [], 0.05)
            except (OSError, ValueError):  # disconnect() closed the listener meanwhile
                continue
            if not ready:
                continue
            try:
                client, _ = listener.accept()
            except OSError:
                continue
            self._client = client
            self.device.reset()
            self._serve(client)
            self._client = None
            client.close()

    def _serve(self, client: socket.socket) -> None:
        while not self._stop.is_set() and self._connected.is_set():
            ready, _, _ = select.select([client], [], [], self._wait_s())
            if not ready:
                reply = self._due()
            else:
                try:
                    data = client.recv(4096)
                except OSError:
                    return
                if not data:
                    return
                reply = self._due() + self._respond(data) + self._due()
            if reply and self._connected.is_set():
                try:
                    client.sendall(reply)
                except OSError:
                    return
                self.sent += reply

    def disconnect(self) -> None:
        """Drop the link and refuse connections, like a device unplugged."""
        self._connected.clear()
        listener, self._listener = self._listener, None
        if listener is not None:
            try:  # stop listening now, even while the server thread still selects on it
                listener.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            listener.close()
        client = self._client
        if client is not None:
            try:
                client.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def reconnect(self) -> None:
        """Plug the device back in (same port)."""
        self._listener = self._listen(self.port)
        self._connected.set()

    def stop(self) -> None:
        super().stop()
        if self._listener is not None:
            self._listener.close()


class PtySimServer(SimServer):
    """A pseudo-terminal: the driver opens ``address`` (e.g. /dev/pts/3) as a serial port."""

    def __init__(self, device: SimDevice) -> None:
        super().__init__(device)
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)  # no echo, no newline translation: bytes pass as they are
        self.address = os.ttyname(self._slave)
        self._silenced = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"sim-pty-{self.address}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            ready, _, _ = select.select([self._master], [], [], self._wait_s())
            if not ready:
                reply = self._due()
            else:
                try:
                    data = os.read(self._master, 4096)
                except OSError:
                    return
                reply = self._due() + self._respond(data) + self._due()
            if reply and not self._silenced.is_set():
                written = os.write(self._master, reply)
                self.sent += reply[:written]

    def disconnect(self) -> None:
        """A pty cannot be unplugged: the device goes silent instead."""
        self._silenced.set()

    def reconnect(self) -> None:
        self.device.reset()
        self._silenced.clear()

    def stop(self) -> None:
        super().stop()
        for fd in (self._master, self._slave):
            try:
                os.close(fd)
            except OSError:
                pass


def serve(device: SimDevice, transport: str = "tcp", port: int = 0) -> SimServer:
    """Serve ``device`` over ``"tcp"`` (loopback) or ``"pty"``; stop it with ``.stop()``."""
    if transport == "tcp":
        return TcpSimServer(device, port)
    if transport == "pty":
        return PtySimServer(device)
    raise ValueError(f"simulator transport must be 'tcp' or 'pty', got {transport!r}")
