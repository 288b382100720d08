"""The serial transport against real pseudo-terminals and loopback TCP sockets."""

from __future__ import annotations

import os
import termios
import threading
import time

import pytest
import serial

from arrowdaq.errors import ConfigError, ConnectionLost, DeviceTimeout
from arrowdaq.instruments.transports import PortSettings, open_transport
from arrowdaq.instruments.transports.serial import SerialTransport, open_serial
from arrowdaq.sim import serve
from arrowdaq.sim.scripted import ScriptedDevice

from .waiting import wait_until

FAST = PortSettings(timeout=0.3)
BUS = PortSettings(timeout=0.3, bus=True)  # a multidrop bus: several instruments on one port


@pytest.fixture
def served():
    """Serve scripted devices; every server and port is closed afterwards."""
    servers, transports = [], []

    def start(device, kind="pty", settings=FAST):
        server = serve(device, kind)
        servers.append(server)
        transport = open_serial(server.address, settings)
        transports.append(transport)
        return server, transport

    yield start
    for transport in transports:
        while transport.users:
            transport.close()
    for server in servers:
        server.stop()


@pytest.mark.parametrize("kind", ["pty", "tcp"])
def test_query_sends_the_write_terminator_and_returns_the_reply_without_its_terminator(served, kind):
    device = ScriptedDevice({"*IDN?": "Spectra Physics,MaiTai"}, command_terminator=b"\r")
    server, port = served(device, kind, PortSettings(write_termination="\r", read_termination="\n", timeout=0.5))
    assert port.query("*IDN?") == "Spectra Physics,MaiTai"
    assert bytes(server.received) == b"*IDN?\r"


def test_open_transport_dispatches_paths_and_urls_to_pyserial(served):
    server = serve(ScriptedDevice({"A?": "1"}), "tcp")
    try:
        port = open_transport(server.address, FAST)
        assert isinstance(port, SerialTransport)
        assert port.query("A?") == "1"
        port.close()
    finally:
        server.stop()


@pytest.mark.parametrize("ending", [b"\r", b"\n", b"\r\n"])
def test_replies_ending_in_cr_lf_or_crlf_are_all_accepted(served, ending):
    esp_like = PortSettings(
        write_termination="\r\n", read_termination="\r", extra_read_terminations=("\n",), timeout=0.5
    )
    device = ScriptedDevice({"1TP?": "12.345", "2TP?": "-1.5"}, command_terminator=b"\r\n", reply_terminator=ending)
    server, port = served(device, "pty", esp_like)
    assert port.query("1TP?") == "12.345"
    assert port.query("2TP?") == "-1.5"
    assert bytes(server.received) == b"1TP?\r\n2TP?\r\n"


def test_a_silent_device_raises_device_timeout_naming_the_port_and_the_command(served):
    server, port = served(ScriptedDevice({}), "pty")
    with pytest.raises(DeviceTimeout, match=rf"{server.address}.*'D\?'"):
        port.query("D?")


def test_a_late_reply_is_not_taken_as_the_reply_to_the_next_command(served):
    server, port = served(ScriptedDevice({"A?": "stale", "B?": "fresh"}), "pty", PortSettings(timeout=0.1))
    server.faults.extra_delay = 0.3
    with pytest.raises(DeviceTimeout):
        port.query("A?")
    server.faults.extra_delay = 0.0
    # the scenario: the reply comes 0.3 s late, while nobody reads. Waited for where it lands (a fixed 0.4 s sleep
    # raced the simulator's thread on a loaded machine: a reply arriving after the query's discard is taken for B?)
    wait_until(lambda: port._serial is not None and port._serial.in_waiting, message="the late reply to reach the port")
    assert port.query("B?") == "fresh"


def test_the_delay_after_a_write_and_the_quiet_time_between_commands_are_kept(served):
    settings = PortSettings(timeout=0.5, delay=0.05, min_interval=0.1)
    server, port = served(ScriptedDevice({"A?": "1"}), "pty", settings)
    port.query("A?")
    end_of_first = time.monotonic()
    port.query("A?")
    # The second exchange waited min_interval before writing and delay before reading.
    assert time.monotonic() - end_of_first >= settings.min_interval + settings.delay


