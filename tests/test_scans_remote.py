"""Scans driven remotely: a real daemon (``arrowdaq run``) in its own process, clients in others."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from arrowdaq import open_run
from arrowdaq.app.config import parse_config
from arrowdaq.cli.main import main
from arrowdaq.errors import CommandError, ConfigError

from .live_helpers import TABLE, DaemonProcess
from .processes import run_file_named

HWP_SCAN = {"axis": "hwp", "start": 0, "stop": 90, "num": 46}
#: Points of a scan that a test pauses, stops or aborts: it takes minutes unless ended, so the control lands
#: mid-scan however loaded the machine (a test ends it early; it never runs to its end).
LONG = 460

NAMED_SCANS = """
[[scans]]
name = "coarse"
plan = "scan"
args = ["hwp", 0, 90, 4]
detectors = "pm1"
reads = 3
doc = "four points, three readings each"
"""


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    d = DaemonProcess(tmp_path_factory.mktemp("scand"), extra=NAMED_SCANS)
    yield d
    d.stop()


@pytest.fixture
def daq(daemon):
    with daemon.client() as client:
        yield client
        state = client.action("scan", {"action": "state"})
        if state["state"] not in ("idle",):  # a failed test leaves no scan behind for the next one
            client.action("scan", {"action": "abort"})
            follow(client, state["scan_id"])


def follow(client, scan_id, until=lambda reply: "outcome" in reply, since=0):
    """Follow a scan through the ``state`` action (long-poll) until ``until(reply)``; returns that reply."""
    points: list[dict] = []
    while True:
        reply = client.action("scan", {"action": "state", "scan_id": scan_id, "since": since, "wait": 2.0})
        points += reply["points"]
        since += len(reply["points"])
        reply["all_points"] = points
        if until(reply):
            return reply


def submit(client, settle=0.05, **args):
    body = {"action": "submit", "plan": "scan", "args": {**HWP_SCAN, **args}, "detectors": ["pm1"], "settle": settle}
    return client.action("scan", body)


def test_describe_offers_the_plans_and_their_parameters(daq):
    description = daq.describe()
    assert "scan" in description["actions"]
    plans = {p["name"]: [q["name"] for q in p["params"]] for p in description["plans"]}
    assert {"count", "scan", "list_scan", "log_scan", "rel_scan", "grid_scan", "angular_power_scan"} <= set(plans)
    assert plans["scan"][:4] == ["axis", "start", "stop", "num"] and "detectors" in plans["scan"]
    assert daq.action("scan", {"action": "plans"}) == description["plans"]
    with pytest.raises(CommandError, match="unknown plan 'spiral'"):
        daq.action("scan", {"action": "submit", "plan": "spiral", "args": {}})


def test_pause_then_resume_remotely_measures_every_point_once_in_order(daq):
    started = submit(daq, settle=0.1, num=LONG)
    assert started["state"] == "running" and started["total"] == LONG
    scan_id = started["scan_id"]
    follow(daq, scan_id, until=lambda r: len(r["all_points"]) >= 5)
    daq.action("scan", {"action": "pause"})
    paused = follow(daq, scan_id, until=lambda r: r["state"] == "paused")
    done = paused["done"]
    assert 5 <= done < LONG
    # while paused the axes are free: another client may move the plate; resume brings it back first
    daq.command("hwp", "move_to", target=45.0)
    assert daq.action("scan", {"action": "state"})["done"] == done  # nothing measured while paused
    daq.action("scan", {"action": "resume"})
    follow(daq, scan_id, until=lambda r: len(r["all_points"]) >= done + 3)  # measuring again after the pause
    daq.action("scan", {"action": "stop"})  # ends after the current point
    end = follow(daq, scan_id)
    outcome, n = end["outcome"], end["outcome"]["points"]
    assert outcome["exit_status"] == "success" and "stopped by request" in outcome["reason"]
    assert done + 3 <= n < LONG
    assert [p["index"] for p in end["all_points"]] == list(range(n))  # every point once, in order, live too
    table = open_run(outcome["run_file"]).scans["scan"]
    assert table.column("index").to_pylist() == list(range(n))
    np.testing.assert_allclose(table.column("hwp").to_numpy(), np.linspace(0, 90, LONG)[:n])
    np.testing.assert_allclose(table.column("hwp_readback").to_numpy(), np.linspace(0, 90, LONG)[:n], atol=0.01)


def test_abort_remotely_leaves_a_valid_file_with_the_points_measured(daq):
    scan_id = submit(daq, settle=0.2, num=LONG)["scan_id"]
    follow(daq, scan_id, until=lambda r: len(r["all_points"]) >= 3)
    aborting = daq.action("scan", {"action": "abort"})
    assert aborting["state"] in ("aborting", "idle")
    outcome = follow(daq, scan_id)["outcome"]
    assert outcome["exit_status"] == "aborted" and 3 <= outcome["points"] < LONG, outcome
    with open_run(outcome["run_file"]) as run:
        assert run.metadata["scan"]["exit_status"] == "aborted"
        assert run.scans["scan"].column("index").to_pylist() == list(range(outcome["points"]))
    with pytest.raises(CommandError, match="no scan is running"):
        daq.action("scan", {"action": "resume"})


def test_a_move_of_the_scanned_axis_from_another_process_is_refused_naming_the_scan(daq, daemon):
    # 200 points, > 100 s: still running while the other process starts (an import takes 15 s on a loaded machine)
    scan_id = submit(daq, settle=0.5, num=200)["scan_id"]
    follow(daq, scan_id, until=lambda r: len(r["all_points"]) >= 1)
    other = subprocess.run(
        [sys.executable, "-m", "arrowdaq.cli.main", "do", "hwp", "move_to", "target=10"],
        env=daemon.env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    still = daq.action("scan", {"action": "state"})
    daq.action("scan", {"action": "abort"})
    follow(daq, scan_id)
    assert still["state"] == "running" and still["scan_id"] == scan_id  # the refusal came during the scan
    assert other.returncode == 1
    assert f"hwp.move_to refused: hwp is in use by scan 'scan' (run {scan_id})" in other.stderr
    assert "pause or abort the scan first" in other.stderr


PLAIN_SCAN = textwrap.dedent(
    """
    import json, sys
    import pyarrow.flight as flight

    address, token = sys.argv[1], sys.argv[2]
    client = flight.FlightClient(address)
    auth = flight.FlightCallOptions(headers=[(b"authorization", b"Bearer " + token.encode())])

    def scan(body):
        action = flight.Action("scan", json.dumps(body).encode())
        return json.loads(next(iter(client.do_action(action, auth))).body.to_pybytes())

    out = {"modules": sorted(m for m in sys.modules if m.startswith("arrowdaq"))}
    out["plans"] = [p["name"] for p in scan({"action": "plans"})]
    body = {"action": "submit", "plan": "list_scan", "args": ["hwp", [10, 20, 30]], "detectors": ["pm1"]}
    scan_id = scan(body)["scan_id"]
    since, indexes = 0, []
    while True:
        reply = scan({"action": "state", "scan_id": scan_id, "since": since, "wait": 2})
        indexes += [p["index"] for p in reply["points"]]
        since += len(reply["points"])
        if "outcome" in reply:
            break
    out["indexes"], out["outcome"] = indexes, reply["outcome"]
    try:
        scan({"action": "jump"})
    except flight.FlightServerError as exc:
        out["error"] = str(exc)
    print(json.dumps(out))
    """
)


def test_a_plain_pyarrow_flight_client_runs_a_scan(daq, daemon, tmp_path):
    script = tmp_path / "plain_scan.py"
    script.write_text(PLAIN_SCAN, encoding="utf-8")
    done = subprocess.run(
        [sys.executable, str(script), daemon.address, daemon.token], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["modules"] == []  # no arrowdaq import
    assert "scan" in out["plans"]
    assert out["indexes"] == [0, 1, 2]
    assert out["outcome"]["exit_status"] == "success" and out["outcome"]["points"] == 3
    assert out["outcome"]["run_file"].endswith(".h5")
    assert "scan: unknown action 'jump'" in out["error"]


def test_the_python_client_runs_a_scan_and_reports_progress_and_peak_statistics(daq):
    updates = []
    outcome = daq.scan("scan", "hwp", 0, 90, 10, detectors="pm1", progress=updates.append)
    assert outcome.exit_status == "success" and outcome.num_points == 10
    assert [p["index"] for u in updates for p in u.points] == list(range(10))  # every point once, in order
    assert updates[-1].state == "idle" and updates[-1].done == 10 and updates[0].total == 10
    with open_run(outcome.run_file) as run:
        table = run.scans["scan"]
        stored = run.metadata["scan"]["statistics"]["pm1"]
    assert table.column("pm1").to_pylist() == [p["pm1"] for p in outcome.points]
    assert outcome.statistics["pm1"]["max"] == pytest.approx(stored["max"])
    assert outcome.statistics["pm1"]["max_at"] == pytest.approx(stored["max_at"])


def test_an_interrupt_of_the_python_client_aborts_the_scan(daq):
    def interrupt_after_three(update):
        if update.done >= 3:
            raise KeyboardInterrupt  # what Ctrl-C (or a notebook's interrupt) raises in the waiting call

    with pytest.raises(KeyboardInterrupt):
        daq.scan("scan", "hwp", 0, 90, LONG, detectors=["pm1"], settle=0.2, progress=interrupt_after_three)
    last = daq.action("scan", {"action": "state"})
    assert last["state"] == "idle" and last["last"]["exit_status"] == "aborted", last  # ended, its file closed
    assert 3 <= last["last"]["points"] < LONG
    with open_run(last["last"]["run_file"]) as run:
        assert run.metadata["scan"]["exit_status"] == "aborted"


def run_cli_scan(daemon, *args):
    return subprocess.Popen(
        [sys.executable, "-m", "arrowdaq.cli.main", "scan", "--connect", *args],
        env=daemon.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_the_cli_runs_a_scan_in_the_daemon_with_the_live_table_and_peak_statistics(daq, daemon):
    proc = run_cli_scan(daemon, "scan", "hwp", "0", "90", "46", "-d", "pm1")
    out, err = proc.communicate(timeout=180)
    assert proc.returncode == 0, err
    lines = out.splitlines()
    assert lines[1].split() == ["index", "hwp", "hwp_readback", "pm1", "pm1_std", "elapsed"]
    rows = [line.split() for line in lines if line[:1].isdigit()]
    assert [int(r[0]) for r in rows] == list(range(46)) and float(rows[-1][1]) == 90
    assert "scan: success (completed), 46 points" in out and "Peak statistics" in out
    path = re.search(r"^scan file: (\S+\.h5)$", out, re.M)
    assert path and open_run(path.group(1)).scans["scan"].num_rows == 46
    assert daq.action("scan", {"action": "state"})["last"]["run_file"] == path.group(1)


def test_ctrl_c_on_the_cli_aborts_the_remote_scan_and_says_so(daq, daemon):
    proc = run_cli_scan(daemon, "scan", "hwp", "0", "90", str(LONG), "-d", "pm1", "--settle", "0.2")
    assert proc.stdout is not None
    for line in proc.stdout:  # the live lines: wait for the third point, then Ctrl-C
        if line.startswith("2 "):
            proc.send_signal(signal.SIGINT)
            break
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 1, err
    assert "Ctrl-C: aborting the scan in the daemon" in out
    assert re.search(rf"scan: aborted \(aborted by request after \d+ of {LONG} points\)", out), out
    path = re.search(r"^scan file: (\S+\.h5)$", out, re.M)
    assert path
    with open_run(path.group(1)) as run:
        assert run.metadata["scan"]["exit_status"] == "aborted" and 3 <= run.scans["scan"].num_rows < LONG


def test_a_configured_scan_runs_by_name_from_the_client_and_the_cli(daq, daemon):
    offered = daq.plans()
    assert [s["name"] for s in offered["scans"]] == ["coarse"] and offered["scans"][0]["plan"] == "scan"
    form = next(p for p in offered["plans"] if p["name"] == "coarse")  # the GUI's plan list offers it too
    assert {p["name"]: p.get("default") for p in form["params"]} == {"detectors": ["pm1"], "settle": 0.0, "reads": 3}
    for command in ("emission_on", "open_shutter"):  # a lit table: the power meter's noise gives each point a std
        daq.command("laser", command)
    outcome = daq.scan("coarse")
    assert outcome.exit_status == "success" and outcome.num_points == 4
    assert Path(outcome.run_file).name.startswith("coarse_")
    assert [p["hwp"] for p in outcome.points] == [0, 30, 60, 90]
    # reads = 3: a mean and a standard deviation per point, the std of the meter's 0.2 % noise. The meter shows
    # 4 digits, so three equal readings (std 0) are a real outcome at ~1 % of points: some point shows the noise
    stds = [p["pm1_std"] for p in outcome.points]
    assert all(0 <= s < 0.01 * p["pm1"] for s, p in zip(stds, outcome.points, strict=True)) and max(stds) > 0
    with pytest.raises(CommandError, match=r"scan 'coarse' is configured \(\[\[scans\]\]\): it takes no arguments"):
        daq.scan("coarse", "hwp", 0, 1, 2)
    with pytest.raises(CommandError, match=r"unknown plan 'fine' \(plans: .*; configured scans: coarse"):
        daq.scan("fine")
    as_the_gui_sends = {"action": "submit", "plan": "coarse", "args": {"detectors": "pm1", "settle": 0.0, "reads": 3}}
    gui = follow(daq, daq.action("scan", as_the_gui_sends)["scan_id"])["outcome"]
    assert gui["exit_status"] == "success" and gui["points"] == 4
    proc = run_cli_scan(daemon, "coarse")
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert "scan: success (completed), 4 points" in out and "/coarse_" in out


def test_a_configured_scan_runs_standalone_by_name(tmp_path, capsys):
    config = tmp_path / "lab.toml"
    config.write_text(TABLE.format(data_dir=tmp_path / "data", extra=NAMED_SCANS), encoding="utf-8")
    assert main(["scan", str(config), "coarse", "--data-dir", str(tmp_path / "data")]) == 0
    out = capsys.readouterr().out
    path = re.search(r"^scan file: (\S+\.h5)$", out, re.M)
    assert path and Path(path.group(1)).name.startswith("coarse_")
    table = open_run(path.group(1)).scans["scan"]
    assert table.column("hwp").to_pylist() == [0, 30, 60, 90]


@pytest.mark.parametrize(
    ("entry", "error"),
    [
        ('name = "scan"\nplan = "scan"\nargs = ["hwp", 0, 1, 2]', r"scans\[0\].name: 'scan' is a plan's name"),
        ('name = "a"\nplan = "spiral"', r"scans\[0\].plan: unknown plan 'spiral' \(plans: count, scan"),
        ('name = "a"\nplan = "scan"\nargs = ["hwp", 0, 1]', r"scans\[0\].args: .*missing 1 required positional"),
        ('name = "a"\nplan = "scan"\nargs = { axis = "hwp", strat = 0 }', r"scans\[0\].args: .*'strat'"),
        (
            'name = "a"\nplan = "scan"\nargs = ["hwq", 0, 1, 2]\ndetectors = "pm1"',
            r"scans\[0\].args: axis 'hwq' names no instrument",
        ),
        (
            'name = "a"\nplan = "scan"\nargs = ["hwp", 0, 1, 2]\ndetectors = "pm9"',
            r"scans\[0\].detectors\[0\]: 'pm9' names no",
        ),
        ('name = "a"\nplan = "scan"\nargs = ["hwp", 0, 1, 2]', r"scans\[0\].detectors: the plan reads no detector"),
        ('name = "a"\nplan = "scan"\nargs = ["hwp", 0, 1, 2]\ndetectors = "pm1"\nreads = 0', r"scans\[0\].reads: "),
        ('name = "a"\nplan = "scan"\nspeed = 3', r"scans\[0\].speed: unknown key"),
    ],
)
def test_a_bad_scans_entry_is_refused_naming_the_file_and_key(entry, error):
    import tomllib

    text = TABLE.format(data_dir="data", extra=f"[[scans]]\n{entry}\n")
    with pytest.raises(ConfigError, match=r"^lab.toml: " + error):
        parse_config(tomllib.loads(text), "lab.toml")


async def test_an_explicit_stream_reaches_only_subscribers_that_name_it(hub):
    from arrowdaq.data import scalar_schema

    recorder, named, live = hub.subscribe("*"), hub.subscribe("scan/*"), hub.subscribe("*", delivery="latest")
    hub.declare("scan/points", scalar_schema("x"), producer="scan", explicit=True)
    hub.declare("pm1/power", scalar_schema("W"), producer="pm1")
    assert recorder.streams == ["pm1/power"]
    assert named.streams == ["scan/points"] and live.streams == ["scan/points", "pm1/power"]
    late = hub.subscribe(["*", "scan/points"])  # subscribed after the declaration, naming it
    assert late.streams == ["scan/points", "pm1/power"]


def test_a_run_recording_everything_across_scans_of_different_columns_loses_nothing(tmp_path):
    daemon = DaemonProcess(tmp_path)
    try:
        with daemon.client() as daq:
            first = daq.scan("scan", "hwp", 0, 90, 4, detectors="pm1")
            second = daq.scan("count", 3, detectors=["pm1", "laser/power"])  # no axis, two detectors
            assert first.exit_status == second.exit_status == "success"
    finally:
        output = daemon.stop()
    assert daemon.process.returncode == 0, output  # 5 would mean rows published to a recorded stream were lost
    with open_run(run_file_named(output)) as run:
        assert "scan/points" not in run.streams  # each scan's table is in its own file
        messages = run.events.column("message").to_pylist()
    for outcome in (first, second):
        assert any(outcome.run_file in m and "ended: success" in m for m in messages), messages
        assert open_run(outcome.run_file).scans[outcome.plan].num_rows == outcome.num_points


def test_the_demo_daemon_runs_the_half_wave_plate_scan_from_the_cli_and_its_sequence_keeps_off_the_plate(tmp_path):
    demo = DaemonProcess(tmp_path, command=["demo", "--no-gui", "--data-dir", str(tmp_path / "data")])
    try:
        proc = run_cli_scan(demo, "scan", "hwp", "0", "90", "46", "-d", "pm1", "--settle", "0.05")
        out, err = proc.communicate(timeout=300)
    finally:
        output = demo.stop()
    assert proc.returncode == 0, err
    path = re.search(r"^scan file: (\S+\.h5)$", out, re.M)
    assert path, out
    table = open_run(path.group(1)).scans["scan"]
    power, angle = table.column("pm1").to_numpy(), table.column("hwp").to_numpy()
    assert table.num_rows == 46 and power.max() > 10 * power.min()  # the lit table follows Malus's law
    assert abs(angle[np.argmin(power)] - 45) <= 4  # dark at 45 degrees, from the demo table's truth
    assert "demo step hwp" not in output  # the demo's sequence left the plate to the scan, no refused moves
