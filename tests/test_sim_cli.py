"""``arrowdaq sim`` run as a user runs it: a subprocess that serves until SIGTERM."""

from __future__ import annotations

import signal
import subprocess
import sys

import numpy as np
import pytest
import serial

from arrowdaq.cli.main import main
from arrowdaq.instruments.drivers.ell14 import ELL14
from arrowdaq.instruments.drivers.newport_1830c import Newport1830C

COMMAND = [sys.executable, "-m", "arrowdaq.cli.main", "sim"]


@pytest.fixture
def run_sim():
    """Start ``arrowdaq sim ...``; return the process and the address it printed. Always stopped."""
    procs: list[subprocess.Popen] = []

    def start(*args: str) -> tuple[subprocess.Popen, str]:
        proc = subprocess.Popen([*COMMAND, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        procs.append(proc)
        line = proc.stdout.readline().strip()
        assert " simulator listening on " in line, (line, proc.stderr.read() if proc.poll() is not None else "")
        return proc, line.rsplit(" ", 1)[1]

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait(5)
        proc.stdout.close()
        proc.stderr.close()


def stop(proc: subprocess.Popen) -> tuple[int, str]:
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=10)
    return proc.returncode, out


def test_serves_the_power_meter_on_tcp_until_sigterm_and_keeps_its_port(run_sim, capsys):
    proc, address = run_sim("newport_1830c", "--latency-scale", "0")
    assert address.startswith("socket://127.0.0.1:")
    meter = Newport1830C.open(address, name="pm", timeout=1.0, delay=0.0)
    try:
        meter.connect()
        assert meter.power > 0  # laser off: the meter's dark floor
        meter.wavelength = 633
        assert meter.wavelength == 633
    finally:
        meter.close()
    port = address.rsplit(":", 1)[1]
    assert main(["sim", "maitai", "--tcp", port]) == 1  # a second simulator cannot take the port
    assert f"cannot serve the maitai simulator on 127.0.0.1:{port}" in capsys.readouterr().err
    code, out = stop(proc)
    assert code == 0 and "newport_1830c simulator stopped" in out


def test_serves_an_elliptec_bus_with_several_mounts_on_a_pty(run_sim):
    proc, address = run_sim("ell14", "--pty", "--addresses", "03", "--latency-scale", "0")
    assert address.startswith("/dev/")
    mounts = [ELL14.open(address, name=f"rot{a}", address=a, timeout=1.0) for a in "03"]
    try:
        for mount, angle in zip(mounts, (45, -30), strict=True):
            mount.connect()
            assert mount.move_to(angle) == pytest.approx(angle, abs=0.01)
    finally:
        for mount in mounts:
            mount.close()
    assert stop(proc)[0] == 0


def test_addresses_are_checked(capsys):
    assert main(["sim", "ell14", "--addresses", "0G"]) == 1
    assert "--addresses: '0G' is not a list of distinct hex digits" in capsys.readouterr().err
    assert main(["sim", "maitai", "--addresses", "0"]) == 1
    assert "--addresses applies to the ell14 bus simulator only" in capsys.readouterr().err


def test_an_unknown_driver_is_one_clear_line_and_status_2(capsys):
    assert main(["sim", "newport_9999"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1
    assert "no simulator for 'newport_9999'" in lines[0]
    assert "ell14, esp300, maitai, newport_1830c" in lines[0]


def test_serves_any_registered_simulator_including_the_scope(run_sim):
    proc, address = run_sim("scpi", "--latency-scale", "0")
    port = address.rsplit(":", 1)[1]
    assert proc.stdout.readline().strip() == f"as a VISA resource: TCPIP0::127.0.0.1::{port}::SOCKET"
    with serial.serial_for_url(address, timeout=2) as link:
        link.write(b"*IDN?\n")
        identity = link.readline()
    assert identity.endswith(b"\n") and b"," in identity  # maker,model,serial,firmware
    assert stop(proc)[0] == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["esp300", "--tcp", "70000"], "argument --tcp: a TCP port is 0-65535, got 70000"),
        (["esp300", "--latency-scale", "inf"], "argument --latency-scale: expected a factor between 0 and 100"),
        (["esp300", "--latency-scale", "-1"], "argument --latency-scale: expected a factor between 0 and 100"),
    ],
)
def test_bad_arguments_are_refused_before_anything_is_served(args, message, capsys):
    with pytest.raises(SystemExit) as exited:
        main(["sim", *args])
    assert exited.value.code == 2
    assert message in capsys.readouterr().err


