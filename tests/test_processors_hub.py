"""Processors as actors on the hub: declared outputs, results, units, bad input, configuration."""

from __future__ import annotations

import threading

import numpy as np
import pyarrow as pa
import pytest
import scipy.signal as sig

from arrowdaq.actors import Actor, ActorStatus, Command, RestartPolicy, Role
from arrowdaq.data import (
    scalar_batch,
    scalar_schema,
    traces_of,
    unit_of,
    vector_batch,
    vector_schema,
)
from arrowdaq.errors import CommandError, ProcessorError
from arrowdaq.processors import PROCESSORS, FFTProcessor, SQLProcessor, build, spawn

from .waiting import wait_until_async

T0 = 1_700_000_000_000_000_000
FS = 1000.0


def timestamps(n: int, start: int = 0, fs: float = FS) -> np.ndarray:
    return np.uint64(T0) + np.round((start + np.arange(n)) * 1e9 / fs).astype(np.uint64)


async def publish_in_batches(hub, stream: str, x: np.ndarray, ts: np.ndarray, rng, unit: str = "V") -> None:
    cuts = np.sort(rng.integers(1, len(x), 30))
    for tc, xc in zip(np.split(ts, cuts), np.split(x, cuts), strict=True):
        if len(xc):
            await hub.publish(stream, scalar_batch(xc, channel="ai0", unit=unit, timestamps_ns=tc))


async def settle(hub, *actors: str) -> None:
    """Wait until the actors have handled everything queued for them."""
    for name in actors:
        ref = hub.actor(name)
        await wait_until_async(
            lambda ref=ref: not ref.queued and not any(len(i) for i in ref.inboxes),
            message=f"{name} to handle its inputs",
        )
        await hub.command(name, "status")  # handled after the batch in hand


def collect(sub) -> dict[str, list[pa.RecordBatch]]:
    out: dict[str, list[pa.RecordBatch]] = {}
    while (item := sub.pop()) is not None:
        out.setdefault(item[0], []).append(item[1])
    return out


def column(batches: list[pa.RecordBatch], name: str = "value") -> np.ndarray:
    return np.concatenate([b.column(name).to_numpy() for b in batches])


@pytest.fixture
def signal_stream(hub):
    hub.declare("daq/ai0", scalar_schema("V"), producer="daq")
    return "daq/ai0"


# --- results through the hub ----------------------------------------------------------------
async def test_filter_through_the_hub_equals_sosfilt_on_the_whole_signal(hub, signal_stream):
    rng = np.random.default_rng(7)
    x = np.sin(2 * np.pi * 5 * np.arange(20_000) / FS) + 0.3 * rng.standard_normal(20_000)
    spawn(hub, "lp", "filter", signal_stream, response="lowpass", cutoff=40.0, order=4)
    sub = hub.subscribe("lp/*")
    await publish_in_batches(hub, signal_stream, x, timestamps(len(x)), rng)
    await settle(hub, "lp")
    out = collect(sub)["lp/filtered"]
    np.testing.assert_allclose(column(out), sig.sosfilt(sig.butter(4, 40.0, fs=FS, output="sos"), x), rtol=1e-9)
    np.testing.assert_array_equal(column(out, "timestamp_ns"), timestamps(len(x)))
    assert unit_of(out[0].schema) == "V"
    assert hub.status()["actors"]["lp"] == {**hub.status()["actors"]["lp"], "status": "Running", "error": None}


async def test_outputs_are_declared_before_data_with_units_following_the_input(hub, signal_stream):
    for id, kind, params in [
        ("mag", "fft", {"window_size": 64}),
        ("db", "fft", {"window_size": 64, "output": "db"}),
        ("psd", "fft", {"window_size": 64, "output": "psd"}),
        ("stats", "statistics", {"rows": 10}),
        ("trig", "trigger", {"level": 0.0}),
        ("dec", "decimate", {"factor": 4}),
    ]:
        build(kind, id, hub, [signal_stream], params)
    streams = hub.streams
    assert unit_of(streams["mag/spectrum"].schema, "values") == "V"
    assert unit_of(streams["db/spectrum"].schema, "values") == "dB"
    assert unit_of(streams["psd/spectrum"].schema, "values") == "V^2/Hz"
    assert unit_of(streams["psd/spectrum"].schema, "x0") == "Hz"
    assert unit_of(streams["stats/std"].schema) == "V" and unit_of(streams["stats/count"].schema) is None
    assert unit_of(streams["trig/segments"].schema, "dx") == "s"
    assert {"trig/events", "dec/decimated"} <= set(streams)
    assert all(streams[s].producer == s.split("/")[0] for s in ["mag/spectrum", "stats/mean", "dec/decimated"])


