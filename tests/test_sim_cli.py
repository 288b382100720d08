"""``arrowdaq sim`` run as a user runs it: a subprocess that serves until SIGTERM."""

from __future__ import annotations

import signal
import subprocess
import sys

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
        for mount, angle in zip(mounts, (45, -30)):
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
