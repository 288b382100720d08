"""Recording through the hub and reading back: every canonical schema, both layouts."""

from __future__ import annotations

import h5py
import numpy as np
import polars as pl
import pyarrow as pa
import pytest

from arrowdaq.actors import ActorStatus
from arrowdaq.data import image_batch, scalar_batch, scalar_schema, vector_batch
from arrowdaq.data.schemas import encoded_schema, plain_schema
from arrowdaq.data.validate import decode
from arrowdaq.storage import RunInfo, StorageOptions, open_run, spawn_storage

LAYOUTS = ["nexus", "arrow_ipc"]


async def record(hub, tmp_path, streams: dict[str, list[pa.RecordBatch]], layout="nexus", **options):
    """Declare, record every batch, stop: returns the run file path."""
    for name, batches in streams.items():
        if name not in hub.streams:
            hub.declare(name, batches[0].schema, producer=name.split("/")[0])
    opts = StorageOptions(data_dir=tmp_path, layout=layout, **options)
    ref, path = spawn_storage(hub, list(streams), opts, RunInfo(name="round trip", operator="Zoë", sample="BBO"))
    await ref.wait_status(ActorStatus.RUNNING)
    for name, batches in streams.items():
        for batch in batches:
            await hub.publish(name, batch)
    await hub.stop()
    assert ref.status is ActorStatus.STOPPED and ref.last_error is None
    return path


def expected(batches: list[pa.RecordBatch]) -> pa.Table:
    schema = plain_schema(batches[0].schema)
    return pa.Table.from_batches([decode(b) for b in batches], schema=schema)


def canonical_streams() -> dict[str, list[pa.RecordBatch]]:
    rng = np.random.default_rng(1)
    ts = np.arange(10, dtype=np.uint64) * 1_000_000 + 1_700_000_000_000_000_000
    return {
        "pm1/power": [
            scalar_batch(rng.random(10), channel="Leistung µ", unit="µW", timestamps_ns=ts),
            scalar_batch([], channel="Leistung µ", unit="µW", timestamps_ns=[]),  # empty batch
            scalar_batch([0.5, 0.25], channel="Leistung µ", unit="µW", timestamps_ns=ts[:2] + 10**9),
        ],
        "pm1/raw": [  # unit null throughout
            scalar_batch([1.0, 2.0], channel="raw", unit=None, timestamps_ns=ts[:2]),
        ],
        "scope1/trace": [
            vector_batch(
                rng.random((3, 7)), channel="CH1", unit="V", x0=0.0, dx=1e-6, x_unit="s", timestamps_ns=ts[:3]
            ),
            vector_batch(
                rng.random((2, 7)), channel="CH1", unit="V", x0=[1.0, 2.0], dx=1e-6, x_unit="s", timestamps_ns=ts[3:5]
            ),
        ],
        "spec1/spectrum": [
            vector_batch(
                rng.random((2, 5)),
                channel="spectrum",
                unit="counts",
                x=np.linspace(400, 800, 5),
                x_unit="nm",
                timestamps_ns=ts[:2],
            ),
            vector_batch(
                rng.random((1, 5)),
                channel="spectrum",
                unit="counts",
                x=np.linspace(401, 801, 5),
                x_unit="nm",
                timestamps_ns=ts[2:3],
            ),
        ],
        "cam1/frames": [
            image_batch(
                rng.integers(0, 4096, (2, 6, 4), dtype=np.uint16), channel="cam1", frame_numbers=0, timestamps_ns=ts[:2]
            ),
            image_batch(
                rng.integers(0, 4096, (1, 6, 4), dtype=np.uint16),
                channel="cam1",
                frame_numbers=2,
                timestamps_ns=ts[2:3],
            ),
        ],
    }


