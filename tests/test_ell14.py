"""ELL14 rotation mounts: packets without terminators, two's-complement hex, status codes, a shared bus."""

from __future__ import annotations

import asyncio
import threading

import pytest

from arrowdaq.actors import ActorStatus
from arrowdaq.errors import CommandError, ConfigError, DeviceStatusError, DeviceTimeout, ProtocolError
from arrowdaq.instruments import Movable, spawn_instrument
from arrowdaq.instruments.drivers.ell14 import ELL14, from_hex32, to_hex32
from arrowdaq.sim import OpticalTable, serve
from arrowdaq.sim.ell14 import ELL14Sim

from .waiting import wait_until, wait_until_async

FAST = {"timeout": 0.3, "move_timeout": 1.0}


@pytest.fixture
def bus():
    """An Elliptec bus simulator on a pty with mounts 0, 1 and 2; drivers opened on it are closed after."""
    table = OpticalTable(latency_scale=0.0, seed=4)
    sim = ELL14Sim(table, addresses="012", hwp_address="0")
    server = serve(sim, "pty")
    mounts: list[ELL14] = []

    def mount(address: str = "0", **settings) -> ELL14:
        driver = ELL14.open(server.address, name=f"rot{address}", address=address, **(FAST | settings))
        mounts.append(driver)
        return driver

    yield server, sim, mount
    for driver in mounts:
        driver.close()
    server.stop()


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("00000000", 0),
        ("00023000", 143360),
        ("FFFFFFFF", -1),
        ("FFFFF072", -3982),
        ("80000000", -(2**31)),
        ("7FFFFFFF", 2**31 - 1),
    ],
)
def test_twos_complement_positions(text, value):
    assert from_hex32(text) == value
    assert to_hex32(value) == text


@pytest.mark.parametrize("text", ["0000000", "0000000G", "+0000001"])
def test_malformed_positions_are_protocol_errors(text):
    with pytest.raises(ProtocolError):
        from_hex32(text)


def test_connect_reads_the_info_packet(bus):
    server, _, mount = bus
    rot = mount("2")
    rot.connect()
    assert bytes(server.received) == b"2in"
    assert rot.info["travel"] == 360 and rot.info["pulses_per_unit"] == 143360
    assert rot.identity()["serial"] == "11400519"


def test_moves_send_hex_pulses_without_terminator_and_read_the_arrival_position(bus):
    server, _, mount = bus
    rot = mount("1")
    assert rot.move_to(-10) == pytest.approx(-10, abs=1 / 398)
    assert rot.move_by(90) == pytest.approx(80, abs=2 / 398)
    assert rot.position() == pytest.approx(80, abs=2 / 398)
    # the first move reads the velocity once, to know how long a move may take
    assert bytes(server.received) == b"1gv" + b"1maFFFFF072" + b"1mr00008C00" + b"1gp"


def test_home_jog_and_velocity(bus):
    server, _, mount = bus
    rot = mount("0")
    rot.move_to(45)
    assert rot.home() == 0.0
    rot.jog_step = 5
    assert rot.jog_step == pytest.approx(5, abs=1 / 398)
    assert rot.jog() == pytest.approx(5, abs=1 / 398)
    rot.velocity = 50
    assert rot.velocity == 50
    # a jog reads its step first: the step's travel time bounds the wait for the reply
    assert bytes(server.received).endswith(b"0ho00sj000007C70gj0gj0fw0sv320gv")
    with pytest.raises(CommandError, match="rot0.velocity: 150 is outside 0..100"):
        rot.velocity = 150


@pytest.mark.parametrize(
    ("code", "condition"), [(0x02, "mechanical timeout"), (0x0B, "motor error"), (0x0D, "over current")]
)
def test_status_codes_are_typed_errors_naming_the_condition(bus, code, condition):
    _, sim, mount = bus
    rot = mount("0")
    sim.inject_status("0", code)
    with pytest.raises(DeviceStatusError, match=condition) as raised:
        rot.position()
    assert raised.value.code == code
    assert rot.position() == 0.0  # the next exchange is fine


def test_a_move_that_gets_no_reply_is_not_sent_again(bus):
    server, _, mount = bus
    rot = mount("0", move_timeout=0.1)
    rot.move_to(10)
    server.faults.silent = True
    with pytest.raises(DeviceTimeout):
        rot.move_to(30)
    assert bytes(server.received).count(b"0ma") == 2  # the first move, and the one that got no reply, once


def test_a_slow_mount_gets_the_time_its_move_needs(bus):
    _, _, mount = bus
    rot = mount("0", move_timeout=0.5)
    assert rot._move_timeout(300) == pytest.approx(0.5 + 300 / 430)  # read once: velocity 100 %
    rot.velocity = 20
    assert rot._move_timeout(300) == pytest.approx(0.5 + 300 / 86)


def test_two_mounts_cannot_claim_one_address_on_a_bus(bus):
    _, _, mount = bus
    first = mount("1")
    with pytest.raises(ConfigError, match=r"rot1.address: 1 is already used by another mount on this bus"):
        mount("1")
    first.close()
    assert mount("1").position() == 0.0  # free again once the first one let go


def test_a_reply_that_is_not_from_the_mount_is_a_protocol_error(bus):
    server, _, mount = bus
    rot = mount("0")
    server.faults.garbage = True
    with pytest.raises(ProtocolError, match="not from address 0"):
        rot.position()


def test_bad_addresses_are_refused():
    with pytest.raises(ConfigError, match="'G' is not an Elliptec address"):
        ELL14(None, address="g")
    assert isinstance(ELL14(None), Movable)


