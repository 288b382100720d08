"""The instrument framework's additions: Driver.open with port overrides, per-instance streams."""

from __future__ import annotations

import pytest

from arrowdaq.actors import ActorStatus
from arrowdaq.errors import ConfigError, DeviceErrorReply
from arrowdaq.instruments import Driver, Measurement, Stream, spawn_instrument
from arrowdaq.instruments.transports import PortSettings
from arrowdaq.sim import serve
from arrowdaq.sim.scripted import ScriptedDevice


class Meter(Driver):
    driver_name = "meter"
    port_settings = PortSettings(timeout=1.0, delay=0.1)
    streams = (Stream("volts", unit="V", poll_hz=50),)
    volts = Measurement("V?")

    def __init__(self, transport, *, name: str = "", gain: float = 1.0) -> None:
        super().__init__(transport, name=name)
        self.gain = gain


class Channels(Meter):
    """Streams chosen by a setting, like the ESP300's axes."""

    def __init__(self, transport, *, name: str = "", channels: tuple[str, ...] = ("a",)) -> None:
        super().__init__(transport, name=name)
        self.channels = channels

    @classmethod
    def streams_for(cls, settings) -> tuple[Stream, ...]:
        return tuple(Stream(c, unit="V", read="volts", poll_hz=50) for c in settings.get("channels", ("a",)))

    def read(self, stream: str) -> float:
        return self.volts


@pytest.fixture
def device():
    with serve(ScriptedDevice({"V?": "1.5"}), "pty") as server:
        yield server


def test_setting_names_include_the_port_settings():
    names = Meter.setting_names()
    assert names[0] == "gain"
    assert {"timeout", "delay", "min_interval", "rtscts", "xonxoff", "baudrate"} <= set(names)


def test_open_applies_port_overrides_and_passes_the_rest_to_the_constructor(device):
    meter = Meter.open(device.address, name="m1", timeout=0.25, delay=0.0, gain=2.0)
    try:
        assert meter.transport.settings == PortSettings(timeout=0.25, delay=0.0)
        assert meter.gain == 2.0 and meter.name == "m1"
        assert meter.volts == 1.5
    finally:
        meter.close()
    assert not meter.transport.is_open


def test_open_refuses_unknown_settings_naming_them(device):
    with pytest.raises(ConfigError, match="m1: unknown setting 'gian' for driver 'meter' \\(settings: gain, baudrate"):
        Meter.open(device.address, name="m1", gian=2.0)


async def test_the_actor_declares_and_polls_the_streams_its_settings_give(hub, device):
    sub = hub.subscribe("multi/*")
    settings = {"channels": ("a", "b"), "delay": 0.0}
    make = lambda: Channels.open(device.address, name="multi", **settings)  # noqa: E731
    ref = spawn_instrument(hub, "multi", Channels, make, settings=settings)
    assert hub.match("multi/*") == ["multi/a", "multi/b"]  # declared before the device is opened
    await ref.wait_status(ActorStatus.RUNNING)
    seen = set()
    while seen != {"multi/a", "multi/b"}:
        stream, batch = await sub.get()
        assert batch.column("value")[0].as_py() == 1.5
        seen.add(stream)
    assert set((await hub.command("multi", "describe"))["streams"]) == {"a", "b"}
    assert await hub.command("multi", "read", stream="b") == 1.5


async def test_poll_rates_for_unknown_streams_fail_the_actor_at_once(hub, device):
    ref = spawn_instrument(
        hub, "m", Meter, lambda: Meter.open(device.address, name="m", delay=0.0), poll_hz={"volt": 5}
    )
    await ref.wait_status(ActorStatus.FAILED)  # at once: a restart cannot fix a configuration
    assert ref.restarts == 0
    assert "InstrumentConfigError: m: poll_hz names unknown stream 'volt'" in ref.last_error


class Counter(Driver):
    """Reads cost nothing (a DAQ card's buffer, say); every 997th read is refused by the device."""

    driver_name = "counter"
    streams = (Stream("n", unit="1", poll_hz=5000),)

    def __init__(self, transport=None, *, name: str = "") -> None:
        super().__init__(transport, name=name)
        self.count = 0

    def read(self, stream: str) -> float:
        self.count += 1
        if self.count % 997 == 0:
            raise DeviceErrorReply(f"{self.name}: E-997")
        return float(self.count)


async def test_a_fast_driver_is_read_in_bursts_and_every_reading_is_published_in_order(hub):
    """5 kHz: the worker thread reads many values per hop to the event loop; none is lost,
    not at a batch boundary, not at an error reply, not at stop; timestamps keep their order."""
    sub = hub.subscribe("fast/*", name="recorder")
    driver = Counter(name="fast")
    ref = spawn_instrument(hub, "fast", Counter, lambda: driver)
    await ref.wait_status(ActorStatus.RUNNING)
    values: list[float] = []
    stamps: list[int] = []
    while len(values) < 3000:
        _, batch = await sub.get()
        values += batch.column("value").to_pylist()
        stamps += batch.column("timestamp_ns").to_pylist()
    await hub.stop()
    while (item := sub.pop()) is not None:  # what was gathered at the stop was published too
        values += item[1].column("value").to_pylist()
        stamps += item[1].column("timestamp_ns").to_pylist()
    last = int(values[-1])
    assert values == [float(k) for k in range(1, last + 1) if k % 997]
    assert driver.count == last  # nothing read was left unpublished
    assert stamps == sorted(stamps)
    batches = hub.streams["fast/n"].meter.batches
    assert batches * 10 < len(values)  # one hop per burst, not per reading
    assert "E-997" in (ref.last_error or "")
