"""Storage never drops a stream silently: changing trace lengths, long strings and null traces are
stored; what truly cannot be stored is counted as lost, in status, file, event log and inspect."""

from __future__ import annotations

import io
import json
import re

import h5py
import numpy as np
import pyarrow as pa
from rich.console import Console

from arrowdaq.actors import ActorStatus
from arrowdaq.app.runner import ExitStatus, RunSummary, StreamTotals, stored_rows
from arrowdaq.cli.main import main as cli
from arrowdaq.cli.run_cmd import print_summary
from arrowdaq.data import scalar_batch, scalar_schema, vector_batch
from arrowdaq.data.schemas import plain_schema
from arrowdaq.data.validate import decode
from arrowdaq.storage import RunInfo, StorageOptions, open_run, spawn_storage

TS = 1_700_000_000_000_000_000


def trace(points: int, first: int, rows: int = 1, channel: str = "CH1") -> pa.RecordBatch:
    values = np.arange(rows * points, dtype=float).reshape(rows, points) + first
    return vector_batch(
        values,
        channel=channel,
        unit="V",
        x0=-1e-3,
        dx=1e-6,
        x_unit="s",
        timestamps_ns=TS + np.arange(first, first + rows),
    )


async def record(hub, tmp_path, stream: str, batches: list[pa.RecordBatch], **options):
    hub.declare(stream, batches[0].schema, producer=stream.split("/")[0])
    opts = StorageOptions(data_dir=tmp_path, **{"flush_interval": 3600, **options})
    ref, path = spawn_storage(hub, "*/*", opts, RunInfo(name="lossless"))
    await ref.wait_status(ActorStatus.RUNNING)
    for i, batch in enumerate(batches):
        await hub.publish(stream, batch)
        if i % 3 == 2:  # some batches gathered, some written alone
            await hub.command("storage", "flush")
    status = await hub.command("storage", "flush")
    await hub.stop()
    assert ref.status is ActorStatus.STOPPED and ref.last_error is None
    return path, status


def expected(batches: list[pa.RecordBatch]) -> pa.Table:
    return pa.Table.from_batches([decode(b) for b in batches], schema=plain_schema(batches[0].schema))


def decoded(table: pa.Table) -> pa.Table:
    return pa.Table.from_batches([decode(b) for b in table.to_batches()], schema=plain_schema(table.schema))


async def test_a_scope_whose_record_length_changes_mid_run_keeps_every_trace(hub, tmp_path, capsys):
    batches = [trace(1000, 0, 2), trace(1000, 2), trace(500, 3, 3), trace(2000, 6), trace(2000, 7), trace(1000, 8)]
    path, status = await record(hub, tmp_path, "scope1/trace", batches)
    assert status["rows"] == {"scope1/trace": 9} and status["skipped"] == {} and status["problems"] == 0
    assert status["streams"]["scope1/trace"] == {"published": 9, "received": 9, "stored": 9, "pending": 0, "lost": 0}
    table = open_run(path).table("scope1/trace")
    assert decoded(table).equals(expected(batches))
    lengths = [len(v) for v in table.column("values").to_pylist()]
    assert lengths == [1000, 1000, 1000, 500, 500, 500, 2000, 2000, 1000]
    with h5py.File(path, "r") as f:  # plain readers: a padded matrix, each row's length beside it
        g = f["entry/scope1_trace"]
        assert g["values"].shape == (9, 2000) and g["values_lengths"][()].tolist() == lengths
        assert g["values"][3, 499] == 502 and np.isnan(g["values"][3, 500:]).all()  # padded with NaN
        axis = g.attrs["axes"][1]
        assert len(g[axis]) == 2000 and np.allclose(np.diff(g[axis][()]), 1e-6)  # the x axis grew with the trace
    assert cli(["inspect", str(path)]) == 0
    out = capsys.readouterr().out
    assert "status   complete\n" in out and "rows 9 " in out


async def test_constant_trace_lengths_store_no_lengths_and_null_traces_round_trip(hub, tmp_path):
    same = [trace(64, 0, 3), trace(64, 3, 2)]
    path, _ = await record(hub, tmp_path, "scope1/trace", same)
    with h5py.File(path, "r") as f:
        assert f["entry/scope1_trace/values_lengths"].shape == (0,)  # the usual case costs nothing
    assert decoded(open_run(path).table("scope1/trace")).equals(expected(same))


