"""The application end to end: configuration errors, the demo, signals, failing devices."""

from __future__ import annotations

import re
import signal
from pathlib import Path

import h5py
import numpy as np
import pytest

import arrowdaq
from arrowdaq.actors import ActorStatus
from arrowdaq.app.config import load_config, parse_config
from arrowdaq.app.runner import Application
from arrowdaq.cli.main import main
from arrowdaq.errors import ConfigError

from .configs import DEAD_PORT, PM1, SMALL, instrument, lab, write_config
from .processes import DEMO_STREAMS, ArrowdaqProcess, record_demo, run_file_named
from .runs import published, run_until

# --- configuration errors ---------------------------------------------------------------------
BAD_CONFIGS = {
    "unknown driver": (
        '[[instruments]]\nid = "pm1"\ndriver = "newport_9999"\nport = "sim"\n',
        r"lab.toml: instruments\[0\].driver: unknown driver 'newport_9999' \(drivers: .*newport_1830c",
    ),
    "missing port": (
        '[[instruments]]\nid = "pm1"\ndriver = "newport_1830c"\n',
        r"lab.toml: instruments\[0\].port: required for driver 'newport_1830c'",
    ),
    "wrong type": (
        '[[instruments]]\nid = "pm1"\ndriver = "newport_1830c"\nport = "sim"\npoll_hz = "fast"\n',
        r"lab.toml: instruments\[0\].poll_hz: .*(number|float).* \(got 'fast'\)",
    ),
    "unknown key": (
        '[run]\nname = "x"\ndata_dri = "/tmp"\n',
        r"lab.toml: run.data_dri: unknown key",
    ),
    "unknown setting": (
        '[[instruments]]\nid = "hwp"\ndriver = "ell14"\nport = "sim"\nsettings = { adress = "2" }\n',
        r"lab.toml: instruments\[0\].settings.adress: unknown setting for 'ell14' \(settings: address",
    ),
    "processor input names no stream": (
        '[[instruments]]\nid = "pm1"\ndriver = "newport_1830c"\nport = "sim"\n'
        '[[processors]]\nid = "f"\nkind = "moving_average"\ninputs = ["pm2/power"]\n',
        r"processors\[0\].inputs: 'pm2/power' names no stream \(streams: pm1/power\)",
    ),
    "unknown processor kind": (
        '[[instruments]]\nid = "pm1"\ndriver = "newport_1830c"\nport = "sim"\n'
        '[[processors]]\nid = "f"\nkind = "fourier"\ninputs = ["pm1/power"]\n',
        r"lab.toml: processors\[0\].kind: unknown processor kind 'fourier' \(kinds: .*fft",
    ),
    "not TOML": ("[run\nname = 1\n", r"lab.toml: not valid TOML"),
    "wrong type inside settings": (
        '[[instruments]]\nid = "pm1"\ndriver = "newport_1830c"\nport = "sim"\nsettings = { timeout = "fast" }\n',
        r"lab.toml: instruments\[0\].settings.timeout: Input should be a valid number.* \(got 'fast'\)",
    ),
    "setting the driver refuses": (
        '[[instruments]]\nid = "hwp"\ndriver = "ell14"\nport = "sim"\nsettings = { address = 77 }\n',
        r"lab.toml: instruments\[0\].settings: hwp.address: '77' is not an Elliptec address 0-F",
    ),
    "reserved id": (
        '[[instruments]]\nid = "storage"\ndriver = "sim_camera"\n',
        r"lab.toml: instruments\[0\].id: 'storage' is reserved",
    ),
    "storage pattern that records nothing": (
        '[storage]\nstreams = ["pm9/*"]\n[[instruments]]\nid = "pm1"\ndriver = "newport_1830c"\nport = "sim"\n',
        r"lab.toml: storage.streams\[0\]: 'pm9/\*' names no stream \(streams: pm1/power\)",
    ),
    "default plot that is not recorded": (
        '[storage]\ndefault_plot = "pm9/power"\n[[instruments]]\nid = "pm1"\ndriver = "newport_1830c"\nport = "sim"\n',
        r"lab.toml: storage.default_plot: 'pm9/power' names no recorded stream \(streams: pm1/power;",
    ),
    "live service on the network without TLS": (
        '[server]\nhost = "0.0.0.0"\n',
        r"lab.toml: server: host '0.0.0.0' is not a loopback address .* give server.tls_cert and server.tls_key, "
        r"or set server.allow_insecure_remote = true",
    ),
}


@pytest.mark.parametrize("case", list(BAD_CONFIGS))
def test_bad_config_gives_one_clear_message_and_nonzero_exit(case, tmp_path, capsys):
    text, expected = BAD_CONFIGS[case]
    path = tmp_path / "lab.toml"
    path.write_text(text, encoding="utf-8")
    status = main(["run", str(path), "--duration", "1", "--data-dir", str(tmp_path / "data")])
    out, err = capsys.readouterr()
    assert status != 0
    assert re.search(expected, err), err
    assert "Traceback" not in err + out
    assert err.startswith("arrowdaq run: error: ")
    assert not (tmp_path / "data").exists() or not list((tmp_path / "data").iterdir())  # nothing was started


def test_an_unwritable_data_dir_is_refused_before_anything_starts(tmp_path, capsys):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the data directory should be")
    path = write_config(tmp_path, SMALL)
    assert main(["run", str(path), "--duration", "1", "--data-dir", str(blocker / "data")]) == 1
    err = capsys.readouterr().err
    assert f"lab.toml: run.data_dir: cannot write run files in '{blocker / 'data'}'" in err
    assert "Traceback" not in err


@pytest.mark.parametrize("duration", ["nan", "inf", "-1", "0", "soon"])
def test_a_duration_must_be_finite_seconds(duration, tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["run", str(write_config(tmp_path, SMALL)), "--duration", duration])
    assert "argument --duration: expected" in capsys.readouterr().err


