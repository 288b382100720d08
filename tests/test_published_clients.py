"""Published third-party clients, as they are, against arrowdaq's simulators.

PyMeasure's ``ESP300`` (pymeasure.instruments.newport.esp300), the PyPI
``elliptec`` package and Instrumental's ``Newport_1830_C`` (through pyvisa-py,
on an explicitly named ASRL resource) talk to the simulators over a
pseudo-terminal, the way they would talk to the real devices over a serial
port. What they read back is checked against the simulated optical table.
"""

from __future__ import annotations

import logging
import time

import elliptec
import pytest
from pymeasure.adapters import SerialAdapter
from pymeasure.instruments.newport.esp300 import ESP300 as PyMeasureESP300
from pymeasure.instruments.newport.esp300 import AxisError, GeneralError

from arrowdaq.sim import OpticalTable, serve
from arrowdaq.sim.ell14 import ELL14Sim
from arrowdaq.sim.esp300 import ESP300Sim
from arrowdaq.sim.newport_1830c import Newport1830CSim


@pytest.fixture
def esp300():
    """PyMeasure's ESP300 on the simulator's pty (19200 baud, CR LF both ways)."""
    # 5 mm/s runs at 31 mm/s: the 12.5 mm move takes 0.4 s, and the test sees it under way (at 250 mm/s it took
    # 50 ms, which a loaded machine's pause between the move and the next query outlasts at times)
    table = OpticalTable(latency_scale=0.16, seed=5)
    sim = ESP300Sim(table)
    server = serve(sim, "pty")
    # a short timeout: PyMeasure's `axes` reads SCPI properties (*OPC?, *STB?...) that the ESP300 does not answer
    adapter = SerialAdapter(
        server.address, baudrate=19200, timeout=0.3, write_termination="\r\n", read_termination="\r\n"
    )
    controller = PyMeasureESP300(adapter)
    yield controller, sim, table
    adapter.close()
    server.stop()


def test_pymeasure_esp300_reads_position_enables_moves_waits_and_homes(esp300):
    controller, sim, table = esp300
    x = controller.x
    assert x.position == 0.0
    assert not x.enabled
    x.enable()
    assert x.enabled and sim.motor_on[1]
    controller.adapter.connection.timeout = 2.0  # WS holds every reply until the 0.4 s move ends
    x.position = 12.5  # PA12.5
    assert not x.motion_done  # it is on its way
    x.wait_for_stop()  # WS0, then MD? until done
    assert x.motion_done
    assert x.position == pytest.approx(12.5)
    assert table.stage[1].at(time.monotonic()) == pytest.approx(12.5)  # the knife edge moved
    x.home()  # OR1: back to the origin
    x.wait_for_stop()
    assert x.position == pytest.approx(0.0)
    x.define_position(3.0)  # DH3: the present position is called 3
    assert x.position == pytest.approx(3.0)
    x.zero()  # DH
    assert x.position == pytest.approx(0.0)
    controller.adapter.connection.timeout = 0.3  # disable() asks SCPI properties the ESP300 does not answer
    controller.disable()  # MF on every axis (no replies)
    assert not controller.x.enabled  # a query: every command before it has been handled
    assert not any(sim.motor_on.values())


def test_pymeasure_esp300_reads_and_clears_errors(esp300):
    controller, sim, _ = esp300
    assert controller.error == 0
    controller.y.position = 1.0  # motor off: refused with axis error 213
    controller.write("1XX")  # no such command: general error 6
    errors = controller.errors  # TE? until 0
    assert [type(e) for e in errors] == [AxisError, GeneralError]
    assert errors[0].axis == "2" and errors[0].message == "MOTOR NOT ENABLED"
    assert errors[1].message == "COMMAND DOES NOT EXIST"
    sim.push_error(7, "PARAMETER OUT OF RANGE")
    controller.clear_errors()
    assert controller.error == 0 and not sim.errors


def test_pymeasure_esp300_units_and_software_limits(esp300):
    controller, sim, _ = esp300
    x = controller.x
    assert x.units == "millimeter"
    x.units = "micrometer"
    assert x.units == "micrometer" and sim.units[1] == 3
    x.units = "millimeter"
    assert (x.left_limit, x.right_limit) == (0.0, 25.0)
    x.left_limit = 2.0
    x.right_limit = 10.0
    assert (x.left_limit, x.right_limit) == (2.0, 10.0)
    x.enable()
    x.position = 11.0  # beyond the right limit: refused, nothing moves
    assert [str(e) for e in controller.errors] == [
        "Newport ESP300 axis 1 reported the error: POSITIVE SOFTWARE LIMIT DETECTED"
    ]
    assert x.position == 0.0
    x.position = 1.0
    assert [str(e) for e in controller.errors] == [
        "Newport ESP300 axis 1 reported the error: NEGATIVE SOFTWARE LIMIT DETECTED"
    ]


