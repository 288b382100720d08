"""`arrowdaq export` of several or all streams, joined on time, with ISO times in CSV and the umask's modes."""

from __future__ import annotations

import os
import stat

import numpy as np
import polars as pl
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import pytest

from arrowdaq.cli.main import main as cli
from arrowdaq.data import decode, scalar_batch, scalar_schema
from arrowdaq.storage import open_run

from .test_storage_roundtrip import canonical_streams, record

T0 = 1_700_000_000_000_000_000


@pytest.fixture
async def run_file(hub, tmp_path):
    streams = canonical_streams()
    # a power meter at 10 Hz and a rotation mount at 5 Hz, 3 ms late: scalars to join on time
    streams["pm1/power"] = [
        scalar_batch(np.arange(10.0), channel="pm1", unit="W", timestamps_ns=T0 + np.arange(10) * 10**8)
    ]
    streams["hwp/position"] = [
        scalar_batch(
            np.arange(5.0) * 10, channel="hwp", unit="deg", timestamps_ns=T0 + 3 * 10**6 + np.arange(5) * 2 * 10**8
        )
    ]
    hub.declare("pm1/power", scalar_schema("W"), producer="pm1")
    hub.declare("hwp/position", scalar_schema("deg"), producer="hwp")
    return await record(hub, tmp_path / "run", streams)


@pytest.fixture
def umask_022():
    old = os.umask(0o022)  # the default umask of most systems
    yield
    os.umask(old)


def test_every_stream_to_a_directory_of_parquet_files(run_file, tmp_path, capsys, umask_022):
    out = tmp_path / "export"
    assert cli(["export", str(run_file), "--format", "parquet", "-o", str(out)]) == 0
    run = open_run(run_file)
    assert sorted(p.name for p in out.iterdir()) == sorted(s.replace("/", "_") + ".parquet" for s in run.streams)
    for stream in run.streams:
        path = out / (stream.replace("/", "_") + ".parquet")
        assert pq.read_table(path).equals(decode(run.table(stream))), stream
        assert stat.S_IMODE(path.stat().st_mode) == 0o644, stream  # others may read it, as any new file
    printed = capsys.readouterr().out
    assert f"{out / 'pm1_power.parquet'}: 10 rows of 'pm1/power'" in printed
    assert cli(["export", str(run_file), "-o", str(out)]) == 1  # nothing replaced without --force
    assert "exists; use --force" in capsys.readouterr().err
    assert cli(["export", str(run_file), "-o", str(out), "--force"]) == 0


def test_several_streams_to_csv_files_with_iso_times(run_file, tmp_path, capsys, umask_022):
    out = tmp_path / "csv"
    args = ["export", str(run_file), "--stream", "pm1/power", "--stream", "hwp/position", "--format", "csv"]
    assert cli([*args, "-o", str(out)]) == 0
    lines = (out / "hwp_position.csv").read_text().splitlines()
    assert lines[0] == '"time","timestamp_ns","channel","value","unit"'
    assert lines[1] == '"2023-11-14T22:13:20.003000000Z",1700000000003000000,"hwp",0,"deg"'
    assert stat.S_IMODE((out / "pm1_power.csv").stat().st_mode) == 0o644
    # a trace cannot go to CSV: refused before any file is written
    refused = tmp_path / "refused"
    assert cli(["export", str(run_file), "--stream", "pm1/power", "--stream", "scope1/trace", "--format", "csv",
                "-o", str(refused)]) == 1  # fmt: skip
    assert "stream 'scope1/trace': CSV holds flat columns only" in capsys.readouterr().err
    assert not refused.exists()


def test_one_stream_to_one_file_gets_the_umask_mode(run_file, tmp_path, umask_022):
    out = tmp_path / "power.arrow"
    assert cli(["export", str(run_file), "--stream", "pm1/power", "--format", "arrow", "-o", str(out)]) == 0
    assert stat.S_IMODE(out.stat().st_mode) == 0o644
    os.umask(0o077)  # a private umask is honoured too
    assert cli(["export", str(run_file), "--stream", "pm1/power", "--format", "arrow", "-o", str(out), "--force"]) == 0
    assert stat.S_IMODE(out.stat().st_mode) == 0o600


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_scalar_streams_joined_on_time(run_file, tmp_path, capsys, fmt):
    out = tmp_path / f"joined.{fmt}"
    args = ["export", str(run_file), "--join", "--stream", "pm1/power", "--stream", "hwp/position"]
    assert cli([*args, "--tolerance", "0.05", "--format", fmt, "-o", str(out)]) == 0
    assert "10 rows, 2 streams joined on time" in capsys.readouterr().out
    if fmt == "parquet":
        table = pq.read_table(out)
        assert table.schema.field("hwp/position (deg)").metadata[b"unit"] == b"deg"
    else:
        table = pcsv.read_csv(out)
        assert table.column_names[0] == "time" and table.column("time")[0].as_py().microsecond == 0
    assert table.column("timestamp_ns").to_pylist() == (T0 + np.arange(10) * 10**8).tolist()
    assert table.column("pm1/power (W)").to_pylist() == list(np.arange(10.0))
    # every other power reading has a position 3 ms away; the ones between are 97 ms from any: null
    assert table.column("hwp/position (deg)").to_pylist() == [0.0, None, 10.0, None, 20.0, None, 30.0, None, 40.0, None]
    wide = tmp_path / "wide.parquet"
    assert cli([*args, "--tolerance", "0.1", "-o", str(wide)]) == 0
    positions = pl.read_parquet(wide)["hwp/position (deg)"].to_list()
    assert None not in positions  # within 100 ms every row finds one


def test_join_refuses_what_it_cannot_join(run_file, tmp_path, capsys):
    out = tmp_path / "joined.parquet"
    assert cli(["export", str(run_file), "--join", "--stream", "pm1/power", "--stream", "scope1/trace",
                "-o", str(out)]) == 1  # fmt: skip
    assert "stream 'scope1/trace' is not a scalar stream" in capsys.readouterr().err
    assert cli(["export", str(run_file), "--join", "--stream", "pm1/power", "-o", str(out)]) == 1
    assert "--join needs at least two streams" in capsys.readouterr().err
    assert not out.exists()
    assert cli(["export", str(run_file), "--join", "-o", str(out)]) == 0  # every scalar stream
    joined = pq.read_table(out)
    assert joined.column_names[:2] == ["timestamp_ns", "pm1/power (W)"]  # the densest stream gives the rows
    assert joined.num_rows == 10 and "hwp/position (deg)" in joined.column_names
