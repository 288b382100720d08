"""What a driver needs from a link to its device: write a command, query a reply.

Concrete transports (serial through pyserial, VISA through pyvisa) add the
port's terminators, timeouts, inter-command delay and flow control. One transport
serves one port; every exchange holds the port's lock, so several devices on one
bus (an Elliptec multidrop line) never interleave their bytes.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Protocol, runtime_checkable


@dataclass(frozen=True)
class PortSettings:
    """How to talk over a port; each driver declares its own defaults."""

    baudrate: int = 9600
    write_termination: str = "\n"
    read_termination: str = "\n"
    #: Other reply terminators also accepted (e.g. a device that ends replies in CR, LF or CR LF).
    extra_read_terminations: tuple[str, ...] = ()
    timeout: float = 1.0  # seconds to wait for a reply
    delay: float = 0.0  # seconds to wait after a write before reading
    min_interval: float = 0.0  # seconds between the end of one exchange and the next write
    xonxoff: bool = False
    rtscts: bool = False
    encoding: str = "ascii"
    #: A multidrop bus (Elliptec): several instruments may share the port. Other devices may not.
    bus: bool = False


@runtime_checkable
class Transport(Protocol):
    """A message-level link to one port. Calls block; actors run them in their worker thread."""

    lock: threading.RLock
    settings: PortSettings

    def write(self, command: str) -> None:
        """Send one command (the write terminator is added)."""

    def read(self) -> str:
        """Read one reply up to the read terminator (removed); raises DeviceTimeout."""

    def query(self, command: str) -> str:
        """Write a command and read its reply, holding the port's lock for both."""

    def close(self) -> None: ...


def send_now(transport: Transport, command: str) -> None:
    """Send ``command`` ahead of an exchange in progress where the transport can (serial ports:
    ``send_now``), else as an ordinary write after it."""
    urgent = getattr(transport, "send_now", None)
    if urgent is not None:
        urgent(command)
    else:
        transport.write(command)