class TraceSource(Actor):
    """A synthetic scope: photodiode traces with a known modulation, published on command."""

    role = Role.SOURCE

    def __init__(self, hub, modulation_hz: float, dx: float = 1e-4, points: int = 2000) -> None:
        self.hub, self.f, self.dx, self.points = hub, modulation_hz, dx, points
        self.rng = np.random.default_rng(3)

    async def on_start(self) -> None:
        self.hub.declare(f"{self.name}/trace", vector_schema("V", "s"), producer=self.name)

    async def handle(self, message):
        assert message.action == "acquire"
        t = np.arange(self.points) * self.dx
        n = message.args["traces"]
        phases = self.rng.uniform(0, 2 * np.pi, (n, 1))
        traces = 1.2 + 0.4 * np.sin(2 * np.pi * self.f * t + phases) + 0.02 * self.rng.standard_normal((n, self.points))
        await self.hub.publish(
            f"{self.name}/trace", vector_batch(traces, channel="CH1", unit="V", x0=0.0, dx=self.dx, x_unit="s")
        )
        return n


async def test_fft_of_scope_traces_finds_the_modulation_frequency_end_to_end(hub):
    scope = hub.spawn("scope1", lambda: TraceSource(hub, modulation_hz=137.0), role=Role.SOURCE)
    await scope.wait_status(ActorStatus.RUNNING)
    hub.spawn(
        "scope1_fft",
        lambda: FFTProcessor(hub, "scope1/trace", window="hann", detrend=True),
        inputs="scope1/trace",
        delivery="lossless",
    )
    await hub.actor("scope1_fft").wait_status(ActorStatus.RUNNING)
    sub = hub.subscribe("scope1_fft/spectrum")
    for _ in range(3):
        await hub.command("scope1", "acquire", traces=4)
    await settle(hub, "scope1_fft")
    batches = collect(sub)["scope1_fft/spectrum"]
    spectra = np.concatenate([traces_of(b) for b in batches])
    assert spectra.shape == (12, 1001)
    df = batches[0].column("dx")[0].as_py()
    assert df == pytest.approx(1 / (2000 * 1e-4))  # 5 Hz bins
    peaks = spectra.argmax(axis=1) * df
    assert np.all(np.abs(peaks - 137.0) <= df / 2)
    assert np.all(np.abs(spectra.max(axis=1) - 0.4) < 0.1)  # the modulation amplitude, V (between bins)


async def test_sliding_fft_of_a_scalar_stream_learns_the_rate_from_timestamps(hub, signal_stream):
    rng = np.random.default_rng(1)
    x = 0.7 * np.sin(2 * np.pi * 125.0 * np.arange(8192) / FS)
    spawn(hub, "f", "fft", signal_stream, window_size=512, overlap=0.5)
    sub = hub.subscribe("f/spectrum")
    await publish_in_batches(hub, signal_stream, x, timestamps(len(x)), rng)
    await settle(hub, "f")
    batches = collect(sub)["f/spectrum"]
    rows = np.concatenate([traces_of(b) for b in batches])
    assert rows.shape == (31, 257)
    df = batches[0].column("dx")[0].as_py()
    assert df == pytest.approx(FS / 512, rel=1e-6)
    assert np.all(rows.argmax(axis=1) * df == pytest.approx(125.0, abs=df / 2))
    np.testing.assert_array_equal(column(batches, "timestamp_ns"), timestamps(8192)[: 31 * 256 : 256])


async def test_trigger_through_the_hub_publishes_segments_and_events(hub, signal_stream):
    rng = np.random.default_rng(2)
    x = np.zeros(3000)
    for s in (500, 1500, 2500):
        x[s : s + 20] = 2.0
    spawn(hub, "trig", "trigger", signal_stream, level=1.0, pre=10, post=30, sample_rate=FS)
    sub = hub.subscribe("trig/*")
    ts = timestamps(len(x))
    await publish_in_batches(hub, signal_stream, x, ts, rng)
    await settle(hub, "trig")
    out = collect(sub)
    segments = np.concatenate([traces_of(b) for b in out["trig/segments"]])
    np.testing.assert_array_equal(segments, np.stack([x[s - 10 : s + 30] for s in (500, 1500, 2500)]))
    np.testing.assert_array_equal(column(out["trig/events"], "timestamp_ns"), ts[[500, 1500, 2500]])
    np.testing.assert_array_equal(column(out["trig/events"]), [2.0, 2.0, 2.0])
    first = out["trig/segments"][0]
    assert first.column("x0")[0].as_py() == pytest.approx(-0.010)
    assert first.column("dx")[0].as_py() == pytest.approx(0.001)


