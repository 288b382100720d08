"""Simulators for the instruments a configuration puts on ``port = "sim"``.

All of them share one optical table, so the demo's readings are coherent:
turning the half-wave plate changes the power meter, moving the stage moves
the camera's spot. Serial instruments are served on pseudo-terminals (the real
serial path, byte for byte); the SCPI scope on a loopback TCP port opened as a
VISA socket resource. Elliptec mounts on "sim" share one simulated bus; the
first one is the half-wave plate.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..instruments import driver_class
from ..sim import OpticalTable, SimServer, serve
from ..sim.ell14 import ELL14Sim
from ..sim.registry import simulator_class
from ..sim.scope import ScopeSim
from ..sim.scope import driver_settings as scope_settings
from .config import SIM_PORT, InstrumentConfig


class SimulatedTable:
    """The optical table plus the simulator servers started for a run."""

    def __init__(self, table: OpticalTable) -> None:
        self.table = table
        self.servers: list[SimServer] = []

    def serve_all(self, instruments: Sequence[InstrumentConfig]) -> dict[str, str]:
        """Start a simulator for every ``port = "sim"`` instrument; id → port to open."""
        ports: dict[str, str] = {}
        mounts = [i for i in instruments if i.port == SIM_PORT and i.driver == "ell14"]
        if mounts:
            addresses = [str(m.settings.get("address", "0")).upper() for m in mounts]
            bus = self._serve(
                ELL14Sim(self.table, addresses="".join(dict.fromkeys(addresses)), hwp_address=addresses[0]), "pty"
            )
            ports.update({m.id: bus.address for m in mounts})
        for inst in instruments:
            if inst.port != SIM_PORT or inst.driver == "ell14" or not driver_class(inst.driver).needs_port:
                continue
            if inst.driver == "scpi":
                server = self._serve(ScopeSim(self.table), "tcp")
                ports[inst.id] = server.visa_resource  # type: ignore[attr-defined]
            else:
                ports[inst.id] = self._serve(simulator_class(inst.driver)(self.table), "pty").address
        return ports

    def _serve(self, device: Any, transport: str) -> SimServer:
        server = serve(device, transport)
        self.servers.append(server)
        return server

    def driver_settings(self, inst: InstrumentConfig) -> dict[str, Any]:
        """The instrument's settings, completed where the simulator needs it."""
        settings = dict(inst.settings)
        if inst.port == SIM_PORT:
            # the driver's waits between commands scale with the simulated latencies
            defaults = driver_class(inst.driver).port_settings
            for key in ("delay", "min_interval"):
                settings.setdefault(key, getattr(defaults, key) * self.table.latency_scale)
        if inst.driver == "sim_camera":
            settings.setdefault("table", self.table)
        elif (
            inst.port == SIM_PORT and inst.driver == "scpi" and not (settings.get("queries") or settings.get("traces"))
        ):
            settings = scope_settings() | settings
        return settings

    def stop(self) -> None:
        for server in self.servers:
            server.stop()
        self.servers.clear()
