"""The simulated camera: settings, frame clock and gaps, physics of the spot, and end to end through the hub."""

from __future__ import annotations

import asyncio
import logging
import time

import numpy as np
import pyarrow as pa
import pytest

from arrowdaq.data import frames_of, kind_of
from arrowdaq.errors import CommandError, ConfigError
from arrowdaq.instruments import FrameProducer, Triggerable, spawn_instrument
from arrowdaq.instruments.drivers.sim_camera import SimCamera, bin_frame
from arrowdaq.instruments.registry import driver_class
from arrowdaq.sim import OpticalTable

from .waiting import wait_until


def camera(table: OpticalTable, **settings) -> SimCamera:
    """Built as the application builds it: the declared settings taken with the constructor's."""
    cam = SimCamera.build(None, name="cam1", table=table, **settings)
    cam.connect_configured()
    return cam


def wait_for_frames(cam: SimCamera, count: int = 1) -> list[pa.RecordBatch]:
    """Read like the instrument actor does until ``count`` frames came (the batches read)."""
    batches: list[pa.RecordBatch] = []

    def enough() -> bool:
        if (batch := cam.read("frames")) is not None:
            batches.append(batch)
        return sum(b.num_rows for b in batches) >= count

    wait_until(enough, message=f"{count} frames from {cam.name}")
    return batches


def centroid(frame: np.ndarray) -> tuple[float, float]:
    signal = frame.astype(float) - np.median(frame)
    signal[signal < 0.2 * signal.max()] = 0  # the spot only: background noise would pull towards the centre
    rows, cols = np.indices(frame.shape)
    return float((rows * signal).sum() / signal.sum()), float((cols * signal).sum() / signal.sum())


# --- settings and declaration ----------------------------------------------------------


def test_registered_as_sim_camera_without_a_port():
    assert driver_class("sim_camera") is SimCamera
    assert SimCamera.needs_port is False


def test_the_frame_stream_is_declared_with_the_shape_after_binning():
    (frames,) = SimCamera.streams_for({"shape": [128, 256], "binning": 4})
    schema = frames.schema()
    assert kind_of(schema) == "image"
    assert schema.field("pixels").type.shape == [32, 64]
    assert schema.field("pixels").type.value_type == "uint16"


@pytest.mark.parametrize(
    ("settings", "complaint"),
    [
        ({"exposure_s": 50e-6}, r"cam1: setting exposure_s: 5e-05 is outside 0.0001\.\.10"),
        ({"exposure_s": 20}, r"cam1: setting exposure_s: 20 is outside"),
        ({"binning": 3}, r"cam1\.binning: Input should be 1, 2 or 4 \(got 3\)"),
        ({"shape": [102, 100], "binning": 4}, r"cam1\.shape: 102×100 is not divisible by binning 4"),
        ({"shape": [64]}, r"cam1\.shape: expected \[height, width\]"),
        ({"trigger_mode": "external"}, r"cam1: setting trigger_mode: 'external' is not one of 'internal', 'software'"),
        ({"dtype": "float32"}, r"cam1\.dtype: Input should be 'uint16' \(got 'float32'\)"),
        ({"fps": 0}, r"cam1: setting fps: 0 is outside"),
        ({"buffer_frames": 0}, r"cam1\.buffer_frames: Input should be greater than or equal to 1 \(got 0\)"),
        ({"exposure": 0.1}, r"cam1: unknown setting 'exposure' for driver 'sim_camera' \(settings: .*exposure_s"),
        ({"table": "main"}, r"cam1\.table: expected the application's simulated optical table, got 'main'"),
    ],
)
def test_bad_settings_are_config_errors_naming_the_setting(table, settings, complaint):
    with pytest.raises(ConfigError, match=complaint):
        SimCamera.build(None, name="cam1", **{"table": table, **settings})


def test_settings_are_declarations_described_for_the_gui_and_recorded(table):
    described = {c["name"]: c for c in SimCamera.describe()["controls"]}
    assert described["exposure_s"]["limits"] == [100e-6, 10.0] and described["exposure_s"]["unit"] == "s"
    assert described["trigger_mode"]["choices"] == ["internal", "software"]
    assert described["fps"]["settable_from_config"] is True
    cam = camera(table, exposure_s=0.002, fps=50, trigger_mode="software")
    snapshot = cam.settings()
    assert (snapshot["exposure_s"], snapshot["fps"], snapshot["trigger_mode"]) == (0.002, 50.0, "software")
    cam.set_setting("exposure_s", 0.003)
    assert cam.get_setting("exposure_s") == 0.003 and cam.settings()["exposure_s"] == 0.003
    with pytest.raises(CommandError, match=r"cam1\.fps: 5000 is outside 0\.001\.\.1000"):
        cam.set_setting("fps", 5000)
    assert cam.fps == 50.0  # a refused value changes nothing