@pytest.mark.parametrize("layout", LAYOUTS)
async def test_every_canonical_schema_reads_back_identical(hub, tmp_path, layout):
    streams = canonical_streams()
    path = await record(hub, tmp_path, streams, layout)
    run = open_run(path)
    assert sorted(run.streams) == sorted(streams)
    for name, batches in streams.items():
        table = run.table(name)
        # constant strings come back dictionary-encoded (as in memory), values identical
        assert table.schema.equals(encoded_schema(batches[0].schema), check_metadata=True), name
        assert pa.types.is_dictionary(table.schema.field("channel").type), name
        assert decode(table).equals(expected(batches)), name
    assert run.complete
    meta = run.metadata
    assert meta["name"] == "round trip" and meta["operator"] == "Zoë" and meta["sample"] == "BBO"
    assert meta["layout"] == layout and meta["complete"] is True


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("chunk_rows", [1, 1000], ids=["batch-by-batch", "coalesced"])
async def test_varying_channel_and_null_units_are_kept_per_row(hub, tmp_path, layout, chunk_rows):
    ts = np.arange(3, dtype=np.uint64)
    plain = pa.RecordBatch.from_arrays(  # hand-built, not dictionary-encoded, mixed channels
        [pa.array(ts + 10), pa.array(["a", "b", "ä"]), pa.array([4.0, 5.0, 6.0]), pa.array(["W", None, "W"])],
        schema=scalar_schema("W", encoded=False),
    )
    batches = [
        scalar_batch([1.0, 2.0, 3.0], channel="a", unit=None, timestamps_ns=ts),  # constant null unit first
        plain,
        scalar_batch([7.0], channel="a", unit="W", timestamps_ns=[20]),
        scalar_batch([8.0, 9.0], channel="c", unit="W", timestamps_ns=[21, 22]),
    ]
    hub.declare("daq/mixed", scalar_schema("W"), producer="daq")
    path = await record(hub, tmp_path, {"daq/mixed": batches}, layout, chunk_rows=chunk_rows)
    table = open_run(path).table("daq/mixed")
    assert table.column("channel").to_pylist() == ["a", "a", "a", "a", "b", "ä", "a", "c", "c"]
    assert table.column("unit").to_pylist() == [None, None, None, "W", None, "W", "W", "W", "W"]
    assert table.column("value").to_pylist() == [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0]


async def test_nullable_extension_columns_keep_their_nulls(hub, tmp_path):
    schema = pa.schema(
        [
            pa.field("timestamp_ns", pa.uint64(), False),
            pa.field("channel", pa.utf8(), False),
            pa.field("temperature", pa.float32(), True, metadata={b"unit": b"K"}),
            pa.field("count", pa.int16(), True),
            pa.field("ok", pa.bool_(), True),
        ]
    )
    batch = pa.RecordBatch.from_arrays(
        [
            pa.array([1, 2, 3], pa.uint64()),
            pa.array(["t"] * 3),
            pa.array([1.5, None, 3.5], pa.float32()),
            pa.array([None, 2, 3], pa.int16()),
            pa.array([True, None, False]),
        ],
        schema=schema,
    )
    path = await record(hub, tmp_path, {"oven/state": [batch]})
    table = open_run(path).table("oven/state")
    assert decode(table).equals(pa.Table.from_batches([batch]))
    with h5py.File(path, "r") as f:
        assert f["entry/oven_state/temperature"].attrs["units"] == "K"
        assert f["entry/oven_state/temperature_valid"][:].tolist() == [1, 0, 1]


