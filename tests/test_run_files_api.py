"""open_run as an analyst meets it, and files in the original arrow_ipc form written by other programs."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import h5py
import numpy as np
import polars as pl
import pyarrow as pa
import pytest

import arrowdaq
from arrowdaq.cli.main import main
from arrowdaq.data import scalar_batch
from arrowdaq.errors import StorageError
from arrowdaq.storage import open_run

from .test_storage_roundtrip import canonical_streams, record


def ipc_bytes(table: pa.Table, stream_format: bool = False) -> np.ndarray:
    """Arrow IPC bytes as pyarrow writes them, in a u8 array for h5py."""
    sink = pa.BufferOutputStream()
    new = pa.ipc.new_stream if stream_format else pa.ipc.new_file
    with new(sink, table.schema) as writer:
        writer.write_table(table, max_chunksize=2)  # several record batches
    return np.frombuffer(sink.getvalue(), np.uint8)


POWER = pa.table({"timestamp_ns": pa.array([1, 2, 3], pa.uint64()), "channel": ["pm1"] * 3, "value": [1.0, 2.0, 3.0]})
TEMPS = pa.table({"t": pa.array([10, 20], pa.int64()), "kelvin": pa.array([4.2, None], pa.float32())})


# --- the original arrow_ipc form, written with pyarrow + h5py only ----------------------------------------
def test_a_foreign_file_with_datasets_directly_under_arrow_data_reads_back_as_written(tmp_path, capsys):
    path = tmp_path / "flat.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("arrow_data/pm1_power", data=ipc_bytes(POWER))
        f.create_dataset("arrow_data/cryo", data=ipc_bytes(TEMPS, stream_format=True))  # the IPC stream format
    run = open_run(path)
    assert sorted(run.streams) == ["cryo", "pm1_power"]
    assert run.table("pm1_power").equals(POWER, check_metadata=True)  # the writer's types: plain strings
    assert run.table("cryo").equals(TEMPS, check_metadata=True)
    assert run.num_rows("cryo") == 2 and run.schema("cryo") == TEMPS.schema
    assert not run.written_by_arrowdaq and run.metadata == {}
    assert main(["inspect", str(path)]) == 0
    out = capsys.readouterr().out
    assert "not written by arrowdaq" in out and "INCOMPLETE" not in out and "h5clear" not in out
    assert "pm1_power" in out and "rows 3" in out


def test_a_foreign_file_with_groups_of_batches_reads_back_as_written(tmp_path):
    path = tmp_path / "grouped.h5"
    first, second = POWER.slice(0, 2), POWER.slice(2)
    with h5py.File(path, "w") as f:
        f.create_dataset("arrow_data/pm1/power/batch_000000", data=ipc_bytes(first))
        f.create_dataset("arrow_data/pm1/power/batch_000001", data=ipc_bytes(second))
        f.create_dataset("arrow_data/cryo/t/0", data=ipc_bytes(TEMPS))
    run = open_run(path)
    assert sorted(run.streams) == ["cryo/t", "pm1/power"]
    assert run.table("pm1/power").equals(POWER, check_metadata=True)
    assert run.table("cryo/t").equals(TEMPS, check_metadata=True)
    assert [b.num_rows for b in run.iter_batches("pm1/power")] == [2, 1]


@pytest.mark.parametrize(
    ("layout", "error"),
    [
        ({"arrow_data/values": np.arange(4.0)}, r"/arrow_data holds no Arrow IPC data \(expected u8"),
        ({"entry/data/x": np.arange(3)}, r"not an arrowdaq run file \(/entry has no arrowdaq streams"),
        ({"other": np.arange(3)}, r"not an arrowdaq run file \(no /entry or /arrow_data\)"),
    ],
    ids=["arrow_data of floats", "another program's NeXus", "plain HDF5"],
)
def test_a_layout_it_cannot_read_is_an_error_never_zero_streams(tmp_path, capsys, layout, error):
    path = tmp_path / "foreign.h5"
    with h5py.File(path, "w") as f:
        for name, data in layout.items():
            f.create_dataset(name, data=data)
    with pytest.raises(StorageError, match=error):
        open_run(path)
    assert main(["inspect", str(path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("arrowdaq inspect: error: ") and str(path) in err and len(err.strip().splitlines()) == 1


def test_bytes_that_are_not_arrow_ipc_are_an_error_naming_the_dataset(tmp_path, capsys):
    path = tmp_path / "garbage.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("arrow_data/pm1/power/batch_000000", data=np.frombuffer(b"not arrow at all", np.uint8))
    with pytest.raises(StorageError, match=r"/arrow_data/pm1/power/batch_000000 is not Arrow IPC data"):
        open_run(path).table("pm1/power")
    assert main(["inspect", str(path)]) == 1
    assert "is not Arrow IPC data" in capsys.readouterr().err


# --- open_run for analysis ------------------------------------------------------------------------------------
def test_the_package_shows_what_it_offers():
    names = dir(arrowdaq)
    assert {"open_run", "RunFile", "storage", "data", "__version__"} <= set(names)
    assert "_LAZY" not in names and "import_module" not in names
    doc = arrowdaq.open_run.__doc__
    assert "with open_run(path) as run" in doc and "StorageError" in doc
    public = [name for name in dir(arrowdaq.RunFile) if not name.startswith("_")]
    assert {"table", "lazy", "iter_batches", "metadata", "events", "scans", "close", "summary"} <= set(public)
    for name in public:
        assert getattr(arrowdaq.RunFile, name).__doc__, f"RunFile.{name} has no docstring"


async def test_open_run_is_a_context_manager_and_close_ends_its_use(hub, tmp_path):
    path = await record(hub, tmp_path, canonical_streams())
    with open_run(path) as run:
        batches = run.iter_batches("pm1/power", max_rows=5)
        assert next(batches).num_rows == 5
    assert list(batches) == []  # closing ended the iterator
    with pytest.raises(StorageError, match="closed"):
        run.table("pm1/power")
    with h5py.File(path, "a") as f:  # nothing holds the file any more
        assert "entry" in f


async def test_lazy_gives_time_as_datetimes_or_seconds_since_the_start(hub, tmp_path):
    now = datetime.now(UTC)
    ts = np.array([int(now.timestamp() * 1e9) + k * 10**8 for k in range(3)], np.uint64)
    path = await record(hub, tmp_path, {"pm1/power": [scalar_batch([1.0, 2.0, 3.0], channel="pm1", timestamps_ns=ts)]})
    run = open_run(path)
    dated = run.lazy("pm1/power", time="datetime").collect()
    assert dated.columns[0] == "time" and dated.schema["time"] == pl.Datetime("ns", "UTC")
    assert dated["time"].dt.epoch("ns").to_list() == ts.astype(np.int64).tolist()
    seconds = run.lazy("pm1/power", time="seconds").collect()["time"].to_numpy()
    start = arrowdaq.storage.layout.iso_ns(run.metadata["start_time"])
    np.testing.assert_allclose(seconds, (ts.astype(np.int64) - start) / 1e9, atol=1e-9)
    assert -60 < seconds[0] < 60
    assert run.lazy("pm1/power").collect().columns == ["timestamp_ns", "channel", "value", "unit"]
    with pytest.raises(StorageError, match="time is 'datetime', 'seconds' or None"):
        run.lazy("pm1/power", time="hours")


async def test_strings_read_back_dictionary_encoded_and_work_as_strings_in_polars_and_pandas(hub, tmp_path):
    """Decision 0023: channel and unit come back dictionary-encoded (a constant costs 4 bytes a row);
    Polars sees Categorical and pandas category, and both filter, group and concatenate them as strings."""
    ts = np.arange(4, dtype=np.uint64) + 1_700_000_000_000_000_000
    streams = {
        "pm1/power": [scalar_batch([1.0, 2.0], channel="pm1", unit="W", timestamps_ns=ts[:2])],
        "pm2/power": [scalar_batch([3.0, 4.0], channel="pm2", unit="mW", timestamps_ns=ts[2:])],
    }
    run = open_run(await record(hub, tmp_path, streams))
    one, two = run.table("pm1/power"), run.table("pm2/power")
    assert pa.types.is_dictionary(one.schema.field("channel").type) and run.schema("pm1/power") == one.schema
    both = pl.concat([pl.from_arrow(one), pl.from_arrow(two)])
    assert both.schema["channel"] == pl.Categorical
    assert both.filter(pl.col("channel") == "pm2")["value"].to_list() == [3.0, 4.0]
    assert run.lazy("pm1/power").filter(pl.col("unit") == "W").collect().height == 2
    frame = one.to_pandas()
    assert str(frame["channel"].dtype) == "category" and (frame["unit"] == "W").all()
    assert arrowdaq.data.decode(one).schema.field("channel").type == pa.utf8()  # plain, for tools that want it


def plain(value) -> bool:
    if isinstance(value, dict):
        return all(isinstance(k, str) and plain(v) for k, v in value.items())
    if isinstance(value, list):
        return all(plain(v) for v in value)
    return value is None or isinstance(value, (str, int, float, bool))


async def test_metadata_is_plain_strings_and_numbers(hub, tmp_path):
    from arrowdaq.storage import RunInfo, StorageOptions, spawn_storage

    hub.declare("pm1/power", scalar_batch([1.0], channel="pm1").schema, producer="pm1")
    info = {
        "identity": {"model": "1830-C", "serial": "123"},
        "capabilities": ["Readable", "WavelengthTunable"],
        "settings": {"wavelength_nm": 800.0, "ranges": [1, 2, 3], "modes": [{"a": 1}]},
    }
    run_info = RunInfo(name="plain", operator="Ada", sample="BBO-3", notes="aligned", config='[run]\nname = "plain"\n')
    ref, path = spawn_storage(hub, ["pm1/*"], StorageOptions(data_dir=tmp_path), run_info, {"pm1": info})
    await ref.wait_status(arrowdaq.actors.ActorStatus.RUNNING)
    await hub.publish("pm1/power", scalar_batch([1.0], channel="pm1"))
    await hub.stop()
    meta = open_run(path).metadata
    assert plain(meta), meta
    assert meta["name"] == "plain" and meta["run_id"] == run_info.run_id
    assert (meta["operator"], meta["sample"], meta["notes"]) == ("Ada", "BBO-3", "aligned")
    assert meta["configuration"] == '[run]\nname = "plain"\n'
    assert meta["complete"] is True and meta["layout"] == "nexus" and meta["version"] == arrowdaq.__version__
    assert meta["instrument"]["pm1"] == info  # lists of strings stay lists, not JSON text
    assert datetime.fromisoformat(meta["start_time"]) <= datetime.fromisoformat(meta["end_time"])
    assert json.dumps(meta)  # nothing a JSON encoder refuses
    events = open_run(path).events  # the run's event log, as a table
    assert {"time", "source", "kind", "level", "message"} <= set(events.column_names)
