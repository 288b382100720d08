"""Newport 1830-C: the bytes on the wire, every reply form, and end to end through the hub."""

from __future__ import annotations

import asyncio
import logging

import pytest

from arrowdaq.actors import ActorStatus
from arrowdaq.errors import CommandError, DeviceErrorReply, ProtocolError, ReadingOutOfRange
from arrowdaq.instruments import spawn_instrument
from arrowdaq.instruments.drivers.newport_1830c import Newport1830C
from arrowdaq.sim import OpticalTable, serve
from arrowdaq.sim.newport_1830c import Newport1830CSim, format_reading

from .waiting import fresh_batch, wait_until_async

FAST = {"timeout": 0.3, "delay": 0.0}


@pytest.fixture
def scripted(scripted_driver):
    """A meter answering from a script, and the driver on it."""
    return lambda replies: scripted_driver(Newport1830C, replies, name="pm", **FAST)


def test_connect_turns_echo_off_and_forces_watts(scripted):
    server, meter = scripted({"U?": "1"})
    meter.connect()
    assert bytes(server.received) == b"E0\nU1\nU?\n"


def test_connect_refuses_a_meter_that_stays_in_dbm(scripted):
    _, meter = scripted({"U?": "2"})
    with pytest.raises(DeviceErrorReply, match="units 2 \\(dBm\\)"):
        meter.connect()


@pytest.mark.parametrize(
    ("reply", "watts"),
    [("5E-9", 5e-9), ("+.75E-9", 0.75e-9), ("+.11E-9", 0.11e-9), ("1.234E-3", 1.234e-3), ("+.1500E1", 1.5)],
)
def test_power_reply_forms_are_read_as_watts(scripted, reply, watts):
    server, meter = scripted({"D?": reply})
    assert meter.power == pytest.approx(watts, rel=1e-12)
    assert bytes(server.received) == b"D?\n"


@pytest.mark.parametrize("condition", ["OVER", "UNDER", "SAT"])
def test_limit_replies_are_typed_conditions_not_numbers(scripted, condition):
    _, meter = scripted({"D?": condition})
    with pytest.raises(ReadingOutOfRange) as raised:
        meter.power
    assert raised.value.condition == condition


def test_err_is_a_device_error_and_garbage_a_protocol_error(scripted):
    _, meter = scripted({"D?": "ERR", "W?": b"\x8f#\xfe"})
    with pytest.raises(DeviceErrorReply, match="ERR") as raised:
        meter.power
    assert not isinstance(raised.value, ReadingOutOfRange)
    with pytest.raises(ProtocolError, match="not a number"):
        meter.wavelength


def test_settings_are_written_in_the_meters_format(scripted):
    replies = {"W?": "0800", "A?": "1", "F?": "3", "B?": "0", "G?": "1", "Z?": "1", "L?": "0", "R?": "4", "U?": "1"}
    server, meter = scripted(replies)
    meter.wavelength = 633
    meter.attenuator = True
    meter.filter = 3.0  # a float from a JSON client still sends F3, not F3.0
    meter.go = False
    meter.zero = "on"
    meter.auto_range()
    meter.store_reference()
    meter.clear_status()
    assert meter.settings() == {
        "wavelength": 800,
        "attenuator": 1,
        "filter": 3,
        "beep": 0,
        "go": 1,
        "zero": 1,
        "lockout": 0,
        "range": 4,
        "units": "W",
    }
    assert bytes(server.received) == b"W0633\nA1\nF3\nG0\nZ1\nR0\nS\nCS\nW?\nA?\nF?\nB?\nG?\nZ?\nL?\nR?\nU?\n"


def test_invalid_settings_are_refused_before_anything_is_sent(scripted):
    server, meter = scripted({})
    with pytest.raises(CommandError, match="pm.wavelength: 2000 is outside 400..1100"):
        meter.wavelength = 2000
    with pytest.raises(CommandError, match="pm.filter: 4 is not one of"):
        meter.filter = 4
    assert bytes(server.received) == b""


def test_the_simulator_writes_readings_the_way_the_meter_does():
    assert format_reading(0.75e-9) == "+.7500E-9"
    assert format_reading(1.234e-3) == "+.1234E-2"
    assert float(format_reading(0.99999)) == pytest.approx(0.99999, rel=1e-4)


async def test_end_to_end_power_batches_reach_a_subscriber_and_commands_reach_the_meter(hub):
    table = OpticalTable(latency_scale=0.0, seed=3)
    table.emission = table.shutter_open = True
    sim = Newport1830CSim(table)
    with serve(sim, "pty") as server:
        sub = hub.subscribe("pm/*")
        ref = spawn_instrument(
            hub,
            "pm",
            Newport1830C,
            lambda: Newport1830C.open(server.address, name="pm", **FAST),
            poll_hz={"power": 50.0},
            port=server.address,
        )
        await ref.wait_status(ActorStatus.RUNNING)
        stream, batch = await asyncio.wait_for(sub.get(), 5)
        assert stream == "pm/power"
        assert batch.schema.names == ["timestamp_ns", "channel", "value", "unit"]
        assert set(batch.column("channel").to_pylist()) == {"power"}
        assert set(batch.column("unit").to_pylist()) == {"W"}
        assert hub.stream("pm/power").schema.field("value").metadata[b"unit"] == b"W"
        # 3 W laser at 800 nm, plate at 0°, knife edge out, half to the meter: about 1.5 W.
        assert batch.column("value").to_numpy() == pytest.approx(1.5, rel=0.02)

        await hub.command("pm", "set", name="wavelength", value=1064)
        assert await hub.command("pm", "get", name="wavelength") == 1064
        assert sim.state["W"] == 1064
        with pytest.raises(CommandError, match="outside"):
            await hub.command("pm", "set", name="wavelength", value=3000)
        assert (await hub.command("pm", "describe"))["capabilities"] == ["Readable"]


async def test_a_limit_reading_shows_in_status_and_log_without_a_restart(hub, caplog):
    table = OpticalTable(latency_scale=0.0, seed=3)
    sim = Newport1830CSim(table)
    with serve(sim, "pty") as server:
        sub = hub.subscribe("pm/*")
        ref = spawn_instrument(
            hub,
            "pm",
            Newport1830C,
            lambda: Newport1830C.open(server.address, name="pm", **FAST),
            poll_hz={"power": 50.0},
        )
        await ref.wait_status(ActorStatus.RUNNING)
        caplog.set_level(logging.WARNING, logger="arrowdaq")
        sim.force_reply = "OVER"
        await wait_until_async(lambda: "OVER" in (ref.last_error or ""), message="OVER in the meter's last error")
        assert "ReadingOutOfRange" in ref.last_error
        assert any("OVER" in r.getMessage() for r in caplog.records)
        sim.force_reply = None
        stream, batch = await fresh_batch(sub)  # readings flow again
        assert ref.status is ActorStatus.RUNNING and ref.restarts == 0
        assert (batch.column("value").to_numpy() > 0).all()


def test_a_plain_decimal_is_not_taken_for_watts(scripted):
    # in W the meter answers in scientific notation; "31.76" is dBm after the front-panel units changed
    _, meter = scripted({"D?": "31.76"})
    with pytest.raises(ProtocolError, match="not in watts"):
        meter.power


def test_a_setting_sent_as_a_float_by_a_json_client_is_written_as_the_meter_wants(scripted):
    server, meter = scripted({"W?": "0800"})
    meter.filter = 3.0
    assert meter.wavelength == 800  # a reply: everything before it has arrived
    assert bytes(server.received) == b"F3\nW?\n"
