"""Driver registry: name → driver class, built-ins plus plugins.

Third-party drivers register through the ``arrowdaq.drivers`` entry point group::

    [project.entry-points."arrowdaq.drivers"]
    my_meter = "my_package.meter:MyMeter"

Processors are found the same way (:mod:`arrowdaq.plugins` looks up both).
"""

from __future__ import annotations

from ..plugins import Registry
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

DRIVERS: Registry[Driver] = Registry("driver", "arrowdaq.drivers", Driver, BUILTIN)


def available() -> list[str]:
    """Every driver name a configuration may use: the built-ins and the installed plugins'."""
    return DRIVERS.names()


def driver_class(name: str) -> type[Driver]:
    """The driver class registered as ``name``; ConfigError lists the known ones."""
    return DRIVERS.load(name)
