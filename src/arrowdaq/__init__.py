"""arrowdaq: data acquisition for laboratory instruments.

Every measurement is an Arrow RecordBatch; batches flow between supervised
asyncio actors through a hub to processors, HDF5 storage and live clients.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("arrowdaq")
except PackageNotFoundError:  # running from a source tree
    __version__ = "0.0.0+source"

__all__ = ["__version__", "open_run"]


def __getattr__(name: str):
    """Lazy attributes, so ``import arrowdaq`` stays light (no h5py, pyarrow, polars)."""
    if name == "open_run":
        from .storage.reader import open_run

        return open_run
    raise AttributeError(f"module 'arrowdaq' has no attribute {name!r}")