async def test_h5py_alone_reads_every_column(hub, tmp_path):
    streams = canonical_streams()
    path = await record(hub, tmp_path, streams)
    power = expected(streams["pm1/power"])
    with h5py.File(path, "r") as f:
        g = f["entry/pm1_power"]
        assert g.attrs["arrowdaq_stream"] == "pm1/power"
        np.testing.assert_array_equal(g["value"][:], power.column("value").to_numpy())
        np.testing.assert_array_equal(g["timestamp_ns"][:], power.column("timestamp_ns").to_numpy())
        assert g["value"].attrs["units"] == "µW" and g["timestamp_ns"].attrs["units"] == "ns"
        # constant strings are stored once, not per row
        assert g["channel_codes"].shape == (0,) and g["channel_dictionary"][0].decode() == "Leistung µ"
        assert g.attrs["channel"] == "Leistung µ" and g.attrs["unit"] == "µW"
        trace = f["entry/scope1_trace/values"]
        assert trace.shape == (5, 7) and trace.attrs["units"] == "V"
        np.testing.assert_array_equal(f["entry/scope1_trace/x0"][:], [0.0, 0.0, 0.0, 1.0, 2.0])
        assert f["entry/spec1_spectrum/x"].shape == (3, 5)
        frames = f["entry/cam1_frames/pixels"]
        assert frames.shape == (3, 6, 4) and frames.dtype == np.uint16
        np.testing.assert_array_equal(frames[2], streams["cam1/frames"][1].column("pixels").to_numpy_ndarray()[0])
        assert f["entry/cam1_frames/frame_number"][:].tolist() == [0, 1, 2]
        assert f["entry/arrowdaq/complete"][()] == 1
        for ds in f["entry/pm1_power"].values():
            assert ds.compression in (None, "gzip")  # only filters stock HDF5 has


async def test_nexus_structure_is_valid_for_a_nexus_reader(hub, tmp_path):
    import nexusformat.nexus as nexusformat  # the test extra installs it

    path = await record(hub, tmp_path, canonical_streams())
    root = nexusformat.nxload(str(path))
    try:
        entry = root.entry
        assert root.nxclass == "NXroot" and entry.nxclass == "NXentry"
        assert str(entry.title) == "round trip" and "start_time" in entry and "end_time" in entry
        assert entry.instrument.nxclass == "NXinstrument" and entry.user.nxclass == "NXuser"
        default = root.plottable_data  # follows @default down to an NXdata
        assert default is not None and default.nxclass == "NXdata"
        for key, signal, ndim in [
            ("pm1_power", "value", 1),
            ("scope1_trace", "values", 2),
            ("cam1_frames", "pixels", 3),
        ]:
            data = entry[key]
            assert data.nxclass == "NXdata" and data.nxsignal.nxname == signal
            assert data.nxsignal.ndim == ndim and data.nxsignal.shape[0] > 0
            assert data.nxaxes[0].nxname == "time" and data.nxaxes[0].attrs["units"] == "s"
            unit = data.nxsignal.attrs["units"]
            assert str(data.nxsignal.attrs["long_name"]).endswith(f"({unit})")
        trace_x = entry["scope1_trace"].nxaxes[1]  # traces plot against x in physical units
        assert trace_x.nxname == "trace_time" and trace_x.attrs["units"] == "s"
        assert trace_x.attrs["long_name"] == "Time in trace (s)"
        np.testing.assert_allclose(trace_x.nxvalue, np.arange(7) * 1e-6)  # x of the first trace
        spectrum_x = entry["spec1_spectrum"].nxaxes[1]
        assert spectrum_x.nxname == "x" and spectrum_x.attrs["units"] == "nm" and spectrum_x.shape == (3, 5)
        assert spectrum_x.attrs["long_name"] == "Wavelength (nm)"
    finally:
        root.nxfile.close()


async def test_the_default_plot_is_a_measured_number_not_the_first_stream_declared(hub, tmp_path):
    flag = pa.schema([pa.field("timestamp_ns", pa.uint64()), pa.field("open", pa.bool_())])
    streams = {
        "shutter/state": [pa.RecordBatch.from_pylist([{"timestamp_ns": 1, "open": True}], schema=flag)],
        "scope1/trace": [vector_batch(np.ones((1, 4)), channel="CH1", x0=0.0, dx=1.0, timestamps_ns=1)],
        "pm1/power": [scalar_batch([1.0], channel="pm1", unit="W", timestamps_ns=1)],
    }
    path = await record(hub, tmp_path, streams)
    with h5py.File(path, "r") as f:
        assert f["entry"].attrs["default"] == "pm1_power"


