"""``arrowdaq sim`` run as a user runs it: a subprocess that serves until SIGTERM."""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest
import serial

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


def test_serves_the_power_meter_on_tcp_until_sigterm(run_sim):
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
    code, out = stop(proc)
    assert code == 0 and "newport_1830c simulator stopped" in out


def test_serves_the_elliptec_bus_on_a_pty(run_sim):
    proc, address = run_sim("ell14", "--pty", "--latency-scale", "0")
    assert address.startswith("/dev/")
    mount = ELL14.open(address, name="hwp", address="0", timeout=1.0)
    try:
        mount.connect()
        assert mount.move_to(45) == pytest.approx(45, abs=0.01)
    finally:
        mount.close()
    assert stop(proc)[0] == 0


def test_an_unknown_driver_is_one_clear_line_and_status_2():
    result = subprocess.run([*COMMAND, "newport_9999"], capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "no simulator for 'newport_9999'" in lines[0]
    assert "ell14, esp300, maitai, newport_1830c" in lines[0]


def test_a_port_in_use_is_a_clear_error(run_sim):
    _, address = run_sim("esp300", "--latency-scale", "0")
    port = address.rsplit(":", 1)[1]
    result = subprocess.run([*COMMAND, "maitai", "--tcp", port], capture_output=True, text=True, timeout=30)
    assert result.returncode == 1
    assert f"cannot serve the maitai simulator on 127.0.0.1:{port}" in result.stderr


def test_serves_any_registered_simulator_including_the_scope(run_sim):
    proc, address = run_sim("scpi", "--latency-scale", "0")

    with serial.serial_for_url(address, timeout=2) as link:
        link.write(b"*IDN?\n")
        identity = link.readline()
    assert identity.endswith(b"\n") and b"," in identity  # maker,model,serial,firmware
    assert stop(proc)[0] == 0
