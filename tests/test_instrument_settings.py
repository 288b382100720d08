"""Declared settings from the configuration: applied at connect, read back, recorded; bad ones named."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import numpy as np
import pytest

import arrowdaq
from arrowdaq.actors import ActorStatus
from arrowdaq.app.config import load_config
from arrowdaq.app.runner import Application
from arrowdaq.cli.main import main
from arrowdaq.errors import CommandError, InstrumentConfigError, ProtocolError
from arrowdaq.instruments import Control, Driver, Measurement, command, spawn_instrument
from arrowdaq.instruments.drivers.ell14 import ELL14
from arrowdaq.instruments.drivers.esp300 import ESP300
from arrowdaq.instruments.drivers.maitai import MaiTai
from arrowdaq.instruments.validators import in_range, int_in_range
from arrowdaq.sim import OpticalTable, serve
from arrowdaq.sim.ell14 import ELL14Sim, Mount
from arrowdaq.sim.esp300 import ESP300Sim
from arrowdaq.sim.maitai import MaiTaiSim
from arrowdaq.sim.scripted import expected_protocol

from .configs import instrument, lab, write_config
from .runs import published, run_until


def write_lab(tmp_path: Path, wavelength: object = 780) -> Path:
    """The laser (at ``wavelength``), the power meter and the stage, each with settings to apply at connect."""
    laser = {"wavelength": wavelength, "shutter": "open", "verify_timeout": 0.5}
    return write_config(
        tmp_path,
        lab(
            instrument("laser", "maitai", poll_hz=10.0, settings=laser),
            instrument("pm1", poll_hz=10.0, settings={"wavelength": 780, "attenuator": 1}),
            instrument("stage", "esp300", settings={"axes": [1, 2], "axis2": {"velocity": 2.5}}),
            name="set-up",
        ),
    )


async def test_configured_settings_are_in_the_run_file_and_in_the_streams_from_the_first_row(tmp_path):
    app = Application(load_config(write_lab(tmp_path), environ={}))
    summary = await run_until(  # however long the start takes on a loaded machine
        app,
        lambda: (
            app.instruments.keys() >= {"laser", "pm1", "stage"}
            and all(published(app, s) > 0 for s in ("laser/wavelength", "laser/shutter", "pm1/power"))
        ),
        "the instruments described and their first readings",
    )
    assert not summary.errors, summary.errors
    run = arrowdaq.open_run(summary.run_file)
    instruments = run.metadata["instrument"]
    laser, meter, stage = (instruments[i]["settings"] for i in ("laser", "pm1", "stage"))
    assert laser["wavelength"] == 780 and laser["shutter"] == "open"
    assert meter["wavelength"] == 780 and meter["attenuator"] == 1
    assert stage["axis2"]["velocity"] == 2.5 and stage["axis1"]["velocity"] == 5.0
    wavelength = run.table("laser/wavelength").column("value").to_numpy()
    shutter = run.table("laser/shutter").column("value").to_numpy()
    assert len(wavelength) and np.all(wavelength == 780.0)  # from the first row on
    assert len(shutter) and np.all(shutter == 1.0)


def test_a_bad_value_fails_at_start_naming_the_key(tmp_path, capsys):
    status = main(["run", str(write_lab(tmp_path, wavelength=2000)), "--duration", "1"])
    err = capsys.readouterr().err
    assert status != 0
    assert "lab.toml: instruments[0].settings: laser: setting wavelength: 2000 is outside 690..1040" in err
    assert "Traceback" not in err
    assert not (tmp_path / "data").exists()  # nothing was started


def test_unknown_channel_settings_are_named(tmp_path, capsys):
    text = write_lab(tmp_path).read_text().replace("velocity = 2.5", "speed = 2.5")
    (tmp_path / "lab.toml").write_text(text)
    assert main(["run", str(tmp_path / "lab.toml"), "--duration", "1"]) != 0
    err = capsys.readouterr().err
    assert "stage: setting axis2.speed: unknown (settings of axis2: motor, units, velocity" in err


def test_a_setting_the_device_does_not_take_is_an_error_naming_instrument_setting_and_value():
    table = OpticalTable(latency_scale=0.0)
    sim = MaiTaiSim(table)
    sim.local_mode = True  # the front panel has the laser: sets are not executed
    with serve(sim, "pty") as server:
        laser = MaiTai.open(server.address, name="laser", wavelength=850, verify_timeout=0.05, verify_interval=0.01)
        try:
            with pytest.raises(InstrumentConfigError, match=r"laser: setting wavelength = 850 refused: .*not executed"):
                laser.connect_configured()
        finally:
            sim.local_mode = False
            laser.close()


class Oven(Driver):
    """A small driver with two declared settings, to check the declarations themselves."""

    driver_name = "oven"
    port_settings = Driver.port_settings
    setpoint = Control("S?", "S{:d}", parse=int, validator=int_in_range(0, 300), unit="C")
    ramp = Control("R?", "R{:.1f}", parse=float, validator=in_range(0, 10), unit="C/min")
    temperature = Measurement("T?", unit="C")


def test_formats_cannot_be_broken_by_validators_and_bad_replies_are_protocol_errors():
    steps = [("S120", None), ("R2.0", None), ("R?", "2.5"), ("S?", "12x"), ("T?", "hot")]
    with expected_protocol(Oven, steps, name="oven", timeout=0.3) as oven:
        oven.setpoint = 120.0  # a float from a JSON client: the {:d} field gets 120
        oven.ramp = 2  # an int: the {:.1f} field gets 2.0
        with pytest.raises(CommandError, match="oven.setpoint: 12.5 is not a whole number"):
            oven.setpoint = 12.5  # nothing is sent
        assert oven.ramp == 2.5
        with pytest.raises(ProtocolError, match=r"oven.setpoint: reply '12x' to 'S\?' cannot be read"):
            oven.setpoint
        with pytest.raises(ProtocolError, match="oven.temperature"):
            oven.temperature


def test_describe_comes_from_the_declarations():
    described = ESP300.describe()
    axis = {c["name"]: c for c in described["channels"]["axis"]}
    assert axis["velocity"] == {
        "name": "velocity",
        "unit": "mm/s",
        "doc": "",
        "read_only": False,
        "settable_from_config": True,
        "limits": [0, 1000],
        "type": "float",
    }
    assert axis["position"]["read_only"] is True
    commands = {c["name"]: c for c in described["commands"]}
    assert [p["name"] for p in commands["move_to"]["params"]] == ["target", "wait", "axis"]
    assert commands["move_to"]["changes_settings"] is False
    laser = {c["name"]: c for c in MaiTai.describe()["controls"]}
    assert laser["shutter"]["choices"] == ["closed", "open"]
    assert laser["wavelength"]["limits"] == [690, 1040]


async def test_the_settings_snapshot_is_read_again_after_a_command_that_changes_the_instrument(hub):
    table = OpticalTable(latency_scale=0.0, seed=2)
    with serve(ESP300Sim(table), "pty") as server:
        ref = spawn_instrument(
            hub,
            "stage",
            ESP300,
            lambda: ESP300.open(server.address, name="stage", axes=[1], timeout=0.5, motion_poll=0.005),
            settings={"axes": [1]},
        )
        await ref.wait_status(ActorStatus.RUNNING)
        assert (await hub.command("stage", "describe"))["settings"]["axis1"]["velocity"] == 5.0
        await hub.command("stage", "set", name="axis1.velocity", value=7.5)
        assert (await hub.command("stage", "describe"))["settings"]["axis1"]["velocity"] == 7.5
        assert await hub.command("stage", "get", name="axis1.velocity") == 7.5
        with pytest.raises(CommandError, match=r"no setting 'axis3.velocity' \(settings: .*axis1.velocity"):
            await hub.command("stage", "get", name="axis3.velocity")


class Held:
    """A simulator that holds its answer to a poll (``asked`` is set) until the test sets ``release``."""

    def __init__(self, table: OpticalTable) -> None:
        super().__init__(table)  # type: ignore[call-arg]  # the simulator's, after this in the MRO
        self.asked = threading.Event()
        self.release = threading.Event()

    def hold(self, poll: bool) -> None:
        if poll and not self.release.is_set():
            self.asked.set()
            self.release.wait(10)


class HeldMaiTai(Held, MaiTaiSim):
    """The laser simulator, holding its answer to a power poll."""

    def handle(self, command: str) -> str | None:
        self.hold(command.upper().startswith("READ:POW"))
        return super().handle(command)


async def test_a_set_value_is_refused_before_it_queues_naming_instrument_setting_and_limits(hub):
    table = OpticalTable(latency_scale=0.0, seed=3)
    sim = HeldMaiTai(table)
    with serve(sim, "pty") as server:
        ref = spawn_instrument(
            hub,
            "laser",
            MaiTai,
            lambda: MaiTai.open(server.address, name="laser", timeout=5.0, min_interval=0.0),
            poll_hz={"wavelength": 0.0, "power": 5.0, "shutter": 0.0},
        )
        await ref.wait_status(ActorStatus.RUNNING)
        await asyncio.to_thread(sim.asked.wait, 10)  # a poll is in progress and its answer held back
        try:
            with pytest.raises(CommandError, match=r"^laser\.wavelength: 2000 is outside 690\.\.1040$"):
                await hub.command("laser", "set", name="wavelength", value=2000)
            with pytest.raises(CommandError, match=r"^laser\.shutter: 'ajar' is not one of 'closed', 'open'$"):
                await hub.command("laser", "set", name="shutter", value="ajar")
            with pytest.raises(CommandError, match=r"^laser\.power is read-only$"):
                await hub.command("laser", "set", name="power", value=1)
            with pytest.raises(CommandError, match=r"^laser: set_wavelength: nm: 'abc' is not a number$"):
                await hub.command("laser", "set_wavelength", nm="abc")  # a command's argument, by its annotation
            with pytest.raises(CommandError, match=r"^laser: set_wavelength: nm: 2000 is outside 690\.\.1040$"):
                await hub.command("laser", "set_wavelength", nm=2000)  # the setting it sets: the same validator
            assert not sim.release.is_set()  # refused while the poll still waits: never queued behind it
        finally:
            sim.release.set()
        assert await hub.command("laser", "set", name="wavelength", value=800) == pytest.approx(800)
        assert b"WAVELENGTH:2000" not in bytes(server.received)


class HeldELL14(Held, ELL14Sim):
    """The rotation mount's simulator, holding its answer to a position poll."""

    def handle_packet(self, mount: Mount, mnemonic: str, data: str) -> str | None:
        self.hold(mnemonic == "gp")
        return super().handle_packet(mount, mnemonic, data)