def start_many(*args: str) -> tuple[subprocess.Popen, dict[str, str]]:
    """``arrowdaq sim`` serving several devices: the process and driver → address, as printed."""
    proc = subprocess.Popen([*COMMAND, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    addresses: dict[str, str] = {}
    options = {i + 1 for i, a in enumerate(args) if a.startswith("--")}  # option values are not devices
    wanted = [a.split("=")[0] for i, a in enumerate(args) if "=" in a and i not in options]
    while len(addresses) < len(wanted):
        line = proc.stdout.readline().strip()
        assert " simulator listening on " in line, (line, proc.stderr.read() if proc.poll() is not None else "")
        addresses[line.split(" ", 1)[0]] = line.rsplit(" ", 1)[1]
    return proc, addresses


@pytest.fixture
def sims():
    procs: list[subprocess.Popen] = []

    def start(*args: str) -> tuple[dict[str, str], subprocess.Popen]:
        proc, addresses = start_many(*args)
        procs.append(proc)
        return addresses, proc

    yield start
    for proc in procs:
        assert stop(proc)[0] == 0
        proc.stdout.close()
        proc.stderr.close()


def test_three_sim_processes_on_one_table_follow_malus_law(sims, tmp_path):
    table = str(tmp_path / "table")
    common = ("--table", table, "--latency-scale", "0")
    laser_at = sims("maitai=0", *common)[0]["maitai"]
    hwp_at = sims("ell14=pty", *common)[0]["ell14"]
    meter_at = sims("newport_1830c=0", *common)[0]["newport_1830c"]
    from arrowdaq.instruments.drivers.maitai import MaiTai

    laser = MaiTai.open(laser_at, name="laser", timeout=1.0, min_interval=0.0, verify_timeout=1.0)
    hwp = ELL14.open(hwp_at, name="hwp", timeout=1.0)
    meter = Newport1830C.open(meter_at, name="pm", timeout=1.0, delay=0.0)
    for driver in (laser, hwp, meter):
        driver.connect()
    laser.emission_on()  # with the shutter closed, as the driver insists
    laser.open_shutter()
    try:
        readings = {}
        for angle in (0.0, 22.5, 45.0):
            hwp.move_to(angle)
            readings[angle] = meter.power
        full = readings[0.0]
        assert full > 1e-3  # the laser in one process lights the meter in another
        for angle, watts in readings.items():
            assert watts == pytest.approx(full * np.cos(np.radians(2 * angle)) ** 2, rel=0.02, abs=1e-6)
    finally:
        for driver in (laser, hwp, meter):
            driver.close()


def test_faults_are_injected_from_the_command_line(sims):
    from arrowdaq.errors import DeviceTimeout, ProtocolError

    addresses, proc = sims(
        "newport_1830c=0",
        "esp300=0",
        "--fault",
        "newport_1830c=garbage",
        "--fault",
        "esp300=silent@2",
        "--latency-scale",
        "0",
    )
    meter = Newport1830C.open(addresses["newport_1830c"], name="pm", timeout=0.5, delay=0.0)
    from arrowdaq.instruments.drivers.esp300 import ESP300

    stage = ESP300.open(addresses["esp300"], name="stage", timeout=0.3)
    try:
        stage.connect()  # it answers until its fault starts
        assert proc.stdout.readline().strip() == "newport_1830c: fault garbage injected"
        with pytest.raises(ProtocolError):
            meter.power
        assert proc.stdout.readline().strip() == "esp300: fault silent injected"
        with pytest.raises(DeviceTimeout):
            stage.position()
    finally:
        meter.close()
        stage.close()


def test_a_fault_must_name_a_served_device_and_a_known_kind(capsys):
    assert main(["sim", "maitai=0", "--fault", "esp300=silent"]) == 1
    assert "--fault esp300=silent: 'esp300' is not served here (maitai)" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["sim", "maitai=0", "--fault", "maitai=explode"])
    assert "KIND one of disconnect, silent, slow, garbage, error" in capsys.readouterr().err