async def test_statistics_publish_the_last_window_when_stopping(hub, signal_stream):
    x = np.arange(25, dtype=float)
    spawn(hub, "st", "statistics", signal_stream, rows=10, stats=["mean", "count"])
    sub = hub.subscribe("st/*")
    await hub.publish(signal_stream, scalar_batch(x, channel="ai0", unit="V", timestamps_ns=timestamps(25)))
    await hub.stop()
    out = collect(sub)
    assert column(out["st/mean"]).tolist() == [4.5, 14.5, 22.0]
    assert column(out["st/count"]).tolist() == [10, 10, 5]
    assert set(out) == {"st/mean", "st/count"}


# --- SQL --------------------------------------------------------------------------------------------
async def test_sql_processor_transforms_each_batch(hub, signal_stream):
    spawn(
        hub,
        "mv",
        "sql",
        signal_stream,
        query="SELECT timestamp_ns, channel, value * 1000 AS value, unit FROM batch WHERE value > 0",
    )
    spawn(hub, "agg", "sql", signal_stream, query="SELECT count(*) AS n, max(value) AS peak FROM batch")
    sub = hub.subscribe(["mv/*", "agg/*"])
    x = np.array([-1.0, 0.5, 2.0, -3.0])
    await hub.publish(signal_stream, scalar_batch(x, channel="ai0", unit="V", timestamps_ns=timestamps(4)))
    await settle(hub, "mv", "agg")
    out = collect(sub)
    (mv,) = out["mv/result"]
    assert mv.column("value").to_pylist() == [500.0, 2000.0]
    assert mv.column("channel").to_pylist() == ["ai0", "ai0"]
    assert hub.streams["mv/result"].kind == "scalar" and unit_of(hub.streams["mv/result"].schema) == "V"
    (agg,) = out["agg/result"]
    assert agg.to_pylist() == [{"n": 4, "peak": 2.0}]
    assert hub.streams["agg/result"].kind is None


@pytest.mark.parametrize(
    "query,problem",
    [
        ("SELECT nope FROM batch", "nope"),
        ("SELEC value FROM batch", "SELEC"),
        ("SELECT value FROM readings", "readings"),
        ("SELECT value + 'a' FROM batch", "arithmetic"),
    ],
)
def test_sql_processor_rejects_a_bad_query_at_build_with_a_readable_message(hub, signal_stream, query, problem):
    with pytest.raises(ProcessorError) as info:
        build("sql", "q", hub, [signal_stream], {"query": query})
    message = str(info.value)
    assert "bad SQL query" in message and problem in message and "'q'" in message
    assert "timestamp_ns, channel, value, unit" in message  # tells the user what the table holds
    assert "\n" not in message
    assert "q/result" not in hub.streams


async def test_sql_processor_with_a_bad_query_fails_at_start_and_says_why(hub, signal_stream):
    ref = hub.spawn("q", lambda: SQLProcessor(hub, signal_stream, query="SELECT nope FROM batch"), inputs=signal_stream)
    await ref.wait_status(ActorStatus.FAILED)
    status = hub.status()["actors"]["q"]
    assert status["error"].startswith("ProcessorConfigError") and "bad SQL query" in status["error"]
    assert "nope" in status["error"] and status["restarts"] == 0  # a restart could not help
    await hub.publish(signal_stream, scalar_batch([1.0], channel="ai0", unit="V"))  # the hub goes on


# --- bad input --------------------------------------------------------------------------------------
async def test_wrong_input_kind_is_refused_naming_stream_and_expected_kind(hub):
    hub.declare("scope1/trace", vector_schema("V", "s"), producer="scope1")
    with pytest.raises(ProcessorError, match=r"'scope1/trace' is a vector stream, expected scalar"):
        build("filter", "lp", hub, "scope1/trace", {"response": "lowpass", "cutoff": 10.0})
    ref = hub.spawn(
        "lp", lambda: PROCESSORS["filter"](hub, "scope1/trace", response="lowpass", cutoff=10.0), inputs="scope1/trace"
    )
    await ref.wait_status(ActorStatus.FAILED)
    assert "expected scalar" in hub.status()["actors"]["lp"]["error"]