class HeldESP300(Held, ESP300Sim):
    """The motion controller's simulator, holding its answer to a position poll."""

    def handle(self, command: str) -> str | None:
        self.hold("TP" in command.upper())
        return super().handle(command)


async def test_a_move_beyond_the_configured_travel_is_refused_before_it_queues(hub):
    """The mount's configured limits and the controller's software limits (configured, read back at the
    start) are the instance's: a move beyond them is refused at once, while a poll holds the bus."""
    table = OpticalTable(latency_scale=0.0, seed=5)
    mount, controller = HeldELL14(table), HeldESP300(table)
    with serve(mount, "pty") as hwp_port, serve(controller, "pty") as stage_port:
        hwp = spawn_instrument(
            hub,
            "hwp",
            ELL14,
            lambda: ELL14.open(hwp_port.address, name="hwp", limits=[0, 180], timeout=5.0),
            poll_hz={"position": 5.0},
        )
        stage = spawn_instrument(
            hub,
            "stage",
            ESP300,
            lambda: ESP300.open(
                stage_port.address, name="stage", axes=[1], timeout=5.0, axis1={"left_limit": -5, "right_limit": 5}
            ),
            settings={"axes": [1]},
            poll_hz={"axis1_position": 5.0, "axis1_velocity": 0.0},
        )
        await hwp.wait_status(ActorStatus.RUNNING)
        await stage.wait_status(ActorStatus.RUNNING)
        await asyncio.to_thread(mount.asked.wait, 10)  # each is answering a poll, held back
        await asyncio.to_thread(controller.asked.wait, 10)
        try:
            with pytest.raises(CommandError, match=r"^hwp: move_to: target: 999 is outside the limits 0\.\.180 deg$"):
                await hub.command("hwp", "move_to", target=999)
            with pytest.raises(
                CommandError,
                match=r"^hwp: move_by: degrees: -200 is outside the steps the limits allow -180\.\.180 deg$",
            ):
                await hub.command("hwp", "move_by", degrees=-200)  # longer than the travel is wide, from anywhere
            with pytest.raises(CommandError, match=r"^stage: move_to: target: 7\.5 is outside the limits -5\.\.5 mm$"):
                await hub.command("stage", "move_to", target=7.5)
            with pytest.raises(
                CommandError, match=r"^stage: move_by: distance: 12 is outside the steps the limits allow -10\.\.10 mm$"
            ):
                await hub.command("stage", "move_by", distance=12, axis=1)
            with pytest.raises(CommandError, match=r"^stage: axis 2 is not configured \(axes: 1\)$"):
                await hub.command("stage", "move_to", target=1, axis=2)
            assert not mount.release.is_set() and not controller.release.is_set()  # never queued behind a poll
        finally:
            mount.release.set()
            controller.release.set()
        await hub.command("stage", "set", name="axis1.right_limit", value=10)  # the limits as read back after it
        assert await hub.command("stage", "move_to", target=7.5) == pytest.approx(7.5, abs=0.01)
        with pytest.raises(CommandError, match=r"^stage: move_to: target: 11 is outside the limits -5\.\.10 mm$"):
            await hub.command("stage", "move_to", target=11)
        assert await hub.command("hwp", "move_to", target=90) == pytest.approx(90, abs=0.01)
    assert b"ma" not in bytes(hwp_port.received).replace(b"0ma", b"", 1)  # only the move to 90 went out
    assert b"PA-" not in bytes(stage_port.received) and b"PA11" not in bytes(stage_port.received)
    assert b"PR" not in bytes(stage_port.received)


