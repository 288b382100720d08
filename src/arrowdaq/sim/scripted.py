"""Devices that answer from a script: for byte-level tests of a driver.

:func:`expected_protocol` checks one exact conversation, in order, as PyMeasure's
``expected_protocol`` does, but over a real pseudo-terminal::

    with expected_protocol(Newport1830C, [("E0", None), ("U1", None), ("U?", "1"), ("D?", "+.75E-9")]) as meter:
        meter.connect()
        assert meter.power == 0.75e-9

Leaving the block closes the driver and fails if the driver wrote anything the
script did not expect, left a step of it unused or sent bytes without a terminator.

:class:`ScriptedDevice` answers each command from a dict, in any order, any number
of times (transport tests, a device polled in a loop); what it received is
``server.received``. Commands missing from the script get no reply (the driver
times out), which is how a device that ignores a command behaves.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from .device import SimDevice
from .server import serve
from .table import OpticalTable

#: A reply as the device sends it (text is encoded; bytes are sent as they are), or None for no reply.
Reply = str | bytes | None


class ScriptedDevice(SimDevice):
    def __init__(
        self,
        replies: dict[str, Reply],
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

    def handle(self, command: str) -> Reply:
        self.commands.append(command)
        return self.replies.get(command)


class ExpectedExchange(SimDevice):
    """A device that expects one conversation: ``(command, reply)`` steps, in order.

    A step's command is what the driver must send next (without its terminator);
    its reply is the device's answer (None: the command has no reply). Whatever
    else arrives is an unexpected write: it gets no reply, and nothing after it
    does (the conversation is off its script). :meth:`problems` lists what went wrong.
    """

    def __init__(
        self,
        steps: Sequence[tuple[str, Reply]],
        *,
        command_terminator: bytes | tuple[bytes, ...] = b"\n",
        reply_terminator: bytes = b"\n",
    ) -> None:
        super().__init__(OpticalTable(latency_scale=0.0))
        self.steps = list(steps)
        self.command_terminator = command_terminator
        self.reply_terminator = reply_terminator
        self.done = 0  # steps the driver went through
        self.unexpected: list[str] = []
        self._progress = threading.Condition()

    def handle(self, command: str) -> Reply:
        with self._progress:
            try:
                if self.unexpected or self.done == len(self.steps) or command != self.steps[self.done][0]:
                    self.unexpected.append(command)
                    return None
                self.done += 1
                return self.steps[self.done - 1][1]
            finally:
                self._progress.notify_all()

    def wait_finished(self, timeout: float) -> bool:
        """Wait until every step was taken or the driver went off script (True), at most ``timeout`` s.

        A driver's write returns before the device has read it: the check waits for the device.
        """
        with self._progress:
            return self._progress.wait_for(lambda: bool(self.unexpected) or self.done == len(self.steps), timeout)

    def problems(self) -> list[str]:
        """What differs from the script: unexpected writes, unused steps, bytes without a terminator."""
        found = []
        if self.unexpected:
            wanted = repr(self.steps[self.done][0]) if self.done < len(self.steps) else "nothing more"
            found.append(f"unexpected write {self.unexpected[0]!r} at step {self.done + 1} (expected {wanted})")
            if len(self.unexpected) > 1:
                found.append(f"then {self.unexpected[1:]!r}")
        elif self.done < len(self.steps):
            found.append(f"steps never reached: {self.steps[self.done :]!r}")
        if self._buffer:
            found.append(f"bytes without a command terminator: {self._buffer!r}")
        return found


@contextmanager
def expected_protocol(
    driver_class: Any,
    steps: Sequence[tuple[str, Reply]],
    *,
    command_terminator: bytes | tuple[bytes, ...] = b"\n",
    reply_terminator: bytes = b"\n",
    finish_within: float = 5.0,
    **settings: Any,
) -> Iterator[Any]:
    """``driver_class.open(port, **settings)`` on a pseudo-terminal whose device expects ``steps``, in order.

    On leaving the block the driver is closed unless the test closed it (what
    ``close`` sends belongs in the script) and an AssertionError lists every difference from the script. The
    device waits up to ``finish_within`` s for steps not yet taken.
    """
    device = ExpectedExchange(steps, command_terminator=command_terminator, reply_terminator=reply_terminator)
    with serve(device, "pty") as server:
        driver = driver_class.open(server.address, **settings)
        try:
            yield driver
        except BaseException as exc:
            _close(driver)
            if device.unexpected:  # the write off the script explains the failure better than its symptom
                raise AssertionError(f"{server.address}: " + "; ".join(device.problems())) from exc
            raise
        _close(driver)
        device.wait_finished(finish_within)
        if problems := device.problems():
            raise AssertionError(f"{server.address}: " + "; ".join(problems))


def _close(driver: Any) -> None:
    """Close the driver unless the test did: a second close would open the port again to send its goodbyes."""
    transport = getattr(driver, "transport", None)
    if transport is None or transport.is_open:
        driver.close()
