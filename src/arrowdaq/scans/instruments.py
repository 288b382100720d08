"""The daemon's instruments as scan axes and detectors, reached through the hub.

Every call is a hub command (so it is routed, checked and logged like any
client's) sent from the engine's thread to the event loop. Motion commands
carry the scan's reservation token: the hub refuses other clients' moves of
a scanned axis. Names:

* axes: ``hwp`` (a single-axis mount), ``stage`` (the controller's first
  axis), ``stage:2`` or ``stage.axis2`` (axis 2); table column ``hwp``, ``stage_axis2``;
* detectors: ``pm1`` (its only stream) or ``laser/power``; column ``pm1``, ``laser_power``.
"""

from __future__ import annotations

import asyncio
import re
import threading
from typing import Any

from ..errors import ArrowDAQError, CommandError
from ..hub import InstrumentManager
from ..hub.reservations import HeldCommand

#: Seconds a move may take through the hub before the engine gives up (the driver's own timeout comes first).
MOTION_TIMEOUT = 600.0
_AXIS_NAME = re.compile(r"^(?P<inst>[A-Za-z][\w-]*)(?:(?::|\.axis)(?P<axis>\d+))?$")


class HubLink:
    """Runs hub commands from a thread other than the event loop's."""

    def __init__(self, hub: InstrumentManager, loop: asyncio.AbstractEventLoop, token: object) -> None:
        self.hub = hub
        self.loop = loop
        self.token = token
        self._tasks: set[asyncio.Task[Any]] = set()

    def call(self, instrument: str, action: str, timeout: float = 10.0, **args: Any) -> Any:
        message = HeldCommand(action, args, token=self.token)
        future = asyncio.run_coroutine_threadsafe(self.hub.command(instrument, message, timeout=timeout), self.loop)
        return future.result()

    def call_soon(self, instrument: str, action: str, **args: Any) -> None:
        """Fire a command without waiting for it (``stop`` sent from the event loop's own thread)."""
        message = HeldCommand(action, args, token=self.token)

        def start() -> None:
            task = self.loop.create_task(self.hub.command(instrument, message))
            self._tasks.add(task)
            task.add_done_callback(self._forget)

        if self._on_loop():
            start()
        else:
            self.loop.call_soon_threadsafe(start)

    def _forget(self, task: asyncio.Task[Any]) -> None:
        """A fired command is done: its outcome is not awaited (retrieved, so asyncio does not warn)."""
        self._tasks.discard(task)
        if not task.cancelled():
            task.exception()

    def _on_loop(self) -> bool:
        try:
            return asyncio.get_running_loop() is self.loop
        except RuntimeError:
            return False

    def describe(self, instrument: str) -> dict[str, Any]:
        try:
            return self.call(instrument, "describe")
        except ArrowDAQError as exc:
            raise CommandError(f"{instrument}: cannot use it in a scan: {exc}") from None


class HubAxis:
    """An axis of an instrument with the motion contract, through the hub."""

    def __init__(self, link: HubLink, instrument: str, axis: int | None, info: dict[str, Any]) -> None:
        self.link = link
        self.instrument = instrument
        self.axis = axis
        self.name = instrument if axis is None else f"{instrument}_axis{axis}"
        missing = [c for c in ("move_to", "wait_motion", "stop", "position") if c not in info.get("commands", ())]
        if missing:
            raise CommandError(f"{instrument}: lacks the motion contract's {', '.join(missing)}: cannot scan it")
        streams = info.get("streams", {})
        stream = streams.get("position") or streams.get(f"axis{axis or 1}_position") or {}
        self.unit = stream.get("unit") or ""
        self.limits = _limits(info.get("settings", {}), axis)
        self.speed = _speed(info.get("settings", {}), axis)

    def __repr__(self) -> str:
        return f"<HubAxis {self.name}>"

    def _args(self, **args: Any) -> dict[str, Any]:
        return args | ({"axis": self.axis} if self.axis is not None else {})

    def move_to(self, target: float, wait: bool = True) -> float | None:
        reply = self.link.call(
            self.instrument, "move_to", MOTION_TIMEOUT, **self._args(target=float(target), wait=wait)
        )
        return reply if wait else None

    def wait_motion(self) -> float:
        return self.link.call(self.instrument, "wait_motion", MOTION_TIMEOUT, **self._args())

    def stop(self) -> None:
        self.link.call_soon(self.instrument, "stop", **self._args())

    def position(self) -> float:
        return float(self.link.call(self.instrument, "position", **self._args()))


