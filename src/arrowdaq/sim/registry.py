"""Which simulator speaks which driver's protocol: driver name → "module:Class"."""

from __future__ import annotations

import importlib

from ..errors import ConfigError
from .device import SimDevice

SIMULATORS: dict[str, str] = {
    "newport_1830c": "arrowdaq.sim.newport_1830c:Newport1830CSim",
    "esp300": "arrowdaq.sim.esp300:ESP300Sim",
    "maitai": "arrowdaq.sim.maitai:MaiTaiSim",
    "ell14": "arrowdaq.sim.ell14:ELL14Sim",
    "scpi": "arrowdaq.sim.scope:ScopeSim",
}


def simulator_class(driver: str) -> type[SimDevice]:
    target = SIMULATORS.get(driver)
    if target is None:
        raise ConfigError(f"no wire simulator for driver {driver!r} (simulators: {', '.join(sorted(SIMULATORS))})")
    module, _, cls = target.partition(":")
    return getattr(importlib.import_module(module), cls)