async def test_a_cutoff_above_the_learnt_nyquist_frequency_fails_the_processor(hub, signal_stream):
    ref = spawn(hub, "lp", "filter", signal_stream, response="lowpass", cutoff=800.0)  # fine until the rate is known
    await hub.publish(signal_stream, scalar_batch(np.ones(10), channel="ai0", unit="V", timestamps_ns=timestamps(10)))
    await ref.wait_status(ActorStatus.FAILED)
    status = hub.status()["actors"]["lp"]
    assert "800 Hz is not below the Nyquist frequency 500 Hz" in status["error"] and status["restarts"] == 0


async def test_a_processor_waits_for_an_input_declared_late(hub):
    patient = RestartPolicy(initial_backoff=0.005, max_backoff=0.02, max_failures=10_000, window=60.0)
    ref = hub.spawn(
        "avg", build("moving_average", "avg", hub, "late/ai0", {"samples": 2}), inputs="late/ai0", restart=patient
    )
    await wait_until_async(lambda: ref.restarts >= 1, message="a restart of avg")
    assert "input stream 'late/ai0' is not declared" in hub.status()["actors"]["avg"]["error"]
    hub.declare("late/ai0", scalar_schema("mW"), producer="late")
    await ref.wait_status(ActorStatus.RUNNING)
    assert unit_of(hub.streams["avg/average"].schema) == "mW"


async def test_nan_and_gaps_are_reported_and_the_filter_restarts_after_them(hub, signal_stream):
    rng = np.random.default_rng(4)
    x = rng.standard_normal(3000)
    ts = timestamps(3000)
    ts[2000:] += np.uint64(500_000_000)  # half a second of lost samples before sample 2000
    x[1000] = np.nan
    spawn(hub, "lp", "filter", signal_stream, response="lowpass", cutoff=40.0)
    sub = hub.subscribe("lp/*")
    await publish_in_batches(hub, signal_stream, x, ts, rng)
    await settle(hub, "lp")
    status = hub.status()["actors"]["lp"]
    assert status["status"] == "Running" and status["restarts"] == 0
    report = await hub.command("lp", "status")
    assert report["problems"] == 2
    events = [e.error for e in hub.recent_events if getattr(e, "actor", None) == "lp" and e.error]
    assert any("1 NaN value(s) in 'daq/ai0'" in e for e in events)
    assert any("gap(s) in the timestamps of 'daq/ai0'" in e for e in events)
    out = collect(sub)["lp/filtered"]
    y, t = column(out), column(out, "timestamp_ns")
    sos = sig.butter(4, 40.0, fs=FS, output="sos")
    assert len(y) == 2999 and not np.isnan(y).any()
    np.testing.assert_allclose(y[:1000], sig.sosfilt(sos, x[:1000]), rtol=1e-9)
    np.testing.assert_allclose(y[1000:1999], sig.sosfilt(sos, x[1001:2000]), rtol=1e-9)  # fresh after the NaN
    np.testing.assert_allclose(y[1999:], sig.sosfilt(sos, x[2000:]), rtol=1e-9)  # fresh after the gap
    np.testing.assert_array_equal(t, np.delete(ts, 1000))


async def test_irregular_timestamps_are_an_error_in_the_status_not_a_crash(hub, signal_stream):
    ts = (T0 + np.cumsum(np.random.default_rng(0).uniform(0.5e6, 1.5e6, 500))).astype(np.uint64)
    spawn(hub, "f", "fft", signal_stream, window_size=64)
    spawn(hub, "f_fixed", "fft", signal_stream, window_size=64, sample_rate=FS)
    sub = hub.subscribe("f_fixed/spectrum")
    await hub.publish(signal_stream, scalar_batch(np.ones(500), channel="ai0", unit="V", timestamps_ns=ts))
    await settle(hub, "f", "f_fixed")
    status = hub.status()["actors"]["f"]
    assert status["status"] == "Running"
    assert "irregular timestamps" in status["error"] and "configure sample_rate" in status["error"]
    assert sum(b.num_rows for b in collect(sub)["f_fixed/spectrum"]) == 14  # the configured rate works


async def test_a_batch_from_another_stream_is_ignored_and_reported(hub, signal_stream):
    hub.declare("daq/ai1", scalar_schema("V"), producer="daq")
    hub.spawn("lp", build("filter", "lp", hub, signal_stream, {"response": "lowpass", "cutoff": 10.0}), inputs="daq/*")
    await hub.publish("daq/ai1", scalar_batch([1.0, 2.0], channel="ai1", unit="V", timestamps_ns=timestamps(2)))
    await settle(hub, "lp")
    assert "reads only 'daq/ai0'" in hub.status()["actors"]["lp"]["error"]
    assert (await hub.command("lp", "status"))["rows_in"] == 0


