"""Capabilities, not device types: scans and the GUI ask what an instrument can do.

A driver has a capability when it provides the methods below; check with
``isinstance(driver, Movable)``. All calls block (they talk to hardware) and
are run by the instrument actor in its worker thread.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class Readable(Protocol):
    """Gives readings of its declared streams."""

    def read(self, stream: str) -> object: ...


@runtime_checkable
class Movable(Protocol):
    """The motion contract, the same for every axis (DESIGN section 9); positions in the driver's unit.

    * ``move_to(target)`` returns the position once the axis has arrived, or raises:
      DeviceTimeout (no arrival in time), CommandError or DeviceStatusError (a limit,
      a device error), MotionStopped (``stop()`` cut it short);
    * ``move_to(target, wait=False)`` starts the move and returns None;
    * ``wait_motion()`` waits for the running move like ``move_to`` does;
    * ``stop()`` interrupts a move at once: it is never queued behind the move;
    * ``position()`` reads the position back from the device.

    Devices with several axes take ``axis=`` (keyword) on each call; without it the
    first configured axis moves.
    """

    def move_to(self, target: float, wait: bool = True) -> float | None: ...

    def wait_motion(self, max_wait: float | None = None) -> float: ...

    def stop(self) -> None: ...

    def position(self) -> float: ...

    def is_moving(self) -> bool: ...


#: Commands that wait for motion to end: an instrument actor runs their wait beside its mailbox,
#: so a ``stop`` sent meanwhile is handled at once.
MOTION_WAITS = ("move_to", "move_by", "home", "wait_motion")


@runtime_checkable
class WavelengthTunable(Protocol):
    def set_wavelength(self, nm: float) -> None: ...

    def get_wavelength(self) -> float: ...


@runtime_checkable
class ShutterControl(Protocol):
    def open_shutter(self) -> None: ...

    def close_shutter(self) -> None: ...

    def shutter_is_open(self) -> bool: ...


@runtime_checkable
class EmissionControl(Protocol):
    def emission_on(self) -> None: ...

    def emission_off(self) -> None: ...

    def emission_is_on(self) -> bool: ...


@runtime_checkable
class FrameProducer(Protocol):
    """A camera: frames as an (N, H, W) array with their frame numbers."""

    def set_exposure(self, seconds: float) -> None: ...

    def acquire(self) -> tuple[np.ndarray, np.ndarray]: ...


@runtime_checkable
class Triggerable(Protocol):
    def trigger(self) -> None: ...


CAPABILITIES = (Readable, Movable, WavelengthTunable, ShutterControl, EmissionControl, FrameProducer, Triggerable)


def capabilities_of(driver: object) -> list[str]:
    """Names of the capabilities a driver provides, e.g. ['Readable', 'Movable']."""
    return [cap.__name__ for cap in CAPABILITIES if isinstance(driver, cap)]