def test_capabilities(table):
    cam = camera(table)
    assert isinstance(cam, FrameProducer) and isinstance(cam, Triggerable)


# --- frames -----------------------------------------------------------------------------


def test_frames_have_the_declared_shape_dtype_and_monotonic_numbers(table):
    cam = camera(table, shape=(64, 96), binning=2, fps=200, exposure_s=0.001, buffer_frames=10_000)  # no drops
    batches = wait_for_frames(cam, 6)
    frames = np.concatenate([frames_of(b) for b in batches])
    assert frames.shape[1:] == (32, 48) and frames.dtype == np.uint16
    numbers = np.concatenate([b.column("frame_number").to_numpy() for b in batches])
    assert np.all(np.diff(numbers.astype(np.int64)) == 1) and numbers[0] == 0
    stamps = np.concatenate([b.column("timestamp_ns").to_numpy() for b in batches])
    assert np.all(np.diff(stamps.astype(np.int64)) > 0)
    assert batches[0].schema.equals(
        SimCamera.streams_for({"shape": [64, 96], "binning": 2})[0].schema(), check_metadata=True
    )


def test_a_slow_reader_sees_a_gap_that_is_counted_and_logged(table, caplog):
    caplog.set_level(logging.WARNING)
    cam = camera(table, shape=(32, 32), fps=500, exposure_s=0.001, buffer_frames=2)
    first = wait_for_frames(cam, 1)[-1].column("frame_number").to_numpy()[-1]
    before = cam.dropped_frames  # a loaded machine may already have dropped some before the first read
    time.sleep(0.05)  # the thing tested: a reader away for 50 ms (~25 frames); the camera keeps 2
    batch = cam.read("frames")
    numbers = batch.column("frame_number").to_numpy()
    assert batch.num_rows == 2 and numbers[1] == numbers[0] + 1
    lost = int(numbers[0]) - int(first) - 1
    assert lost > 0 and cam.dropped_frames - before == lost
    assert cam.dropped_frames == cam.settings()["dropped_frames"]
    assert any(f"dropped {lost} frame(s)" in r.getMessage() and "cam1" in r.getMessage() for r in caplog.records)


def test_software_trigger_gives_one_frame_per_trigger(table):
    cam = camera(table, shape=(32, 32), trigger_mode="software", exposure_s=0.001)
    time.sleep(2 * cam.frame_period_s)  # the thing tested: time passes, a free-running camera would expose a frame
    assert cam.read("frames") is None  # no trigger, no frame
    cam.trigger()
    cam.trigger()
    batches = wait_for_frames(cam, 2)
    assert sum(b.num_rows for b in batches) == 2
    assert cam.read("frames") is None


def test_trigger_in_internal_mode_is_refused(table):
    cam = camera(table)
    with pytest.raises(CommandError, match="needs trigger mode 'software'"):
        cam.trigger()


def test_exposure_is_validated_and_scales_the_signal(table):
    cam = camera(table, shape=(64, 64), fps=200, exposure_s=0.001)
    dim = frames_of(wait_for_frames(cam, 1)[0])[0].astype(float)
    cam.set_exposure(0.004)
    bright = frames_of(wait_for_frames(cam, 1)[0])[0].astype(float)
    dark = 20.0  # the table's dark counts
    # the charge collected in the whole frame (a frame's brightest pixel is biased by its shot noise: that ratio
    # missed 4 ± 15 % in 1.6 % of frame pairs; the summed signal misses it in ~1e-7)
    assert (bright - dark).sum() / (dim - dark).sum() == pytest.approx(4.0, rel=0.15)
    with pytest.raises(CommandError, match=r"cam1\.exposure_s: 11 is outside"):
        cam.set_exposure(11)


