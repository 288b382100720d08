"""Honest rates and units: achieved vs requested per stream, slow-stream alarms, camera frame drops,
a filter's configured sample_rate checked against the data, SQL output units that follow the query."""

from __future__ import annotations

import asyncio
import io
import json
import re
import time

import numpy as np
import pytest
from rich.console import Console

import arrowdaq
from arrowdaq.actors import ActorStatus
from arrowdaq.app.runner import Application
from arrowdaq.cli.main import main
from arrowdaq.cli.run_cmd import print_summary
from arrowdaq.data import scalar_batch, scalar_schema, unit_of
from arrowdaq.hub import Alarm, InstrumentManager, RateWatch
from arrowdaq.instruments import actor as instrument_actor
from arrowdaq.instruments.actor import spawn_instrument
from arrowdaq.instruments.driver import Driver, Stream
from arrowdaq.processors import build

from .configs import DROPPING_CAMERA, PM1, config_in, lab, processor, write_config
from .runs import Running
from .waiting import wait_until_async


def events_of(run_file) -> list[dict]:
    return arrowdaq.open_run(run_file).events.to_pylist()


async def test_a_device_slower_than_its_polling_rate_raises_an_alarm_in_status_summary_and_file(tmp_path):
    app = Application(config_in(tmp_path, lab(PM1, name="rates")))
    alarms: list[Alarm] = []
    app.hub.add_listener(lambda e: alarms.append(e) if isinstance(e, Alarm) else None)

    async def slow_device() -> None:
        await wait_until_async(lambda: app.table.servers, message="the simulator to start")
        app.table.servers[0].faults.extra_delay = 0.1  # each reply 100 ms late: at most ~10 of the 20 readings/s

    slow = asyncio.create_task(slow_device())
    async with Running(app) as run:
        await wait_until_async(lambda: alarms, message="the rate alarm")
        status = app.hub.status()["streams"]["pm1/power"]
        assert status["requested_per_s"] == 20.0 and status["rows_per_s"] < 16.0
    summary = run.summary
    await slow
    assert alarms[0].source == "pm1" and "pm1/power" in alarms[0].message and "below 80%" in alarms[0].message
    assert "20/s requested" in alarms[0].message
    stream = summary.streams["pm1/power"]
    assert stream.requested_per_s == 20.0 and stream.rows_per_s < 16.0
    assert "pm1/power" in summary.slow_streams
    console = Console(file=io.StringIO(), width=200, record=True)
    print_summary(summary, console)
    assert "slow: pm1/power has carried" in console.export_text()
    # the file: the alarm in the event log, achieved vs requested with the instrument
    assert any(e["kind"] == "alarm" and "below 80%" in e["message"] for e in events_of(summary.run_file))
    recorded = arrowdaq.open_run(summary.run_file).metadata["instrument"]["pm1"]["streams"]["power"]
    assert recorded["requested_per_s"] == 20.0
    assert recorded["achieved_per_s"] == pytest.approx(stream.rows_per_s, rel=0.05)
    assert recorded["rows"] == stream.rows


def test_camera_frame_drops_are_counted_in_status_summary_and_file(tmp_path, capsys):
    path = write_config(tmp_path, lab(DROPPING_CAMERA))
    # the reader takes at most 2 frames per poll (40/s) from a camera making 400/s: most are dropped
    assert main(["run", str(path), "--duration", "3", "--data-dir", str(tmp_path / "data")]) == 0
    out = capsys.readouterr().out
    run_file = next((tmp_path / "data").glob("*.h5"))
    run = arrowdaq.open_run(run_file)
    info = run.metadata["instrument"]["cam1"]
    dropped = info["streams"]["frames"]["dropped"]
    assert dropped > 100
    # the settings are read again at the end (not the 0 of the start); the stream's count is exact
    assert 0 < info["settings"]["dropped_frames"] <= dropped
    lost = [e for e in run.events.to_pylist() if e["kind"] == "lost" and e["source"] == "cam1"]
    assert sum(json.loads(e["details"])["rows"] for e in lost) == dropped  # every drop in the event log
    line = next(line for line in out.splitlines() if line.startswith("│ cam1/frames"))
    assert f"{dropped:,}" in line and "400.0" in line  # summary: dropped and requested frames/s
    assert run.table("cam1/frames").num_rows == info["streams"]["frames"]["rows"]


def ramp(n: int, rate_hz: float, start_s: float = 0.0):
    ts = (np.arange(n) / rate_hz + start_s) * 1e9 + 1.7e18
    return scalar_batch(np.sin(np.arange(n) / 7.0), channel="power", unit="W", timestamps_ns=ts.astype(np.uint64))