# --- configuration ------------------------------------------------------------------------------------
def test_every_kind_is_registered():
    assert set(PROCESSORS) == {"fft", "filter", "moving_average", "decimate", "statistics", "trigger", "sql"}


@pytest.mark.parametrize(
    "kind,params,problem",
    [
        ("fft", {"window_size": 64, "overlap": 1.5}, "parameter 'overlap': Input should be less than 1"),
        ("fft", {"window_size": 64, "window": "hanning-ish"}, "parameter 'window'"),
        ("fft", {"windowsize": 64}, "parameter 'windowsize': unknown parameter (got 64)"),
        ("filter", {"response": "lowpass", "cutoff": (1.0, 2.0)}, "lowpass needs one frequency"),
        ("filter", {"response": "bandpass", "cutoff": 3.0}, "bandpass needs [low, high]"),
        ("filter", {"response": "lowpass", "cutoff": 900.0, "sample_rate": 1000.0}, "not below the Nyquist"),
        ("filter", {"response": "sideways", "cutoff": 3.0}, "parameter 'response'"),
        ("statistics", {"period": 1.0, "rows": 10}, "exactly one of period"),
        (
            "filter",
            {"response": "lowpass", "cutoff": "high"},
            "parameter 'cutoff': Input should be a valid number, unable to parse string as a number or Input should be a valid tuple (got 'high')",
        ),
        ("moving_average", {}, "parameter 'samples': required"),
        ("trigger", {"mode": "window", "low": 1.0}, "low < high"),
    ],
)
def test_bad_parameters_are_named_with_what_is_allowed(hub, signal_stream, kind, params, problem):
    with pytest.raises(ProcessorError) as info:
        build(kind, "p1", hub, [signal_stream], params)
    assert problem in str(info.value) and "processor 'p1'" in str(info.value)


def test_unknown_kind_and_several_inputs_are_refused(hub, signal_stream):
    with pytest.raises(ProcessorError, match=r"unknown processor kind 'fourier' \(kinds: decimate, fft"):
        build("fourier", "p", hub, [signal_stream], {})
    with pytest.raises(ProcessorError, match="exactly one stream"):
        build("fft", "p", hub, [signal_stream, "daq/ai1"], {"window_size": 8})


async def test_processor_status_command_and_unknown_commands(hub, signal_stream):
    spawn(hub, "avg", "moving_average", signal_stream, samples=4)
    batch = scalar_batch(np.arange(10.0), channel="ai0", unit="V", timestamps_ns=timestamps(10))
    await hub.publish(signal_stream, batch)
    await settle(hub, "avg")
    report = await hub.command("avg", "status")
    assert report["rows_in"] == 10 and report["rows_out"] == 7 and report["outputs"] == {"average": "avg/average"}
    with pytest.raises(CommandError, match="unknown command 'explode'"):
        await hub.command("avg", Command("explode"))
    assert hub.actor("avg").status is ActorStatus.RUNNING


async def test_a_large_batch_goes_through_the_worker_thread_with_the_same_result(hub, signal_stream):
    rng = np.random.default_rng(9)
    x = rng.standard_normal(50_000)
    x[30_000] = np.nan
    ts = timestamps(len(x))
    spawn(hub, "lp", "filter", signal_stream, response="highpass", cutoff=10.0, order=2)
    sub = hub.subscribe("lp/*")
    for a, b in [(0, 5000), (5000, 45_000), (45_000, 50_000)]:  # the middle one is 640 kB
        await hub.publish(signal_stream, scalar_batch(x[a:b], channel="ai0", unit="V", timestamps_ns=ts[a:b]))
    await settle(hub, "lp")
    y = column(collect(sub)["lp/filtered"])
    sos = sig.butter(2, 10.0, "highpass", fs=FS, output="sos")
    np.testing.assert_allclose(
        y, np.concatenate((sig.sosfilt(sos, x[:30_000]), sig.sosfilt(sos, x[30_001:]))), rtol=1e-9
    )
    assert "1 NaN value(s)" in hub.status()["actors"]["lp"]["error"]