class HubDetector:
    """One stream of an instrument, read on request (``read`` command)."""

    def __init__(self, link: HubLink, instrument: str, stream: str, name: str, unit: str) -> None:
        self.link = link
        self.instrument = instrument
        self.stream = stream
        self.name = name
        self.unit = unit

    def __repr__(self) -> str:
        return f"<HubDetector {self.instrument}/{self.stream}>"

    def read(self) -> float:
        return float(self.link.call(self.instrument, "read", stream=self.stream))


def _limits(settings: dict[str, Any], axis: int | None) -> tuple[float, float] | None:
    for key in (f"axis{axis}_limits" if axis else "", "limits"):
        value = settings.get(key) if key else None
        if isinstance(value, (list, tuple)) and len(value) == 2:
            return float(value[0]), float(value[1])
    return None


def _speed(settings: dict[str, Any], axis: int | None) -> float | None:
    for key in (f"axis{axis or 1}_velocity_mm_s", "velocity_deg_s", "speed"):
        value = settings.get(key)
        if isinstance(value, (int, float)) and value > 0:
            return float(value)
    if isinstance(settings.get("velocity_percent"), (int, float)):  # Elliptec mounts: % of 430 deg/s
        return 430.0 * max(float(settings["velocity_percent"]), 1.0) / 100
    return None


class HubDevices:
    """Resolves the names plans use into hub-backed axes and detectors (describing each instrument once)."""

    def __init__(self, hub: InstrumentManager, loop: asyncio.AbstractEventLoop) -> None:
        self.hub = hub
        self.token = object()
        self.link = HubLink(hub, loop, self.token)
        self._info: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()

    def info(self, instrument: str) -> dict[str, Any]:
        with self._lock:
            if instrument not in self._info:
                if instrument not in self.hub.supervisor.actors:
                    known = ", ".join(sorted(i for i in self.hub.supervisor.actors if "storage" not in i)) or "none"
                    raise CommandError(f"no instrument {instrument!r} (instruments: {known})")
                self._info[instrument] = self.link.describe(instrument)
            return self._info[instrument]

    def axis(self, name: str) -> HubAxis:
        match = _AXIS_NAME.match(name.strip())
        if match is None:
            raise CommandError(f"axis {name!r}: expected INSTRUMENT or INSTRUMENT:AXIS (e.g. hwp, stage:2)")
        instrument, number = match.group("inst"), match.group("axis")
        info = self.info(instrument)
        if "Movable" not in info.get("capabilities", ()):
            raise CommandError(f"axis {name!r}: {instrument} does not move (capabilities: {info.get('capabilities')})")
        configured = info.get("settings", {}).get("axes")
        if number is None:
            axis = configured[0] if configured else None  # a controller's first axis, named for what it is
        elif configured is None:
            raise CommandError(f"axis {name!r}: {instrument} has a single axis; name it {instrument!r}")
        elif int(number) not in configured:
            raise CommandError(f"axis {name!r}: {instrument} has axes {', '.join(map(str, configured))}")
        else:
            axis = int(number)
        return HubAxis(self.link, instrument, axis, info)

    def detector(self, name: str) -> HubDetector:
        instrument, _, stream = name.strip().partition("/")
        info = self.info(instrument)
        streams = info.get("streams", {})
        if not stream:
            if len(streams) != 1:
                raise CommandError(
                    f"detector {name!r}: {instrument} has streams {', '.join(streams)}; name one, "
                    f"e.g. {instrument}/{next(iter(streams), 'STREAM')}"
                )
            stream = next(iter(streams))
            column = instrument
        else:
            column = f"{instrument}_{stream}"
        if stream not in streams:
            raise CommandError(
                f"detector {name!r}: {instrument} has no stream {stream!r} (streams: {', '.join(streams)})"
            )
        return HubDetector(self.link, instrument, stream, column, streams[stream].get("unit") or "")
