"""The simulators answer the manuals' command sets as published clients send them, byte for byte."""

from __future__ import annotations

import pytest

from arrowdaq.sim.esp300 import ESP300Sim
from arrowdaq.sim.maitai import MaiTaiSim
from arrowdaq.sim.newport_1830c import Newport1830CSim


def test_the_1830c_answers_what_instrumental_uses_to_find_it(table):
    meter = Newport1830CSim(table)
    assert meter.feed(b"Z?\n") == b"0\n"  # Instrumental recognises the meter by Z? answering 0 or 1
    assert meter.feed(b"Z1\nZ?\n") == b"1\n"
    assert meter.feed(b"L1\nL?\n") == b"1\n"
    assert meter.feed(b"Q?\n") == b"128\n"  # reading ready, no error
    assert meter.feed(b"K?\n") == b"ERR\n"  # not in the manual: an unknown query
    assert meter.feed(b"Q?\n") == b"130\n"  # ... flagged as a command error, cleared when read
    assert meter.feed(b"F7\nQ?\n") == b"129\n"  # a bad value: ignored, a parameter error
    assert meter.feed(b"R3\nR?\n") == b"3\n"
    assert meter.feed(b"R0\nS\nCS\nQ?\n") == b"128\n"


@pytest.mark.parametrize(
    ("sent", "state"),
    [
        (b"WAVELENGTH:790\r", 790.0),
        (b"WAVelength 790\r", 790.0),
        (b"wav 791\r", 791.0),
        (b"WAV:795\n", 795.0),
    ],
)
def test_the_maitai_takes_long_short_colon_and_space_forms(table, sent, state):
    laser = MaiTaiSim(table)
    assert laser.feed(sent) == b""
    assert table.wavelength_nm == state
    assert laser.feed(b"WAVelength?\r") == f"{state:.0f}nm\n".encode()


def test_the_maitai_answers_the_queries_of_published_clients(table):
    laser = MaiTaiSim(table)
    assert laser.feed(b"SHUTter 1\rSHUT?\r") == b"1\n"
    assert laser.feed(b"ON\rREAD:PCTWarmedup?\rREAD:HUM?\rPLASer:POWer?\rREAD:PLAS:POW?\r") == (
        b"100.00%\n7.26%\n13.43W\n13.43W\n"
    )
    assert laser.feed(b"MODE?\rWAVelength:MIN?\rWAV:MAX?\r*STB?\r") == b"POW\n690nm\n1040nm\n9\n"
    assert laser.feed(b"TIMer:WATChdog 0\rSAVe\rSYSTem:ERR?\r") == b"0\n"
    assert laser.feed(b"FROBNICATE\rWAVELENGTH:2000\r") == b""  # unknown or refused: silence, as the laser does
    assert laser.feed(b"SYST:ERR?\rSYST:ERR?\r") == b"UNKNOWN COMMAND FROBNICATE\nWAVELENGTH OUT OF RANGE 2000\n"


def test_the_esp300_answers_pymeasures_command_forms(table):
    stage = ESP300Sim(table)
    assert stage.feed(b"1TP\r\n") == b"0.00000\r\n"  # TP without '?' too
    assert stage.feed(b"1MO?\r\n1MO\r\n1MO?\r\n") == b"0\r\n1\r\n"
    assert stage.feed(b"2PA1\r\nTE?\r\nTE?\r\n") == b"213\r\n0\r\n"  # motor off: axis error 13
    assert stage.feed(b"1SN?\r\n1SN3\r\n1SN?\r\n") == b"2\r\n3\r\n"
    assert stage.feed(b"1SL?\r\n1SR?\r\n") == b"0.00000\r\n25.00000\r\n"
    assert stage.feed(b"1SR5\r\n1PA6\r\nTB?\r\n").startswith(b"106, ")  # beyond the right limit
    assert stage.feed(b"1DH2\r\n1TP?\r\n") == b"2.00000\r\n"  # define home: here is 2
    assert stage.feed(b"PA1\r\nTE?\r\n1ZZ\r\nTE?\r\n") == b"37\r\n6\r\n"  # axis missing; no such command