@pytest.mark.parametrize(("data_hz", "alarm"), [(10.0, True), (20.0, False), (20.5, False)])
async def test_a_filters_configured_sample_rate_is_checked_against_the_data(data_hz, alarm):
    hub = InstrumentManager()
    hub.declare("pm1/power", scalar_schema("W"), producer="pm1")
    params = {"response": "lowpass", "cutoff": 1.0, "sample_rate": 20.0}
    ref = hub.spawn("lp", build("filter", "lp", hub, ["pm1/power"], params), inputs="pm1/power")
    alarms: list[Alarm] = []
    hub.add_listener(lambda e: alarms.append(e) if isinstance(e, Alarm) else None)
    out = hub.subscribe("lp/*")
    try:
        for second in range(12):  # 12 s of data, one batch a second
            await hub.publish("pm1/power", ramp(int(data_hz), data_hz, start_s=second))
            await asyncio.wait_for(out.get(), 5)  # the filter handled it
    finally:
        await hub.stop()
    if alarm:
        assert len(alarms) == 1 and alarms[0].source == "lp"  # once, not once per batch
        assert "'pm1/power' arrives at 10 samples/s, not the configured sample_rate 20" in alarms[0].message
        assert "pm1/power" in (ref.last_error or "")
    else:
        assert alarms == []


SQL_CONFIG = lab(
    PM1,
    processor(
        "pm1_mw",
        "sql",
        "pm1/power",
        query="SELECT timestamp_ns, channel, value * 1000 AS value, 'mW' AS unit FROM batch",
    ),
    processor(
        "pm1_uw",
        "sql",
        "pm1/power",
        query="SELECT timestamp_ns, channel, value * 1e6 AS value, unit FROM batch",
        unit="uW",
    ),
    processor("pm1_same", "sql", "pm1/power", query="SELECT * FROM batch WHERE value > 0"),
)


def test_sql_output_units_follow_the_query_in_the_stream_file_inspect_and_summary(tmp_path, capsys):
    path = write_config(tmp_path, SQL_CONFIG)
    assert main(["run", str(path), "--duration", "2"]) == 0
    out = capsys.readouterr().out
    run_file = next((tmp_path / "data").glob("*.h5"))
    run = arrowdaq.open_run(run_file)
    expected = {"pm1_mw/result": "mW", "pm1_uw/result": "uW", "pm1_same/result": "W", "pm1/power": "W"}
    for stream, unit in expected.items():
        table = run.table(stream)
        assert unit_of(table.schema) == unit, stream
        assert set(table.column("unit").to_pylist()) == {unit}, stream
        assert any(line.startswith(f"│ {stream}") and line.rstrip(" │").endswith(unit) for line in out.splitlines())
    watts = run.table("pm1/power").column("value").to_numpy()
    assert np.allclose(run.table("pm1_mw/result").column("value").to_numpy(), watts * 1000)
    assert main(["inspect", str(run_file)]) == 0
    shown = capsys.readouterr().out
    for stream, unit in expected.items():
        assert re.search(rf"^\s+{stream} .*\n(.*\n){{2}}\s+units value \[{unit}\]$", shown, re.M), shown


def test_the_summary_shows_rows_published_and_stored_and_says_when_they_differ(tmp_path):
    from arrowdaq.app.runner import RunSummary, StreamTotals

    summary = RunSummary(tmp_path / "run.h5", 12.0)
    summary.streams = {
        "pm1/power": StreamTotals(120, 12, 10.0, "W", 10.0),
        "scope1/trace": StreamTotals(124, 124, 10.3, "V", 10.0),
    }
    summary.stored = {"pm1/power": 120, "scope1/trace": 31}
    console = Console(file=io.StringIO(), width=200, record=True)
    print_summary(summary, console)
    text = console.export_text()
    assert re.search(r"│ pm1/power\s+│\s+120 │\s+120 │", text)
    assert re.search(r"│ scope1/trace\s+│\s+124 │\s+31 │", text)
    assert "not all recorded: scope1/trace: 124 rows published, 31 in the run file" in text
    assert "pm1/power: 120 rows published" not in text


class SlowReads(Driver):
    """A scalar device answering in 1 ms: too slow to be polled at 2 kHz (polled in bursts)."""

    driver_name = "slow_reads"
    streams = (Stream("value", unit="V", poll_hz=2000.0),)

    def read(self, stream: str) -> float:
        time.sleep(0.001)  # the thing tested: a device that takes 1 ms to answer
        return 1.0


async def test_readings_a_fast_poll_gives_up_show_in_status_and_raise_the_rate_alarm(hub, monkeypatch):
    monkeypatch.setattr(instrument_actor, "MAX_BEHIND", 0.05)  # give up on owed readings after 50 ms, not 1 s
    alarms: list[Alarm] = []
    hub.add_listener(lambda e: alarms.append(e) if isinstance(e, Alarm) else None)
    watch = RateWatch(hub)
    ref = spawn_instrument(hub, "dev", SlowReads, lambda: SlowReads(None, name="dev"))
    await ref.wait_status(ActorStatus.RUNNING)
    await wait_until_async(lambda: hub.streams["dev/value"].missed > 0, message="a reading the poll gave up on")
    watch.check()  # the one judge of rates: missed readings alarm at once, without the 5 s hold
    status = hub.status()["streams"]["dev/value"]
    assert status["missed"] > 0 and status["slow"] is True
    assert [a.source for a in alarms] == ["dev"]
    assert "dev/value missed" in alarms[0].message and "2e+03/s requested" in alarms[0].message
    assert watch.slow["dev/value"] == alarms[0].message
    await hub.stop(timeout=10)
