"""Simulators that speak the instruments' exact wire protocols, on one optical table."""

from .device import SimDevice
from .server import Faults, SimServer, serve
from .table import OpticalTable, TableSettings

__all__ = ["Faults", "OpticalTable", "SimDevice", "SimServer", "TableSettings", "serve"]
