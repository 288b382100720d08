"""Processors by kind name, for configuration files.

A ``[[processors]]`` table in the configuration becomes one call::

    factory = build("fft", "scope1_fft", hub, ["scope1/trace"], {"window_size": 1024, "output": "psd"})
    hub.spawn("scope1_fft", factory, inputs="scope1/trace")

or, in one step, ``spawn(hub, "scope1_fft", "fft", "scope1/trace", window_size=1024)``.
``build`` checks the parameters at once (the error names the parameter and
what is allowed) and, when the input stream is already declared, checks it and
declares the outputs, so storage sees them before any data flows.

A kind is one of :data:`PROCESSORS` or an installed package's entry point (looked up as
drivers are, by :mod:`arrowdaq.plugins`)::

    [project.entry-points."arrowdaq.processors"]
    peak_hold = "peak_hold:PeakHoldProcessor"
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from ..actors import ActorRef
from ..errors import ProcessorConfigError
from ..plugins import Registry
from .averaging import DecimateProcessor, MovingAverageProcessor
from .base import Processor
from .fft import FFTProcessor
from .filters import FilterProcessor
from .sql import SQLProcessor
from .statistics import StatisticsProcessor
from .trigger import TriggerProcessor

#: The built-in kinds: kind name -> processor class. A program may add its own here; an installed
#: package registers its kinds through the ``arrowdaq.processors`` entry point group instead.
PROCESSORS: dict[str, type[Processor]] = {
    cls.kind: cls
    for cls in (
        FFTProcessor,
        FilterProcessor,
        MovingAverageProcessor,
        DecimateProcessor,
        StatisticsProcessor,
        TriggerProcessor,
        SQLProcessor,
    )
}


KINDS: Registry[Processor] = Registry(
    "processor kind", "arrowdaq.processors", Processor, PROCESSORS, error=ProcessorConfigError
)


def available() -> list[str]:
    """Every processor kind a configuration may use: the built-ins and the installed plugins'."""
    return KINDS.names()


def processor_class(kind: str) -> type[Processor]:
    """The processor class of ``kind``; ProcessorConfigError lists the known kinds."""
    return KINDS.load(kind)


def _single_input(id: str, inputs: str | Iterable[str]) -> str:
    names = [inputs] if isinstance(inputs, str) else list(inputs)
    if len(names) != 1:
        raise ProcessorConfigError(f"processor {id!r}: inputs must name exactly one stream, got {names}")
    return names[0]


def build(
    kind: str, id: str, hub: Any, inputs: str | Iterable[str], params: dict[str, Any] | None = None
) -> Callable[[], Processor]:
    """Check ``params`` now and return the factory for ``hub.spawn(id, factory, inputs=...)``."""
    cls = processor_class(kind)
    source = _single_input(id, inputs)
    options = dict(params or {})
    cls(hub, source, id=id, **options)  # raises now on bad parameters; declares the outputs if it can
    return lambda: cls(hub, source, id=id, **options)


def spawn(hub: Any, id: str, kind: str, inputs: str | Iterable[str], **params: Any) -> ActorRef:
    """Build a processor and start it on ``hub``, subscribed losslessly to its input."""
    factory = build(kind, id, hub, inputs, params)
    return hub.spawn(id, factory, inputs=_single_input(id, inputs), delivery="lossless")