async def test_fft_of_traces_of_different_lengths_and_an_explicit_axis(hub):
    schema = vector_schema("V", "s", axis="explicit")
    hub.declare("scope2/trace", schema, producer="scope2")
    with pytest.raises(ProcessorError, match="explicit x axis; configure sample_rate"):
        build("fft", "f", hub, "scope2/trace", {})
    spawn(hub, "f", "fft", "scope2/trace", sample_rate=1000.0)
    sub = hub.subscribe("f/spectrum")
    short, long = (np.cos(2 * np.pi * 100 * np.arange(n) / 1000.0) for n in (200, 500))
    values = pa.array([short.tolist(), long.tolist(), short.tolist()], pa.list_(pa.float64()))
    xs = pa.array([np.arange(len(v)) / 1000.0 for v in (short, long, short)], pa.list_(pa.float64()))
    batch = pa.RecordBatch.from_arrays(
        [
            pa.array([1, 2, 3], pa.uint64()),
            pa.array(["CH1"] * 3).dictionary_encode().cast(schema.field(1).type),
            values,
            xs,
        ],
        schema=schema,
    )
    await hub.publish("scope2/trace", batch)
    await settle(hub, "f")
    out = collect(sub)["f/spectrum"]
    assert sorted(b.num_rows for b in out) == [1, 2]  # one output batch per trace length
    for b in out:
        rows, df = traces_of(b), b.column("dx").to_numpy()
        assert np.all(rows.argmax(axis=1) * df == 100.0)
        np.testing.assert_allclose(rows.max(axis=1), 1.0, rtol=1e-9)
    assert sorted(column(out, "timestamp_ns").tolist()) == [1, 2, 3]


