"""Readers never hang: a run file cut short, or left by a writer killed as it was being created,
opens or gives one clear line naming the file, in real reader processes."""

from __future__ import annotations

import asyncio
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from arrowdaq.actors import ActorStatus
from arrowdaq.cli.main import main
from arrowdaq.data import scalar_batch, scalar_schema, vector_batch, vector_schema
from arrowdaq.errors import StorageError
from arrowdaq.hub import InstrumentManager
from arrowdaq.storage import RunInfo, StorageOptions, open_run, spawn_storage

from .test_storage_durability import run_child, stop_child
from .waiting import wait_until

#: A guard against a hang, far above the ~1 s a reader process takes: a hang fails the test.
HANG = 60


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "arrowdaq.cli.main", *args], capture_output=True, text=True, timeout=HANG
    )


def read_everything(path: Path) -> dict:
    run = open_run(path)
    return {"meta": run.metadata, "events": run.events, **{s: run.table(s) for s in run.streams}}


@pytest.fixture(scope="module")
def whole_run(tmp_path_factory) -> Path:
    """A complete run written over many flushes: its metadata is spread over the whole file."""

    async def record(data_dir: Path) -> Path:
        hub = InstrumentManager()
        hub.declare("pm1/power", scalar_schema("W"), producer="pm1")
        hub.declare("scope1/trace", vector_schema("V"), producer="scope1")
        options = StorageOptions(data_dir=data_dir, chunk_rows=256, flush_interval=3600)
        ref, path = spawn_storage(hub, "*/*", options, RunInfo(name="whole", run_id="W1"))
        await ref.wait_status(ActorStatus.RUNNING)
        rng = np.random.default_rng(1)
        for _ in range(60):
            await hub.publish("pm1/power", scalar_batch(rng.random(500), channel="pm1", unit="W"))
            await hub.publish(
                "scope1/trace", vector_batch(rng.random((2, 300)), channel="ch1", unit="V", x0=0.0, dx=1e-6)
            )
            await hub.command("storage", "flush")
        await hub.stop()
        return path

    return asyncio.run(record(tmp_path_factory.mktemp("whole")))


@pytest.mark.parametrize("fraction", [0.99, 0.5, 0.002])
def test_a_file_cut_short_gives_one_clear_line_from_every_reader(whole_run, tmp_path, fraction):
    cut = tmp_path / "cut.h5"
    shutil.copy(whole_run, cut)
    size = cut.stat().st_size
    with open(cut, "r+b") as f:
        f.truncate(int(size * fraction))

    inspect = cli("inspect", str(cut))
    assert inspect.returncode == 1 and "Traceback" not in inspect.stderr
    said = inspect.stdout + inspect.stderr
    assert f"cut short: {int(size * fraction)} bytes on disk, its superblock records {size}" in said
    if inspect.stderr:  # nothing readable: one line, naming the file
        assert inspect.stderr.count("\n") == 1 and f"error: {cut}: cannot" in inspect.stderr
    else:  # what could be read is shown, flagged
        assert "status   DAMAGED: cut short" in inspect.stdout

    export = cli("export", str(cut), "--stream", "scope1/trace", "--format", "csv", "-o", str(tmp_path / "out.csv"))
    if export.returncode:
        assert export.stderr.count("\n") == 1 and str(cut) in export.stderr and "Traceback" not in export.stderr

    reader = read_in_a_process(cut)
    if reader.returncode:
        last = reader.stderr.strip().splitlines()[-1]
        assert last.startswith(f"arrowdaq.errors.StorageError: {cut}: cannot") and "cut short" in last


def read_in_a_process(path) -> subprocess.CompletedProcess[str]:
    """Every stream of ``path`` read by a fresh process (a hang is caught by the timeout, not the suite's)."""
    code = f"import arrowdaq; r = arrowdaq.open_run({str(path)!r}); [r.table(s) for s in r.streams]"
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=HANG)


def test_empty_and_foreign_files_are_named_not_opened(tmp_path):
    empty, text = tmp_path / "empty.h5", tmp_path / "notes.h5"
    empty.touch()
    text.write_text("not a run\n" * 100)
    with pytest.raises(
        StorageError, match=f"{empty}: cannot open run file: empty: its writer stopped as it created it"
    ):
        open_run(empty)
    with pytest.raises(StorageError, match=r"notes.h5: cannot open run file: not an HDF5 file \(1000 bytes"):
        open_run(text)


KEEP_WRITING = """
async def main(data_dir):
    hub = InstrumentManager()
    for i in range(4):
        hub.declare(f"pm{i}/power", scalar_schema("W"), producer=f"pm{i}")
    ref, path = spawn_storage(hub, "*/*", StorageOptions(data_dir=data_dir, flush_interval=0.02),
                              RunInfo(name="killed", run_id="K1"))
    n = 0
    while True:
        if ref.status is ActorStatus.RUNNING:
            for i in range(4):
                await hub.publish(f"pm{i}/power", readings(n, 50))
            n += 50
        await asyncio.sleep(0.001)  # the writer's pace: a device publishing every millisecond

asyncio.run(main(sys.argv[1]))
"""


