"""Driver registry: name → driver class, built-ins plus plugins.

Third-party drivers register through the ``arrowdaq.drivers`` entry point group::

    [project.entry-points."arrowdaq.drivers"]
    my_meter = "my_package.meter:MyMeter"
"""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points

from ..errors import ConfigError
from .driver import Driver

#: Built-in drivers: name → "module:Class" (imported on first use).
BUILTIN: dict[str, str] = {
    "newport_1830c": "arrowdaq.instruments.drivers.newport_1830c:Newport1830C",
    "esp300": "arrowdaq.instruments.drivers.esp300:ESP300",
    "maitai": "arrowdaq.instruments.drivers.maitai:MaiTai",
    "ell14": "arrowdaq.instruments.drivers.ell14:ELL14",
    "scpi": "arrowdaq.instruments.drivers.scpi:SCPIInstrument",
    "sim_camera": "arrowdaq.instruments.drivers.sim_camera:SimCamera",
}


def available() -> list[str]:
    plugins = {ep.name for ep in entry_points(group="arrowdaq.drivers")}
    return sorted(set(BUILTIN) | plugins)


def driver_class(name: str) -> type[Driver]:
    """The driver class registered as ``name``; ConfigError lists the known ones."""
    target = BUILTIN.get(name)
    if target is None:
        for ep in entry_points(group="arrowdaq.drivers"):
            if ep.name == name:
                return ep.load()
        raise ConfigError(f"unknown driver {name!r} (drivers: {', '.join(available())})")
    module, _, cls = target.partition(":")
    return getattr(importlib.import_module(module), cls)
