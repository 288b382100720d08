"""Run files as a scientist sees them in silx and nexusformat: units, a time axis in seconds, a good first plot."""

from __future__ import annotations

from datetime import datetime
from time import time_ns

import h5py
import numpy as np
import pyarrow as pa
import pytest

import arrowdaq
from arrowdaq.data import scalar_batch, scalar_schema, vector_batch
from arrowdaq.data.validate import decode
from arrowdaq.storage import layout as L

from .processes import record_demo
from .test_storage_roundtrip import expected, record


@pytest.fixture(scope="module")
def demo_file(tmp_path_factory) -> str:
    """A run file of the shipped demo (every simulated instrument and processor), recorded once."""
    return str(record_demo(tmp_path_factory.mktemp("demo"))[0])


def nxdata_groups(f: h5py.File) -> dict[str, h5py.Group]:
    return {k: g for k, g in f["entry"].items() if isinstance(g, h5py.Group) and g.attrs.get("NX_class") == "NXdata"}


def test_silx_opens_the_demo_on_a_measured_quantity_with_units_and_seconds(demo_file):
    from silx.io import nxdata

    run = arrowdaq.open_run(demo_file)
    instruments = set(run.metadata["instrument"])
    with h5py.File(demo_file, "r") as f:
        default = nxdata.get_default(f)  # what `silx view` plots on opening the file
        assert default is not None and default.is_valid and default.is_curve
        stream = default.group.attrs["arrowdaq_stream"]
        assert stream.split("/")[0] in instruments, f"{stream} is derived, not measured"
        values = default.signal[()]
        assert values.min() < values.max(), f"{stream} is a constant, not a measurement"
        assert default.signal_name == f"{default.signal.attrs['long_name']}" and default.signal_name.endswith(
            f"({default.signal.attrs['units']})"
        )
        start = L.iso_ns(f["entry/start_time"][()].decode())
        for key, group in nxdata_groups(f).items():
            data = nxdata.NXdata(group)
            assert data.is_valid, (key, data.issues)
            for ds in [data.signal, *[a for a in data.axes if a is not None]]:
                if "units" in ds.attrs:  # every signal and axis with a unit names it where viewers look
                    assert ds.attrs["long_name"].endswith(f"({ds.attrs['units']})"), (key, ds.name)
            time = data.axes[0]
            assert time.name.endswith("/time") and time.attrs["units"] == "s"
            assert datetime.fromisoformat(time.attrs["start"]).tzinfo is not None
            assert time.attrs["start"] == f["entry/start_time"][()].decode()
            if len(time):
                run_s = (L.iso_ns(f["entry/end_time"][()].decode()) - start) / 1e9
                assert 0 <= time[0] <= run_s, (key, time[0])  # seconds from the start, not 1.8e18
                seconds = (group["timestamp_ns"][()].astype(np.int64) - start) / 1e9
                np.testing.assert_allclose(time[()], seconds, rtol=0, atol=1e-9)
        trace_axes = nxdata.NXdata(f["entry/scope1_trace"]).axes_names
        assert trace_axes == ["Time since run start (s)", "Time in trace (s)"]
        spectrum_axes = nxdata.NXdata(f["entry/scope1_fft_spectrum"]).axes_names
        assert spectrum_axes == ["Time since run start (s)", "Frequency (Hz)"]


def test_nexusformat_reads_the_same_plot_labels(demo_file):
    import nexusformat.nexus as nexusformat

    root = nexusformat.nxload(demo_file)
    try:
        plot = root.plottable_data
        assert plot.nxsignal.nxname == "value" and plot.nxaxes[0].nxname == "time"
        assert plot.nxaxes[0].attrs["long_name"] == "Time since run start (s)"
        assert str(plot.nxsignal.attrs["long_name"]).endswith(f"({plot.nxsignal.attrs['units']})")
        power = root.entry["pm1_power"]
        assert power.nxsignal.attrs["long_name"] == "Optical power (W)"
        assert power.timestamp_ns.attrs["units"] == "ns"  # the raw time stays beside the axis
    finally:
        root.nxfile.close()


def test_the_time_axis_is_not_part_of_the_arrow_round_trip(demo_file):
    run = arrowdaq.open_run(demo_file)
    table = run.table("pm1/power")
    assert table.column_names == ["timestamp_ns", "channel", "value", "unit"]
    assert table.schema.field("timestamp_ns").type == pa.uint64()


async def test_a_constant_setting_is_not_the_first_plot_even_when_declared_first(hub, tmp_path):
    ts = np.arange(10, dtype=np.uint64) * 10**8 + 1_700_000_000_000_000_000
    streams = {
        "laser/wavelength": [scalar_batch(np.full(10, 800.0), channel="wavelength", unit="nm", timestamps_ns=ts)],
        "laser/power": [scalar_batch(np.linspace(1, 2, 5), channel="power", unit="W", timestamps_ns=ts[:5])],
        "pm1/power": [scalar_batch(np.linspace(0, 1, 10), channel="pm1", unit="W", timestamps_ns=ts)],
    }
    path = await record(hub, tmp_path, streams)
    with h5py.File(path, "r") as f:
        assert f["entry"].attrs["default"] == "pm1_power"  # varies, and the most points of those that do


