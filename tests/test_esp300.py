"""ESP300 motion controller: bytes, reply forms, the error buffer, motion, end to end."""

from __future__ import annotations

import asyncio
import time

import pytest

import arrowdaq.data
from arrowdaq.actors import ActorStatus
from arrowdaq.errors import CommandError, ConfigError, DeviceStatusError, DeviceTimeout, ProtocolError
from arrowdaq.instruments import Movable, spawn_instrument
from arrowdaq.instruments.drivers.esp300 import ESP300
from arrowdaq.sim import OpticalTable, serve
from arrowdaq.sim.esp300 import ESP300Sim
from arrowdaq.sim.scripted import expected_protocol

FAST = {"timeout": 0.3, "motion_poll": 0.005}
#: End to end through the actor: one reply later than 0.3 s (a loaded machine, at times) is a lost link and a
#: Reconnecting the test did not cause; the protocol tests keep the short timeout.
PATIENT = {"timeout": 2.0}
NO_ERROR = "0, 1234, NO ERROR DETECTED"


def esp300(steps, **settings):
    """The driver on a controller that expects ``steps``, in order."""
    return expected_protocol(
        ESP300, steps, command_terminator=b"\r\n", reply_terminator=b"\r\n", name="stage", **(FAST | settings)
    )


#: The error buffer read after a command: empty.
NO_ERROR_FILED = ("TB?", NO_ERROR)


def test_connect_checks_the_version_empties_the_error_buffer_and_enables_motors():
    version = ("VE?", "ESP300 Version 3.04 07/27/01")
    with esp300([version, NO_ERROR_FILED, ("1MO", None), ("3MO", None), NO_ERROR_FILED], axes=[1, 3]) as stage:
        stage.connect()


def test_commands_are_axis_mnemonic_value_with_six_decimals():
    steps = [("1PA12.500000", None), NO_ERROR_FILED, ("2PR-0.250000", None), NO_ERROR_FILED]
    steps += [("2VA2.000000", None), NO_ERROR_FILED, ("1OR", None), NO_ERROR_FILED, ("2ST", None), ("ST", None)]
    with esp300(steps, axes=[1, 2]) as stage:
        stage.move_to(12.5, wait=False, axis=1)
        stage.move_by(-0.25, wait=False, axis=2)
        stage.axis[2].velocity = 2
        stage.home(axis=1, wait=False)
        stage.stop(2)
        stage.stop()


@pytest.mark.parametrize(("reply", "moving"), [("0", True), ("1", False)])
def test_motion_done_reply(reply, moving):
    with esp300([("1MD?", reply)]) as stage:
        assert stage.is_moving(1) is moving


def test_position_reply_and_garbage():
    with esp300([("1TP?", "12.345"), ("1TP?", "12.345"), ("2TP?", "1,2.x")], axes=[1, 2]) as stage:
        assert stage.position(1) == 12.345
        assert stage.read("axis1_position") == 12.345
        with pytest.raises(ProtocolError, match="'1,2.x' is not a number"):
            stage.position(2)


def test_an_error_in_the_buffer_after_a_move_raises_with_the_controllers_code_and_message():
    limit = ("TB?", "106, 5678, AXIS-1 POSITIVE SOFTWARE LIMIT DETECTED")
    with esp300([("1PA99.000000", None), limit]) as stage:
        with pytest.raises(DeviceStatusError, match="106: AXIS-1 POSITIVE SOFTWARE LIMIT DETECTED") as raised:
            stage.move_to(99)
    assert raised.value.code == 106


def test_unconfigured_axes_are_refused():
    with esp300([], axes=[1]) as stage:  # nothing is sent
        with pytest.raises(CommandError, match="axis 2 is not configured"):
            stage.move_to(1, axis=2)
    with pytest.raises(ConfigError, match=r"axes\[0\]: Input should be 1, 2 or 3 \(got 4\)"):
        ESP300(None, axes=[4])


