"""The VISA transport: IEEE 488.2 block parsing byte by byte, and pyvisa-py over loopback TCP."""

from __future__ import annotations

import pytest

from arrowdaq.errors import ConnectionLost, DeviceTimeout, ProtocolError
from arrowdaq.instruments.transports import open_transport
from arrowdaq.instruments.transports.base import PortSettings
from arrowdaq.instruments.transports.visa import VisaTransport, block_header, parse_block
from arrowdaq.sim import OpticalTable, SimDevice, serve
from arrowdaq.sim.scope import ieee_block

from .waiting import wait_until

# --- the block parser, byte by byte ------------------------------------------------------


def test_block_header_gives_header_and_payload_lengths():
    assert block_header(b"#15hello") == (3, 5)
    assert block_header(b"#2101234567890") == (4, 10)
    assert block_header(b"#800000004abcd") == (10, 4)


@pytest.mark.parametrize(
    ("data", "payload"),
    [
        (b"#15hello", b"hello"),
        (b"#15hello\n", b"hello"),  # the message terminator after the block
        (b"#15a\nb\n\x00\n", b"a\nb\n\x00"),  # terminator bytes inside the payload are data
        (b"#10", b""),
        (b"#3004\x00\x01\x02\x03", b"\x00\x01\x02\x03"),
    ],
)
def test_parse_block_returns_exactly_the_announced_payload(data, payload):
    assert parse_block(data, terminator=b"\n") == payload


@pytest.mark.parametrize(
    ("data", "complaint"),
    [
        (b"1,2,3", r"starting with '#<digit>'"),
        (b"", r"starting with '#<digit>'"),
        (b"#x5hello", r"byte after '#' must be a digit"),
        (b"#0hello\n", r"indefinite-length block"),
        (b"#3 5hello", r"expected 3 length digits"),
        (b"#25", r"expected 2 length digits"),
        (b"#15hel", r"announces 5 bytes, got 3"),
        (b"#15hello world", r"announces 5 bytes, got 11"),
    ],
)
def test_malformed_blocks_are_protocol_errors_naming_the_source(data, complaint):
    with pytest.raises(ProtocolError, match=complaint) as info:
        parse_block(data, source="scope1: WAV:DATA?", terminator=b"\n")
    assert "scope1: WAV:DATA?" in str(info.value)


def test_ieee_block_of_the_simulator_round_trips_through_the_parser():
    payload = bytes(range(256)) * 5
    assert parse_block(ieee_block(payload)) == payload


# --- pyvisa-py against a device on loopback ----------------------------------------------


class BlockDevice(SimDevice):
    """Answers with fixed replies, well-formed and not, to exercise the transport."""

    def handle(self, command: str) -> str | bytes | None:
        replies: dict[str, str | bytes] = {
            "*IDN?": "Test,Blocks,1,0.1",
            "BLK?": ieee_block(b"a\nb\n\x00\xff"),
            "EMPTY?": ieee_block(b""),
            "NOTERM?": b"#13abcX",  # a byte where the terminator belongs
            "SHORT?": b"#19abc",  # announces 9 bytes, sends 3 (+ the terminator)
            "BAD?": b"#Qxyz",
            "NOTTEXT?": b"\xff\xfe",
        }
        return replies.get(command)


@pytest.fixture
def device_server():
    server = serve(BlockDevice(OpticalTable(latency_scale=0.0)), "tcp")
    yield server
    server.stop()


def resource(server) -> str:
    return server.visa_resource


@pytest.fixture
def transport(device_server):
    t = open_transport(resource(device_server), PortSettings(timeout=0.3))
    yield t
    t.close()


def test_visa_resource_names_open_a_visa_transport_with_the_port_settings(transport):
    assert isinstance(transport, VisaTransport)
    assert transport.query("*IDN?") == "Test,Blocks,1,0.1"


def test_query_binary_reads_exactly_the_block_even_with_terminators_inside(transport):
    assert transport.query_binary("BLK?") == b"a\nb\n\x00\xff"
    assert transport.query_binary("EMPTY?") == b""
    assert transport.query("*IDN?") == "Test,Blocks,1,0.1"  # the block's terminator was consumed


