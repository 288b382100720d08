"""The scripted device of the driver tests fails on every difference from its script (PyMeasure's expected_protocol)."""

from __future__ import annotations

import pytest

from arrowdaq.errors import DeviceTimeout
from arrowdaq.instruments.drivers.newport_1830c import Newport1830C
from arrowdaq.sim.scripted import expected_protocol

FAST = {"name": "pm", "timeout": 0.3, "delay": 0.0}


def test_the_whole_script_taken_in_order_passes():
    with expected_protocol(Newport1830C, [("W0633", None), ("W?", "0633")], **FAST) as meter:
        meter.wavelength = 633
        assert meter.wavelength == 633


def test_an_unexpected_write_fails_naming_it_and_the_step_expected():
    with pytest.raises(AssertionError, match=r"unexpected write 'W0800' at step 1 \(expected 'W0633'\)") as failed:
        with expected_protocol(Newport1830C, [("W0633", None), ("W?", "0633")], **FAST) as meter:
            meter.wavelength = 800
            meter.wavelength  # the device is off its script: no reply, the driver times out
    assert isinstance(failed.value.__cause__, DeviceTimeout)  # the symptom, chained


def test_a_write_after_the_script_ended_fails():
    with pytest.raises(AssertionError, match=r"unexpected write 'D\?' at step 2 \(expected nothing more\)"):
        with expected_protocol(Newport1830C, [("F3", None)], **FAST) as meter:
            meter.filter = 3
            with pytest.raises(DeviceTimeout):
                meter.power


def test_a_step_never_reached_fails():
    with pytest.raises(AssertionError, match=r"steps never reached: \[\('D\?', '1E-3'\)\]"):
        with expected_protocol(Newport1830C, [("F3", None), ("D?", "1E-3")], finish_within=0.2, **FAST) as meter:
            meter.filter = 3


def test_a_write_only_last_step_is_waited_for_not_raced():
    for _ in range(20):  # the driver's write returns before the device reads it
        with expected_protocol(Newport1830C, [("F3", None), ("A1", None)], **FAST) as meter:
            meter.filter = 3
            meter.attenuator = True
