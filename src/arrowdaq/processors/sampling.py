"""The sampling clock of a scalar stream, and where its signal breaks.

Streaming algorithms (filters, FFT windows, triggers) assume samples equally
spaced in time. The rate is either configured (timestamps are then not
checked: many drivers stamp a whole batch with one time) or learnt from the
timestamps of the first :data:`LEARN_SAMPLES` samples (a polled instrument
publishes one sample per batch: the caller holds them until there are enough).
The interval is the mean of the regular intervals seen so far, so the jitter
of timestamps taken when a reply arrives averages out instead of deciding the
rate. Every interval is checked against it:

* within ``tolerance`` of the sampling interval: fine;
* longer than 1.5 intervals: a *gap* (samples were lost); the signal breaks;
* anything else (too short, jitter beyond tolerance): *irregular*, an error.

A NaN value is a missing sample too, so it breaks the signal like a gap.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise

import numpy as np

from ..errors import ProcessorError

#: An interval longer than this many sampling intervals is a gap, not jitter.
GAP_FACTOR = 1.5

#: Samples needed before a rate is learnt from timestamps. The mean of 7
#: intervals is within 1/7 of one timestamp's jitter of the true interval, so
#: timestamps jittering by +-2 % of the interval (intervals by +-4 %) pass the
#: default 5 % tolerance from the first check on.
LEARN_SAMPLES = 8


class IrregularTimestamps(ProcessorError):
    """The timestamps of a stream are not equally spaced, so no sample rate can be derived.

    ``resume_at``: index of the first given sample after the last irregular
    interval, from where the samples may still be regular.
    """

    def __init__(self, message: str, resume_at: int = 0) -> None:
        super().__init__(message)
        self.resume_at = resume_at


@dataclass
class Segment:
    """Consecutive samples without a break; ``restart`` says a break came right before."""

    timestamps_ns: np.ndarray
    values: np.ndarray
    restart: bool


class SampleClock:
    """Knows the sampling interval of one stream and finds the gaps in its timestamps."""

    def __init__(self, stream: str, sample_rate: float | None = None, tolerance: float = 0.05) -> None:
        self.stream = stream
        self.configured = sample_rate is not None
        self.dt_ns: float | None = 1e9 / sample_rate if sample_rate else None
        self.tolerance = tolerance
        self.last_ns: int | None = None
        self._regular_ns = 0  # sum and number of the regular intervals seen: their mean is dt_ns
        self._regular_count = 0

    @property
    def sample_rate(self) -> float | None:
        """Samples per second, or None while it is still to be learnt."""
        return 1e9 / self.dt_ns if self.dt_ns else None

    def gaps(self, timestamps_ns: np.ndarray) -> np.ndarray | None:
        """Boolean per sample: True where a gap precedes it. Raises IrregularTimestamps.

        With a configured rate nothing is checked. Otherwise, while the rate is
        unknown and fewer than :data:`LEARN_SAMPLES` samples are given, returns
        None and changes nothing: give them again with the next ones.
        """
        n = len(timestamps_ns)
        flags = np.zeros(n, dtype=bool)
        if self.configured or n == 0:
            return flags
        ts = timestamps_ns.astype(np.int64, copy=False)
        joined = ts if self.last_ns is None else np.concatenate(([self.last_ns], ts))
        if self.dt_ns is None and len(joined) < LEARN_SAMPLES:
            return None
        intervals = np.diff(joined)
        if self.dt_ns is None:
            nominal = float(np.median(intervals))  # robust to a few gaps among the first samples
            if nominal <= 0:
                raise IrregularTimestamps(
                    f"stream {self.stream!r}: timestamps do not increase, so no sample rate can be derived; "
                    "configure sample_rate",
                    resume_at=n,
                )
            gap = intervals > GAP_FACTOR * nominal
            dt = float(intervals[~gap].mean())
        else:
            dt = self.dt_ns
            gap = intervals > GAP_FACTOR * dt
        irregular = ~gap & (np.abs(intervals / dt - 1.0) > self.tolerance)
        if irregular.any():
            i = int(np.argmax(irregular))
            last = len(irregular) - 1 - int(np.argmax(irregular[::-1]))
            raise IrregularTimestamps(
                f"stream {self.stream!r}: irregular timestamps: an interval of {intervals[i] / 1e9:.6g} s differs "
                f"from the sampling interval {dt / 1e9:.6g} s by more than {self.tolerance:.0%}; "
                "configure sample_rate to ignore the timestamps, or raise timestamp_tolerance",
                resume_at=last + 1 - (len(joined) - n),
            )
        self._regular_ns += int(intervals[~gap].sum())
        self._regular_count += int(np.count_nonzero(~gap))
        self.dt_ns = self._regular_ns / self._regular_count
        self.last_ns = int(ts[-1])
        flags[n - len(gap) :] = gap  # the very first sample has no interval before it
        return flags


def split_segments(
    timestamps_ns: np.ndarray, values: np.ndarray, breaks: np.ndarray, broken_before: bool
) -> tuple[list[Segment], int, bool]:
    """Cut samples into unbroken segments, dropping NaN values.

    ``breaks[i]`` is True where a gap precedes sample ``i``; ``broken_before``
    carries a break from the previous batch (it ended on a NaN). Returns the
    segments, the number of NaN samples dropped, and whether the batch ended
    on a NaN (a break for the next one).
    """
    nan = np.isnan(values)
    n_nan = int(np.count_nonzero(nan))
    if not n_nan and not broken_before and not breaks.any():  # the usual case: one unbroken run
        return ([Segment(timestamps_ns, values, False)] if len(values) else []), 0, False
    brk = breaks.copy()
    if len(brk):
        brk[0] |= broken_before
    if n_nan:
        brk[1:] |= nan[:-1]  # the sample after a NaN starts afresh
        kept = np.flatnonzero(~nan)
        # a break on a dropped sample moves to the next kept one
        counts = np.cumsum(brk)
        before = np.concatenate(([0], counts[kept[:-1]])) if len(kept) else kept
        brk_kept = (counts[kept] - before) > 0 if len(kept) else np.zeros(0, bool)
        timestamps_ns, values = timestamps_ns[kept], values[kept]
        ends_broken = bool(nan[-1]) or (len(kept) == 0 and (broken_before or bool(breaks.any())))
    else:
        brk_kept = brk
        ends_broken = False
    starts = np.flatnonzero(brk_kept)
    bounds = [0, *[int(s) for s in starts if s > 0], len(values)]
    segments = [
        Segment(timestamps_ns[a:b], values[a:b], bool(brk_kept[a]) if b > a else False)
        for a, b in pairwise(bounds)
        if b > a
    ]
    return segments, n_nan, ends_broken
