"""MaiTai laser: bytes, reply forms with units, read-back verification, safety, end to end."""

from __future__ import annotations

import asyncio
import time

import pytest

from arrowdaq.actors import ActorStatus
from arrowdaq.errors import CommandError, DeviceErrorReply, ProtocolError
from arrowdaq.instruments import EmissionControl, ShutterControl, WavelengthTunable, spawn_instrument
from arrowdaq.instruments.drivers.maitai import MaiTai
from arrowdaq.sim import OpticalTable, serve
from arrowdaq.sim.maitai import IDN, MaiTaiSim
from arrowdaq.sim.scripted import expected_protocol

FAST = {"timeout": 0.3, "min_interval": 0.0, "verify_timeout": 0.2, "verify_interval": 0.01}


#: What closing sends: the shutter is closed and checked.
CLOSE = [("SHUTTER:0", None), ("SHUTTER?", "0")]


def maitai(steps, **settings):
    """The driver on a laser that expects ``steps`` and then the closing ones, in order."""
    return expected_protocol(MaiTai, [*steps, *CLOSE], command_terminator=b"\r", name="laser", **(FAST | settings))


def test_port_defaults_follow_the_manual():
    s = MaiTai.port_settings
    assert (s.baudrate, s.write_termination, s.read_termination, s.xonxoff, s.rtscts) == (9600, "\r", "\n", True, False)


def test_connect_checks_identity():
    with maitai([("*IDN?", IDN)]) as laser:
        laser.connect()
        assert laser.identity()["serial"] == "3227/51054/40856"


def test_a_device_that_is_not_a_maitai_is_refused():
    with maitai([("*IDN?", "ESP300 Version 3.04")]) as laser:
        with pytest.raises(ProtocolError, match="not a MaiTai"):
            laser.connect()


@pytest.mark.parametrize(
    ("query", "reply", "attr", "value"),
    [
        ("READ:WAVELENGTH?", "820nm", "wavelength_now", 820.0),
        ("READ:WAVELENGTH?", "820", "wavelength_now", 820.0),
        ("WAVELENGTH?", "790nm", "wavelength", 790.0),
        ("READ:POWER?", "3.000W", "power", 3.0),
        ("READ:POWER?", "0.00000W", "power", 0.0),
        ("SHUTTER?", "1", "shutter", "open"),
        ("SHUTTER?", "0", "shutter", "closed"),
        ("READ:PCTWARMEDUP?", "100.00%", "warmed_up", 100.0),
        ("READ:HUM?", "7.26%", "humidity", 7.26),
        ("PLASER:POWER?", "13.43W", "pump_power", 13.43),
        ("*STB?", "1", "status_byte", 1),
    ],
)
def test_reply_forms(query, reply, attr, value):
    with maitai([(query, reply)]) as laser:
        assert getattr(laser, attr) == value


@pytest.mark.parametrize("reply", ["820W", "nm", "8x20nm", "\x8f\x00"])
def test_replies_without_the_expected_number_and_unit_are_protocol_errors(reply):
    with maitai([("READ:WAVELENGTH?", reply.encode("latin-1"))]) as laser:
        with pytest.raises(ProtocolError, match="not a value in nm"):
            laser.wavelength_now


def test_a_set_that_is_not_executed_raises_instead_of_passing_silently():
    # LOCAL mode: the setpoint never changes (read back once, and once more for the message)
    unchanged = [("WAVELENGTH?", "800nm")] * 2
    with maitai([("WAVELENGTH:850", None), *unchanged], verify_timeout=0.0) as laser:
        with pytest.raises(DeviceErrorReply, match="'WAVELENGTH:850' was not executed.*LOCAL"):
            laser.set_wavelength(850)


def test_out_of_range_wavelength_is_refused_before_sending():
    with maitai([]) as laser:
        with pytest.raises(CommandError, match="laser.wavelength: 1200 is outside 690..1040"):
            laser.set_wavelength(1200)


def test_emission_on_with_the_shutter_open_is_refused():
    with maitai([("SHUTTER?", "1")]) as laser:  # no ON is sent
        with pytest.raises(CommandError, match="shutter open"):
            laser.emission_on()


def test_close_closes_the_shutter_and_checks_it_is_closed():
    with maitai([]) as laser:
        laser.close()
        assert not laser.transport.is_open


def test_close_releases_the_port_even_if_the_shutter_does_not_answer(caplog):
    with expected_protocol(
        MaiTai, [("SHUTTER:0", None), ("SHUTTER?", None)], command_terminator=b"\r", name="laser", **FAST
    ) as laser:
        laser.close()
        assert not laser.transport.is_open
    assert "could not close the shutter" in caplog.text


async def test_end_to_end_streams_commands_and_safe_stop(hub):
    table = OpticalTable(latency_scale=0.0, seed=1)
    sim = MaiTaiSim(table)
    with serve(sim, "pty") as server:
        sub = hub.subscribe("laser/*")
        ref = spawn_instrument(
            hub,
            "laser",
            MaiTai,
            lambda: MaiTai.open(server.address, name="laser", **(FAST | {"timeout": 2.0})),  # a loaded machine
            poll_hz={"wavelength": 20, "power": 20, "shutter": 20},
        )
        await ref.wait_status(ActorStatus.RUNNING)
        caps = (await hub.command("laser", "describe"))["capabilities"]
        assert {"WavelengthTunable", "ShutterControl", "EmissionControl"} <= set(caps)

        await hub.command("laser", "emission_on")
        await hub.command("laser", "open_shutter")
        await hub.command("laser", "set_wavelength", nm=900)
        tuned_at = time.time_ns()  # readings gathered before may still be published after this
        assert table.emission and table.shutter_open and table.wavelength_nm == 900
        with pytest.raises(CommandError, match="shutter open"):
            await hub.command("laser", "emission_on")

        latest: dict[str, float] = {}
        units: dict[str, object] = {}
        async with asyncio.timeout(5):
            while (
                latest.get("laser/wavelength") != 900
                or not latest.get("laser/power")
                or latest.get("laser/shutter") != 1
            ):
                stream, batch = await sub.get()
                if batch.column("timestamp_ns")[-1].as_py() > tuned_at:
                    latest[stream] = batch.column("value")[-1].as_py()
                units[stream] = batch.column("unit")[0].as_py()
        assert units == {"laser/wavelength": "nm", "laser/power": "W", "laser/shutter": None}
        assert 0 < latest["laser/power"] < 3.0  # below peak: 900 nm is off the tuning curve's centre

        sim.local_mode = True
        with pytest.raises(CommandError, match="not executed"):
            await hub.command("laser", "set_wavelength", nm=800)
        assert "not executed" in ref.last_error and ref.status is ActorStatus.RUNNING
        sim.local_mode = False

        await hub.stop()
        assert not table.shutter_open  # closed on stop


def test_capabilities_are_recognised():
    laser = MaiTai(None)
    assert isinstance(laser, WavelengthTunable) and isinstance(laser, ShutterControl)
    assert isinstance(laser, EmissionControl)