@pytest.mark.parametrize(
    ("query", "complaint"),
    [("NOTERM?", r"expected the terminator b'\\n' after the 3-byte block, got b'X'"), ("BAD?", r"must be a digit")],
)
def test_malformed_binary_replies_raise_protocol_error_and_leave_the_link_clean(transport, query, complaint):
    with pytest.raises(ProtocolError, match=complaint) as info:
        transport.query_binary(query)
    assert "TCPIP0::127.0.0.1::" in str(info.value) and query in str(info.value)
    assert transport.query("*IDN?") == "Test,Blocks,1,0.1"


def test_a_short_block_times_out_naming_the_resource_and_command(transport):
    with pytest.raises(DeviceTimeout, match=r"SOCKET: no reply to 'SHORT\?' within 0.3 s"):
        transport.query_binary("SHORT?")
    assert transport.query("*IDN?") == "Test,Blocks,1,0.1"


def test_a_reply_that_is_not_text_is_a_protocol_error(transport):
    with pytest.raises(ProtocolError, match=r"is not ascii text: b'\\xff\\xfe"):
        transport.query("NOTTEXT?")


def test_silence_is_a_timeout_and_a_late_reply_is_not_taken_for_the_next_one(device_server, transport):
    device_server.faults.extra_delay = 0.5  # longer than the 0.3 s timeout
    with pytest.raises(DeviceTimeout, match=r"no reply to '\*IDN\?'"):
        transport.query("*IDN?")
    device_server.faults.extra_delay = 0.0
    # the scenario: the *IDN? reply comes late, while nobody reads; it must not be taken for the next. Waited for
    # until sent (on loopback it is then in the client's socket): a fixed 0.3 s sleep left the simulator's thread
    # 0.1 s, which a loaded machine can miss, and the late reply then came after the next query's discard
    wait_until(lambda: b"Test,Blocks,1,0.1" in device_server.sent, message="the late *IDN? reply to be sent")
    assert transport.query_binary("BLK?") == b"a\nb\n\x00\xff"


def test_unknown_command_silence_is_a_timeout(transport):
    with pytest.raises(DeviceTimeout):
        transport.query("NOPE?")


def test_a_dropped_link_is_connection_lost(device_server, transport):
    assert transport.query("*IDN?") == "Test,Blocks,1,0.1"
    device_server.disconnect()
    with pytest.raises(ConnectionLost, match="SOCKET"):
        transport.query("*IDN?")


def test_a_refused_connection_is_connection_lost_naming_the_resource(device_server):
    name = resource(device_server)
    device_server.disconnect()
    with pytest.raises(ConnectionLost, match=rf"{name}: cannot"):
        open_transport(name, PortSettings(timeout=0.3))


def test_resources_are_opened_by_name_without_listing(monkeypatch, device_server):
    """list_resources() broadcasts on the network with pyvisa-py: it must never be called."""
    import pyvisa.highlevel

    def forbidden(*args, **kwargs):
        raise AssertionError("list_resources() was called")

    monkeypatch.setattr(pyvisa.highlevel.ResourceManager, "list_resources", forbidden)
    monkeypatch.setattr(pyvisa.highlevel.ResourceManager, "list_resources_info", forbidden)
    t = open_transport(resource(device_server), PortSettings(timeout=0.3))
    try:
        assert t.query("*IDN?") == "Test,Blocks,1,0.1"
    finally:
        t.close()


def test_serial_resources_take_baud_rate_and_flow_control_from_the_port_settings():
    """``ASRL<path>::INSTR`` over a pseudo-terminal: pyvisa-py's serial session, real bytes."""
    from pyvisa import constants

    server = serve(BlockDevice(OpticalTable(latency_scale=0.0)), "pty")
    try:
        t = open_transport(f"ASRL{server.address}::INSTR", PortSettings(baudrate=19200, xonxoff=True, timeout=0.3))
        try:
            assert t._resource.baud_rate == 19200
            assert t._resource.flow_control == constants.ControlFlow.xon_xoff
            assert t.query("*IDN?") == "Test,Blocks,1,0.1"
            assert t.query_binary("BLK?") == b"a\nb\n\x00\xff"
        finally:
            t.close()
    finally:
        server.stop()


def test_socket_resources_send_small_commands_at_once(transport):
    """TCP_NODELAY: a command followed by a query must not wait ~40 ms for a delayed ACK (Nagle)."""
    import socket

    sock = transport._socket()
    assert sock is not None and sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
