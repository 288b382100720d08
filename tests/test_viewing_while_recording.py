"""Which readers open a run file while `arrowdaq run` records it, and which need it closed (README, "Viewing")."""

from __future__ import annotations

import shutil
import subprocess

import h5py
import pytest

import arrowdaq
from arrowdaq.errors import StorageError

from .configs import SMALL, write_config
from .processes import ArrowdaqProcess, run_file_in, run_file_named
from .waiting import wait_until


def silx_value(path: str):
    import silx.io

    with silx.io.open(path) as f:  # what `silx view` uses: it opens SWMR files as SWMR readers
        return f["entry/pm1_power/value"][()]


def h5py_swmr(path: str):
    with h5py.File(path, "r", swmr=True) as f:
        return f["entry/pm1_power/value"][()]


def h5py_plain(path: str):
    with h5py.File(path, "r") as f:
        return f["entry/pm1_power/value"][()]


def nexusformat_value(path: str):
    import nexusformat.nexus as nexusformat

    root = nexusformat.nxload(path)
    try:
        return root.entry.pm1_power.value.nxvalue
    finally:
        root.nxfile.close()


def h5dump(path: str) -> str:
    h5dump = shutil.which("h5dump")
    assert h5dump, "h5dump (Debian: hdf5-tools; scripts/bootstrap.sh installs it) is needed for this test"
    proc = subprocess.run([h5dump, "-d", "/entry/pm1_power/value", path], capture_output=True, text=True, timeout=30)
    if proc.returncode:
        raise OSError(proc.stderr.strip() or proc.stdout[-200:])
    return proc.stdout


def test_which_readers_open_a_run_file_while_it_records(tmp_path):
    with ArrowdaqProcess("run", str(write_config(tmp_path, SMALL))) as proc:
        path = str(proc.wait_for_rows(tmp_path / "data", {"pm1/power": 5}))
        # open while recording: arrowdaq itself, silx, h5py as an SWMR reader
        assert not arrowdaq.open_run(path).complete
        assert len(silx_value(path)) >= 5
        assert len(h5py_swmr(path)) >= 5
        # refused while recording: HDF5 readers that are not SWMR readers
        for reader in (h5py_plain, nexusformat_value, h5dump):
            with pytest.raises(Exception, match="open") as refused:
                reader(path)
            assert "already open for write" in str(refused.value) or "unable to open" in str(refused.value), reader
        out, err = proc.interrupt()
    assert proc.returncode == 0, err
    assert str(run_file_named(out)) == path
    # once the run is closed, every reader opens it
    run = arrowdaq.open_run(path)
    assert run.complete
    rows = run.num_rows("pm1/power")
    assert len(silx_value(path)) == len(h5py_swmr(path)) == len(h5py_plain(path)) == rows
    assert len(nexusformat_value(path)) == rows
    assert "DATASET" in h5dump(path)


def test_the_arrow_ipc_layout_is_refused_while_recording_with_a_clear_error(tmp_path):
    """Written without SWMR, the file changes under a reader: open_run says so instead of reading garbage."""
    config = write_config(tmp_path, SMALL.replace("[storage]\n", '[storage]\nlayout = "arrow_ipc"\n'))
    with ArrowdaqProcess("run", str(config)) as proc:
        path = wait_until(lambda: proc.running() and run_file_in(tmp_path / "data"), 60, "the run file")
        laid_out = path.stat().st_size
        wait_until(lambda: path.stat().st_size > laid_out, 60, "the writer to write more")  # the writer is at work
        with pytest.raises(StorageError, match="a writer holds the run file outside SWMR mode"):
            arrowdaq.open_run(path)
        _, err = proc.interrupt()
    assert proc.returncode == 0, err
    run = arrowdaq.open_run(path)  # closed: readable
    assert run.complete and "pm1/power" in run.streams
