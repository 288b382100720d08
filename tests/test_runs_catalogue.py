"""The catalogue of runs: `arrowdaq runs DIR` and `arrowdaq.runs(DIR)` over real run files."""

from __future__ import annotations

import os
import shutil
import stat
import time
from datetime import UTC, datetime

import numpy as np
import pytest

import arrowdaq
from arrowdaq.cli.main import main
from arrowdaq.data import scalar_batch, scalar_schema, vector_batch
from arrowdaq.hub.events import RunEvent
from arrowdaq.hub.streams import StreamSpec
from arrowdaq.storage import RunInfo, StorageOptions, run_path
from arrowdaq.storage.catalogue import INDEX_NAME
from arrowdaq.storage.nexus import NexusWriter

TRACE = vector_batch(np.ones((2, 8)), channel="CH1", unit="V", x0=0.0, dx=1e-6, x_unit="s", timestamps_ns=[1, 2])


def write_run(data_dir, name: str, operator: str, sample: str, notes: str = "", problems: int = 0, crash=False) -> str:
    """One real run file through the storage writer; a crash leaves it as `kill -9` does (no completion)."""
    info = RunInfo(name=name, operator=operator, sample=sample, notes=notes)
    options = StorageOptions(data_dir=data_dir)
    specs = [StreamSpec("pm1/power", scalar_schema("W"), producer="pm1"), StreamSpec("scope1/trace", TRACE.schema)]
    writer = NexusWriter(run_path(options, info), options, info)
    writer.open(specs)
    now = time.time_ns()
    writer.append(
        "pm1/power", [scalar_batch(np.arange(5.0), channel="pm1", unit="W", timestamps_ns=now + np.arange(5))]
    )
    writer.append("scope1/trace", [TRACE])
    writer.append_events([RunEvent("pm1", "alarm", f"problem {k}", level="warning") for k in range(problems)])
    writer.flush()
    if crash:
        writer.abandon()
    else:
        writer.close()
    return info.run_id


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    """20 runs: two operators, three samples, 3 crashed, 4 with problems; `cutoff` falls between run 10 and 11."""
    tmp_path = tmp_path_factory.mktemp("runs")
    made, cutoff = {}, None
    for k in range(20):
        if k == 10:
            cutoff = datetime.now(UTC)
        run_id = write_run(
            tmp_path,
            name=f"scan{k:02d}",
            operator="Ada Lovelace" if k % 2 else "Grace Hopper",
            sample=f"BBO-{k % 3}",
            notes="after realignment" if k == 7 else "",
            problems=k % 5 == 1 and (k % 3) + 1,
            crash=k in (3, 12, 19),
        )
        made[run_id] = k
    return tmp_path, made, cutoff


@pytest.fixture
def twenty_runs(recorded, tmp_path):
    """A copy of the 20 runs (the index as the test leaves it stays with the copy)."""
    source, made, cutoff = recorded
    shutil.copytree(source, tmp_path / "data")
    return tmp_path / "data", made, cutoff


def test_runs_lists_every_run_with_its_status_and_filters(twenty_runs, capsys):
    data, made, cutoff = twenty_runs
    started = time.perf_counter()
    df = arrowdaq.runs(data)
    cold = time.perf_counter() - started
    started = time.perf_counter()
    assert arrowdaq.runs(data).equals(df)
    warm = time.perf_counter() - started
    print(f"\n20 runs: listed in {cold:.3f} s without the index, {warm:.3f} s with it")  # measured, not asserted
    assert df.height == 20 and set(df["run_id"]) == set(made)
    by_id = {row["run_id"]: row for row in df.iter_rows(named=True)}
    for run_id, k in made.items():
        row = by_id[run_id]
        assert row["name"] == f"scan{k:02d}" and row["sample"] == f"BBO-{k % 3}"
        assert row["streams"] == ["pm1/power", "scope1/trace"]
        if k in (3, 12, 19):
            assert row["status"] == "incomplete" and not row["complete"]
            assert row["length_s"] is not None and row["length_s"] >= 0  # up to the last row flushed
        elif k % 5 == 1:
            n = (k % 3) + 1
            assert row["status"] == f"complete, {n} problem{'s' * (n != 1)}" and row["problems"] == n
        else:
            assert row["status"] == "complete" and row["problems"] == 0 and row["length_s"] > 0
    assert df["start"].is_sorted(descending=True)  # newest first

    assert set(arrowdaq.runs(data, sample="bbo-2")["run_id"]) == {r for r, k in made.items() if k % 3 == 2}
    assert set(arrowdaq.runs(data, operator="grace")["run_id"]) == {r for r, k in made.items() if k % 2 == 0}
    assert set(arrowdaq.runs(data, since=cutoff)["run_id"]) == {r for r, k in made.items() if k >= 10}
    assert set(arrowdaq.runs(data, text="REALIGNMENT")["run_id"]) == {r for r, k in made.items() if k == 7}
    assert arrowdaq.runs(data, text="scope1/trace").height == 20

    assert main(["runs", str(data)]) == 0
    out = capsys.readouterr().out
    assert "20 run(s)" in out and all(run_id in out for run_id in made)
    assert out.count("incomplete") == 3 and "complete, 2 problems" in out
    assert main(["runs", str(data), "--operator", "ada", "--sample", "BBO-1", "--since", cutoff.isoformat()]) == 0
    out = capsys.readouterr().out
    expected = {r for r, k in made.items() if k % 2 == 1 and k % 3 == 1 and k >= 10}
    assert f"{len(expected)} run(s)" in out and all(r in out for r in expected)
    assert not any(r in out for r in set(made) - expected)
    assert main(["runs", str(data), "--since", "yesterday"]) == 1
    assert "since: expected an ISO 8601 date" in capsys.readouterr().err


def test_the_index_is_rebuilt_from_the_files(twenty_runs):
    data, made, _ = twenty_runs
    first = arrowdaq.runs(data)
    index = data / INDEX_NAME
    assert index.exists()
    assert stat.S_IMODE(index.stat().st_mode) == 0o666 & ~_umask()  # readable by others with the default umask
    index.unlink()
    assert arrowdaq.runs(data).equals(first)  # rebuilt, same catalogue
    assert index.exists()
    index.write_text("{ not json", encoding="utf-8")  # damaged: rebuilt too
    assert arrowdaq.runs(data).equals(first)
    # the files are the truth: a new run appears, a deleted one goes, a damaged one is named
    newest = write_run(data, name="late", operator="Ada", sample="BBO-9")
    gone = next(iter(made))
    os.unlink(next(data.glob(f"*{gone}.h5")))
    (data / "broken.h5").write_bytes(b"not HDF5 at all")
    df = arrowdaq.runs(data)
    assert newest in set(df["run_id"]) and gone not in set(df["run_id"]) and df.height == 21
    broken = df.filter(df["path"].str.ends_with("broken.h5")).row(0, named=True)
    assert broken["status"].startswith("unreadable: ") and "broken.h5" in broken["status"]


def test_a_missing_data_directory_is_an_error(tmp_path, capsys):
    assert main(["runs", str(tmp_path / "nowhere")]) == 1
    assert "nowhere: no such data directory" in capsys.readouterr().err


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