def test_missing_config_file_is_named(tmp_path, capsys):
    assert main(["run", str(tmp_path / "nope.toml")]) == 1
    assert "nope.toml: no such configuration file" in capsys.readouterr().err


def test_environment_overrides_run_and_storage_keys(tmp_path):
    config = parse_config(
        {"run": {"name": "x"}},
        "lab.toml",
        environ={"ARROWDAQ_RUN_DATA_DIR": "/srv/data", "ARROWDAQ_STORAGE_FLUSH_INTERVAL_S": "0.5"},
    )
    assert config.run.data_dir == Path("/srv/data") and config.storage.flush_interval_s == 0.5
    with pytest.raises(ConfigError, match=r"<env>|storage.flush_interval_s"):
        parse_config({}, "lab.toml", environ={"ARROWDAQ_STORAGE_FLUSH_INTERVAL_S": "never"})


@pytest.mark.parametrize(
    ("storage", "environ", "filters"),
    [
        ({"compression": "none"}, {}, (None, None)),
        ({"compression": False}, {}, (None, None)),
        ({"compression": "gzip", "compress_floats": False}, {}, ("gzip", None)),
        ({"compression": "gzip"}, {"ARROWDAQ_STORAGE_COMPRESSION": "none"}, (None, None)),
    ],
)
async def test_compression_is_set_and_turned_off_from_the_config(storage, environ, filters, tmp_path):
    config = load_config(write_config(tmp_path, lab(PM1, storage=storage)), environ=environ)
    summary = await Application(config).run(duration=0.5)
    with h5py.File(summary.run_file, "r") as f:
        group = next(g for g in f["entry"].values() if g.attrs.get("arrowdaq_stream") == "pm1/power")
        assert (group["timestamp_ns"].compression, group["value"].compression) == filters


def test_shipped_configs_are_valid():
    package = Path(arrowdaq.__file__).parent / "configs"
    names = sorted(p.name for p in package.glob("*.toml"))
    assert "demo.toml" in names and "example_lab.toml" in names
    for path in package.glob("*.toml"):
        load_config(path, environ={})


# --- running --------------------------------------------------------------------------------------
async def test_an_optional_device_that_fails_at_start_is_reported_and_the_run_goes_on(tmp_path):
    text = SMALL + instrument("pm2", port=DEAD_PORT, required=False)
    config = load_config(write_config(tmp_path, text), environ={})
    app = Application(config)

    def pm2_away_and_pm1_recorded() -> bool:
        pm2 = app.hub.supervisor.actors.get("pm2")
        return pm2 is not None and pm2.status is ActorStatus.RECONNECTING and published(app, "pm1/power") > 10

    summary = await run_until(app, pm2_away_and_pm1_recorded, "pm2 Reconnecting and 10 rows of pm1/power", 60)
    assert "pm2" in summary.errors and "/dev/ttyARROWDAQ-NONE" in summary.errors["pm2"]
    assert summary.statuses["pm2"] == "Stopped"  # it kept trying to connect until the run ended
    assert summary.instruments_down["pm2"].startswith("Reconnecting: ConnectionLost")
    assert summary.exit_status == 0  # an optional instrument does not fail the run
    assert summary.streams["pm1/power"].rows > 10
    assert summary.streams["pm1_avg/average"].rows == summary.streams["pm1/power"].rows - 3
    run = arrowdaq.open_run(summary.run_file)
    assert run.complete and run.table("pm1/power").num_rows == summary.streams["pm1/power"].rows
    assert run.table("pm2/power").num_rows == 0


def test_demo_end_to_end(tmp_path):
    """The demo, stopped with Ctrl-C once every stream it declares has data in the run file."""
    path, _ = record_demo(tmp_path / "data")
    run = arrowdaq.open_run(path)
    assert run.complete
    assert set(run.streams) == set(DEMO_STREAMS)
    for stream, unit in DEMO_STREAMS.items():
        table = run.table(stream)
        assert table.num_rows > 0, f"{stream} has no rows"
        ts = table.column("timestamp_ns").to_numpy()
        assert np.all(np.diff(ts.astype(np.int64)) >= 0), f"{stream}: timestamps go back"
        assert arrowdaq.data.unit_of(table.schema) == unit, stream
    meta = run.metadata
    assert "optical-table-demo" in str(meta["configuration"]) and 'driver = "maitai"' in str(meta["configuration"])
    assert set(meta["instrument"]) == {"laser", "hwp", "stage", "pm1", "scope1", "cam1"}
    # the physics made it to the file: the half-wave plate turned and the power meter followed
    power = run.table("pm1/power").column("value").to_numpy()
    assert power.max() > 4 * power.min()


@pytest.mark.parametrize(
    ("signum", "times"),
    [(signal.SIGINT, 1), (signal.SIGTERM, 1), (signal.SIGINT, 3)],
    ids=["SIGINT", "SIGTERM", "impatient Ctrl-C x3"],
)
def test_a_signal_mid_run_leaves_a_complete_file(signum, times, tmp_path):
    path = write_config(tmp_path, SMALL)
    with ArrowdaqProcess("run", str(path)) as proc:
        proc.wait_for_rows(tmp_path / "data", {"pm1/power": 11}, timeout=120)  # mid-run: data is flowing
        out, err = proc.interrupt(signum, times)
    assert proc.returncode == 0, err
    run = arrowdaq.open_run(run_file_named(out + err))
    assert run.complete
    assert run.table("pm1/power").num_rows > 10
    # processors drained before storage closed: one average per reading once the 4-sample window is full
    assert run.table("pm1_avg/average").num_rows == run.table("pm1/power").num_rows - 3