async def test_default_plot_option_chooses_the_first_plot(hub, tmp_path):
    ts = np.arange(3, dtype=np.uint64)
    streams = {
        "laser/wavelength": [scalar_batch(np.full(3, 800.0), channel="wavelength", unit="nm", timestamps_ns=ts)],
        "pm1/power": [scalar_batch([0.1, 0.2, 0.3], channel="pm1", unit="W", timestamps_ns=ts)],
    }
    path = await record(hub, tmp_path, streams, default_plot="laser/wavelength")
    with h5py.File(path, "r") as f:
        assert f["entry"].attrs["default"] == "laser_wavelength"


async def test_a_unit_given_only_per_row_labels_the_signal(hub, tmp_path):
    """A stream declared without a unit whose rows all carry one: the complete file shows it."""
    hub.declare("dmm/voltage", scalar_schema(None), producer="dmm")
    batches = [scalar_batch([1.0, 2.0], channel="dmm", unit="V", timestamps_ns=[1, 2])]
    path = await record(hub, tmp_path, {"dmm/voltage": batches})
    with h5py.File(path, "r") as f:
        value = f["entry/dmm_voltage/value"]
        assert value.attrs["units"] == "V" and value.attrs["long_name"] == "dmm/voltage (V)"
    assert decode(arrowdaq.open_run(path).table("dmm/voltage")).equals(expected(batches))


async def test_trace_axes_are_named_for_what_they_are(hub, tmp_path):
    streams = {
        "spec1/spectrum": [
            vector_batch(
                np.ones((2, 4)), channel="s", unit="counts", x0=400.0, dx=1.0, x_unit="nm", timestamps_ns=[1, 2]
            )
        ],
        "fft/spectrum": [
            vector_batch(np.ones((1, 4)), channel="f", unit="V", x0=0.0, dx=10.0, x_unit="Hz", timestamps_ns=[1])
        ],
        "odd/trace": [vector_batch(np.ones((1, 4)), channel="o", x0=0.0, dx=1.0, timestamps_ns=[1])],
    }
    path = await record(hub, tmp_path, streams)
    with h5py.File(path, "r") as f:
        spec = f["entry/spec1_spectrum"]
        assert list(spec.attrs["axes"]) == ["time", "wavelength"] and spec.attrs["wavelength_indices"] == 1
        assert spec["wavelength"].attrs["long_name"] == "Wavelength (nm)"
        np.testing.assert_array_equal(spec["wavelength"][()], [400.0, 401.0, 402.0, 403.0])
        assert list(f["entry/fft_spectrum"].attrs["axes"]) == ["time", "frequency"]
        assert f["entry/fft_spectrum/frequency"].attrs["units"] == "Hz"
        odd = f["entry/odd_trace"]  # no unit: still an x axis, named as such
        assert list(odd.attrs["axes"]) == ["time", "x"] and "units" not in odd["x"].attrs
    run = arrowdaq.open_run(path)
    for name, batches in streams.items():
        assert decode(run.table(name)).equals(expected(batches))


async def test_without_the_time_axis_viewers_still_plot_and_open_run_reads_the_same(hub, tmp_path):
    """``time_axis=False`` (a third less to write for a scalar stream): no ``time`` dataset, silx and
    nexusformat plot the signal against the row number, the Arrow round trip and ``lazy(time=...)`` are unchanged."""
    import nexusformat.nexus as nexusformat
    from silx.io import nxdata

    ts = np.arange(5, dtype=np.uint64) * 10**6 + np.uint64(time_ns())
    streams = {
        "pm1/power": [
            scalar_batch(np.linspace(0, 1, 3), channel="pm1", unit="W", timestamps_ns=ts[:3]),
            scalar_batch([0.5, 0.7], channel="pm1", unit="W", timestamps_ns=ts[3:]),
        ]
    }
    path = await record(hub, tmp_path, streams, time_axis=False)
    with h5py.File(path, "r") as f:
        g = f["entry/pm1_power"]
        assert "time" not in g and "axes" not in g.attrs
        data = nxdata.get_default(f)
        assert data is not None and data.is_valid and data.is_curve and data.axes == [None]
        np.testing.assert_array_equal(data.signal[()], [0.0, 0.5, 1.0, 0.5, 0.7])
    root = nexusformat.nxload(str(path))
    try:
        assert root.plottable_data.nxsignal.nxname == "value"
    finally:
        root.nxfile.close()
    run = arrowdaq.open_run(path)
    assert decode(run.table("pm1/power")).equals(expected(streams["pm1/power"]))
    seconds = run.lazy("pm1/power", time="seconds").collect()["time"].to_numpy()
    np.testing.assert_allclose(seconds, (ts.astype(np.int64) - run.start_ns) / 1e9, rtol=0, atol=1e-9)