def test_binning_is_fixed_for_the_run_not_a_setting_to_change(table):
    cam = camera(table, shape=(64, 64), binning=2)
    assert "binning" not in cam.setting_keys()  # it fixes the stream's frame shape
    with pytest.raises(CommandError, match=r"cam1: no setting 'binning' \(settings: exposure_s, fps, trigger_mode\)"):
        cam.set_setting("binning", 4)


def test_bin_frame_sums_blocks():
    frame = np.arange(16).reshape(4, 4)
    np.testing.assert_array_equal(
        bin_frame(frame, 2), [[0 + 1 + 4 + 5, 2 + 3 + 6 + 7], [8 + 9 + 12 + 13, 10 + 11 + 14 + 15]]
    )


# --- physics ------------------------------------------------------------------------------


def test_dark_frames_have_shot_noise(table):
    table.shutter_open = False
    cam = camera(table, shape=(128, 128), fps=200, exposure_s=0.001)
    frame = frames_of(wait_for_frames(cam, 1)[0])[0].astype(float)
    assert frame.mean() == pytest.approx(20.0, rel=0.05)
    assert frame.var() == pytest.approx(frame.mean(), rel=0.1)  # Poisson: variance = mean


def test_binning_adds_the_charge_of_the_binned_pixels(table):
    table.shutter_open = False
    plain = frames_of(wait_for_frames(camera(table, shape=(64, 64), fps=200, exposure_s=0.001), 1)[0]).astype(float)
    binned = frames_of(wait_for_frames(camera(table, shape=(64, 64), binning=2, fps=200, exposure_s=0.001), 1)[0])
    assert binned.mean() == pytest.approx(4 * plain.mean(), rel=0.05)


def test_the_spot_moves_with_the_stage(table):
    cam = camera(table, shape=(256, 256), fps=200, exposure_s=0.005)
    row0, col0 = centroid(frames_of(wait_for_frames(cam, 1)[-1])[-1])
    assert (row0, col0) == pytest.approx(table.spot_center_px(), abs=1.0)
    now = time.monotonic()
    table.stage[2].move_to(3.0, speed=1e6, now=now)  # axis 2 moves the spot along columns
    table.stage[3].move_to(-2.0, speed=1e6, now=now)  # axis 3 along rows
    cam.read("frames")  # frames exposed before the move
    row1, col1 = centroid(frames_of(wait_for_frames(cam, 1)[-1])[-1])
    px_per_mm = table.settings.camera_px_per_mm
    assert col1 - col0 == pytest.approx(3.0 * px_per_mm, abs=1.0)
    assert row1 - row0 == pytest.approx(-2.0 * px_per_mm, abs=1.0)


# --- end to end -----------------------------------------------------------------------------


async def test_end_to_end_frames_reach_a_subscriber_and_commands_work(hub, table):
    settings = {"table": table, "shape": [64, 64], "binning": 2, "fps": 100.0, "exposure_s": 0.001}
    sub = hub.subscribe("cam1/frames")
    spawn_instrument(hub, "cam1", SimCamera, lambda: SimCamera.build(None, name="cam1", **settings), settings=settings)
    async with asyncio.timeout(10):
        _, batch = await sub.get()
    assert frames_of(batch).shape[1:] == (32, 32)
    info = await hub.command("cam1", "describe")
    assert {"FrameProducer", "Triggerable"} <= set(info["capabilities"])
    assert info["settings"]["frame_shape"] == [32, 32]
    await hub.command("cam1", "set_exposure", seconds=0.004)
    info = await hub.command("cam1", "describe")
    assert info["settings"]["exposure_s"] == 0.004
    with pytest.raises(CommandError, match="is outside"):
        await hub.command("cam1", "set_exposure", seconds=0.00001)
    async with asyncio.timeout(10):
        numbers = []
        while len(numbers) < 5:
            _, batch = await sub.get()
            numbers.extend(batch.column("frame_number").to_pylist())
    assert numbers == sorted(numbers)
    assert await hub.command("cam1", "set", name="trigger_mode", value="software") == "software"
    info = await hub.command("cam1", "describe")
    assert info["settings"]["trigger_mode"] == "software"  # the snapshot is read again after a set
    await hub.command("cam1", "trigger")
    async with asyncio.timeout(10):
        _, batch = await sub.get()  # the triggered frame
    assert batch.num_rows >= 1
    assert hub.status()["actors"]["cam1"]["status"] == "Running"