async def test_polars_lazy_frame(hub, tmp_path):
    streams = canonical_streams()
    path = await record(hub, tmp_path, streams)
    run = open_run(path)
    df = run.lazy("pm1/power").filter(pl.col("value") >= 0).collect()
    assert df.height == 12 and df["unit"].unique().to_list() == ["µW"]
    frames = run.lazy("cam1/frames").select("pixels").collect()
    assert frames["pixels"].shape == (3,) and frames["pixels"].dtype.shape == (6, 4)


def test_reads_a_file_in_the_original_arrow_ipc_form_written_without_arrowdaq(tmp_path):
    """Only h5py and pyarrow: u8 datasets of Arrow IPC file bytes under /arrow_data/."""
    batches = [
        decode(scalar_batch([1.0, 2.0], channel="pm1", unit="W", timestamps_ns=[1, 2])),
        decode(scalar_batch([3.0], channel="pm1", unit="W", timestamps_ns=[3])),
    ]
    path = tmp_path / "original.h5"
    with h5py.File(path, "w") as f:
        for k, batch in enumerate(batches):
            sink = pa.BufferOutputStream()
            with pa.ipc.new_file(sink, batch.schema) as writer:
                writer.write_batch(batch)
            f.create_dataset(f"arrow_data/pm1/power/batch_{k:06d}", data=np.frombuffer(sink.getvalue(), np.uint8))
    run = open_run(path)
    assert run.streams == ["pm1/power"]
    assert decode(run.table("pm1/power")).equals(pa.Table.from_batches(batches))
    assert run.summary()[0].rows == 3 and not run.complete


async def test_arrow_ipc_layout_stores_ipc_files_any_reader_opens(hub, tmp_path):
    streams = {"pm1/power": canonical_streams()["pm1/power"]}
    path = await record(hub, tmp_path, streams, "arrow_ipc")
    with h5py.File(path, "r") as f:
        names = sorted(f["arrow_data/pm1/power"])
        assert names and all(n.startswith("batch_") for n in names)
        raw = f["arrow_data/pm1/power"][names[0]][()]
        assert raw.dtype == np.uint8
    table = pa.ipc.open_file(pa.py_buffer(raw.tobytes())).read_all()
    assert table.equals(expected(streams["pm1/power"]))


async def test_the_default_plot_prefers_an_instrument_stream_over_a_processor_s(hub, tmp_path):
    hub.declare_outputs("avg", {"mean": scalar_schema("W")}, derived=True)  # as a processor declares its outputs
    streams = {
        "avg/mean": [scalar_batch([1.0], channel="mean", unit="W", timestamps_ns=1)],
        "pm1/power": [scalar_batch([1.0], channel="pm1", unit="W", timestamps_ns=1)],
    }
    path = await record(hub, tmp_path, streams)
    with h5py.File(path, "r") as f:
        assert f["entry"].attrs["default"] == "pm1_power"


@pytest.mark.parametrize("image_compression", [None, "gzip"])
async def test_large_frames_read_back_exactly_by_h5py_and_open_run(hub, tmp_path, image_compression):
    """Frames of 1 MiB and more are one chunk each: unfiltered, their bytes go straight to the file
    (``write_direct_chunk``); filtered, through HDF5's pipeline. Both read back bit for bit."""
    rng = np.random.default_rng(3)
    frames = rng.integers(0, 65535, (3, 1024, 768), dtype=np.uint16)
    batches = [
        image_batch(frames[0], channel="cam", frame_numbers=0, timestamps_ns=1),
        image_batch(frames[1:], channel="cam", frame_numbers=1, timestamps_ns=[2, 3]),
    ]
    path = await record(hub, tmp_path, {"cam1/frames": batches}, image_compression=image_compression)
    with h5py.File(path, "r") as f:
        pixels = f["entry/cam1_frames/pixels"]
        assert pixels.chunks == (1, 1024, 768) and pixels.compression == image_compression
        np.testing.assert_array_equal(pixels[()], frames)
    table = open_run(path).table("cam1/frames")
    np.testing.assert_array_equal(table.column("pixels").combine_chunks().to_numpy_ndarray(), frames)
    assert decode(table).equals(expected(batches))
