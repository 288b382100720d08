"""FFT: spectra of a scalar signal (sliding windows) or of each trace of a vector stream.

Outputs one-sided spectra as vector rows with a frequency axis in Hz (``x0=0``,
``dx = sample_rate / n``), scaled so that a user reads physical numbers:

* ``magnitude``: the amplitude of a sine (a 2 V sine gives a 2 V peak), in the
  input's unit, corrected for the window's coherent gain;
* ``db``: 20·log10 of that magnitude (dB relative to 1 input unit), unit 'dB';
* ``psd``: power spectral density in unit²/Hz, the density scaling of
  ``scipy.signal.spectrogram`` / ``welch`` (so its sum times the bin width
  is the signal's variance).

Scalar input: windows of ``window_size`` samples, each starting ``hop`` samples
after the previous (``hop = window_size - round(overlap * window_size)``),
stamped with the time of their first sample; samples carry across batches.
Vector input: one spectrum per trace, stamped with the trace's time, with the
sample rate from the trace axis (``dx`` in s, ms, us or ns) unless configured;
``window_size`` then sets the FFT length. A longer trace is cut to its first
``window_size`` samples before the window is applied. A shorter one is
windowed over its own length and zero-padded: the bins are closer
(``dx = sample_rate / window_size``) but the resolution is still that of the
trace; ``magnitude`` still reads a sine's amplitude at its frequency and
``psd`` still integrates to the variance, because both are normalised by the
window over the samples actually used.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import scipy.signal as sig
from numpy.lib.stride_tricks import sliding_window_view
from pydantic import Field, field_validator

from ..data import SCALAR, UNIFORM, VECTOR, kind_of, unit_of, vector_batch, vector_schema
from ..errors import ProcessorConfigError
from .base import Outputs, SignalParams, SignalProcessor, channel_of
from .sampling import Segment

Scaling = Literal["magnitude", "db", "psd"]

#: Seconds per unit of a trace's x axis.
TIME_UNITS = {None: 1.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}


@lru_cache(maxsize=64)
def window_values(name: str, n: int) -> np.ndarray:
    """The window function (periodic, as for spectral analysis)."""
    return sig.get_window(name, n, fftbins=True)


def spectra(
    frames: np.ndarray,
    sample_rate: float | np.ndarray,
    *,
    window: str = "hann",
    scaling: Scaling = "magnitude",
    nfft: int | None = None,
    detrend: bool = False,
) -> np.ndarray:
    """One-sided spectra of the rows of ``frames`` (2-D), scaled as the module docstring says.

    ``sample_rate`` is a number or one per row. ``nfft`` shorter than a row
    uses the row's first ``nfft`` samples; longer zero-pads it. The window
    always spans the samples used, so its gain correction stays right.
    """
    n = nfft or frames.shape[1]
    if n < frames.shape[1]:
        frames = frames[:, :n]
    m = frames.shape[1]
    w = window_values(window, m)
    if detrend:
        frames = frames - frames.mean(axis=1, keepdims=True)
    x = np.fft.rfft(frames * w, n=n, axis=1)
    single = np.ones(x.shape[1])  # bins counted twice in a one-sided spectrum: all but DC and Nyquist
    single[1:] = 2.0
    if n % 2 == 0:
        single[-1] = 1.0
    if scaling == "psd":
        fs = np.asarray(sample_rate, dtype=np.float64).reshape(-1, 1)
        return (x.real**2 + x.imag**2) * single / (fs * np.sum(w * w))
    magnitude = np.abs(x) * single / np.sum(w)
    if scaling == "db":
        return 20.0 * np.log10(np.maximum(magnitude, np.finfo(np.float64).tiny))
    return magnitude


class SlidingFFT:
    """Spectra of overlapping windows of a signal that arrives in chunks."""

    def __init__(
        self,
        window_size: int,
        hop: int,
        sample_rate: float,
        *,
        window: str = "hann",
        scaling: Scaling = "magnitude",
        detrend: bool = False,
    ) -> None:
        if not 1 <= hop <= window_size:
            raise ValueError(f"hop must be in 1..{window_size}, got {hop}")
        self.window_size, self.hop, self.sample_rate = window_size, hop, sample_rate
        self.options: dict[str, Any] = {"window": window, "scaling": scaling, "detrend": detrend}
        window_values(window, window_size)  # fail now on an unknown window
        self.reset()

    @property
    def frequency_step(self) -> float:
        return self.sample_rate / self.window_size

    def reset(self) -> None:
        # the samples of the incomplete window: a chunk that completes none is copied in, O(chunk), not O(window)
        self._values = np.empty(self.window_size)
        self._timestamps = np.empty(self.window_size, np.uint64)
        self._held = 0

    def process(self, timestamps_ns: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Spectra (one row per complete window) and the timestamps of the windows' first samples."""
        held, n = self._held, len(values)
        if held + n < self.window_size:
            self._values[held : held + n] = values
            self._timestamps[held : held + n] = timestamps_ns
            self._held += n
            return np.empty((0, self.window_size // 2 + 1)), timestamps_ns[:0]
        v = np.concatenate((self._values[:held], values))
        ts = np.concatenate((self._timestamps[:held], timestamps_ns))
        count = (len(v) - self.window_size) // self.hop + 1
        used = count * self.hop
        self._held = len(v) - used  # < window_size
        self._values[: self._held] = v[used:]
        self._timestamps[: self._held] = ts[used:]
        frames = sliding_window_view(v, self.window_size)[:: self.hop][:count]
        return spectra(frames, self.sample_rate, **self.options), ts[: used : self.hop]


class FFTParams(SignalParams):
    window_size: int | None = Field(None, ge=2, le=2**26, description="samples per FFT (scalar input: required)")
    overlap: float = Field(0.5, ge=0, lt=1, description="fraction of a window shared with the next one")
    window: str = Field("hann", description="a scipy.signal.get_window name: hann, hamming, blackman, boxcar...")
    output: Scaling = Field("magnitude", description="magnitude (input unit), db, or psd (unit^2/Hz)")
    detrend: bool = Field(False, description="subtract each window's mean before the FFT")

    @field_validator("window")
    @classmethod
    def _known_window(cls, name: str) -> str:
        try:
            window_values(name, 16)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"unknown window {name!r} ({exc})") from None
        return name


def spectrum_unit(unit: str | None, scaling: Scaling) -> str | None:
    if scaling == "db":
        return "dB"
    if scaling == "psd":
        base = unit or "1"
        base = f"({base})" if any(c in base for c in "/* ") else base
        return f"{base}^2/Hz" if unit else "1/Hz"
    return unit


_LONG_NAMES = {"magnitude": "amplitude spectrum", "db": "amplitude spectrum (dB)", "psd": "power spectral density"}


class FFTProcessor(SignalProcessor[FFTParams]):
    """Publishes ``<id>/spectrum``: one spectrum per window (scalar input) or per trace (vector input)."""

    kind = "fft"
    accepts = (SCALAR, VECTOR)

    def configure(self, input_schema: pa.Schema) -> dict[str, pa.Schema]:
        p = self.params
        self.vector = kind_of(input_schema) == VECTOR
        if self.vector:
            self.unit = unit_of(input_schema, "values")
            if (input_schema.metadata or {}).get(b"arrowdaq.axis", b"").decode() != UNIFORM:
                if p.sample_rate is None:
                    raise ProcessorConfigError(
                        f"{self.where}: input {self.input!r} has an explicit x axis; "
                        "configure sample_rate to take its FFT"
                    )
                self.seconds_per_x = 1.0
            else:
                x_unit = unit_of(input_schema, "x0")
                if x_unit not in TIME_UNITS:
                    units = ", ".join(u for u in TIME_UNITS if u)
                    raise ProcessorConfigError(
                        f"{self.where}: the x axis of {self.input!r} is in {x_unit!r}, "
                        f"not a time unit ({units}); configure sample_rate"
                    )
                self.seconds_per_x = TIME_UNITS[x_unit]
            self.channel = ""
        else:
            if p.window_size is None:
                raise ProcessorConfigError(
                    f"{self.where}: parameter 'window_size' is required for the scalar input {self.input!r}"
                )
            super().configure(input_schema)
        return self.output_schemas(input_schema)

    def output_schemas(self, input_schema: pa.Schema) -> dict[str, pa.Schema]:
        out = spectrum_unit(self.unit, self.params.output)
        return {"spectrum": vector_schema(out, "Hz", axis=UNIFORM, long_name=_LONG_NAMES[self.params.output])}

    # --- scalar input -----------------------------------------------------------------
    def start_signal(self, sample_rate: float) -> None:
        p, n = self.params, self.params.window_size
        assert n is not None  # configure refuses a scalar input without it
        hop = n - round(p.overlap * n)
        self.fft = SlidingFFT(n, max(hop, 1), sample_rate, window=p.window, scaling=p.output, detrend=p.detrend)

    def work(self, batch: pa.RecordBatch) -> float:
        p = self.params
        if self.vector:  # one FFT of window_size (or the trace length) per trace
            n = p.window_size or max(1, len(batch.column("values").values) // max(batch.num_rows, 1))
            return super().work(batch) + batch.num_rows * n * np.log2(max(n, 2))
        n = p.window_size
        assert n is not None  # configure refuses a scalar input without it
        hop = max(n - round(p.overlap * n), 1)
        # one FFT per hop samples, and the held samples copied each time a window completes
        return super().work(batch) + batch.num_rows * (n * np.log2(n) + n) / hop

    def process(self, segment: Segment) -> Outputs:
        if segment.restart:
            self.fft.reset()
        rows, ts = self.fft.process(segment.timestamps_ns, segment.values)
        if len(rows) == 0:
            return []
        batch = vector_batch(
            rows,
            channel=self.channel,
            unit=spectrum_unit(self.unit, self.params.output),
            x0=0.0,
            dx=self.fft.frequency_step,
            x_unit="Hz",
            timestamps_ns=ts,
        )
        return [("spectrum", batch)]

    # --- vector input -------------------------------------------------------------------
    def transform(self, batch: pa.RecordBatch) -> Outputs:
        if not self.vector:
            return super().transform(batch)
        if batch.num_rows == 0:
            return []
        self.channel = self.channel or channel_of(batch)
        values = batch.column("values")
        lengths = np.diff(values.offsets.to_numpy())
        flat = values.flatten().to_numpy(zero_copy_only=False)
        ts = batch.column("timestamp_ns").to_numpy()
        if self.params.sample_rate is not None:
            rates = np.full(batch.num_rows, self.params.sample_rate)
        else:
            rates = 1.0 / (batch.column("dx").to_numpy() * self.seconds_per_x)
        outputs: Outputs = []
        starts = np.concatenate(([0], np.cumsum(lengths)[:-1]))
        for length in np.unique(lengths):  # usually one: every trace has the same length
            rows = np.flatnonzero(lengths == length)
            if length < 2:
                self.problem(
                    f"{self.where}: {len(rows)} trace(s) of {self.input!r} shorter than 2 samples skipped", "short"
                )
                continue
            n = self.params.window_size or int(length)
            traces = flat[starts[rows, None] + np.arange(min(n, int(length)))]  # only the samples used
            ok = np.isfinite(traces).all(axis=1) & np.isfinite(rates[rows]) & (rates[rows] > 0)
            if not ok.all():
                self.problem(
                    f"{self.where}: {int((~ok).sum())} trace(s) of {self.input!r} with NaN/inf values "
                    "or a bad dx skipped",
                    "nan",
                )
                rows, traces = rows[ok], traces[ok]
                if len(rows) == 0:
                    continue
            out = spectra(
                traces,
                rates[rows],
                window=self.params.window,
                scaling=self.params.output,
                nfft=n,
                detrend=self.params.detrend,
            )
            outputs.append(
                (
                    "spectrum",
                    vector_batch(
                        out,
                        channel=self.channel,
                        unit=spectrum_unit(self.unit, self.params.output),
                        x0=0.0,
                        dx=rates[rows] / n,
                        x_unit="Hz",
                        timestamps_ns=ts[rows],
                    ),
                )
            )
        return outputs
