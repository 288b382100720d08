"""The storage actor's API: status, commands, late streams, refused streams, restarts."""

from __future__ import annotations

import h5py
import numpy as np
import pyarrow as pa
import pytest

from arrowdaq.actors import ActorStatus, Role
from arrowdaq.data import scalar_batch, scalar_schema, vector_batch
from arrowdaq.errors import CommandError, ConfigError
from arrowdaq.storage import RunInfo, StorageActor, StorageOptions, open_run, run_path, spawn_storage

from .waiting import wait_until_async


async def start(hub, tmp_path, inputs="*/*", **kwargs):
    options = StorageOptions(data_dir=tmp_path, **kwargs.pop("options", {}))
    ref, path = spawn_storage(hub, inputs, options, kwargs.pop("run", None) or RunInfo(name="test"), **kwargs)
    await ref.wait_status(ActorStatus.RUNNING)
    return ref, path


async def drained(hub, name="storage"):
    """Wait until the actor has taken every queued batch (the mailbox is served before them)."""
    await wait_until_async(
        lambda: not hub.status()["subscribers"][name]["queued"], message=f"{name} to take its batches"
    )


async def test_path_is_known_before_recording_and_status_reports_progress(hub, tmp_path):
    run = RunInfo(name="laser scan #3", run_id="R42")
    assert run_path(StorageOptions(data_dir=tmp_path), run) == tmp_path / "laser_scan_3_R42.h5"
    hub.declare("pm1/power", scalar_schema("W"), producer="pm1")
    ref, path = await start(hub, tmp_path, run=run)
    assert path == tmp_path / "laser_scan_3_R42.h5" and path.exists()
    for k in range(5):
        await hub.publish("pm1/power", scalar_batch(np.full(10, k, float), channel="pm1", unit="W"))
    status = await hub.command("storage", "flush")
    assert status["path"] == str(path) and status["recording"] and status["error"] is None
    assert status["rows"] == {"pm1/power": 50} and status["pending_rows"] == 0
    assert status["bytes"] >= 50 * 16 and status["last_flush"] is not None
    assert open_run(path).table("pm1/power").num_rows == 50  # readable while recording


async def test_the_storage_buffer_bound_is_settable_and_holds_producers_back(hub, tmp_path):
    hub.declare("pm1/power", scalar_schema("W"), producer="pm1")
    ref, path = await start(hub, tmp_path, max_bytes=50_000)
    sub = next(s for s in hub.subscriptions if s.name == "storage")
    assert sub.max_bytes == 50_000
    for k in range(200):  # one-row batches: ~3.6 KB each counted, so the producer waits on the way
        await hub.publish("pm1/power", scalar_batch([float(k)], channel="pm1", unit="W", timestamps_ns=k))
    assert sub.alarms >= 1 and sub.drops == 0
    await hub.stop()
    assert open_run(path).table("pm1/power").column("value").to_pylist() == [float(k) for k in range(200)]


async def test_small_batches_are_gathered_and_written_in_whole_chunks(hub, tmp_path):
    hub.declare("pm1/power", scalar_schema("W"), producer="pm1")
    ref, path = await start(hub, tmp_path, options={"chunk_rows": 150_000, "flush_interval": 3600})
    for k in range(250):
        await hub.publish("pm1/power", scalar_batch([float(k)], channel="pm1", unit="W", timestamps_ns=k))
    await drained(hub)
    status = await hub.command("storage", "status")
    assert status["rows"]["pm1/power"] == 0 and status["pending_rows"] == 250  # gathered, not written one by one
    big = 200_000  # 3.2 MB a batch: two of them pass the write threshold (4 MiB)
    for k in range(2):
        start_row = 250 + k * big
        await hub.publish(
            "pm1/power",
            scalar_batch(
                np.arange(start_row, start_row + big, dtype=float),
                channel="pm1",
                unit="W",
                timestamps_ns=np.arange(start_row, start_row + big),
            ),
        )
    await drained(hub)
    status = await hub.command("storage", "status")
    # whole chunks only (no compressed chunk is written twice); the rest waits for more rows or the flush
    assert status["rows"]["pm1/power"] == 300_000 and status["pending_rows"] == 250 + 2 * big - 300_000
    await hub.stop()
    values = open_run(path).table("pm1/power").column("value").to_numpy()
    np.testing.assert_array_equal(values, np.arange(250 + 2 * big, dtype=float))


