"""Which readers open a run file while `arrowdaq run` records it, and which need it closed (README, "Viewing")."""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import time

import h5py
import pytest

import arrowdaq
from arrowdaq.errors import StorageError

from .test_app import SMALL, arrowdaq_cmd, write_config


def _rows(data) -> tuple[str, int] | None:
    """The run file in ``data`` and the power meter rows flushed so far (None before it has any)."""
    files = list(data.glob("*.h5")) if data.exists() else []
    if not files:
        return None
    try:
        return str(files[0]), arrowdaq.open_run(files[0]).num_rows("pm1/power")
    except StorageError:  # the moment the writer lays the file out
        return None


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
    config = write_config(tmp_path, SMALL)
    proc = subprocess.Popen(arrowdaq_cmd("run", str(config)), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        data, deadline, found = tmp_path / "data", time.monotonic() + 60, None
        while time.monotonic() < deadline:  # the condition: rows flushed to the file
            found = _rows(data)
            if found and found[1] >= 5:
                break
            time.sleep(0.05)
        assert found and found[1] >= 5, "no rows recorded within 60 s"
        path = found[0]
        # open while recording: arrowdaq itself, silx, h5py as an SWMR reader
        assert not arrowdaq.open_run(path).complete
        assert len(silx_value(path)) >= 5
        assert len(h5py_swmr(path)) >= 5
        # refused while recording: HDF5 readers that are not SWMR readers
        for reader in (h5py_plain, nexusformat_value, h5dump):
            with pytest.raises(Exception, match="open") as refused:
                reader(path)
            assert "already open for write" in str(refused.value) or "unable to open" in str(refused.value), reader
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert re.search(r"^run file: (\S+\.h5)", out, re.M).group(1) == path
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
    proc = subprocess.Popen(arrowdaq_cmd("run", str(config)), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        data, deadline, path = tmp_path / "data", time.monotonic() + 60, None
        while time.monotonic() < deadline and path is None:
            path = next(data.glob("*.h5"), None) if data.exists() else None
            time.sleep(0.05)
        laid_out = path.stat().st_size
        while time.monotonic() < deadline and path.stat().st_size == laid_out:  # until the writer writes more
            time.sleep(0.05)
        assert path.stat().st_size > laid_out, "nothing written within 60 s"  # the writer is at work
        with pytest.raises(StorageError, match="a writer holds the run file outside SWMR mode"):
            arrowdaq.open_run(path)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    run = arrowdaq.open_run(path)  # closed: readable
    assert run.complete and "pm1/power" in run.streams
