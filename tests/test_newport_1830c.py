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
from arrowdaq.sim.scripted import expected_protocol

from .waiting import fresh_batch, wait_until_async

FAST = {"timeout": 0.3, "delay": 0.0}
#: End to end through the actor: one reply later than 0.3 s (a loaded machine, at times) is a lost link and a
#: Reconnecting the test did not cause; the protocol tests keep the short timeout.
PATIENT = {"timeout": 2.0}


def meter(steps):
    """The driver on a meter that expects ``steps``, in order (checked when the block ends)."""
    return expected_protocol(Newport1830C, steps, name="pm", **FAST)


def test_connect_turns_echo_off_and_forces_watts():
    with meter([("E0", None), ("U1", None), ("U?", "1")]) as pm:
        pm.connect()


def test_connect_refuses_a_meter_that_stays_in_dbm():
    with meter([("E0", None), ("U1", None), ("U?", "2")]) as pm:
        with pytest.raises(DeviceErrorReply, match="units 2 \\(dBm\\)"):
            pm.connect()


@pytest.mark.parametrize(
    ("reply", "watts"),
    [("5E-9", 5e-9), ("+.75E-9", 0.75e-9), ("+.11E-9", 0.11e-9), ("1.234E-3", 1.234e-3), ("+.1500E1", 1.5)],
)
def test_power_reply_forms_are_read_as_watts(reply, watts):
    with meter([("D?", reply)]) as pm:
        assert pm.power == pytest.approx(watts, rel=1e-12)


@pytest.mark.parametrize("condition", ["OVER", "UNDER", "SAT"])
def test_limit_replies_are_typed_conditions_not_numbers(condition):
    with meter([("D?", condition)]) as pm:
        with pytest.raises(ReadingOutOfRange) as raised:
            pm.power
    assert raised.value.condition == condition


def test_err_is_a_device_error_and_garbage_a_protocol_error():
    with meter([("D?", "ERR"), ("W?", b"\x8f#\xfe")]) as pm:
        with pytest.raises(DeviceErrorReply, match="ERR") as raised:
            pm.power
        assert not isinstance(raised.value, ReadingOutOfRange)
        with pytest.raises(ProtocolError, match="not a number"):
            pm.wavelength


def test_settings_are_written_in_the_meters_format():
    writes = [("W0633", None), ("A1", None), ("F3", None), ("G0", None), ("Z1", None), ("R0", None), ("S", None)]
    reads = [("W?", "0800"), ("A?", "1"), ("F?", "3"), ("B?", "0"), ("G?", "1"), ("Z?", "1"), ("L?", "0")]
    with meter([*writes, ("CS", None), *reads, ("R?", "4"), ("U?", "1")]) as pm:
        pm.wavelength = 633
        pm.attenuator = True
        pm.filter = 3.0  # a float from a JSON client still sends F3, not F3.0
        pm.go = False
        pm.zero = "on"
        pm.auto_range()
        pm.store_reference()
        pm.clear_status()
        assert pm.settings() == {
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


def test_invalid_settings_are_refused_before_anything_is_sent():
    with meter([]) as pm:  # nothing may be written
        with pytest.raises(CommandError, match="pm.wavelength: 2000 is outside 400..1100"):
            pm.wavelength = 2000
        with pytest.raises(CommandError, match="pm.filter: 4 is not one of"):
            pm.filter = 4


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
            lambda: Newport1830C.open(server.address, name="pm", **(FAST | PATIENT)),
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
            lambda: Newport1830C.open(server.address, name="pm", **(FAST | PATIENT)),
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


def test_a_plain_decimal_is_not_taken_for_watts():
    # in W the meter answers in scientific notation; "31.76" is dBm after the front-panel units changed
    with meter([("D?", "31.76")]) as pm:
        with pytest.raises(ProtocolError, match="not in watts"):
            pm.power


def test_a_setting_sent_as_a_float_by_a_json_client_is_written_as_the_meter_wants():
    with meter([("F3", None)]) as pm:
        pm.filter = 3.0
