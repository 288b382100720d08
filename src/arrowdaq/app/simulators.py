"""Simulators for the instruments a configuration puts on ``port = "sim"``.

The simulator of a driver is found from the driver, never by its name: the
driver's ``simulator`` attribute (``"package.module:Class"``) or, for plugins,
an entry point in the group ``arrowdaq.simulators`` named like the driver.
What the simulator needs is declared on it (:class:`arrowdaq.sim.SimDevice`):
its transport (a pseudo-terminal, or loopback TCP opened as a VISA socket), a
bus shared by several instruments (Elliptec), settings the driver needs to
read it. In-process simulated drivers (the camera) get the table as their
``table`` setting when their constructor takes one.

All of them share one optical table, so readings are coherent: turning the
half-wave plate changes the power meter, moving the stage moves the camera's spot.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..errors import ConfigError
from ..instruments import Driver, driver_class
from ..plugins import installed, load_class
from ..sim import OpticalTable, SimDevice, SimServer, serve
from ..sim.server import TcpSimServer
from .config import SIM_PORT, InstrumentConfig

SIMULATOR_ENTRY_POINTS = "arrowdaq.simulators"


def simulator_class(driver: type[Driver]) -> type[SimDevice]:
    """The simulator that speaks ``driver``'s protocol; ConfigError says how to provide one."""
    target = driver.simulator or installed(SIMULATOR_ENTRY_POINTS).get(driver.driver_name)
    if target is None:
        raise ConfigError(
            f"driver {driver.driver_name!r} has no simulator: give the driver class a `simulator = "
            f'"package.module:Class"` attribute or register one under the {SIMULATOR_ENTRY_POINTS!r} entry points'
        )
    return load_class(target, SimDevice, f"driver {driver.driver_name!r}: simulator")


def port_of(server: SimServer, device: SimDevice) -> str:
    """What the driver's ``port`` setting takes to reach ``server``."""
    if device.visa:
        assert isinstance(server, TcpSimServer)  # VISA reaches a simulator over TCP only
        return server.visa_resource
    return server.address


class SimulatedTable:
    """The optical table plus the simulator servers started for a run."""

    def __init__(self, table: OpticalTable) -> None:
        self.table = table
        self.servers: list[SimServer] = []

    def serve_all(self, instruments: Sequence[InstrumentConfig]) -> dict[str, str]:
        """Start a simulator for every ``port = "sim"`` instrument; id → port to open."""
        ports: dict[str, str] = {}
        buses: dict[type[SimDevice], list[InstrumentConfig]] = {}
        for inst in instruments:
            if inst.port != SIM_PORT or not driver_class(inst.driver).needs_port:
                continue
            sim = simulator_class(driver_class(inst.driver))
            if sim.shared_bus:
                buses.setdefault(sim, []).append(inst)
                continue
            device = sim.for_instruments(self.table, [inst.settings])
            ports[inst.id] = port_of(self._serve(device), device)
        for sim, members in buses.items():  # one simulated bus per simulator class, its instruments on it
            device = sim.for_instruments(self.table, [m.settings for m in members])
            address = port_of(self._serve(device), device)
            ports.update({m.id: address for m in members})
        return ports

    def _serve(self, device: SimDevice) -> SimServer:
        server = serve(device, device.transport)
        self.servers.append(server)
        return server

    def driver_settings(self, inst: InstrumentConfig) -> dict[str, Any]:
        """The instrument's settings, completed where the simulator needs it."""
        settings = dict(inst.settings)
        cls = driver_class(inst.driver)
        if "table" in cls.constructor_settings():  # an in-process simulated device images this table
            settings.setdefault("table", self.table)
        if inst.port == SIM_PORT and cls.needs_port:
            # the driver's waits between commands scale with the simulated latencies
            for key in ("delay", "min_interval"):
                settings.setdefault(key, getattr(cls.port_settings, key) * self.table.latency_scale)
            settings = simulator_class(cls).driver_settings(settings) | settings
        return settings

    def stop(self) -> None:
        for server in self.servers:
            server.stop()
        self.servers.clear()
