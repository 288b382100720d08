"""The SCPI scope simulator: its wire protocol byte by byte, and its physics."""

from __future__ import annotations

import socket

import numpy as np
import pytest

from arrowdaq.app.simulators import simulator_class
from arrowdaq.instruments import driver_class
from arrowdaq.instruments.transports.visa import parse_block
from arrowdaq.sim import OpticalTable, serve
from arrowdaq.sim.scope import ScopeSim, normalize_header


@pytest.fixture
def scope(table):
    return ScopeSim(table)


def ask(scope: ScopeSim, line: str) -> bytes:
    return scope.feed(line.encode() + b"\n")


def test_the_scpi_driver_is_served_by_the_scope_simulator():
    assert simulator_class(driver_class("scpi")) is ScopeSim


def test_identity_and_reply_terminator(scope):
    assert ask(scope, "*IDN?") == b"ArrowDAQ,SimScope-1000,SIM00042,1.0.0\n"
    assert ask(scope, "*OPC?") == b"1\n"


@pytest.mark.parametrize(
    ("header", "short"),
    [
        ("WAVeform:POINts?", "WAV:POIN?"),
        (":wav:poin", "WAV:POIN"),
        ("SYSTem:ERRor?", "SYST:ERR?"),
        ("*idn?", "*IDN?"),
        ("ACQuire:SRATe", "ACQ:SRAT"),
        ("WAVEFORM:XORIGIN?", "WAV:XOR?"),
        ("WAV:PREAMBLE?", "WAV:PRE?"),
    ],
)
def test_headers_take_long_and_short_forms_in_any_case(header, short):
    assert normalize_header(header) == short


def test_unknown_header_queues_error_113_and_a_query_gets_no_reply(scope):
    assert ask(scope, "FOO:BAR?") == b""
    assert ask(scope, "*STB?") == b"36\n"  # error available (4) + event summary (32)
    assert ask(scope, "*ESR?") == b"32\n"  # command error; reading clears it
    assert ask(scope, "*ESR?") == b"0\n"
    assert ask(scope, "SYST:ERR?") == b'-113,"Undefined header"\n'
    assert ask(scope, "SYST:ERR?") == b'+0,"No error"\n'
    assert ask(scope, "*STB?") == b"0\n"


def test_bad_values_queue_execution_errors_and_cls_clears_them(scope):
    assert ask(scope, "WAV:POIN 0") == b""
    assert ask(scope, "WAV:FORM HEX") == b""
    assert ask(scope, "WAV:POIN?") == b"2000\n"  # unchanged
    assert ask(scope, "*ESR?") == b"16\n"
    ask(scope, "WAV:POIN abc")
    ask(scope, "*CLS")
    assert ask(scope, "SYST:ERR?") == b'+0,"No error"\n'
    ask(scope, "WAV:POIN 0")
    assert ask(scope, "SYST:ERR?") == b'-222,"Data out of range"\n'


def test_injected_device_errors_come_out_of_the_queue_in_order(scope):
    scope.push_error(-300, "Device-specific error")
    scope.push_error(-350, "Queue overflow")
    assert ask(scope, "SYST:ERR?;SYST:ERR?") == b'-300,"Device-specific error";-350,"Queue overflow"\n'


def test_settings_and_reset(scope):
    ask(scope, "WAV:POIN 500;ACQ:SRAT 2e5;WAV:FORM WORD")
    assert ask(scope, "WAV:POIN?;WAV:FORM?") == b"500;WORD\n"
    assert float(ask(scope, "WAV:XINC?")) == pytest.approx(5e-6)
    assert float(ask(scope, "WAV:XOR?")) == pytest.approx(-250 * 5e-6)
    ask(scope, "*RST")
    assert ask(scope, "WAV:POIN?;WAV:FORM?") == b"2000;ASC\n"
    assert float(ask(scope, "ACQ:SRAT?")) == 100_000.0


