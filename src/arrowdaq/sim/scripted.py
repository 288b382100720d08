"""A device that answers from a script: for byte-level tests of a new driver.

Serve it like any simulator and check what the driver sent::

    device = ScriptedDevice({"D?": "+.75E-9", "U?": "1"})
    with serve(device, "pty") as server:
        meter = Newport1830C.open(server.address)
        assert meter.power == 0.75e-9
        assert server.received == b"D?\\n"

Commands missing from the script get no reply (the driver times out), which is
how a device that ignores a command behaves.
"""

from __future__ import annotations

from .device import SimDevice
from .table import OpticalTable


class ScriptedDevice(SimDevice):
    def __init__(
        self,
        replies: dict[str, str | bytes | None],
        *,
        command_terminator: bytes | tuple[bytes, ...] = b"\n",
        reply_terminator: bytes = b"\n",
    ) -> None:
        super().__init__(OpticalTable(latency_scale=0.0))
        self.replies = dict(replies)
        self.command_terminator = command_terminator
        self.reply_terminator = reply_terminator
        #: Commands received, in order, without terminators.
        self.commands: list[str] = []

    def handle(self, command: str) -> str | bytes | None:
        self.commands.append(command)
        return self.replies.get(command)
