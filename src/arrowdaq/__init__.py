"""arrowdaq: data acquisition for laboratory instruments.

Every measurement is an Arrow RecordBatch; batches flow between supervised
asyncio actors through a hub to processors, HDF5 storage and live clients.

For analysis::

    import arrowdaq
    arrowdaq.runs("data")                       # the catalogue of runs (Polars DataFrame)
    with arrowdaq.open_run("data/run.h5") as run:
        run.lazy("pm1/power", time="seconds").collect()
"""

import importlib as _importlib
import importlib.metadata as _metadata
import pkgutil as _pkgutil
from typing import Any

try:
    __version__ = _metadata.version("arrowdaq")
except _metadata.PackageNotFoundError:  # running from a source tree
    __version__ = "0.0.0+source"

#: Names loaded on first use, so ``import arrowdaq`` stays light (no h5py, pyarrow, polars): name → module.
_LAZY = {
    "open_run": "storage.reader",
    "RunFile": "storage.reader",
    "runs": "storage.catalogue",
    "connect": "live.client",
}

__all__ = ["RunFile", "__version__", "connect", "open_run", "runs"]


def __getattr__(name: str) -> Any:
    """Lazy attributes and subpackages (``arrowdaq.open_run``, ``arrowdaq.data``)."""
    if name in _LAZY:
        value = getattr(_importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    if name in _subpackages():
        return _importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'arrowdaq' has no attribute {name!r}")


def __dir__() -> list[str]:
    """What ``dir(arrowdaq)`` and tab completion show: the lazy attributes and the subpackages too."""
    public = {name for name in globals() if not name.startswith("_")} | {"__version__"}
    return sorted(public | set(_LAZY) | _subpackages())


def _subpackages() -> set[str]:
    return {m.name for m in _pkgutil.iter_modules(__path__) if not m.name.startswith("_")}