@pytest.mark.parametrize("window_size", [1024, 4000])
async def test_fft_of_traces_with_window_size_shorter_or_longer_than_the_trace(hub, window_size):
    fs, m = 1000.0, 2000
    x = 2.0 * np.sin(2 * np.pi * 125.0 * np.arange(m) / fs)
    traces = vector_batch(
        np.stack([x, -x]), channel="CH1", unit="V", x0=0.0, dx=1 / fs, x_unit="s", timestamps_ns=[1, 2]
    )
    hub.declare("scope1/trace", traces.schema, producer="scope1")
    spawn(hub, "f", "fft", "scope1/trace", window_size=window_size)
    sub = hub.subscribe("f/spectrum")
    await hub.publish("scope1/trace", traces)
    await settle(hub, "f")
    (batch,) = collect(sub)["f/spectrum"]
    rows, df = traces_of(batch), batch.column("dx").to_numpy()
    assert rows.shape == (2, window_size // 2 + 1)
    np.testing.assert_allclose(df, fs / window_size, rtol=1e-12)
    np.testing.assert_array_equal(rows.argmax(axis=1) * df, [125.0, 125.0])
    np.testing.assert_allclose(rows.max(axis=1), 2.0, rtol=1e-6)  # the sine's amplitude, in V


async def test_a_problem_in_every_batch_is_reported_once_per_interval_and_counted(hub, signal_stream, monkeypatch):
    monkeypatch.setattr(FFTProcessor, "report_every", 3600.0)
    spawn(hub, "f", "fft", signal_stream, window_size=8, sample_rate=FS)
    for k in range(5):
        x = np.ones(10)
        x[3] = np.nan
        await hub.publish(signal_stream, scalar_batch(x, channel="ai0", unit="V", timestamps_ns=timestamps(10, 10 * k)))
    await settle(hub, "f")
    reports = [e for e in hub.recent_events if getattr(e, "actor", None) == "f" and e.error]
    assert len(reports) == 1 and "1 NaN value(s)" in reports[0].error
    status = await hub.command("f", "status")
    assert status["problems"] == 5 and "NaN" in status["last_problem"]


async def test_fft_of_the_simulated_photodiode_trace_finds_the_chopper_frequency(hub):
    from arrowdaq.sim.table import OpticalTable

    table = OpticalTable(seed=5)
    table.emission = table.shutter_open = True
    hub.declare("scope1/trace", vector_schema("V", "s"), producer="scope1")
    spawn(hub, "scope1_fft", "fft", "scope1/trace", detrend=True)
    sub = hub.subscribe("scope1_fft/spectrum")
    dx = 1e-5
    traces = np.stack([table.photodiode_trace(10_000, dx) for _ in range(3)])
    await hub.publish("scope1/trace", vector_batch(traces, channel="CH1", unit="V", x0=0.0, dx=dx, x_unit="s"))
    await settle(hub, "scope1_fft")
    (batch,) = collect(sub)["scope1_fft/spectrum"]
    spectra, df = traces_of(batch), batch.column("dx")[0].as_py()
    chopper = table.settings.chopper_hz
    assert np.all(np.abs(spectra.argmax(axis=1) * df - chopper) <= df / 2)
    t = np.arange(traces.shape[1]) * dx  # the modulation's amplitude by a least-squares sine fit, for reference
    design = np.stack([np.sin(2 * np.pi * chopper * t), np.cos(2 * np.pi * chopper * t), np.ones_like(t)], axis=1)
    coefficients = np.linalg.lstsq(design, traces.T, rcond=None)[0]
    np.testing.assert_allclose(spectra.max(axis=1), np.hypot(coefficients[0], coefficients[1]), rtol=0.01)


async def test_a_new_sample_rate_is_learnt_and_the_filter_redesigned(hub, signal_stream):
    rng = np.random.default_rng(11)
    x = rng.standard_normal(4000)
    spawn(hub, "lp", "filter", signal_stream, response="lowpass", cutoff=100.0)
    sub = hub.subscribe("lp/*")
    await publish_in_batches(hub, signal_stream, x[:2000], timestamps(2000), rng)  # 1 kHz
    await publish_in_batches(hub, signal_stream, x[2000:], timestamps(2000, start=4000, fs=2 * FS), rng)  # 2 kHz
    await settle(hub, "lp")
    y = column(collect(sub)["lp/filtered"])
    assert hub.actor("lp").status is ActorStatus.RUNNING
    assert "changed from 1000 Hz to 2000 Hz" in (await hub.command("lp", "status"))["last_problem"]
    np.testing.assert_allclose(y[:2000], sig.sosfilt(sig.butter(4, 100.0, fs=FS, output="sos"), x[:2000]), rtol=1e-9)
    np.testing.assert_allclose(
        y[2000:], sig.sosfilt(sig.butter(4, 100.0, fs=2 * FS, output="sos"), x[2000:]), rtol=1e-9
    )


# --- a polled instrument: one sample per batch, no configured rate ------------------------------------------
async def publish_one_by_one(hub, stream: str, x: np.ndarray, ts: np.ndarray) -> None:
    for i in range(len(x)):
        await hub.publish(stream, scalar_batch(x[i : i + 1], channel="power", unit="W", timestamps_ns=ts[i : i + 1]))


@pytest.fixture
def power_stream(hub):
    hub.declare("pm1/power", scalar_schema("W"), producer="pm1")
    return "pm1/power"


async def test_one_sample_per_batch_learns_the_rate_and_loses_no_sample(hub, power_stream):
    x = 1e-3 * (1.0 + np.sin(2 * np.pi * 0.5 * np.arange(200) / 10.0))
    ts = timestamps(len(x), fs=10.0)
    spawn(hub, "lp", "filter", power_stream, response="lowpass", cutoff=1.0, order=2)
    spawn(hub, "avg", "moving_average", power_stream, samples=3)
    spawn(hub, "f", "fft", power_stream, window_size=20, overlap=0.0)
    sub = hub.subscribe(["lp/*", "avg/*", "f/*"])
    await publish_one_by_one(hub, power_stream, x, ts)
    await settle(hub, "lp", "avg", "f")
    out = collect(sub)
    np.testing.assert_allclose(
        column(out["lp/filtered"]), sig.sosfilt(sig.butter(2, 1.0, fs=10.0, output="sos"), x), rtol=1e-9
    )
    np.testing.assert_array_equal(column(out["lp/filtered"], "timestamp_ns"), ts)
    np.testing.assert_allclose(column(out["avg/average"]), np.convolve(x, np.full(3, 1 / 3), "valid"), rtol=1e-9)
    assert len(out["f/spectrum"]) == 10 and out["f/spectrum"][0].column("dx")[0].as_py() == pytest.approx(0.5)
    for name in ("lp", "avg", "f"):
        report = await hub.command(name, "status")
        assert report["problems"] == 0 and report["rows_in"] == 200, report


@pytest.mark.parametrize("fs", [10.0, 20.0])
async def test_polled_timestamps_jittering_by_2_percent_are_accepted(hub, power_stream, fs):
    rng = np.random.default_rng(int(fs))
    n = 400
    ts = (np.uint64(T0) + np.round((np.arange(n) + rng.uniform(-0.02, 0.02, n)) * 1e9 / fs)).astype(np.uint64)
    x = rng.standard_normal(n)
    spawn(hub, "lp", "filter", power_stream, response="lowpass", cutoff=fs / 10)
    sub = hub.subscribe("lp/*")
    await publish_one_by_one(hub, power_stream, x, ts)
    await settle(hub, "lp")
    out = collect(sub)["lp/filtered"]
    np.testing.assert_array_equal(column(out, "timestamp_ns"), ts)  # every sample, none dropped
    report = await hub.command("lp", "status")
    assert report["problems"] == 0 and report["rows_out"] == n, report["last_problem"]


async def test_a_polled_instrument_whose_rate_changes_is_relearnt_without_losing_samples(hub, power_stream):
    rng = np.random.default_rng(12)
    x = rng.standard_normal(120)
    ts = np.concatenate((timestamps(60, fs=10.0), timestamps(60, start=120, fs=20.0)))  # 10 Hz, then 20 Hz
    spawn(hub, "lp", "filter", power_stream, response="lowpass", cutoff=2.0)
    sub = hub.subscribe("lp/*")
    await publish_one_by_one(hub, power_stream, x, ts)
    await settle(hub, "lp")
    y = column(collect(sub)["lp/filtered"])
    assert "changed from 10 Hz to 20 Hz" in (await hub.command("lp", "status"))["last_problem"]
    assert len(y) == 120
    # sample 60 came one 10 Hz interval after sample 59: it still belongs to the 10 Hz signal
    np.testing.assert_allclose(y[:61], sig.sosfilt(sig.butter(4, 2.0, fs=10.0, output="sos"), x[:61]), rtol=1e-9)
    np.testing.assert_allclose(y[61:], sig.sosfilt(sig.butter(4, 2.0, fs=20.0, output="sos"), x[61:]), rtol=1e-9)


async def test_one_late_reply_of_a_polled_instrument_is_dropped_and_reported(hub, power_stream):
    x = np.arange(100.0)
    ts = timestamps(100, fs=10.0)
    ts[50] += np.uint64(15_000_000)  # 15 % of an interval late: beyond the 5 % tolerance
    spawn(hub, "avg", "moving_average", power_stream, samples=2)
    sub = hub.subscribe("avg/*")
    await publish_one_by_one(hub, power_stream, x, ts)
    await settle(hub, "avg")
    out = collect(sub)["avg/average"]
    # the late sample is dropped; the average restarts after it: no window spans the break
    np.testing.assert_array_equal(column(out, "timestamp_ns"), np.concatenate((ts[1:50], ts[52:])))
    report = await hub.command("avg", "status")
    assert report["rows_in"] == 100 and report["problems"] == 2
    events = [e.error for e in hub.recent_events if getattr(e, "actor", None) == "avg" and e.error]
    assert any("irregular timestamps" in e and "1 sample(s) dropped" in e for e in events)
    assert any("the signal restarts" in e for e in events)


@pytest.mark.parametrize(
    "kind,params,offloaded",
    [
        ("filter", {"response": "lowpass", "cutoff": 40.0, "order": 4}, False),
        ("filter", {"response": "lowpass", "cutoff": 40.0, "order": 1000, "design": "fir"}, True),
        ("moving_average", {"samples": 1_000_000}, False),  # O(1) per sample, whatever the window
        ("decimate", {"factor": 1000}, False),  # the FIR evaluated at the kept samples only: ~20 taps per input
        ("decimate", {"factor": 100_000}, True),  # 2,000,001 taps: their input history is copied once per batch
        ("fft", {"window_size": 65536, "overlap": 0.99}, True),
        ("fft", {"window_size": 256}, False),
        ("trigger", {"level": 0.5, "pre": 5_000_000}, True),
    ],
)
async def test_where_a_batch_is_processed_follows_its_work_not_its_bytes(
    hub, signal_stream, monkeypatch, kind, params, offloaded
):
    cls = PROCESSORS[kind]
    threads = []
    transform = cls.transform

    def recording(self, batch):
        threads.append(threading.get_ident())
        return transform(self, batch)

    monkeypatch.setattr(cls, "transform", recording)
    spawn(hub, "p", kind, signal_stream, sample_rate=FS, **params)
    x = np.sin(np.arange(4000) / 10.0)
    for k in range(3):  # 4,000-row batches: 96 kB, under what bytes alone would offload
        batch = scalar_batch(x, channel="ai0", unit="V", timestamps_ns=timestamps(4000, 4000 * k))
        await hub.publish(signal_stream, batch)
    await settle(hub, "p")
    assert len(threads) == 3
    assert all((t != threading.get_ident()) == offloaded for t in threads)