def test_one_transport_per_port_shared_and_closed_by_its_last_user(served):
    server, first = served(ScriptedDevice({"0gp": "0PO00000000"}), "tcp", BUS)
    second = open_serial(server.address, BUS)
    assert second is first and second.lock is first.lock and first.users == 2
    first.close()
    assert second.is_open and second.query("0gp") == "0PO00000000"
    second.close()
    assert not first.is_open
    third = open_serial(server.address, BUS)
    assert third is not first and third.query("0gp") == "0PO00000000"
    third.close()


def test_sharing_a_port_with_other_settings_is_refused(served):
    server, _ = served(ScriptedDevice({}), "tcp", BUS)
    with pytest.raises(ConfigError, match="already open with other settings"):
        open_serial(server.address, PortSettings(baudrate=19200, timeout=0.3, bus=True))


def test_only_bus_devices_share_a_port(served):
    server, _ = served(ScriptedDevice({}), "tcp")  # e.g. a power meter
    with pytest.raises(ConfigError, match="already in use by another instrument; only devices on a multidrop bus"):
        open_serial(server.address, FAST)


def test_threads_sharing_a_port_never_interleave_their_exchanges(served):
    replies = {f"{a}gp": f"{a}PO0000000{a}" for a in "0123"}
    server, port = served(
        ScriptedDevice(replies, command_terminator=b";", reply_terminator=b"\r\n"),
        "pty",
        PortSettings(write_termination=";", read_termination="\r\n", timeout=1.0),
    )
    wrong: list[str] = []

    def poll(address: str) -> None:
        for _ in range(25):
            reply = port.query(f"{address}gp")
            if reply != f"{address}PO0000000{address}":
                wrong.append(reply)

    threads = [threading.Thread(target=poll, args=(a,)) for a in "0123"]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert wrong == []
    assert len(server.device.commands) == 100


def test_a_refused_connection_is_connection_lost_naming_the_port():
    server = serve(ScriptedDevice({}), "tcp")
    server.disconnect()
    try:
        with pytest.raises(ConnectionLost, match=rf"{server.address}"):
            open_serial(server.address, FAST)
    finally:
        server.stop()


def test_a_dropped_link_is_connection_lost_and_the_port_reopens_when_the_device_is_back(served):
    server, port = served(ScriptedDevice({"A?": "1"}), "tcp")
    assert port.query("A?") == "1"
    server.disconnect()
    with pytest.raises(ConnectionLost, match=server.address):
        port.query("A?")
    with pytest.raises(ConnectionLost, match="cannot open"):
        port.query("A?")
    server.reconnect()
    assert port.query("A?") == "1"


def test_a_missing_device_path_is_connection_lost_naming_it():
    with pytest.raises(ConnectionLost, match="/dev/does-not-exist"):
        open_serial("/dev/does-not-exist", FAST)


def test_an_impossible_port_is_a_configuration_error():
    with pytest.raises(ConfigError, match="'tcp://127.0.0.1:1'.*protocol 'tcp' not known"):
        open_serial("tcp://127.0.0.1:1", FAST)


@pytest.mark.parametrize(
    ("settings", "iflag", "cflag"),
    [
        (PortSettings(baudrate=9600, xonxoff=True), termios.IXON | termios.IXOFF, 0),
        (PortSettings(baudrate=19200, rtscts=True), 0, termios.CRTSCTS),
    ],
)
def test_baud_rate_and_flow_control_reach_the_serial_line(served, settings, iflag, cflag):
    server, port = served(ScriptedDevice({}), "pty", settings)
    fd = os.open(server.address, os.O_RDWR | os.O_NOCTTY)
    try:
        attrs = termios.tcgetattr(fd)
    finally:
        os.close(fd)
    assert attrs[0] & (termios.IXON | termios.IXOFF) == iflag
    assert attrs[2] & termios.CRTSCTS == cflag
    assert attrs[2] & termios.CSIZE == termios.CS8 and not attrs[2] & (termios.PARENB | termios.CSTOPB)
    assert attrs[4] == getattr(termios, f"B{settings.baudrate}")


def test_a_port_in_use_cannot_be_opened_by_another_program(served):
    server, port = served(ScriptedDevice({}), "pty")
    with pytest.raises(serial.SerialException, match="exclusively lock"):
        serial.Serial(server.address, exclusive=True)  # what another program's pyserial does
    port.close()
    serial.Serial(server.address, exclusive=True).close()  # free again once closed