@pytest.fixture
def elliptec_bus():
    """The ``elliptec`` package's Controller on the simulated bus (mounts 0 and 2; 0 carries the half-wave plate)."""
    table = OpticalTable(latency_scale=0.0, seed=6)
    table.emission = table.shutter_open = True
    sim = ELL14Sim(table, addresses="02", hwp_address="0")
    server = serve(sim, "pty")
    controller = elliptec.Controller(server.address, debug=False)
    yield controller, sim, table
    controller.close_connection()
    server.stop()


def test_elliptec_client_finds_turns_and_homes_a_rotator(elliptec_bus, caplog):
    controller, sim, table = elliptec_bus
    caplog.set_level(logging.WARNING, logger="elliptec")
    hwp = elliptec.Rotator(controller, address="0", debug=False)
    assert hwp.motor_type == 14 and hwp.range == 360 and hwp.pulse_per_rev == 143360
    assert hwp.serial_no == "11400517"
    assert hwp.set_angle(45) == pytest.approx(45, abs=0.01)
    assert table.hwp.at(time.monotonic()) == pytest.approx(45, abs=0.01)
    assert table.power_meter_w() < 1e-8  # crossed polarizers: Malus's law
    assert hwp.get_angle() == pytest.approx(45, abs=0.01)
    assert hwp.shift_angle(-15) == pytest.approx(30, abs=0.01)
    hwp.home()
    assert hwp.get_angle() == 0.0
    other = elliptec.Rotator(controller, address="2", debug=False)  # the second mount on the same bus
    assert other.set_angle(90) == pytest.approx(90, abs=0.01)
    assert hwp.get_angle() == 0.0
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_elliptec_client_reads_status_jog_step_home_offset_and_motor_info(elliptec_bus):
    controller, sim, _ = elliptec_bus
    hwp = elliptec.Rotator(controller, address="0", debug=False)
    assert hwp.get("status") == ("0", "GS", "0")
    hwp.set("stepsize", 143360 // 36)  # 10 degrees
    assert hwp.get("stepsize") == ("0", "GJ", 143360 // 36)
    hwp.move("forward")
    assert hwp.get_angle() == pytest.approx(10, abs=0.01)
    assert hwp.get("home_offset") == ("0", "HO", 0)
    info = hwp.get("motor_1_info")
    assert info["Motor"] == "1" and info["Current"] == pytest.approx(1.0)
    sim.inject_status("0", 0x0B)
    assert hwp.get("position") == ("0", "GS", "11")  # motor error, reported as the status code


@pytest.fixture
def instrumental_1830c():
    """Instrumental's 1830-C driver, found as Instrumental finds a meter: by its answer to ``Z?`` on a VISA
    resource named explicitly (pyvisa-py ASRL on the simulator's pty: no resource listing)."""
    from instrumental import instrument

    table = OpticalTable(latency_scale=0.0, seed=9)
    table.emission = table.shutter_open = True
    sim = Newport1830CSim(table)
    server = serve(sim, "pty")
    meter = instrument(visa_address=f"ASRL{server.address}::INSTR", module="powermeters.newport")
    yield meter, sim, table
    meter.close()  # local lockout off
    meter._rsrc.close()
    server.stop()


def test_instrumental_finds_the_1830c_reads_power_and_sets_it_up(instrumental_1830c):
    from instrumental import Q_

    meter, sim, table = instrumental_1830c
    assert type(meter).__name__ == "Newport_1830_C"
    assert meter.power.to("W").magnitude == pytest.approx(table.power_meter_w(), rel=0.02)
    assert meter.wavelength.to("nm").magnitude == 800 and meter.status_byte == 128  # reading ready
    meter.wavelength = Q_(1064, "nm")  # W1064
    assert meter.wavelength.to("nm").magnitude == 1064 and sim.state["W"] == 1064
    meter.attenuator = True
    assert meter.attenuator is True and sim.state["A"] == 1
    meter.set_medium_filter()
    assert meter.get_filter() == meter.MEDIUM_FILTER
    meter.range = 3
    assert meter.range == 3 and not sim.auto_range
    meter.enable_auto_range()  # R0
    assert meter.is_measurement_valid() and sim.auto_range  # Q?: not saturated, over range or busy
    meter.enable_hold()  # G0
    assert meter.hold_enabled()
    meter.disable_hold()
    assert not meter.hold_enabled()
    meter.set_units("dBm")  # U2; power is still read in watts (U1, D?, U2)
    assert meter.power.to("W").magnitude == pytest.approx(table.power_meter_w(), rel=0.02)
    assert meter.query("U?") == "2"  # the display is left in dBm
    meter.set_units("watts")
    meter.enable_zero()
    assert meter.zero_enabled() and sim.state["Z"] == 1
    meter.local_lockout = True
    assert meter.local_lockout and sim.state["L"] == 1
