"""The data model: canonical schemas, builders, validation, Polars round trips."""

from __future__ import annotations

import numpy as np
import polars as pl
import pyarrow as pa
import pytest

from arrowdaq.data import (
    decode,
    frames_of,
    from_polars,
    image_batch,
    image_schema,
    kind_of,
    scalar_batch,
    scalar_schema,
    to_polars,
    traces_of,
    unit_of,
    validate_batch,
    vector_batch,
    vector_schema,
)
from arrowdaq.errors import SchemaError


def test_scalar_schema_is_the_designs():
    plain = scalar_schema(encoded=False)
    assert [(f.name, str(f.type), f.nullable) for f in plain] == [
        ("timestamp_ns", "uint64", False),
        ("channel", "string", False),
        ("value", "double", False),
        ("unit", "string", True),
    ]


def test_scalar_builder_columns_and_units():
    ts = np.arange(1000, dtype=np.uint64) + 1_700_000_000_000_000_000
    batch = scalar_batch(np.linspace(0, 1, 1000), channel="power", unit="W", timestamps_ns=ts)
    assert batch.num_rows == 1000
    assert kind_of(batch.schema) == "scalar"
    assert unit_of(batch.schema) == "W"
    # channel and unit are stored once per batch, not once per row
    assert pa.types.is_dictionary(batch.schema.field("channel").type)
    assert len(batch.column("channel").dictionary) == 1
    plain = decode(batch)
    assert plain.column("channel").to_pylist()[:2] == ["power", "power"]
    assert plain.column("unit").to_pylist()[-1] == "W"
    assert np.array_equal(batch.column("timestamp_ns").to_numpy(), ts)


def test_scalar_builder_shares_the_numpy_buffer():
    values = np.random.default_rng(0).normal(size=10_000)
    batch = scalar_batch(values, channel="v", timestamps_ns=np.arange(10_000))
    col = batch.column("value").to_numpy()
    assert np.shares_memory(col, values)


def test_vector_builder_uniform_and_explicit_axes():
    traces = np.random.default_rng(1).normal(size=(3, 64))
    uniform = vector_batch(traces, channel="trace", unit="V", x0=0.0, dx=1e-6, x_unit="s")
    assert uniform.schema.field("values").metadata[b"unit"] == b"V"
    assert uniform.schema.field("dx").metadata[b"unit"] == b"s"
    assert np.array_equal(traces_of(uniform), traces)
    freqs = np.fft.rfftfreq(64, 1e-6)
    explicit = vector_batch(np.abs(np.fft.rfft(traces)), channel="spectrum", unit="V", x=freqs, x_unit="Hz")
    assert explicit.schema.metadata[b"arrowdaq.axis"] == b"explicit"
    assert np.allclose(traces_of(explicit, "x")[2], freqs)
    validate_batch(explicit, vector_schema("V", "Hz", axis="explicit"))


def test_image_builder_is_zero_copy_both_ways():
    frames = np.random.default_rng(2).integers(0, 4096, size=(2, 32, 48), dtype=np.uint16)
    batch = image_batch(frames, channel="frames", frame_numbers=10)
    assert batch.column("frame_number").to_pylist() == [10, 11]
    back = frames_of(batch)
    assert back.shape == (2, 32, 48) and np.shares_memory(back, frames)
    validate_batch(batch, image_schema((32, 48), "uint16"))


def test_image_builder_takes_one_2d_frame():
    frame = np.arange(12, dtype=np.uint16).reshape(3, 4)
    batch = image_batch(frame, channel="frames", frame_numbers=7, timestamps_ns=5)
    assert batch.num_rows == 1 and batch.column("frame_number").to_pylist() == [7]
    back = frames_of(batch)
    assert back.shape == (1, 3, 4) and np.array_equal(back[0], frame) and np.shares_memory(back, frame)
    sliced = image_batch(np.arange(40, dtype=np.uint16).reshape(4, 10)[:, ::2], channel="f", frame_numbers=0)
    assert np.array_equal(frames_of(sliced)[0], np.arange(40).reshape(4, 10)[:, ::2])


def test_image_builder_takes_one_frame_as_2d_or_with_a_new_axis():
    frame = np.arange(12, dtype=np.uint16).reshape(3, 4)
    for given in (frame, frame[np.newaxis]):  # a new axis has stride 0, which Arrow's tensor type refuses
        batch = image_batch(given, channel="cam", frame_numbers=7)
        assert batch.column("frame_number").to_pylist() == [7]
        assert np.array_equal(frames_of(batch)[0], frame)
        assert np.shares_memory(frames_of(batch), frame)


def test_polars_round_trip_every_kind():
    scalar = scalar_batch([1.0, 2.0], channel="ch", unit="µW", timestamps_ns=[1, 2])
    df = to_polars(scalar)
    assert df["value"].to_list() == [1.0, 2.0] and df["unit"].cast(pl.Utf8).to_list() == ["µW", "µW"]
    assert from_polars(df, scalar.schema).equals(decode(pa.Table.from_batches([scalar])))

    image = image_batch(np.arange(24, dtype=np.uint16).reshape(2, 3, 4), channel="cam", frame_numbers=0)
    table = from_polars(to_polars(image), image.schema)
    assert np.array_equal(table.column("pixels").chunk(0).to_numpy_ndarray(), frames_of(image))


def test_validation_names_the_wrong_type():
    bad = pa.record_batch(
        [pa.array([1], pa.uint64()), pa.array(["a"]), pa.array([1], pa.int64()), pa.array(["W"])],
        names=["timestamp_ns", "channel", "value", "unit"],
    )
    with pytest.raises(SchemaError, match=r"field 'value': expected double, got int64"):
        validate_batch(bad, scalar_schema("W"), stream="pm1/power")


def test_validation_names_the_missing_field():
    bad = pa.record_batch([pa.array([1], pa.uint64()), pa.array(["a"])], names=["timestamp_ns", "channel"])
    with pytest.raises(SchemaError, match=r"stream 'pm1/power': missing field 'value'"):
        validate_batch(bad, scalar_schema(), stream="pm1/power")


def test_validation_refuses_nulls_where_not_allowed():
    # nulls in a field the batch itself calls nullable
    nullable = pa.record_batch(
        {
            "timestamp_ns": pa.array([1, 2], pa.uint64()),
            "channel": ["a", "a"],
            "value": [1.0, None],
            "unit": ["W", None],
        }
    )
    with pytest.raises(SchemaError, match=r"field 'value'"):
        validate_batch(nullable, scalar_schema())
    # nulls smuggled under a schema that says "not null"
    hidden = pa.RecordBatch.from_arrays(
        [pa.array([1, 2], pa.uint64()), pa.array(["a", "a"]), pa.array([1.0, None]), pa.array(["W", "W"])],
        schema=scalar_schema(encoded=False),
    )
    with pytest.raises(SchemaError, match=r"field 'value' has 1 null"):
        validate_batch(hidden, scalar_schema())


def test_validation_refuses_what_is_not_a_batch():
    with pytest.raises(SchemaError, match="expected a pyarrow.RecordBatch, got list"):
        validate_batch([1, 2, 3], scalar_schema())