async def test_channel_strings_of_any_length_are_stored_and_every_later_batch_too(hub, tmp_path):
    names = ["ai0", "x" * 300, "µ" * 700, "y" * 256, "z" * 512, "ai0", ""]
    batches = [
        scalar_batch([float(i), float(i) + 0.5], channel=name, unit="V", timestamps_ns=[2 * i, 2 * i + 1])
        for i, name in enumerate(names)
    ]
    path, status = await record(hub, tmp_path, "daq/v", batches)
    assert status["rows"] == {"daq/v": 14} and status["streams"]["daq/v"]["lost"] == 0 and not status["skipped"]
    table = open_run(path).table("daq/v")
    assert decoded(table).equals(expected(batches))
    assert table.column("channel").to_pylist()[::2] == names
    with h5py.File(path, "r") as f:  # a plain reader sees each value's first 256 bytes at its code
        g = f["entry/daq_v"]
        codes, entries = g["channel_codes"][()], g["channel_dictionary"][()]
        assert entries[codes[2]] == b"x" * 256 and entries[codes[0]] == b"ai0"


async def test_a_stream_that_cannot_be_stored_is_counted_as_lost_everywhere(hub, tmp_path, capsys):
    odd = pa.schema([pa.field("timestamp_ns", pa.uint64()), pa.field("pos", pa.struct([("x", pa.float64())]))])
    hub.declare("odd/pos", odd, producer="odd")

    def odd_batch(n: int) -> pa.RecordBatch:
        return pa.RecordBatch.from_arrays(
            [pa.array(np.arange(n, dtype=np.uint64)), pa.array([{"x": 1.0}] * n, odd.field("pos").type)], schema=odd
        )

    hub.declare("pm1/power", scalar_schema("W"), producer="pm1")
    ref, path = spawn_storage(hub, "*/*", StorageOptions(data_dir=tmp_path, flush_interval=3600), RunInfo(name="odd"))
    await ref.wait_status(ActorStatus.RUNNING)
    for n in (3, 4, 5):
        await hub.publish("odd/pos", odd_batch(n))
        await hub.publish("pm1/power", scalar_batch([1.0, 2.0], channel="pm1", unit="W", timestamps_ns=[1, 2]))
        await hub.command("storage", "flush")
    status = await hub.command("storage", "flush")
    await hub.stop()
    assert status["streams"]["odd/pos"] == {"published": 12, "received": 12, "stored": 0, "pending": 0, "lost": 12}
    assert status["streams"]["pm1/power"]["stored"] == 6 and status["recording"]
    events = open_run(path).events.to_pylist()
    lost = [e for e in events if e["kind"] == "lost"]
    assert sum(json.loads(e["details"])["rows"] for e in lost) == 12  # the first loss at once, the rest summed
    assert all(json.loads(e["details"])["stream"] == "odd/pos" and e["level"] == "error" for e in lost)
    assert any("not recording 'odd/pos'" in e["message"] for e in events)
    assert cli(["inspect", str(path)]) == 0
    out = capsys.readouterr().out
    assert f"complete, with {open_run(path).problems} problems" in out and "[lost] odd/pos: 3 row(s)" in out


def test_rows_missing_from_the_run_file_make_the_run_exit_5_naming_the_stream(tmp_path, capsys):
    summary = RunSummary(tmp_path / "run.h5", 10.0)
    summary.streams["pm1/power"] = StreamTotals(100, 10, 10.0, "W")
    summary.streams["odd/pos"] = StreamTotals(12, 3, 1.2, None)
    summary.streams["gui/only"] = StreamTotals(5, 5, 0.5, None)  # not recorded: nothing missing
    summary.stored = {"pm1/power": 100, "odd/pos": 0}
    assert summary.not_stored == {"odd/pos": 12} and summary.exit_status is ExitStatus.DATA_LOST == 5
    console = Console(file=io.StringIO(), width=200, record=True)
    print_summary(summary, console)
    table = console.export_text()
    assert re.search(r"odd/pos\s+│\s+12 │\s+0 │", table) and re.search(r"gui/only\s+│\s+5 │\s+│", table)
    assert "exit status 5: not in the run file: odd/pos (12 rows); its event log says why" in capsys.readouterr().out


def test_a_run_file_that_cannot_be_read_back_makes_the_run_exit_5(tmp_path, capsys):
    """Nothing in it can be shown to be stored: not a silent exit 0."""
    path = tmp_path / "run.h5"
    path.write_bytes(b"not HDF5")
    summary = RunSummary(path, 10.0)
    summary.streams["pm1/power"] = StreamTotals(100, 10, 10.0, "W")
    summary.stored, summary.unreadable = stored_rows(path)
    assert summary.stored is None and "run.h5" in summary.unreadable
    assert summary.exit_status is ExitStatus.DATA_LOST
    print_summary(summary, Console(file=io.StringIO(), width=200))
    assert f"exit status 5: the run file cannot be read back: {summary.unreadable}" in capsys.readouterr().out