def test_several_mounts_share_one_port_without_mixing_replies(bus):
    server, sim, mount = bus
    rots = [mount(a) for a in "012"]
    assert rots[0].transport is rots[1].transport is rots[2].transport
    targets = {"0": 10.0, "1": 20.0, "2": 30.0}
    errors: list[BaseException] = []

    def work(rot: ELL14) -> None:
        try:
            for _ in range(5):
                rot.move_to(targets[rot.address])
                assert rot.position() == pytest.approx(targets[rot.address], abs=1 / 398)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(rot,)) for rot in rots]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert {a: m.motion.target for a, m in sim.mounts.items()} == pytest.approx(targets, abs=1 / 398)
    rots[0].close()
    assert rots[1].position() == pytest.approx(20.0, abs=1 / 398)  # the port stays open for the others


def stop_in_thread(rot: ELL14, server) -> tuple[threading.Thread, list[BaseException | None]]:
    """``rot.stop()`` in a thread, returned once its ``st`` has gone out (the stop then waits for the bus)."""
    sent = bytes(server.received).count(rot.address.encode() + b"st")
    outcome: list[BaseException | None] = []

    def stop() -> None:
        try:
            rot.stop()
            outcome.append(None)
        except BaseException as exc:
            outcome.append(exc)

    stopper = threading.Thread(target=stop)
    stopper.start()
    wait_until(lambda: bytes(server.received).count(rot.address.encode() + b"st") > sent, message="st to go out")
    return stopper, outcome


@pytest.mark.parametrize(
    ("exchange", "expected"),
    [
        (lambda rot: rot.position(), 30.0),  # the position poll, a scan's read-back (gp -> PO)
        (lambda rot: rot.velocity, 100),  # a setting read (gv -> GV)
        (lambda rot: rot.status(), 0),  # a status query (gs -> GS): which GS is whose goes by the order sent
    ],
)
def test_an_exchange_that_takes_the_bus_between_a_stop_and_its_answer_gets_its_own_answer(bus, exchange, expected):
    """stop() sends st at once, then waits for the bus to read st's GS00. An exchange that takes the bus
    first (the actor's worker thread: the 2 Hz position poll, a scan's read-back) meets that GS00 before
    its own answer: it is the stop's, not the exchange's (a read-back raised "'0gp' answered status 00:
    OK", and a scan aborted from the window ended as failed)."""
    server, _, mount = bus
    rot = mount("0")
    rot.move_to(30.0)
    with rot.transport.lock:  # the bus is held (as by the worker thread), so the stop's thread waits for it
        stopper, outcome = stop_in_thread(rot, server)
        assert exchange(rot) == pytest.approx(expected, abs=1 / 398)
    stopper.join(10)
    assert outcome == [None]  # the stop found its answer (read by the exchange), it did not wait for another
    assert rot.position() == pytest.approx(30.0, abs=1 / 398)  # nothing left over on the bus


def test_a_move_sent_after_a_stop_is_followed_to_its_arrival(bus):
    """A move that goes out after st (the stop's thread still waiting for the bus) is not what st stopped:
    the mount makes it, and the stop must not mark it ended (wait_motion returned the old position)."""
    server, _, mount = bus
    rot = mount("0")
    rot.move_to(10.0)
    with rot.transport.lock:
        stopper, outcome = stop_in_thread(rot, server)
        rot.move_to(30.0, wait=False)
    stopper.join(10)
    assert outcome == [None]
    assert rot.wait_motion() == pytest.approx(30.0, abs=1 / 398)
    assert rot.position() == pytest.approx(30.0, abs=1 / 398)


def test_a_stop_whose_answer_was_read_by_another_exchange_still_reports_a_failure_status(bus):
    server, sim, mount = bus
    rot = mount("0")
    with rot.transport.lock:
        sim.inject_status("0", 0x0B)  # st is answered "motor error"
        stopper, outcome = stop_in_thread(rot, server)
        assert rot.position() == 0.0
    stopper.join(10)
    assert len(outcome) == 1 and isinstance(outcome[0], DeviceStatusError) and "motor error" in str(outcome[0])


async def test_end_to_end_two_mounts_on_one_bus_publish_and_obey(hub):
    table = OpticalTable(latency_scale=0.0, seed=4)
    sim = ELL14Sim(table, addresses="01", hwp_address="0")
    with serve(sim, "pty") as server:
        sub = hub.subscribe("*/position")
        refs = [
            spawn_instrument(
                hub,
                name,
                ELL14,
                (lambda a=a, n=name: ELL14.open(server.address, name=n, address=a, **FAST)),
                poll_hz={"position": 20},
            )
            for name, a in (("hwp", "0"), ("rot1", "1"))
        ]
        for ref in refs:
            await ref.wait_status(ActorStatus.RUNNING)
        await hub.command("hwp", "move_to", target=22.5)
        await hub.command("rot1", "move_to", target=-45)
        assert table.hwp.target == pytest.approx(22.5, abs=1 / 398)
        latest: dict[str, float] = {}
        async with asyncio.timeout(30):
            while latest.get("hwp/position") != pytest.approx(22.5, abs=0.01) or latest.get(
                "rot1/position"
            ) != pytest.approx(-45, abs=0.01):
                stream, batch = await sub.get()
                assert batch.column("unit")[0].as_py() == "deg"
                latest[stream] = batch.column("value")[-1].as_py()
        sim.inject_status("1", 0x0B)
        await wait_until_async(lambda: "motor error" in (refs[1].last_error or ""), message="rot1's motor error")
        assert "DeviceStatusError" in refs[1].last_error and refs[1].restarts == 0
