"""Streaming processors: actors that turn input streams into new streams.

Each kind is one module (``fft``, ``filters``, ``averaging``, ``statistics``,
``trigger``, ``sql``) with a pure streaming algorithm (NumPy in and out, state
across chunks, no asyncio) and a thin :class:`Processor` actor around it.
Build them by kind name from a configuration with :func:`build` or
:func:`spawn` (installed packages add kinds through the ``arrowdaq.processors``
entry point group); see :mod:`.base` for what happens on bad input.
"""

from .averaging import DecimateProcessor, Decimator, MovingAverage, MovingAverageProcessor
from .base import Processor, ProcessorParams, SignalParams, SignalProcessor
from .fft import FFTProcessor, SlidingFFT, spectra
from .filters import FilterProcessor, StreamingFilter, design_filter
from .registry import PROCESSORS, available, build, processor_class, spawn
from .sampling import IrregularTimestamps, SampleClock
from .sql import SQLProcessor
from .statistics import StatisticsProcessor, WindowStatistics
from .trigger import Trigger, TriggerProcessor

__all__ = [
    "PROCESSORS",
    "DecimateProcessor",
    "Decimator",
    "FFTProcessor",
    "FilterProcessor",
    "IrregularTimestamps",
    "MovingAverage",
    "MovingAverageProcessor",
    "Processor",
    "ProcessorParams",
    "SQLProcessor",
    "SampleClock",
    "SignalParams",
    "SignalProcessor",
    "SlidingFFT",
    "StatisticsProcessor",
    "StreamingFilter",
    "Trigger",
    "TriggerProcessor",
    "WindowStatistics",
    "available",
    "build",
    "design_filter",
    "processor_class",
    "spawn",
    "spectra",
]
