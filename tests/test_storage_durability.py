"""Durability: kill -9 of the writer, disk full, a file that vanishes, an unwritable
directory, and a reader process following the file while it grows (SWMR)."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from arrowdaq.actors import ActorStatus
from arrowdaq.cli.main import main as cli
from arrowdaq.data import scalar_batch, scalar_schema
from arrowdaq.errors import StorageError
from arrowdaq.storage import StorageOptions, open_run, reader, spawn_storage

CHILD_PREAMBLE = """
import asyncio, json, sys
import numpy as np
from arrowdaq.actors import ActorStatus
from arrowdaq.data import image_batch, image_schema, scalar_batch, scalar_schema
from arrowdaq.hub import InstrumentManager
from arrowdaq.storage import RunInfo, StorageOptions, spawn_storage

def readings(start, n):
    return scalar_batch(np.arange(start, start + n, dtype=float), channel="pm1", unit="W",
                        timestamps_ns=np.arange(start, start + n, dtype=np.uint64))
"""


def run_child(body: str, *args: str) -> subprocess.Popen:
    code = CHILD_PREAMBLE + textwrap.dedent(body)
    return subprocess.Popen(
        [sys.executable, "-c", code, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def stop_child(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.communicate(timeout=30)


KILL_CHILD = """
async def main(data_dir):
    hub = InstrumentManager()
    hub.declare("pm1/power", scalar_schema("W"), producer="pm1")
    # no timer flush during the test: only the explicit flush counts
    ref, path = spawn_storage(hub, "pm1/*", StorageOptions(data_dir=data_dir, chunk_rows=1000, flush_interval=3600,
                                                           layout=sys.argv[2]), RunInfo(name="crash"))
    await ref.wait_status(ActorStatus.RUNNING)
    n = 0
    for _ in range(10):
        await hub.publish("pm1/power", readings(n, 700))
        n += 700
    status = await hub.command("storage", "flush")
    print(json.dumps({"path": str(path), "flushed": status["rows"]["pm1/power"]}), flush=True)
    while True:  # keep writing whole chunks, never flushed again, until killed
        await hub.publish("pm1/power", readings(n, 700))
        n += 700
        if n == 7000 + 20 * 700:
            print("writing", flush=True)
        await asyncio.sleep(0)  # a yield, not a wait: the storage actor writes between batches

asyncio.run(main(sys.argv[1]))
"""


@pytest.mark.parametrize("layout", ["nexus", "arrow_ipc"])
def test_kill_9_keeps_every_flushed_row_and_inspect_reports_incomplete(tmp_path, capsys, layout):
    proc = run_child(KILL_CHILD, str(tmp_path), layout)
    try:
        info = json.loads(proc.stdout.readline())
        assert proc.stdout.readline().strip() == "writing"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        stop_child(proc)
    assert info["flushed"] == 7000
    run = open_run(info["path"])
    table = run.table("pm1/power")
    assert table.num_rows >= info["flushed"]
    # every row there is a whole, correct row: a prefix of what was published
    np.testing.assert_array_equal(table.column("value").to_numpy(), np.arange(table.num_rows, dtype=float))
    np.testing.assert_array_equal(table.column("timestamp_ns").to_numpy(), np.arange(table.num_rows))
    assert set(table.column("channel").to_pylist()) == {"pm1"}
    assert not run.complete
    assert cli(["inspect", info["path"]]) == 0
    out = capsys.readouterr().out
    assert "INCOMPLETE" in out and "pm1/power" in out and f"rows {table.num_rows}" in out
    assert f"h5clear -s {info['path']}" in out  # what stock HDF5 tools need after a crash


def test_an_unclosed_arrow_ipc_file_is_read_without_being_changed_and_errors_say_why(tmp_path, monkeypatch):
    proc = run_child(KILL_CHILD, str(tmp_path), "arrow_ipc")
    try:
        info = json.loads(proc.stdout.readline())
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        stop_child(proc)
    path = Path(info["path"])
    before = path.read_bytes()
    assert open_run(path).table("pm1/power").num_rows >= info["flushed"]
    assert path.read_bytes() == before  # read as if `h5clear -s` had run, but not changed
    # where that cannot help either, the error is HDF5's reason for a plain read, and what to do
    monkeypatch.setattr(reader, "open_unclosed", lambda path: None)
    with pytest.raises(StorageError) as caught:
        open_run(path)
    message = str(caught.value)
    assert "already open for write" in message and "not already open for SWMR writing" not in message
    assert f"the writer did not close this file (a crash?); `h5clear -s {path}`" in message


DISK_FULL_CHILD = """
import resource, signal
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead
limit = int(sys.argv[2])
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

def frame(i):
    return image_batch(np.full((1, 128, 128), i, np.uint16), channel="cam1", frame_numbers=i, timestamps_ns=i)