async def test_a_stream_declared_after_the_start_is_recorded(hub, tmp_path):
    hub.declare("pm1/power", scalar_schema("W"), producer="pm1")
    ref, path = await start(hub, tmp_path, options={"flush_interval": 3600})
    await hub.publish("pm1/power", scalar_batch([1.0, 2.0], channel="pm1"))
    hub.declare("scope1/trace", vector_batch(np.zeros((1, 4)), channel="CH1", x0=0, dx=1).schema, producer="scope1")
    await hub.publish("scope1/trace", vector_batch(np.ones((3, 4)), channel="CH1", x0=0, dx=1))
    await hub.publish("pm1/power", scalar_batch([3.0], channel="pm1"))
    await hub.stop()
    run = open_run(path)
    assert run.table("pm1/power").column("value").to_pylist() == [1.0, 2.0, 3.0]
    assert run.table("scope1/trace").num_rows == 3 and run.complete


async def test_instrument_info_at_start_and_by_command(hub, tmp_path):
    hub.declare("pm1/power", scalar_schema("W"), producer="pm1")
    ref, path = await start(
        hub,
        tmp_path,
        instruments={"pm1": {"identity": {"model": "1830-C", "serial": "123"}}},
        run=RunInfo(name="t", config="[pm1]\nport = 'socket://127.0.0.1:5000'\n", notes="aligned"),
    )
    await hub.publish("pm1/power", scalar_batch([1.0], channel="pm1"))
    await hub.command(
        "storage", "instrument_info", laser={"identity": {"model": "MaiTai"}, "settings": {"wavelength_nm": 800.0}}
    )
    with pytest.raises(CommandError, match="instrument_info"):
        await hub.command("storage", "instrument_info", laser="not a dict")
    with pytest.raises(CommandError, match="unknown command 'rewind'"):
        await hub.command("storage", "rewind")
    await hub.publish("pm1/power", scalar_batch([2.0], channel="pm1"))
    await hub.stop()
    run = open_run(path)
    meta = run.metadata
    assert meta["instrument"]["pm1"]["identity"] == {"model": "1830-C", "serial": "123"}
    assert meta["instrument"]["laser"]["settings"]["wavelength_nm"] == 800.0
    assert isinstance(meta["configuration"], str) and "socket://" in meta["configuration"]  # the TOML text
    assert meta["notes"] == "aligned"
    assert run.table("pm1/power").num_rows == 2
    with h5py.File(path, "r") as f:
        assert f["entry/instrument/laser"].attrs["NX_class"] == "NXcollection"


async def test_a_stream_that_cannot_be_stored_is_counted_as_lost_and_the_rest_recorded(hub, tmp_path, caplog):
    odd = pa.schema([pa.field("timestamp_ns", pa.uint64()), pa.field("meta", pa.struct([("a", pa.int8())]))])
    hub.declare("odd/thing", odd, producer="odd")
    hub.declare("scope1/trace", vector_batch(np.zeros((1, 4)), channel="CH1", x0=0, dx=1).schema, producer="scope1")
    hub.declare("pm1/power", scalar_schema("W"), producer="pm1")
    ref, path = await start(hub, tmp_path)
    await hub.publish("odd/thing", pa.RecordBatch.from_pylist([{"timestamp_ns": 1, "meta": {"a": 1}}], schema=odd))
    await hub.publish("scope1/trace", vector_batch(np.ones((2, 4)), channel="CH1", x0=0, dx=1))
    await hub.publish("scope1/trace", vector_batch(np.ones((1, 5)), channel="CH1", x0=0, dx=1))  # another length
    await hub.publish("pm1/power", scalar_batch([1.0], channel="pm1"))
    status = await hub.command("storage", "flush")
    assert "'meta'" in status["skipped"]["odd/thing"] and "arrow_ipc" in status["skipped"]["odd/thing"]
    assert status["streams"]["odd/thing"]["lost"] == 1 and "scope1/trace" not in status["skipped"]
    assert ref.status is ActorStatus.RUNNING and status["rows"]["pm1/power"] == 1
    await hub.stop()
    assert open_run(path).table("scope1/trace").num_rows == 3  # a trace length change is stored
    assert any("odd/thing" in r.getMessage() for r in caplog.records if r.levelname == "ERROR")


