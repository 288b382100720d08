"""The run file's event log: status changes, alarms and reported events, read back and shown by inspect."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest

from arrowdaq.actors import Actor, ActorStatus
from arrowdaq.cli.main import main as cli
from arrowdaq.data import scalar_batch, scalar_schema
from arrowdaq.hub import Alarm
from arrowdaq.storage import RunInfo, StorageOptions, open_run, spawn_storage


class BrokenDevice(Actor):
    async def on_start(self):
        raise ConnectionError("port /dev/ttyUSB9 not found")


async def record(hub, tmp_path, **options):
    hub.declare("pm1/power", scalar_schema("W"), producer="pm1")
    ref, path = spawn_storage(hub, "pm1/*", StorageOptions(data_dir=tmp_path, **options), RunInfo(name="ev"))
    await ref.wait_status(ActorStatus.RUNNING)
    return path


async def test_failures_alarms_and_reported_events_are_in_the_run_file(hub, tmp_path, capsys):
    path = await record(hub, tmp_path)
    await hub.publish("pm1/power", scalar_batch([1.0, 2.0], channel="pm1", unit="W"))
    broken = hub.spawn("pm2", BrokenDevice)
    await broken.wait_status(ActorStatus.FAILED)
    hub._emit(Alarm("pm1", "pm1/power below 80 % of 10 Hz for 5 s"))
    hub.record_event(
        "gui@lab-pc",
        "command",
        "laser.set_wavelength(800) -> ok",
        client="gui@lab-pc",
        instrument="laser",
        command="set_wavelength",
        arguments={"nm": 800},
        result="ok",
    )
    await hub.stop()

    events = open_run(path).events
    assert events.column_names == ["time", "timestamp_ns", "source", "kind", "level", "message", "details"]
    rows = events.to_pylist()
    failed = [r for r in rows if r["source"] == "pm2" and r["level"] == "error"]
    assert len(failed) == 1 and failed[0]["kind"] == "status"
    assert failed[0]["message"] == "Failed: ConnectionError: port /dev/ttyUSB9 not found"
    restarts = [r for r in rows if r["source"] == "pm2" and r["message"].startswith("Restarting")]
    assert restarts and all(r["level"] == "warning" for r in restarts)
    alarm = next(r for r in rows if r["kind"] == "alarm")
    assert (alarm["source"], alarm["level"], alarm["message"]) == (
        "pm1",
        "warning",
        "pm1/power below 80 % of 10 Hz for 5 s",
    )
    command = next(r for r in rows if r["kind"] == "command")
    assert json.loads(command["details"]) == {
        "client": "gui@lab-pc",
        "instrument": "laser",
        "command": "set_wavelength",
        "arguments": {"nm": 800},
        "result": "ok",
    }
    assert events.column("time").to_pylist() == sorted(events.column("time").to_pylist())
    assert 0 < rows[0]["time"] < 60
    assert open_run(path).problems == 1 + len(restarts) + 1  # Failed, each Restarting, the alarm

    # plain h5py sees the same table
    with h5py.File(path, "r") as f:
        g = f["entry/events"]
        assert g.attrs["NX_class"] == "NXcollection"
        assert [v.decode() for v in g["kind"][()]] == events.column("kind").to_pylist()
        assert g["time"].attrs["units"] == "s" and g["time"].attrs["start"] == f["entry/start_time"][()].decode()

    assert cli(["inspect", str(path)]) == 0
    out = capsys.readouterr().out
    assert f"status   complete, with {open_run(path).problems} problems" in out
    assert "ERROR    pm2 [status] Failed: ConnectionError: port /dev/ttyUSB9 not found" in out
    assert "WARNING  pm1 [alarm] pm1/power below 80 % of 10 Hz for 5 s" in out
    assert "info     gui@lab-pc [command] laser.set_wavelength(800) -> ok" in out


async def test_a_run_without_problems_is_plainly_complete(hub, tmp_path, capsys):
    path = await record(hub, tmp_path)
    await hub.publish("pm1/power", scalar_batch([1.0], channel="pm1", unit="W"))
    await hub.stop()
    assert open_run(path).problems == 0
    assert cli(["inspect", str(path)]) == 0
    assert "status   complete\n" in capsys.readouterr().out


async def test_events_are_readable_while_the_run_is_recorded(hub, tmp_path):
    path = await record(hub, tmp_path, flush_interval=3600)
    hub.record_event("storage-test", "storage", "disk 95 % full", "warning")
    status = await hub.command("storage", "flush")
    assert status["events"] >= 2 and status["problems"] == 1  # storage Running, the warning
    events = open_run(path).events
    assert {"source": "storage-test", "message": "disk 95 % full"} in events.select(["source", "message"]).to_pylist()
    assert not open_run(path).complete


async def test_a_long_message_is_cut_at_a_character_boundary(hub, tmp_path):
    path = await record(hub, tmp_path)
    hub.record_event("pm1", "alarm", "µ" * 2000, "error", reading=np.float64(1.5).item())
    await hub.stop()
    row = [r for r in open_run(path).events.to_pylist() if r["source"] == "pm1"][0]
    assert row["message"].endswith("…") and set(row["message"][:-1]) == {"µ"}
    assert len(row["message"].encode()) <= 1024 and json.loads(row["details"]) == {"reading": 1.5}


def test_a_bad_level_is_refused(hub):
    with pytest.raises(ValueError, match="event level 'fatal'"):
        hub.record_event("x", "alarm", "boom", "fatal")
