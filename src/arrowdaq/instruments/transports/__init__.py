"""Transports: how drivers reach their devices.

``open_transport(port, settings)`` picks the transport from the port string:

* a VISA resource name (``TCPIP0::127.0.0.1::5025::SOCKET``, ``GPIB0::20::INSTR``,
  ``ASRL/dev/ttyUSB0::INSTR``) → pyvisa with the pyvisa-py backend, opened by
  explicit name (never ``list_resources()``: pyvisa-py broadcasts on the network);
* anything else is a serial port for pyserial: a device path (``/dev/ttyUSB0``,
  ``/dev/pts/3``) or a URL (``socket://127.0.0.1:PORT``, ``loop://``).
"""

from __future__ import annotations

from .base import PortSettings, Transport


def is_visa_resource(port: str) -> bool:
    return "::" in port


def open_transport(port: str, settings: PortSettings) -> Transport:
    if is_visa_resource(port):
        from .visa import open_visa

        return open_visa(port, settings)
    from .serial import open_serial

    return open_serial(port, settings)


__all__ = ["PortSettings", "Transport", "is_visa_resource", "open_transport"]
