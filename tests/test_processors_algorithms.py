"""The streaming algorithms alone: chunk by chunk equals scipy/numpy on the whole signal."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
import scipy.signal as sig

from arrowdaq.processors import (
    Decimator,
    IrregularTimestamps,
    MovingAverage,
    SampleClock,
    SlidingFFT,
    StreamingFilter,
    Trigger,
    WindowStatistics,
    design_filter,
    spectra,
)
from arrowdaq.processors.filters import FilterParams
from arrowdaq.processors.sampling import LEARN_SAMPLES, split_segments
from arrowdaq.processors.trigger import TriggerParams

FS = 1000.0
RTOL = 1e-9


def random_chunks(x: np.ndarray, rng: np.random.Generator, pieces: int = 40) -> list[np.ndarray]:
    """``x`` cut at random places, including empty and one-sample chunks."""
    cuts = np.sort(rng.integers(0, len(x) + 1, pieces))
    cuts = np.concatenate((cuts, [cuts[3], cuts[5] + 1]))  # an empty chunk and (usually) a 1-sample one
    return np.split(x, np.sort(np.clip(cuts, 0, len(x))))


@pytest.fixture(params=[0, 1, 2])
def rng(request) -> np.random.Generator:
    return np.random.default_rng(request.param)


def noisy_signal(rng: np.random.Generator, n: int = 20_000) -> np.ndarray:
    t = np.arange(n) / FS
    return np.sin(2 * np.pi * 7 * t) + 0.5 * np.sin(2 * np.pi * 180 * t) + 0.3 * rng.standard_normal(n)


# --- filters ---------------------------------------------------------------------------
SCIPY_DESIGNS = {
    "butter lowpass": (
        dict(response="lowpass", cutoff=50.0, order=4),
        lambda: sig.butter(4, 50, "lowpass", fs=FS, output="sos"),
    ),
    "cheby1 highpass": (
        dict(response="highpass", cutoff=20.0, order=5, design="cheby1", ripple_db=0.5),
        lambda: sig.cheby1(5, 0.5, 20, "highpass", fs=FS, output="sos"),
    ),
    "ellip bandpass": (
        dict(response="bandpass", cutoff=(100.0, 250.0), order=4, design="ellip", ripple_db=1, attenuation_db=50),
        lambda: sig.ellip(4, 1, 50, [100, 250], "bandpass", fs=FS, output="sos"),
    ),
    "cheby2 bandstop": (
        dict(response="bandstop", cutoff=(150.0, 210.0), order=3, design="cheby2", attenuation_db=40),
        lambda: sig.cheby2(3, 40, [150, 210], "bandstop", fs=FS, output="sos"),
    ),
    "bessel lowpass": (
        dict(response="lowpass", cutoff=30.0, order=6, design="bessel"),
        lambda: sig.bessel(6, 30, fs=FS, output="sos"),
    ),
}


@pytest.mark.parametrize("name", sorted(SCIPY_DESIGNS))
def test_iir_filter_in_chunks_equals_sosfilt_on_whole_signal(name, rng):
    params, reference_design = SCIPY_DESIGNS[name]
    x = noisy_signal(rng)
    f = design_filter(FilterParams(**params), FS)
    y = np.concatenate([f.process(c) for c in random_chunks(x, rng)])
    np.testing.assert_allclose(y, sig.sosfilt(reference_design(), x), rtol=RTOL, atol=0)


def test_notch_filter_equals_scipy_and_removes_its_frequency(rng):
    x = noisy_signal(rng)
    f = design_filter(FilterParams(response="notch", cutoff=180.0, quality=20), FS)
    y = np.concatenate([f.process(c) for c in random_chunks(x, rng)])
    b, a = sig.iirnotch(180.0, 20, fs=FS)
    np.testing.assert_allclose(y, sig.lfilter(b, a, x), rtol=1e-7, atol=1e-12)
    hum = np.abs(np.fft.rfft(y[5000:])[np.argmin(np.abs(np.fft.rfftfreq(15000, 1 / FS) - 180))])
    assert hum < 0.01 * np.abs(np.fft.rfft(x[5000:])).max()


@pytest.mark.parametrize(
    "response,cutoff", [("lowpass", 60.0), ("highpass", 60.0), ("bandpass", (50.0, 90.0)), ("bandstop", (50.0, 90.0))]
)
def test_fir_filter_in_chunks_equals_lfilter_on_whole_signal(response, cutoff, rng):
    x = noisy_signal(rng)
    f = design_filter(FilterParams(response=response, cutoff=cutoff, order=64, design="fir"), FS)
    y = np.concatenate([f.process(c) for c in random_chunks(x, rng)])
    taps = sig.firwin(65, cutoff, pass_zero=response in ("lowpass", "bandstop"), fs=FS)
    np.testing.assert_allclose(y, sig.lfilter(taps, [1.0], x), rtol=RTOL, atol=1e-14)


def test_filter_refuses_a_cutoff_above_nyquist():
    with pytest.raises(Exception, match=r"cutoff.*600 Hz.*Nyquist.*500 Hz"):
        design_filter(FilterParams(response="lowpass", cutoff=600.0), FS)


def test_streaming_filter_reset_starts_from_rest(rng):
    x = noisy_signal(rng, 2000)
    f = StreamingFilter(sos=sig.butter(2, 0.1, output="sos"))
    f.process(x)
    f.reset()
    np.testing.assert_array_equal(f.process(x), sig.sosfilt(sig.butter(2, 0.1, output="sos"), x))


# --- moving average and decimation ---------------------------------------------------------
@pytest.mark.parametrize("n", [1, 7, 250])
def test_moving_average_in_chunks_equals_convolution_on_whole_signal(n, rng):
    x = 5.0 + noisy_signal(rng)  # away from zero, where a relative tolerance means something
    avg = MovingAverage(n)
    parts = [avg.process(c) for c in random_chunks(x, rng)]
    y = np.concatenate([p[0] for p in parts])
    np.testing.assert_allclose(y, np.convolve(x, np.full(n, 1 / n), mode="valid"), rtol=RTOL)
    np.testing.assert_allclose(y, sig.lfilter(np.full(n, 1 / n), [1.0], x)[n - 1 :], rtol=RTOL)
    assert sum(p[1] for p in parts) == n - 1  # the inputs without a full window


@pytest.mark.parametrize("n", [3, 100_000])
def test_moving_average_stays_exact_over_a_long_offset_signal(n, rng):
    x = 1e6 + rng.standard_normal(400_000)  # a large offset: where a drifting running sum would show
    avg = MovingAverage(n)
    y = np.concatenate([avg.process(c)[0] for c in random_chunks(x, rng, pieces=400)])
    c = np.concatenate(([0], np.cumsum(x.astype(np.longdouble))))  # the reference in extended precision
    np.testing.assert_allclose(y, ((c[n:] - c[:-n]) / n).astype(np.float64), rtol=1e-12)


@pytest.mark.parametrize("factor,ftype", [(2, "fir"), (7, "fir"), (50, "fir"), (5, "iir")])
def test_decimation_in_chunks_equals_scipy_decimate(factor, ftype, rng):
    x = noisy_signal(rng)
    dec = Decimator(factor, ftype)
    parts = []
    offset = 0
    for chunk in random_chunks(x, rng):
        y, keep = dec.process(chunk)
        parts.append(y)
        assert np.all((keep + offset) % factor == 0)  # every factor-th input sample, counted over the stream
        offset += len(chunk)
    expected = sig.decimate(x, factor, ftype=ftype, zero_phase=False)
    np.testing.assert_allclose(np.concatenate(parts), expected, rtol=RTOL, atol=1e-14)


# --- statistics ---------------------------------------------------------------------------
def _chunked_stats(stats: WindowStatistics, ts: np.ndarray, v: np.ndarray, rng) -> pl.DataFrame:
    cuts = np.sort(rng.integers(0, len(v) + 1, 30))
    frames = [stats.process(t, c) for t, c in zip(np.split(ts, cuts), np.split(v, cuts), strict=True)]
    return pl.concat([*frames, stats.flush()])


def test_row_window_statistics_in_chunks_equal_numpy(rng):
    v = noisy_signal(rng, 10_050)
    ts = np.arange(len(v), dtype=np.uint64) * 1000 + 5
    got = _chunked_stats(WindowStatistics(rows=100), ts, v, rng)
    whole = v[:10_000].reshape(-1, 100)
    assert got.height == 101
    np.testing.assert_allclose(got["mean"][:100].to_numpy(), whole.mean(axis=1), rtol=RTOL)
    np.testing.assert_allclose(got["std"][:100].to_numpy(), whole.std(axis=1, ddof=1), rtol=RTOL)
    np.testing.assert_array_equal(got["min"][:100].to_numpy(), whole.min(axis=1))
    np.testing.assert_array_equal(got["max"][:100].to_numpy(), whole.max(axis=1))
    np.testing.assert_array_equal(got["count"].to_numpy(), [100] * 100 + [50])
    np.testing.assert_array_equal(got["start_ns"][:100].to_numpy(), ts[:10_000:100])
    assert got["mean"][100] == pytest.approx(v[10_000:].mean(), rel=RTOL)


def test_time_window_statistics_on_irregular_samples_equal_polars_group_by(rng):
    gaps = rng.integers(1, 40_000_000, 5000).astype(np.uint64)  # 1 ns .. 40 ms apart, irregular
    ts = np.uint64(1_700_000_000_123_000_000) + np.cumsum(gaps)
    v = rng.standard_normal(len(ts))
    got = _chunked_stats(WindowStatistics(period_ns=250_000_000), ts, v, rng)
    expected = (
        pl.DataFrame({"t": ts, "v": v})
        .group_by_dynamic(pl.col("t").cast(pl.Int64).alias("w"), every="250000000i")
        .agg(pl.col("v").mean().alias("mean"), pl.col("v").std().alias("std"), pl.col("v").count().alias("n"))
    )
    np.testing.assert_array_equal(got["start_ns"].to_numpy(), expected["w"].to_numpy().astype(np.uint64))
    np.testing.assert_allclose(got["mean"].to_numpy(), expected["mean"].to_numpy(), rtol=RTOL)
    np.testing.assert_allclose(got["std"].to_numpy(), expected["std"].fill_null(np.nan).to_numpy(), rtol=RTOL)
    np.testing.assert_array_equal(got["count"].to_numpy(), expected["n"].to_numpy())


# --- FFT ------------------------------------------------------------------------------------
def test_fft_of_a_sine_finds_its_frequency_and_amplitude():
    fs, n = 1024.0, 1024
    t = np.arange(8 * n) / fs
    x = 1.5 * np.sin(2 * np.pi * 123.0 * t) + 0.25
    fft = SlidingFFT(n, n // 2, fs, window="hann", scaling="magnitude")
    rows, starts = fft.process(np.arange(len(x), dtype=np.uint64), x)
    assert rows.shape == (15, n // 2 + 1)
    np.testing.assert_array_equal(starts, np.arange(15) * (n // 2))
    freqs = np.arange(rows.shape[1]) * fft.frequency_step
    peak = rows[:, 1:].argmax(axis=1) + 1
    assert np.all(freqs[peak] == 123.0)
    np.testing.assert_allclose(rows[:, peak[0]], 1.5, rtol=1e-9)
    np.testing.assert_allclose(rows[:, 0], 0.25, rtol=1e-9)  # DC: the offset


def test_fft_amplitude_between_bins_with_a_flat_top_window():
    fs, n = 1000.0, 2000
    x = 0.8 * np.cos(2 * np.pi * 111.3 * np.arange(n) / fs)
    row = spectra(x[None, :], fs, window="flattop")[0]
    peak = row.argmax()
    assert abs(peak * fs / n - 111.3) <= fs / n
    assert row[peak] == pytest.approx(0.8, rel=2e-3)
    db = spectra(x[None, :], fs, window="flattop", scaling="db")[0]
    assert db[peak] == pytest.approx(20 * np.log10(row[peak]), rel=1e-12)


@pytest.mark.parametrize("nfft", [1000, 1024, 4000])
def test_fft_of_a_trace_cut_or_zero_padded_to_nfft_reads_the_sine_amplitude(nfft):
    fs, m = 1000.0, 2000
    x = 2.0 * np.sin(2 * np.pi * 125.0 * np.arange(m) / fs) + 0.5
    row = spectra(x[None, :], fs, window="hann", nfft=nfft)[0]
    assert len(row) == nfft // 2 + 1
    k = round(125.0 * nfft / fs)  # 125 Hz is a whole number of bins of every nfft here
    assert row.argmax() == k
    assert row[k] == pytest.approx(2.0, rel=1e-6)
    assert row[0] == pytest.approx(0.5, rel=1e-6)


@pytest.mark.parametrize("nfft", [500, 4096])
def test_psd_of_a_cut_or_zero_padded_trace_integrates_to_the_mean_square_of_the_samples_used(nfft, rng):
    fs, m = 1000.0, 2000
    x = rng.standard_normal(m)
    psd = spectra(x[None, :], fs, window="boxcar", scaling="psd", nfft=nfft)[0]
    used = x[: min(nfft, m)]
    assert psd.sum() * fs / nfft == pytest.approx(np.mean(used**2), rel=1e-9)


@pytest.mark.parametrize("window,overlap", [("hann", 0.5), ("blackman", 0.75), ("boxcar", 0.0)])
def test_sliding_psd_in_chunks_equals_scipy_spectrogram(window, overlap, rng):
    x = noisy_signal(rng, 12_345)
    n = 256
    hop = n - round(overlap * n)
    fft = SlidingFFT(n, hop, FS, window=window, scaling="psd")
    rows = [fft.process(np.zeros(len(c), np.uint64), c)[0] for c in random_chunks(x, rng)]
    got = np.concatenate(rows)
    _, _, expected = sig.spectrogram(
        x, FS, window=window, nperseg=n, noverlap=n - hop, detrend=False, scaling="density", mode="psd"
    )
    np.testing.assert_allclose(got, expected.T, rtol=1e-9, atol=1e-15 * expected.max())


def test_sliding_fft_fed_one_sample_at_a_time_equals_the_whole_signal(rng):
    x = noisy_signal(rng, 3000)
    ts = np.arange(len(x), dtype=np.uint64) * 1000
    fft = SlidingFFT(256, 100, FS, scaling="psd")
    parts = [fft.process(ts[i : i + 1], x[i : i + 1]) for i in range(len(x))]
    got, starts = np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
    _, _, expected = sig.spectrogram(
        x, FS, window="hann", nperseg=256, noverlap=156, detrend=False, scaling="density", mode="psd"
    )
    np.testing.assert_allclose(got, expected.T, rtol=1e-9, atol=1e-15 * expected.max())
    np.testing.assert_array_equal(starts, ts[: len(got) * 100 : 100])


def test_psd_integrates_to_the_variance_of_the_signal(rng):
    x = rng.standard_normal(4096) * 3.0
    psd = spectra(x[None, :], 100.0, window="boxcar", scaling="psd")[0]
    assert psd.sum() * 100.0 / 4096 == pytest.approx(np.mean(x**2), rel=1e-9)


# --- trigger -----------------------------------------------------------------------------------
def pulses(n: int, starts: list[int], width: int = 3, height: float = 1.0) -> np.ndarray:
    x = np.zeros(n)
    for s in starts:
        x[s : s + width] = height
    x += np.arange(n) * 1e-6  # distinct values, so a wrong segment cannot look right
    return x


def capture(params: TriggerParams, x: np.ndarray, rng, fs: float = FS):
    trig = Trigger(params, fs)
    ts = np.arange(len(x), dtype=np.uint64) * 1000
    cuts = np.sort(rng.integers(0, len(x), 25))
    out = [trig.process(t, c) for t, c in zip(np.split(ts, cuts), np.split(x, cuts), strict=True)]
    segments = np.concatenate([o[0] for o in out])
    times = np.concatenate([o[1] for o in out]) // 1000
    return segments, times.astype(int)


def expect(x: np.ndarray, at: list[int], pre: int, post: int) -> np.ndarray:
    return np.stack([x[t - pre : t + post] for t in at])


def test_edge_trigger_captures_exactly_the_expected_segments(rng):
    x = pulses(2000, [1, 100, 105, 300, 600, 1995])
    p = TriggerParams(mode="edge", level=0.5, slope="rising", pre=3, post=7)
    segments, times = capture(p, x, rng)
    # 1: no pre-trigger history yet; 105: inside the capture of 100; 1995: its post samples never come
    assert times.tolist() == [100, 300, 600]
    np.testing.assert_array_equal(segments, expect(x, [100, 300, 600], 3, 7))


def test_falling_and_either_edges(rng):
    x = pulses(1000, [100, 400], width=10)
    falling, t_fall = capture(TriggerParams(level=0.5, slope="falling", pre=2, post=4), x, rng)
    assert t_fall.tolist() == [110, 410]
    np.testing.assert_array_equal(falling, expect(x, [110, 410], 2, 4))
    _, t_either = capture(TriggerParams(level=0.5, slope="either", pre=2, post=4), x, rng)
    assert t_either.tolist() == [100, 110, 400, 410]


def test_holdoff_suppresses_triggers_that_come_too_soon(rng):
    x = pulses(3000, [100, 150, 250, 400, 420, 900])
    _, times = capture(TriggerParams(level=0.5, pre=0, post=5, holdoff=0.12), x, rng)  # 120 samples at 1 kHz
    assert times.tolist() == [100, 250, 400, 900]


def test_level_trigger_fires_while_the_condition_lasts_once_per_dead_time(rng):
    x = pulses(1000, [200], width=25)
    segments, times = capture(TriggerParams(mode="level", level=0.5, condition="above", pre=1, post=10), x, rng)
    assert times.tolist() == [200, 210, 220]
    np.testing.assert_array_equal(segments, expect(x, [200, 210, 220], 1, 10))


def test_window_trigger_on_leaving_and_entering_a_band(rng):
    x = np.full(1000, 0.5)
    x[300:310] = 1.5
    x[600:605] = -0.7
    x += np.arange(1000) * 1e-7
    _, leave = capture(TriggerParams(mode="window", low=0.0, high=1.0, when="leave", pre=5, post=5), x, rng)
    assert leave.tolist() == [300, 600]
    _, enter = capture(TriggerParams(mode="window", low=0.0, high=1.0, when="enter", pre=5, post=5), x, rng)
    assert enter.tolist() == [310, 605]


def test_trigger_parameters_are_checked():
    with pytest.raises(ValueError, match="level"):
        TriggerParams(mode="edge")
    with pytest.raises(ValueError, match="low < high"):
        TriggerParams(mode="window", low=2.0, high=1.0)


# --- sampling clock -------------------------------------------------------------------------------
def test_sample_clock_learns_the_rate_and_flags_gaps():
    clock = SampleClock("dev/x")
    ts = np.arange(10, dtype=np.uint64) * 1_000_000
    assert not clock.gaps(ts).any()
    assert clock.sample_rate == pytest.approx(1000.0)
    later = np.array([10, 11, 15, 16], dtype=np.uint64) * 1_000_000
    assert clock.gaps(later).tolist() == [False, False, True, False]
    assert clock.gaps(np.array([30], dtype=np.uint64) * 1_000_000).tolist() == [True]


def test_sample_clock_refuses_irregular_timestamps_with_a_clear_message():
    clock = SampleClock("scope1/level", tolerance=0.05)
    ts = np.array([0, 1000, 2000, 3300, 4000, 5000, 6000, 7000, 8000], dtype=np.uint64)
    with pytest.raises(IrregularTimestamps, match=r"'scope1/level'.*irregular timestamps.*sample_rate") as info:
        clock.gaps(ts)
    assert clock.sample_rate is None
    assert info.value.resume_at == 4  # from the sample after the last irregular interval (3300 -> 4000) on


def test_sample_clock_waits_for_enough_samples_and_changes_nothing_meanwhile():
    clock = SampleClock("pm1/power")
    ts = np.arange(LEARN_SAMPLES, dtype=np.uint64) * 100_000_000
    for k in range(1, LEARN_SAMPLES):
        assert clock.gaps(ts[:k]) is None  # too few to learn from: the caller holds them
        assert clock.sample_rate is None and clock.last_ns is None
    assert not clock.gaps(ts).any()
    assert clock.sample_rate == 10.0


def test_sample_clock_rate_is_the_mean_interval_so_timestamp_jitter_averages_out():
    rng = np.random.default_rng(5)
    n = 5000
    ts = np.round((np.arange(n) + rng.uniform(-0.02, 0.02, n)) * 50_000_000).astype(np.uint64)  # 20 Hz +-2 %
    clock = SampleClock("pm1/power", tolerance=0.05)
    assert not clock.gaps(ts[:LEARN_SAMPLES]).any()
    for t in ts[LEARN_SAMPLES:]:  # one sample at a time, as a polled instrument publishes them
        assert not clock.gaps(t[None]).any()
    assert clock.sample_rate == pytest.approx(20.0, rel=1e-4)


def test_configured_rate_ignores_timestamps():
    clock = SampleClock("dev/x", sample_rate=50.0)
    assert not clock.gaps(np.full(5, 7, dtype=np.uint64)).any()
    assert clock.sample_rate == 50.0


def test_nan_values_split_the_signal_and_are_dropped():
    ts = np.arange(8, dtype=np.uint64)
    v = np.array([0.0, 1, np.nan, np.nan, 4, 5, 6, np.nan])
    breaks = np.zeros(8, bool)
    breaks[5] = True
    segments, n_nan, ends_broken = split_segments(ts, v, breaks, broken_before=False)
    assert [s.values.tolist() for s in segments] == [[0, 1], [4], [5, 6]]
    assert [s.restart for s in segments] == [False, True, True]
    assert n_nan == 3 and ends_broken
    segments, _, _ = split_segments(ts[:2], v[:2], np.zeros(2, bool), broken_before=True)
    assert segments[0].restart