@pytest.mark.parametrize("delay_ms", [0, 30, 100, 300])
def test_a_writer_killed_any_time_after_the_file_appears_leaves_a_readable_file(tmp_path, delay_ms, capsys):
    path = tmp_path / "killed_K1.h5"
    proc = run_child(KEEP_WRITING, str(tmp_path))
    try:
        # the moment the run file appears is what this test is about: checked every 0.5 ms
        wait_until(lambda: path.exists() or proc.poll() is not None, HANG, "the run file to appear", every=0.0005)
        assert proc.poll() is None, proc.communicate()
        time.sleep(delay_ms / 1000)  # the thing tested: the kill comes this long after the file appears
        proc.send_signal(signal.SIGKILL)
    finally:
        stop_child(proc)
    everything = read_everything(path)
    assert everything["meta"]["run_id"] == "K1" and not everything["meta"]["complete"]
    for i in range(4):
        values = everything[f"pm{i}/power"].column("value").to_numpy()
        assert np.array_equal(values, np.arange(len(values), dtype=float))  # every row read is a row written
    assert main(["inspect", str(path)]) == 0 and "INCOMPLETE" in capsys.readouterr().out


def test_a_crashed_run_copied_incompletely_fails_at_once(whole_run, tmp_path):
    """With a writer's flags set the reader must use SWMR, which skips HDF5's size check and
    retried each bad metadata read forever: now the retries are bounded."""
    from arrowdaq.storage.unclosed import FLAGS_AT, lookup3

    cut = tmp_path / "crashed_cut.h5"
    raw = bytearray(whole_run.read_bytes())
    raw[FLAGS_AT] = 0x05  # what a killed SWMR writer leaves
    end = 12 + 4 * 8 + 4  # superblock version 3, 8-byte addresses, checksum last
    raw[end - 4 : end] = lookup3(bytes(raw[: end - 4])).to_bytes(4, "little")
    cut.write_bytes(bytes(raw[: int(len(raw) * 0.9)]))
    reader = read_in_a_process(cut)
    assert reader.returncode == 1
    assert reader.stderr.strip().splitlines()[-1].startswith(f"arrowdaq.errors.StorageError: {cut}: cannot read")


HOLD_CREATING = "import h5py, sys, time\nf = h5py.File(sys.argv[1], 'w')\nprint('open', flush=True)\ntime.sleep(60)"


async def test_the_next_run_removes_what_a_run_killed_while_creating_its_file_left(tmp_path, caplog):
    """A run killed in the first milliseconds leaves ``.NAME.creating`` (never a reading in it): the
    next run in the same folder removes it and says so; a file a live writer holds, or a fresh one, stays."""
    import os

    two_minutes_ago = time.time() - 120
    abandoned = tmp_path / ".killed_K0.h5.creating"
    with h5py.File(abandoned, "w") as f:
        f.attrs["run"] = "K0"
    young = tmp_path / ".starting_K2.h5.creating"
    with h5py.File(young, "w"):
        pass
    held = tmp_path / ".creating_now_K3.h5.creating"
    holder = subprocess.Popen([sys.executable, "-c", HOLD_CREATING, str(held)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "open"
        os.utime(abandoned, (two_minutes_ago, two_minutes_ago))
        os.utime(held, (two_minutes_ago, two_minutes_ago))
        hub = InstrumentManager()
        hub.declare("pm1/power", scalar_schema("W"), producer="pm1")
        ref, path = spawn_storage(hub, "*/*", StorageOptions(data_dir=tmp_path), RunInfo(name="next", run_id="N1"))
        await ref.wait_status(ActorStatus.RUNNING)
        await hub.stop()
    finally:
        holder.kill()
        holder.communicate(timeout=10)
    assert not abandoned.exists() and young.exists() and held.exists() and path.exists()
    removed = [r.getMessage() for r in caplog.records if "killed while creating" in r.getMessage()]
    assert removed == [f"removed {abandoned}: left by a run killed while creating its file (it held no readings)"]


def test_the_hdf5_library_for_bounded_retries_is_found_without_proc(tmp_path):
    """Where ``/proc/self/maps`` does not exist (macOS, Windows), h5py's own HDF5 is still found,
    so SWMR readers keep their bounded retries there too."""
    import ctypes

    from arrowdaq.storage.safeopen import hdf5_library_paths

    paths = hdf5_library_paths(maps=str(tmp_path / "no-proc-maps"))
    assert paths, "no HDF5 library found next to h5py"
    library = ctypes.CDLL(paths[0])
    assert hasattr(library, "H5Pset_metadata_read_attempts")
    major, minor, release = (ctypes.c_uint(), ctypes.c_uint(), ctypes.c_uint())
    assert library.H5get_libversion(ctypes.byref(major), ctypes.byref(minor), ctypes.byref(release)) >= 0
    assert (major.value, minor.value, release.value) == h5py.version.hdf5_version_tuple[:3]