def test_waiting_for_a_move_that_never_ends_times_out(scripted_driver):
    # MD? is polled for as long as the wait lasts: a device answering from a dict, not a fixed exchange
    _, stage = scripted_driver(
        ESP300, {"1MD?": "0"}, command_terminator=b"\r\n", reply_terminator=b"\r\n", name="stage", **FAST
    )
    with pytest.raises(DeviceTimeout, match="axis 1 still moving after 0.05 s"):
        stage.wait_motion(max_wait=0.05, axis=1)


def test_streams_follow_the_configured_axes():
    assert [s.name for s in ESP300.streams_for({"axes": [1, 3]})] == [
        "axis1_position",
        "axis1_velocity",
        "axis3_position",
        "axis3_velocity",
    ]
    position, velocity = ESP300.streams_for({"axes": [2]})
    assert (position.name, velocity.name) == ("axis2_position", "axis2_velocity")
    assert arrowdaq.data.unit_of(velocity.schema()) == "mm/s"
    assert isinstance(ESP300(None), Movable)


async def test_end_to_end_moves_the_table_stage_and_publishes_positions(hub):
    table = OpticalTable(latency_scale=0.05, seed=2)  # 5 mm/s runs at 100 mm/s
    sim = ESP300Sim(table)
    with serve(sim, "tcp") as server:
        sub = hub.subscribe("stage/*")
        ref = spawn_instrument(
            hub,
            "stage",
            ESP300,
            lambda: ESP300.open(server.address, name="stage", axes=[1, 2], **(FAST | PATIENT)),
            settings={"axes": [1, 2]},
            poll_hz={"axis1_position": 20, "axis2_position": 20},
        )
        await ref.wait_status(ActorStatus.RUNNING)
        await hub.command("stage", "set", name="axis1.velocity", value=1.0)  # 10 mm at 20 mm/s: 0.5 s, so that
        await hub.command("stage", "move_to", target=10.0, axis=1, wait=False)  # a loaded machine still sees it move
        assert await hub.command("stage", "is_moving", axis=1)
        assert await hub.command("stage", "wait_motion", axis=1) == pytest.approx(10.0)
        await hub.command("stage", "set", name="axis1.velocity", value=5.0)
        assert table.stage[1].at(time.monotonic()) == 10.0  # the knife edge is where the controller says

        seen: dict[str, float] = {}
        async with asyncio.timeout(5):
            while seen.get("stage/axis1_position") != pytest.approx(10.0) or "stage/axis2_position" not in seen:
                stream, batch = await sub.get()
                assert batch.column("unit")[0].as_py() == "mm"
                seen[stream] = batch.column("value")[-1].as_py()
        assert seen["stage/axis2_position"] == 0.0

        with pytest.raises(CommandError, match=r"^stage: move_to: target: 30\.0 is outside the limits 0\.\.25 mm$"):
            await hub.command("stage", "move_to", target=30.0, axis=1)  # the limits read at the start: at once
        sim.limits[1][1] = 20.0  # changed on the front panel: the controller refuses what the driver let through
        with pytest.raises(CommandError, match="106: AXIS-1 POSITIVE SOFTWARE LIMIT"):
            await hub.command("stage", "move_to", target=22.0, axis=1)
        sim.push_error(7, "PARAMETER OUT OF RANGE")
        with pytest.raises(CommandError, match="controller error 7"):
            await hub.command("stage", "home", axis=2)
        assert "controller error 7" in ref.last_error
        assert ref.status is ActorStatus.RUNNING and ref.restarts == 0
        with pytest.raises(CommandError, match=r"axis 1.7 is not configured"):
            await hub.command("stage", "move_to", target=1.0, axis=1.7)
        # a move that outlasts its wait is the caller's answer, not a reason to restart the controller
        table.latency_scale = 1.0  # 10 mm at the real 5 mm/s: 2 s, longer than a loaded machine's pause
        with pytest.raises(CommandError, match="DeviceTimeout: stage: axis 1 still moving after 0.01 s"):
            await hub.command("stage", "move_to", target=0.0, axis=1, wait=False)
            await hub.command("stage", "wait_motion", axis=1, max_wait=0.01)
        table.latency_scale = 0.05
        assert ref.status is ActorStatus.RUNNING and ref.restarts == 0
        await hub.command("stage", "home", axis=1)
        assert await hub.command("stage", "position", axis=1) == 0.0