def test_a_validate_declaration_naming_nothing_fails_when_the_driver_is_defined():
    with pytest.raises(TypeError, match=r"Bad\.go: validate names 'travle': no such setting or method"):

        class Bad(Driver):  # a typo would otherwise leave the argument unchecked until the device refuses it
            @command(validate={"target": "travle"})
            def go(self, target: float) -> None: ...

    with pytest.raises(TypeError, match=r"Worse\.go: validate names 'aim', not an argument of go"):

        class Worse(Driver):
            level = Control("L?", "L{:g}", validator=in_range(0, 1))

            @command(validate={"aim": "level"})
            def go(self, target: float) -> None: ...


async def test_a_channel_setting_is_checked_by_its_declaration_before_it_queues(hub):
    table = OpticalTable(latency_scale=0.0, seed=4)
    with serve(ESP300Sim(table), "pty") as server:
        ref = spawn_instrument(
            hub,
            "stage",
            ESP300,
            lambda: ESP300.open(server.address, name="stage", axes=[1], timeout=0.5),
            settings={"axes": [1]},
        )
        await ref.wait_status(ActorStatus.RUNNING)
        with pytest.raises(CommandError, match=r"^stage\.axis1\.velocity: -2 is outside 0\.\.1000$"):
            await hub.command("stage", "set", name="axis1.velocity", value=-2)
        with pytest.raises(CommandError, match=r"^stage\.axis1\.units: 12 is outside 0\.\.11$"):
            await hub.command("stage", "set", name="axis1.units", value=12)
        assert b"VA-2" not in bytes(server.received)