def test_ascii_waveform_is_comma_separated_volts(scope):
    ask(scope, "WAV:POIN 300")
    reply = ask(scope, "WAV:DATA?")
    assert reply.endswith(b"\n") and reply.count(b"\n") == 1
    values = np.array(reply.decode().strip().split(","), dtype=float)
    assert values.shape == (300,)


def test_real_waveform_is_a_block_of_little_endian_float32(scope):
    ask(scope, "WAV:POIN 1000;WAV:FORM REAL")
    reply = ask(scope, "WAV:DATA?")
    assert reply.startswith(b"#44000")
    volts = np.frombuffer(parse_block(reply, terminator=b"\n"), "<f4")
    assert volts.shape == (1000,) and np.all(np.isfinite(volts))


def test_word_waveform_scales_by_the_y_increment(scope):
    ask(scope, "WAV:POIN 4000;WAV:FORM WORD")
    reply = ask(scope, "WAV:DATA?")
    assert reply.startswith(b"#48000")
    codes = np.frombuffer(parse_block(reply, terminator=b"\n"), "<i2")
    yinc, yor, yref = (float(ask(scope, q)) for q in ("WAV:YINC?", "WAV:YOR?", "WAV:YREF?"))
    volts = (codes - yref) * yinc + yor
    ask(scope, "WAV:FORM REAL")
    reference = np.frombuffer(parse_block(ask(scope, "WAV:DATA?"), terminator=b"\n"), "<f4")
    assert volts.mean() == pytest.approx(reference.mean(), rel=0.05)


def test_preamble_has_the_ten_keysight_fields(scope):
    ask(scope, "WAV:POIN 800;ACQ:SRAT 1e6;WAV:FORM WORD")
    fields = ask(scope, "WAV:PRE?").decode().strip().split(",")
    assert len(fields) == 10
    fmt, _, points, _, xinc, xor, xref, yinc, yor, yref = fields
    assert (int(fmt), int(points)) == (1, 800)
    assert float(xinc) == pytest.approx(1e-6) and float(xor) == pytest.approx(-400e-6)
    assert float(yinc) == pytest.approx(float(ask(scope, "WAV:YINC?")))


# --- physics --------------------------------------------------------------------------


def expected_mean_volts(table: OpticalTable) -> float:
    s = table.settings
    volts = table.beam_after_optics_w() * (1 - s.splitter_to_meter) * s.photodiode_a_per_w * s.transimpedance_ohm
    return volts / 2  # the chopper passes the beam half of the time on average


def test_dc_voltage_is_the_mean_photodiode_signal_and_follows_the_beam(table, scope):
    assert float(ask(scope, "MEAS:VOLT:DC?")) == pytest.approx(expected_mean_volts(table), rel=0.05)
    table.shutter_open = False
    assert abs(float(ask(scope, "MEAS:VOLT:DC?"))) < 0.01


def test_trace_is_modulated_at_the_chopper_frequency(table, scope):
    ask(scope, "WAV:POIN 20000;ACQ:SRAT 1e5;WAV:FORM REAL")
    volts = np.frombuffer(parse_block(ask(scope, "WAV:DATA?"), terminator=b"\n"), "<f4").astype(float)
    spectrum = np.abs(np.fft.rfft(volts - volts.mean()))
    freqs = np.fft.rfftfreq(len(volts), 1e-5)
    assert freqs[np.argmax(spectrum)] == pytest.approx(table.settings.chopper_hz, abs=2 * freqs[1])


def test_served_on_loopback_tcp(table):
    server = serve(ScopeSim(table), "tcp")
    try:
        assert server.address.startswith("socket://127.0.0.1:")
        with socket.create_connection(("127.0.0.1", server.port), timeout=2) as sock:
            sock.sendall(b"*IDN?\n")
            reply = b""
            while not reply.endswith(b"\n"):
                reply += sock.recv(4096)
        assert reply == b"ArrowDAQ,SimScope-1000,SIM00042,1.0.0\n"
    finally:
        server.stop()
