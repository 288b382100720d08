"""A simulated scientific camera that images the optical table's beam spot.

There is no wire protocol: this driver stands where a vendor SDK would (a PVCAM
camera plugs in behind the same FrameProducer capability, see
``docs/decisions``). Its settings are declarations held by the driver
(:class:`~arrowdaq.instruments.driver.Setting`): ``exposure_s``, ``fps`` and
``trigger_mode`` are validated, settable from the configuration and with
``hub.command(cam, "set", name=..., value=...)``, and in the run file's settings
snapshot like any instrument's. It behaves like a real camera in the ways that
matter to the rest of the system:

* frames come from a clock (``internal`` trigger: one every ``max(1/fps,
  exposure)``) or from :meth:`trigger` (``software``), not from the reader;
  changing the exposure, rate or trigger mode restarts the clock;
* the camera buffers ``buffer_frames`` frames; a reader that falls behind loses
  the oldest ones. Frame numbers stay monotonic, so a loss shows as a gap, and
  every gap is counted (``dropped_frames`` in the settings) and logged;
* binning sums ``b × b`` sensor pixels (more signal, fewer pixels), so the
  frame shape is ``shape / binning`` and the stream is declared with it.

A stream's schema is fixed for a run (storage creates its datasets from it), so
``shape``, ``binning`` and ``dtype`` are constructor settings, given in the
configuration and fixed while the instrument runs.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Annotated, Any, Literal, Protocol, runtime_checkable

import numpy as np
import pyarrow as pa
from pydantic import Field

from ...data import image_batch, schemas
from ...errors import CommandError, ConfigError, InstrumentConfigError
from ...log import get_logger
from ...validation import check
from ..driver import Driver, Setting, Stream, command
from ..transports.base import Transport
from ..validators import in_range, one_of

EXPOSURE_RANGE_S = (100e-6, 10.0)
#: On-chip binning: 1×1, 2×2 or 4×4 pixels summed.
Binning = Literal[1, 2, 4]
TRIGGERS = ("internal", "software")
PixelType = Literal["uint16"]
MAX_FPS = 1000.0
FrameRate = Annotated[float, Field(ge=1e-3, le=MAX_FPS)]
#: Frames the camera holds until read (more are dropped, and counted).
BufferFrames = Annotated[int, Field(ge=1, le=1_000_000)]

#: Pixels of the largest sensor accepted (a 16-bit frame of 8192×8192 is 128 MiB).
MAX_SENSOR_PIXELS = 8192 * 8192


def frame_shape(shape: Sequence[int], binning: int, what: str = "sim_camera") -> tuple[int, int]:
    """The frame shape after binning; ConfigError when the sensor does not divide evenly."""
    if len(shape) != 2 or not all(isinstance(n, (int, np.integer)) and n > 0 for n in shape):
        raise ConfigError(f"{what}.shape: expected [height, width] in pixels, got {list(shape)!r}")
    h, w = int(shape[0]), int(shape[1])
    if h * w > MAX_SENSOR_PIXELS:
        raise ConfigError(
            f"{what}.shape: {h}×{w} is {h * w:,} pixels; a frame has at most {MAX_SENSOR_PIXELS:,} "
            "(8192×8192: larger than any sensor, and each buffered frame is held in memory)"
        )
    if h % binning or w % binning:
        raise ConfigError(f"{what}.shape: {h}×{w} is not divisible by binning {binning}")
    return h // binning, w // binning


def bin_frame(frame: np.ndarray, binning: int) -> np.ndarray:
    """Sum ``binning × binning`` blocks of pixels, as on-chip binning adds charge."""
    if binning == 1:
        return frame
    h, w = frame.shape
    return frame.reshape(h // binning, binning, w // binning, binning).sum(axis=(1, 3))


@runtime_checkable
class BeamScene(Protocol):
    """What the camera images: the simulated optical table (``arrowdaq.sim``, given by the application:
    a driver never imports the simulators)."""

    def camera_frame(self, exposure_s: float, shape: tuple[int, int] | None = None, dtype: Any = ...) -> np.ndarray: ...


class SimCamera(Driver):
    """See the module docstring. The application gives ``table`` (the simulated optical table) to every
    driver whose constructor takes one."""

    driver_name = "sim_camera"
    needs_port = False
    streams = (Stream("frames", schemas.IMAGE, "counts", poll_hz=20.0, shape=(256, 256)),)

    exposure_s = Setting(
        0.01, validator=in_range(*EXPOSURE_RANGE_S), unit="s", doc="Exposure time", changed="_restart_clock"
    )
    fps = Setting(
        10.0,
        validator=in_range(1e-3, MAX_FPS),
        unit="Hz",
        doc="Frame rate (internal trigger)",
        changed="_restart_clock",
    )
    trigger_mode = Setting(
        "internal",
        validator=one_of(TRIGGERS),
        doc="internal: free-running at fps; software: trigger()",
        changed="_new_trigger_mode",
    )

    def __init__(
        self,
        transport: Transport | None = None,
        *,
        name: str = "",
        table: BeamScene | None = None,
        shape: Sequence[int] = (256, 256),
        binning: int = 1,
        dtype: str = "uint16",
        buffer_frames: int = 4,
    ) -> None:
        super().__init__(transport, name=name)
        where = self.name
        self.binning = check(Binning, binning, f"{where}.binning", error=InstrumentConfigError)
        self.shape = frame_shape(shape, self.binning, where)
        self.sensor_shape = (int(shape[0]), int(shape[1]))
        self.dtype = check(PixelType, dtype, f"{where}.dtype", error=InstrumentConfigError)
        self.buffer_frames = check(BufferFrames, buffer_frames, f"{where}.buffer_frames", error=InstrumentConfigError)
        if table is None:
            raise ConfigError(
                f"{where}.table: the simulated camera images the simulated optical table, which the application "
                "gives it (use the driver in a configuration, or pass arrowdaq.sim.OpticalTable())"
            )
        if not isinstance(table, BeamScene):
            raise ConfigError(f"{where}.table: expected the application's simulated optical table, got {table!r}")
        self.table = table
        self.log = get_logger("arrowdaq.instruments.sim_camera", actor=self.name)
        self.dropped_frames = 0
        self.frames_delivered = 0
        self._next_number = 0  # the number the next frame will carry
        self._clock_start = 0.0  # monotonic time the internal clock (re)started
        self._clock_first = 0  # number of the first frame of that clock
        self._wall_offset_ns = 0  # wall clock minus monotonic clock, in ns
        self._triggers: list[float] = []  # software triggers not yet read out (monotonic times)
        self._running = False

    # --- declarations -------------------------------------------------------------------
    @classmethod
    def streams_for(cls, settings: dict[str, Any]) -> tuple[Stream, ...]:
        """Frames of the binned shape, polled at twice the frame rate (at most 100 Hz): each poll takes
        what the camera buffered."""
        binning = check(Binning, settings.get("binning", 1), "sim_camera.binning", error=InstrumentConfigError)
        shape = frame_shape(settings.get("shape", (256, 256)), binning)
        dtype = check(PixelType, settings.get("dtype", "uint16"), "sim_camera.dtype", error=InstrumentConfigError)
        fps = check(FrameRate, settings.get("fps", 10.0), "sim_camera.fps", error=InstrumentConfigError)
        return (Stream("frames", schemas.IMAGE, "counts", poll_hz=min(2 * fps, 100.0), shape=shape, dtype=dtype),)

    def rows_per_s(self, stream: str) -> float | None:
        """Frames per second asked for: the internal clock's rate; a software trigger sets none."""
        return 1.0 / self.frame_period_s if self.trigger_mode == "internal" else None

    # --- lifecycle ----------------------------------------------------------------------
    def connect(self) -> None:
        """Start acquiring (the internal clock runs from now)."""
        self._running = True
        self._restart_clock()

    def close(self) -> None:
        self._running = False
        self._triggers.clear()

    def identity(self) -> dict[str, str]:
        h, w = self.sensor_shape
        return {"driver": self.driver_name, "model": "arrowdaq simulated sCMOS", "sensor": f"{h}x{w}"}

    def settings(self) -> dict[str, Any]:
        """The declared settings, the run's fixed geometry and the frame counters."""
        return super().settings() | {
            "shape": list(self.sensor_shape),
            "frame_shape": list(self.shape),
            "binning": self.binning,
            "frame_period_s": self.frame_period_s,
            "dtype": self.dtype,
            "buffer_frames": self.buffer_frames,
            "frames_delivered": self.frames_delivered,
            "dropped_frames": self.dropped_frames,
        }

    @property
    def frame_period_s(self) -> float:
        """Time between frames on the internal clock: the exposure cannot be longer."""
        return max(1.0 / self.fps, self.exposure_s)

    def _new_trigger_mode(self) -> None:
        self._triggers.clear()
        self._restart_clock()

    def _restart_clock(self) -> None:
        """Acquisition restarts, as on a real camera: a frame exposing now is abandoned and never
        numbered, so numbering continues without a gap."""
        self._clock_start = time.monotonic()
        self._clock_first = self._next_number
        self._wall_offset_ns = time.time_ns() - time.monotonic_ns()

    # --- frames ---------------------------------------------------------------------------
    def read(self, stream: str) -> pa.RecordBatch | None:
        if stream != "frames":
            raise CommandError(f"{self.name} has no stream {stream!r} (streams: frames)")
        frames, numbers, stamps = self._grab()
        if len(numbers) == 0:
            return None
        return image_batch(frames, channel="frames", frame_numbers=numbers, unit="counts", timestamps_ns=stamps)

    def acquire(self) -> tuple[np.ndarray, np.ndarray]:
        """The frames completed since the last call, ``(N, H, W)``, and their numbers (FrameProducer)."""
        frames, numbers, _ = self._grab()
        return frames, numbers

    def _grab(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if not self._running:
            raise CommandError(f"{self.name}: the camera is not acquiring (connect first)")
        now = time.monotonic()
        if self.trigger_mode == "internal":
            done = self._clock_first + int((now - self._clock_start) / self.frame_period_s)
            numbers = np.arange(self._next_number, max(done, self._next_number), dtype=np.uint64)
            ends = self._clock_start + (numbers - self._clock_first + 1).astype(np.float64) * self.frame_period_s
        else:
            ready = [t for t in self._triggers if now - t >= self.exposure_s]
            self._triggers = self._triggers[len(ready) :]
            numbers = np.arange(self._next_number, self._next_number + len(ready), dtype=np.uint64)
            ends = np.asarray(ready, np.float64) + self.exposure_s
        if len(numbers) > self.buffer_frames:
            lost = len(numbers) - self.buffer_frames
            self._report_gap(int(numbers[0]), lost)
            numbers, ends = numbers[lost:], ends[lost:]
        if len(numbers):
            self._next_number = int(numbers[-1]) + 1
        frames = (
            np.stack([self._render() for _ in range(len(numbers))])
            if len(numbers)
            else np.empty((0, *self.shape), self.dtype)
        )
        self.frames_delivered += len(numbers)
        stamps = (ends * 1e9).astype(np.int64) + self._wall_offset_ns
        return frames, numbers, stamps.astype(np.uint64)

    def _report_gap(self, first_lost: int, lost: int) -> None:
        self.dropped_frames += lost
        self._next_number = first_lost + lost
        self.log.warning(
            f"dropped {lost} frame(s) {first_lost}..{first_lost + lost - 1}: the reader is slower than the camera "
            f"(buffer {self.buffer_frames} frames; {self.dropped_frames} dropped in all)"
        )

    def _render(self) -> np.ndarray:
        photons = self.table.camera_frame(self.exposure_s, shape=self.sensor_shape, dtype=np.float64)
        binned = bin_frame(photons, self.binning)
        return np.clip(binned, 0, np.iinfo(self.dtype).max).astype(self.dtype)

    # --- commands: the FrameProducer and Triggerable capabilities ------------------------------
    @command(validate={"seconds": "exposure_s"})
    def set_exposure(self, seconds: float) -> None:
        """Exposure time in seconds (100 µs to 10 s); the same as setting ``exposure_s``."""
        self.exposure_s = seconds

    @command
    def trigger(self) -> None:
        """Start one exposure (software trigger mode)."""
        if self.trigger_mode != "software":
            raise CommandError(f"{self.name}: trigger() needs trigger mode 'software' (it is {self.trigger_mode!r})")
        self._triggers.append(time.monotonic())