class FlakyStorage(StorageActor):
    """Fails once after taking its 3rd batch, like a bug would: the supervisor restarts it,
    the failed instance writes what it had pending as it closes, the new one resumes the file."""

    failed = False

    async def on_batch(self, stream, batch):
        await super().on_batch(stream, batch)  # taken: pending in this instance
        if not FlakyStorage.failed and sum(self._pending_rows.values()) >= 30:
            FlakyStorage.failed = True
            raise RuntimeError("a bug")


async def test_a_restarted_actor_resumes_the_same_file(hub, tmp_path):
    hub.declare("pm1/power", scalar_schema("W"), producer="pm1")
    run, options = RunInfo(name="resume"), StorageOptions(data_dir=tmp_path)
    ref = hub.spawn("storage", lambda: FlakyStorage(hub, options, run), role=Role.SINK, inputs="pm1/*")
    for k in range(6):
        await hub.publish("pm1/power", scalar_batch(np.arange(10.0) + 10 * k, channel="pm1", timestamps_ns=k))
        await drained(hub)
    await hub.stop()
    assert ref.restarts == 1
    run_file = open_run(run_path(options, run))
    assert run_file.complete and run_file.table("pm1/power").column("value").to_pylist() == list(np.arange(60.0))


@pytest.mark.parametrize(
    "options, key",
    [
        ({"compression": "zstd"}, "storage.compression"),
        ({"image_compression": "blosc"}, "storage.image_compression"),
        ({"compression": 65000}, "storage.compression"),  # a filter id nobody registered
        ({"compression_level": 15}, "storage.compression_level"),
    ],
)
def test_bad_compression_options_are_refused_naming_the_key(tmp_path, options, key):
    with pytest.raises(ConfigError, match=key):
        StorageOptions(data_dir=tmp_path, **options)


def test_filters_this_hdf5_build_has_are_accepted(tmp_path):
    assert StorageOptions(data_dir=tmp_path, compression="lzf", compression_level=None).filter_args() == {
        "compression": "lzf",
        "shuffle": True,
    }


def test_compression_is_off_by_default_and_can_spare_the_floats(tmp_path):
    assert StorageOptions(data_dir=tmp_path).filter_args() == {}
    ints_only = StorageOptions(data_dir=tmp_path, compression="gzip", compress_floats=False)
    assert ints_only.filter_args(floating=True) == {}
    assert ints_only.filter_args() == {"compression": "gzip", "shuffle": True, "compression_opts": 1}


async def test_integer_columns_alone_are_compressed_when_floats_are_spared(hub, tmp_path):
    hub.declare("pm1/power", scalar_schema("W"), producer="pm1")
    options = {"compression": "gzip", "compress_floats": False}
    ref, path = await start(hub, tmp_path, "pm1/*", options=options)
    await hub.publish("pm1/power", scalar_batch(np.ones(10), channel="pm1", unit="W", timestamps_ns=np.arange(10)))
    await hub.stop()
    with h5py.File(path, "r") as f:
        g = f["entry/pm1_power"]
        assert g["timestamp_ns"].compression == "gzip" and g["value"].compression is None
        assert g["value"][:].tolist() == [1.0] * 10


async def test_a_stream_whose_datasets_cannot_be_created_fails_the_start_once_and_clearly(hub, tmp_path):
    hub.declare("pm1/power", scalar_schema("W"), producer="pm1")
    options = StorageOptions(data_dir=tmp_path, compression="gzip")
    object.__setattr__(options, "compression_level", 15)  # what HDF5 refuses at dataset creation, past validation
    ref, path = spawn_storage(hub, "pm1/*", options, RunInfo(name="bad"))
    await ref.wait_status(ActorStatus.FAILED)
    assert ref.restarts == 0
    error = hub.status()["actors"]["storage"]["error"]
    assert str(path) in error and "'pm1/power'" in error and "cannot create its datasets" in error
    with h5py.File(path, "r") as f:  # no half-created stream group left behind
        assert [k for k in f["entry"] if k.startswith("pm1")] == []
