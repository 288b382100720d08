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
    """Moves to a position (in the driver's declared unit) and reports where it is."""

    def move_to(self, position: float, axis: int = 1) -> None: ...

    def position(self, axis: int = 1) -> float: ...

    def is_moving(self, axis: int = 1) -> bool: ...

    def stop_motion(self, axis: int | None = None) -> None: ...

    def home(self, axis: int = 1) -> None: ...


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
