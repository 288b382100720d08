"""Another process holding the run file (a viewer, ``open_run`` in a notebook) while it is
recorded: recording goes on, the run is completed, instrument info is kept."""

from __future__ import annotations

import subprocess
import sys

import h5py
import pytest

from arrowdaq.actors import ActorStatus
from arrowdaq.data import scalar_batch, scalar_schema
from arrowdaq.storage import RunInfo, StorageOptions, open_run, spawn_storage

#: The thing tested: a viewer that holds the run file open (until the test kills it).
HOLD = "import h5py, sys, time\nf = h5py.File(sys.argv[1], 'r', swmr=True)\nprint('open', flush=True)\ntime.sleep(60)"


@pytest.fixture
def viewer():
    """Start a process holding a file open as an SWMR reader, like silx or h5web."""
    procs: list[subprocess.Popen] = []

    def hold(path) -> subprocess.Popen:
        proc = subprocess.Popen([sys.executable, "-c", HOLD, str(path)], stdout=subprocess.PIPE, text=True)
        procs.append(proc)
        assert proc.stdout.readline().strip() == "open"
        return proc

    yield hold
    for proc in procs:
        proc.kill()
        proc.communicate(timeout=10)


async def recording(hub, tmp_path):
    hub.declare("pm1/power", scalar_schema("W"), producer="pm1")
    ref, path = spawn_storage(
        hub, "pm*/*", StorageOptions(data_dir=tmp_path, flush_interval=3600), RunInfo(name="held")
    )
    await ref.wait_status(ActorStatus.RUNNING)
    await hub.publish("pm1/power", scalar_batch([1.0, 2.0], channel="pm1", unit="W"))
    await hub.command("storage", "flush")
    return ref, path


async def test_a_reader_holding_the_file_does_not_keep_the_run_from_completing(hub, tmp_path, viewer):
    ref, path = await recording(hub, tmp_path)
    viewer(path)
    await hub.publish("pm1/power", scalar_batch([3.0], channel="pm1", unit="W"))
    await hub.stop()
    assert ref.status is ActorStatus.STOPPED and ref.last_error is None
    run = open_run(path)
    assert run.complete and run.metadata["end_time"].startswith("20")
    assert run.table("pm1/power").column("value").to_pylist() == [1.0, 2.0, 3.0]


async def test_instrument_info_sent_while_a_reader_holds_the_file_is_recorded(hub, tmp_path, viewer):
    ref, path = await recording(hub, tmp_path)
    viewer(path)
    info = {
        "identity": {"model": "MaiTai", "serial": "S/N 7"},
        "settings": {"wavelength_nm": 800.0, "note": "x" * 3000},
    }
    status = await hub.command("storage", "instrument_info", laser=info)
    assert status["recording"] and status["warnings"] == []
    assert open_run(path).metadata["instrument"]["laser"] == info  # readable while recording
    await hub.publish("pm1/power", scalar_batch([3.0], channel="pm1", unit="W"))
    await hub.stop()
    run = open_run(path)
    assert run.complete and run.metadata["instrument"]["laser"] == info
    assert run.table("pm1/power").num_rows == 3


async def test_instrument_info_becomes_groups_when_nobody_holds_the_file_at_the_end(hub, tmp_path):
    ref, path = await recording(hub, tmp_path)
    await hub.command("storage", "instrument_info", laser={"identity": {"model": "MaiTai"}})
    await hub.stop()
    with h5py.File(path, "r") as f:
        assert f["entry/instrument/laser/identity/model"][()] == b"MaiTai"
        assert f["entry/instrument/late_info_json"].shape == (0,)
    assert open_run(path).metadata["instrument"] == {"laser": {"identity": {"model": "MaiTai"}}}


async def test_a_stream_declared_late_while_a_reader_holds_the_file_is_skipped_not_fatal(hub, tmp_path, viewer, caplog):
    ref, path = await recording(hub, tmp_path)
    holder = viewer(path)
    hub.declare("pm2/power", scalar_schema("W"), producer="pm2")
    await hub.publish("pm2/power", scalar_batch([5.0], channel="pm2", unit="W"))
    await hub.publish("pm1/power", scalar_batch([3.0], channel="pm1", unit="W"))
    status = await hub.command("storage", "flush")
    assert "holds the run file open" in status["skipped"]["pm2/power"]
    assert status["recording"] and status["error"] is None and status["rows"]["pm1/power"] == 3
    assert any("pm2/power" in r.getMessage() for r in caplog.records if r.levelname == "ERROR")
    holder.kill()
    holder.communicate(timeout=10)
    await hub.publish("pm1/power", scalar_batch([4.0], channel="pm1", unit="W"))
    await hub.stop()
    run = open_run(path)
    assert run.complete and run.streams == ["pm1/power"]
    assert run.table("pm1/power").column("value").to_pylist() == [1.0, 2.0, 3.0, 4.0]