async def main(data_dir):
    hub = InstrumentManager()
    hub.declare("cam1/frames", image_schema((128, 128), "uint16"), producer="cam1")
    hub.declare("pm1/power", scalar_schema("W"), producer="pm1")
    gui = hub.subscribe("*/*", delivery="latest", name="gui", max_batches=1000)
    ref, path = spawn_storage(hub, "*/*", StorageOptions(data_dir=data_dir, image_compression=None, compression=None),
                              RunInfo(name="full"))
    await ref.wait_status(ActorStatus.RUNNING)
    flushed = 0
    for i in range(400):  # 32 KiB a frame: far past the limit
        await hub.publish("cam1/frames", frame(i))
        await hub.publish("pm1/power", readings(i, 1))
        if i % 5 == 4 and ref.status is ActorStatus.RUNNING:
            try:
                flushed = (await hub.command("storage", "flush"))["rows"]["cam1/frames"]
            except Exception:
                pass
        if ref.status is ActorStatus.FAILED:
            break
        await asyncio.sleep(0)  # a yield, not a wait: the storage actor writes between frames
    await ref.wait_status(ActorStatus.FAILED, timeout=10)
    before = len(gui)
    for i in range(1000, 1020):  # acquisition goes on: nothing blocks on the dead writer
        await asyncio.wait_for(hub.publish("cam1/frames", frame(i)), 5)
    print(json.dumps({"path": str(path), "flushed": flushed, "gui_after": len(gui) - before,
                      "status": hub.status()["actors"]["storage"]}), flush=True)
    await hub.stop()

asyncio.run(main(sys.argv[1]))
"""


def test_disk_full_stops_recording_cleanly_and_keeps_what_was_flushed(tmp_path):
    proc = run_child(DISK_FULL_CHILD, str(tmp_path), str(2 * 2**20))
    try:
        out, err = proc.communicate(timeout=60)
    finally:
        stop_child(proc)
    assert proc.returncode == 0, err
    result = json.loads(out)
    status = result["status"]
    assert status["status"] == "Failed" and status["restarts"] == 0
    assert "StorageWriteError" in status["error"] and result["path"] in status["error"]
    assert "recording stopped" in status["error"] and "recording stopped" in err  # status and log
    # one clear line, logged once (HDF5's report is several lines of buffer addresses)
    path = re.escape(result["path"])
    assert re.search(
        f"failed: {path}: File too large \\(the file size limit is reached\\); recording stopped$", status["error"]
    )
    assert "\n" not in status["error"] and err.count("File too large") == 1
    assert result["gui_after"] == 20  # the other subscriber goes on
    assert result["flushed"] > 0
    table = open_run(result["path"]).table("cam1/frames")
    assert table.num_rows >= result["flushed"]
    pixels = table.column("pixels").combine_chunks().to_numpy_ndarray()
    np.testing.assert_array_equal(pixels[:, 0, 0], np.arange(table.num_rows))
    assert (pixels == np.arange(table.num_rows, dtype=np.uint16)[:, None, None]).all()


async def test_unwritable_directory_fails_with_the_path_and_acquisition_goes_on(hub, tmp_path):
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file where the data directory should be")
    hub.declare("pm1/power", scalar_schema("W"), producer="pm1")
    ref, path = spawn_storage(hub, "pm1/*", StorageOptions(data_dir=blocker / "data"))
    await ref.wait_status(ActorStatus.FAILED)
    error = hub.status()["actors"]["storage"]["error"]
    assert str(path) in error and "cannot create run file" in error and ref.restarts == 0
    await asyncio.wait_for(hub.publish("pm1/power", scalar_batch([1.0], channel="pm1")), 5)


async def test_vanished_file_is_a_clear_error(hub, tmp_path, caplog):
    hub.declare("pm1/power", scalar_schema("W"), producer="pm1")
    ref, path = spawn_storage(hub, "pm1/*", StorageOptions(data_dir=tmp_path))
    await ref.wait_status(ActorStatus.RUNNING)
    await hub.publish("pm1/power", scalar_batch([1.0, 2.0], channel="pm1"))
    await hub.command("storage", "flush")
    path.unlink()
    with pytest.raises(Exception, match="vanished"):
        await hub.command("storage", "flush")
    await ref.wait_status(ActorStatus.FAILED)
    assert "vanished" in hub.status()["actors"]["storage"]["error"]
    assert any("vanished" in r.getMessage() for r in caplog.records)
    await asyncio.wait_for(hub.publish("pm1/power", scalar_batch([3.0], channel="pm1")), 5)


FOLLOWER = """
import sys, time
from arrowdaq import open_run
path, stream, target = sys.argv[1], sys.argv[2], int(sys.argv[3])
seen, deadline = -1, time.monotonic() + 60
while seen < target and time.monotonic() < deadline:
    try:
        rows = open_run(path).table(stream).num_rows
    except Exception as exc:
        print("error", exc, flush=True)
        rows = seen
    if rows != seen:
        seen = rows
        print(rows, flush=True)
    time.sleep(0.01)  # the thing tested: a reader program that polls the growing file, as a user's would
"""


async def test_a_reader_process_follows_the_file_while_it_grows(hub, tmp_path):
    hub.declare("pm1/power", scalar_schema("W"), producer="pm1")
    ref, path = spawn_storage(hub, "pm1/*", StorageOptions(data_dir=tmp_path, flush_interval=3600))
    await ref.wait_status(ActorStatus.RUNNING)
    await hub.command("storage", "flush")
    reader = subprocess.Popen(
        [sys.executable, "-c", FOLLOWER, str(path), "pm1/power", "300"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        seen = [int(await asyncio.to_thread(reader.stdout.readline))]
        for k in range(3):
            await hub.publish("pm1/power", scalar_batch(np.full(100, k, float), channel="pm1"))
            await hub.command("storage", "flush")
            while seen[-1] < 100 * (k + 1):
                line = await asyncio.to_thread(reader.stdout.readline)
                assert line and not line.startswith("error"), line + reader.stderr.read()
                seen.append(int(line))
        assert ref.status is ActorStatus.RUNNING  # the writer still has the file open
    finally:
        if reader.poll() is None:
            reader.kill()
        reader.communicate(timeout=30)
    assert seen == [0, 100, 200, 300]
