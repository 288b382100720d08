"""``arrowdaq inspect`` and ``arrowdaq export`` on real run files."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import pytest

from arrowdaq.cli.main import main as cli
from arrowdaq.data import decode, image_batch, scalar_batch, scalar_schema
from arrowdaq.storage import open_run

from .test_storage_roundtrip import record


@pytest.fixture
async def run_file(hub, tmp_path):
    ts = 1_700_000_000_000_000_000 + np.arange(101, dtype=np.uint64) * 10_000_000  # 100 Hz for 1 s
    streams = {
        "pm1/power": [scalar_batch(np.linspace(0, 1, 101), channel="pm1", unit="mW", timestamps_ns=ts)],
        "cam1/frames": [
            image_batch(np.zeros((2, 4, 4), np.uint16), channel="cam1", frame_numbers=0, timestamps_ns=ts[:2])
        ],
    }
    hub.declare("pm1/power", scalar_schema("mW"), producer="pm1")
    return await record(hub, tmp_path, streams)


def test_inspect_prints_streams_rows_span_rate_units(run_file, capsys):
    assert cli(["inspect", str(run_file)]) == 0
    out = capsys.readouterr().out
    assert "complete" in out and "INCOMPLETE" not in out
    assert "pm1/power  (scalar, from pm1)" in out and "rows 101  span 1 s  100 rows/s" in out
    assert "value [mW]" in out and "cam1/frames  (image, from cam1)" in out and "pixels [counts]" in out
    assert "2023-11-14T22:13:20.000+00:00" in out


@pytest.mark.parametrize("fmt", ["parquet", "csv", "arrow"])
def test_export_round_trips_a_stream(run_file, tmp_path, fmt, capsys):
    out = tmp_path / f"power.{fmt}"
    assert cli(["export", str(run_file), "--stream", "pm1/power", "--format", fmt, "-o", str(out)]) == 0
    assert "101 rows" in capsys.readouterr().out
    original = open_run(run_file).table("pm1/power")
    if fmt == "parquet":
        back = pq.read_table(out)
    elif fmt == "csv":
        back = pcsv.read_csv(out, convert_options=pcsv.ConvertOptions(column_types=original.schema))
        assert out.read_text().splitlines()[1].startswith('"2023-11-14T22:13:20.000000000Z",1700000000000000000,')
        iso = back.column("time").cast(pa.timestamp("ns", "UTC")).cast(pa.int64()).to_pylist()
        assert iso == back.column("timestamp_ns").cast(pa.int64()).to_pylist()  # ISO time, exact to the ns
        back = back.drop_columns(["time"])
    else:
        back = pa.ipc.open_file(pa.memory_map(str(out))).read_all()
    assert back.to_pydict() == original.to_pydict()
    if fmt != "csv":
        assert back.schema.field("value").metadata[b"unit"] == b"mW"  # units travel with the data


def test_export_frames_to_arrow_keeps_the_tensor(run_file, tmp_path):
    out = tmp_path / "frames.arrow"
    assert cli(["export", str(run_file), "--stream", "cam1/frames", "--format", "arrow", "-o", str(out)]) == 0
    back = pa.ipc.open_file(pa.memory_map(str(out))).read_all()
    assert back.equals(decode(open_run(run_file).table("cam1/frames")))  # exports hold plain strings


def test_errors_name_the_file_and_the_stream(run_file, tmp_path, capsys):
    assert cli(["export", str(run_file), "--stream", "pm1/nope", "-o", str(tmp_path / "x.parquet")]) == 1
    err = capsys.readouterr().err
    assert str(run_file) in err and "'pm1/nope'" in err and "cam1/frames, pm1/power" in err
    assert (
        cli(["export", str(run_file), "--stream", "cam1/frames", "--format", "csv", "-o", str(tmp_path / "f.csv")]) == 1
    )
    assert "CSV" in capsys.readouterr().err
    missing = tmp_path / "missing.h5"
    assert cli(["inspect", str(missing)]) == 1
    assert f"{missing}: no such run file" in capsys.readouterr().err
    not_a_run = tmp_path / "plain.h5"
    import h5py

    with h5py.File(not_a_run, "w") as f:
        f["x"] = 1
    assert cli(["inspect", str(not_a_run)]) == 1
    assert "not an arrowdaq run file" in capsys.readouterr().err


def test_export_to_an_unwritable_place_names_the_output(run_file, tmp_path, capsys):
    out = tmp_path / "no-such-dir" / "power.csv"
    assert cli(["export", str(run_file), "--stream", "pm1/power", "--format", "csv", "-o", str(out)]) == 1
    err = capsys.readouterr().err
    assert f"{out}: cannot write the export" in err and "Traceback" not in err


def test_export_refuses_to_overwrite_the_run_file_or_an_existing_output(run_file, tmp_path, capsys):
    before = run_file.read_bytes()
    assert cli(["export", str(run_file), "--stream", "pm1/power", "--format", "csv", "-o", str(run_file)]) == 1
    assert "is the run file being exported" in capsys.readouterr().err
    assert cli(["export", str(run_file), "--stream", "pm1/power", "-o", str(run_file), "--force"]) == 1
    assert run_file.read_bytes() == before and open_run(run_file).table("pm1/power").num_rows == 101
    out = tmp_path / "power.csv"
    out.write_text("my notes\n")
    assert cli(["export", str(run_file), "--stream", "pm1/power", "--format", "csv", "-o", str(out)]) == 1
    assert f"{out}: exists; use --force" in capsys.readouterr().err and out.read_text() == "my notes\n"
    assert cli(["export", str(run_file), "--stream", "pm1/power", "--format", "csv", "-o", str(out), "--force"]) == 0
    assert pcsv.read_csv(out).num_rows == 101


def test_an_export_failing_midway_leaves_the_old_output_and_no_partial_file(run_file, tmp_path, monkeypatch):
    from arrowdaq.cli import export_cmd

    monkeypatch.setattr(export_cmd, "STEP_ROWS", 40)  # read and written in slices of 40 rows
    out = tmp_path / "power.parquet"
    out.write_bytes(b"previous export")
    steps = []

    def progress(done, total):
        steps.append((done, total))
        if len(steps) == 2:
            raise KeyboardInterrupt  # the user gives up mid-export

    with pytest.raises(KeyboardInterrupt):
        export_cmd.export_stream(run_file, "pm1/power", "parquet", out, progress, force=True)
    assert steps == [(40, 101), (80, 101)]
    assert out.read_bytes() == b"previous export"
    assert sorted(p.name for p in tmp_path.iterdir() if ".part" in p.name) == []
    export_cmd.export_stream(run_file, "pm1/power", "parquet", out, lambda *step: steps.append(step), force=True)
    assert steps[2:] == [(40, 101), (80, 101), (101, 101)]
    assert pq.read_table(out).to_pydict() == open_run(run_file).table("pm1/power").to_pydict()
