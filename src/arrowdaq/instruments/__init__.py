"""Instruments: drivers, transports, capabilities and the instrument actor."""

from .actor import InstrumentActor, spawn_instrument
from .capabilities import (
    EmissionControl,
    FrameProducer,
    Movable,
    Readable,
    ShutterControl,
    Triggerable,
    WavelengthTunable,
    capabilities_of,
)
from .driver import Channel, Channels, Control, Driver, Measurement, Setting, Stream, command
from .registry import available, driver_class
from .transports.base import PortSettings, Transport

__all__ = [
    "Channel",
    "Channels",
    "Control",
    "Driver",
    "EmissionControl",
    "FrameProducer",
    "InstrumentActor",
    "Measurement",
    "Movable",
    "PortSettings",
    "Readable",
    "Setting",
    "ShutterControl",
    "Stream",
    "Transport",
    "Triggerable",
    "WavelengthTunable",
    "available",
    "capabilities_of",
    "command",
    "driver_class",
    "spawn_instrument",
]
