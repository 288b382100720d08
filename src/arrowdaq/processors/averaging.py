"""Moving average and decimation of a scalar signal, with state across chunks.

* Moving average: the mean of the last ``samples`` samples, published once that
  many have arrived (NumPy's ``convolve(..., 'valid')``), stamped with the time
  of the newest sample in the window.
* Decimation: an anti-alias low-pass, then every ``factor``-th sample. The
  filters are the ones ``scipy.signal.decimate`` uses (FIR: Hamming-windowed,
  ``20 * factor + 1`` taps; IIR: order-8 Chebyshev I), run causally as
  ``decimate(..., zero_phase=False)`` does: a stream cannot look ahead.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import pyarrow as pa
import scipy.signal as sig
from numpy.lib.stride_tricks import sliding_window_view
from pydantic import Field

from ..data import scalar_batch, scalar_schema
from .base import Outputs, SignalParams, SignalProcessor
from .filters import StreamingFilter
from .sampling import Segment


class MovingAverage:
    """Mean of the last ``samples`` values; ``process`` returns only full windows.

    O(1) per sample whatever the window (an M-tap FIR would cost M per
    sample): a running window sum, plus the values entering and minus those
    leaving it, which are the last ``samples - 1`` values kept in a ring
    buffer. The cumulative sums of a chunk are taken relative to its first
    value, so an offset costs no precision, and the window sum is recomputed
    from the ring every ``samples`` inputs, so rounding does not accumulate.
    """

    def __init__(self, samples: int) -> None:
        self.samples = samples
        self.reset()

    def reset(self) -> None:
        """Back to rest (zeros in the window), as at the start of a signal."""
        self._ring = np.zeros(self.samples - 1)  # the last samples - 1 values, oldest at _head
        self._head = 0
        self._ring_sum = 0.0
        self._since_resum = 0
        self.seen = 0

    def process(self, x: np.ndarray) -> tuple[np.ndarray, int]:
        """The averages, and how many leading inputs had no full window yet."""
        n, kept = len(x), self.samples - 1
        skip = min(n, max(0, kept - self.seen))
        self.seen += n
        if n == 0 or kept == 0:
            return np.array(x, dtype=np.float64)[skip:], skip
        oldest = self._ring[(self._head + np.arange(min(n, kept))) % kept]
        leaving = np.concatenate((oldest, x[: n - len(oldest)]))  # leaves the window as x[j] enters
        ref = float(x[0])
        entered = np.cumsum(x - ref)
        left = np.cumsum(leaving - ref)
        # window sum ending at x[j] = ring sum + x[0..j] - leaving[0..j-1]
        sums = (self._ring_sum + ref) + entered - np.concatenate(([0.0], left[:-1]))
        self._ring_sum += float(entered[-1] - left[-1])
        if n >= kept:
            self._ring[:] = x[n - kept :]
            self._head = 0
        else:
            self._ring[(self._head + np.arange(n)) % kept] = x
            self._head = (self._head + n) % kept
        self._since_resum += n
        if self._since_resum >= kept:
            self._ring_sum, self._since_resum = float(self._ring.sum()), 0
        return sums[skip:] / self.samples, skip


class Decimator:
    """Anti-alias filter then keep every ``factor``-th sample, phase carried across chunks.

    The FIR filter is evaluated only at the kept samples (a dot product of the
    taps with the last ``taps`` inputs each), so its cost per input is ~20
    multiply-adds whatever the factor, not ``20 * factor``. The IIR filter has
    to see every sample.
    """

    #: Kept outputs evaluated at once: bounds the temporary (outputs x taps) to ~32 MB.
    BLOCK_ELEMENTS = 4_000_000

    def __init__(self, factor: int, ftype: Literal["fir", "iir"] = "fir") -> None:
        self.factor = factor
        self.taps: np.ndarray | None = None
        self.filter: StreamingFilter | None = None
        if ftype == "fir":
            self.taps = sig.firwin(20 * factor + 1, 1.0 / factor, window="hamming")
        else:
            self.filter = StreamingFilter(sos=sig.cheby1(8, 0.05, 0.8 / factor, output="sos"))
        self.reset()

    @property
    def work_per_sample(self) -> float:
        """Estimated cost per input sample, about in nanoseconds (the FIR's history copy not included)."""
        if self.taps is None:
            assert self.filter is not None  # the IIR decimator
            return self.filter.work_per_sample
        return 0.5 * len(self.taps) / self.factor + 2.0

    def reset(self) -> None:
        if self.taps is not None:
            self._history = np.zeros(len(self.taps) - 1)  # the inputs before the chunk, from rest
        else:
            assert self.filter is not None  # the IIR decimator
            self.filter.reset()
        self.phase = 0  # index in the next chunk of the next sample to keep

    def process(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The kept samples and their indices in ``x``."""
        keep = np.arange(self.phase, len(x), self.factor)
        self.phase = (self.phase - len(x)) % self.factor
        if self.taps is None:
            assert self.filter is not None  # the IIR decimator
            return self.filter.process(x)[keep], keep
        if len(x) == 0:
            return np.empty(0), keep
        n_taps = len(self.taps)
        z = np.concatenate((self._history, x))
        self._history = z[len(z) - (n_taps - 1) :]
        windows = sliding_window_view(z, n_taps)  # windows[i] ends with x[i]
        reversed_taps = self.taps[::-1]
        step = max(1, self.BLOCK_ELEMENTS // n_taps)
        y = np.concatenate(
            [windows[keep[a : a + step]] @ reversed_taps for a in range(0, len(keep), step)] or [np.empty(0)]
        )
        return y, keep


class MovingAverageParams(SignalParams):
    samples: int = Field(ge=1, le=10_000_000, description="window length in samples")


class MovingAverageProcessor(SignalProcessor[MovingAverageParams]):
    """Publishes ``<id>/average`` in the input's unit."""

    kind = "moving_average"

    def output_schemas(self, input_schema: pa.Schema) -> dict[str, pa.Schema]:
        return {"average": scalar_schema(self.unit)}

    def start_signal(self, sample_rate: float) -> None:
        self.average = MovingAverage(self.params.samples)

    def process(self, segment: Segment) -> Outputs:
        if segment.restart:
            self.average.reset()
        y, skip = self.average.process(segment.values)
        ts = segment.timestamps_ns[skip:]
        return [("average", scalar_batch(y, channel=self.channel, unit=self.unit, timestamps_ns=ts))]


class DecimateParams(SignalParams):
    factor: int = Field(ge=2, le=100_000, description="keep one sample in this many")
    ftype: Literal["fir", "iir"] = Field("fir", description="anti-alias filter: 'fir' (linear phase) or 'iir'")


class DecimateProcessor(SignalProcessor[DecimateParams]):
    """Publishes ``<id>/decimated`` in the input's unit, at ``sample_rate / factor``."""

    kind = "decimate"

    def output_schemas(self, input_schema: pa.Schema) -> dict[str, pa.Schema]:
        return {"decimated": scalar_schema(self.unit)}

    def start_signal(self, sample_rate: float) -> None:
        self.decimator = Decimator(self.params.factor, self.params.ftype)

    def work(self, batch: pa.RecordBatch) -> float:
        p = self.params
        per_sample = self.decimator.work_per_sample if self._started else 20.0
        history = 20 * p.factor if p.ftype == "fir" else 0  # the FIR's inputs kept across chunks, copied once
        return super().work(batch) + batch.num_rows * per_sample + history

    def process(self, segment: Segment) -> Outputs:
        if segment.restart:
            self.decimator.reset()
        y, keep = self.decimator.process(segment.values)
        ts = segment.timestamps_ns[keep]
        return [("decimated", scalar_batch(y, channel=self.channel, unit=self.unit, timestamps_ns=ts))]
