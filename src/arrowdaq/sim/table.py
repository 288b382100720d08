"""The simulated optical table that every simulator shares.

The beam path, so that readings are physically coherent:

    MaiTai laser ──► half-wave plate on the ELL14 ──► fixed polarizer (Malus) ──►
        knife edge on ESP300 axis 1 ──► beam splitter ──┬─► Newport 1830-C power meter
                                                        ├─► photodiode on the SCPI scope (chopped at `chopper_hz`)
                                                        └─► camera (spot steered by ESP300 axes 2 and 3)

* Laser output: `laser_power_w` × a tuning curve peaking at 800 nm, when emission
  is on and the shutter is open.
* Half-wave plate at angle θ rotates the polarization by 2θ; the polarizer passes
  cos²(2θ) (Malus's law).
* The knife edge at x (mm) passes ½·erfc(√2 (x − beam_center_mm)/beam_waist_mm):
  all of the beam at x ≪ centre, none at x ≫ centre.
* The camera sees a Gaussian spot whose centre moves with axes 2 and 3.

All state sits behind one lock: simulators run in their own threads.
Latencies of every simulator are multiplied by `latency_scale` (1.0 = real
hardware, 0.01 for fast tests).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import numpy as np

T = TypeVar("T")


@dataclass
class Motion:
    """A position that moves linearly towards a target at a fixed speed."""

    position: float = 0.0
    target: float = 0.0
    speed: float = 1.0  # units per second
    started: float = field(default_factory=time.monotonic)

    def at(self, now: float) -> float:
        travel = self.target - self.position
        done = abs(travel) / self.speed if self.speed > 0 else 0.0
        if now - self.started >= done:
            return self.target
        return self.position + math.copysign(self.speed * (now - self.started), travel)

    def moving(self, now: float) -> bool:
        return self.at(now) != self.target

    def move_to(self, target: float, speed: float, now: float) -> None:
        self.position, self.target, self.speed, self.started = self.at(now), target, speed, now

    def stop(self, now: float) -> None:
        self.position = self.target = self.at(now)
        self.started = now


@dataclass
class TableSettings:
    laser_power_w: float = 3.0
    tuning_center_nm: float = 800.0
    tuning_width_nm: float = 250.0
    beam_center_mm: float = 12.5
    beam_waist_mm: float = 1.0
    splitter_to_meter: float = 0.5
    photodiode_a_per_w: float = 0.5  # responsivity
    transimpedance_ohm: float = 10.0
    chopper_hz: float = 1_250.0
    modulation_depth: float = 0.8
    noise_fraction: float = 0.002
    camera_shape: tuple[int, int] = (256, 256)
    camera_px_per_mm: float = 10.0
    spot_sigma_px: float = 12.0
    camera_full_well: float = 4000.0


class OpticalTable:
    """Shared physical state; see the module docstring."""

    def __init__(self, settings: TableSettings | None = None, *, latency_scale: float = 1.0, seed: int | None = None):
        self.settings = settings or TableSettings()
        self.latency_scale = latency_scale
        self.lock = threading.RLock()
        self.rng = np.random.default_rng(seed)
        # laser
        self.wavelength_nm = 800.0
        self.emission = False
        self.shutter_open = False
        # motion
        self.hwp = Motion(speed=430.0)  # degrees, ELL14 top speed
        self.stage = {axis: Motion(speed=5.0) for axis in (1, 2, 3)}  # mm, mm/s

    # --- time --------------------------------------------------------------------
    def delay(self, seconds: float) -> None:
        """Sleep for a hardware latency, scaled for tests."""
        if seconds > 0 and self.latency_scale > 0:
            time.sleep(seconds * self.latency_scale)

    # --- the beam ------------------------------------------------------------------
    def laser_output_w(self) -> float:
        """Power leaving the laser (W): zero unless emission is on and the shutter open."""
        with self.lock:
            if not (self.emission and self.shutter_open):
                return 0.0
            s = self.settings
            return s.laser_power_w * math.exp(-(((self.wavelength_nm - s.tuning_center_nm) / s.tuning_width_nm) ** 2))

    def internal_power_w(self) -> float:
        """What the laser's own power monitor reports (before the shutter)."""
        with self.lock:
            if not self.emission:
                return 0.0
            s = self.settings
            return s.laser_power_w * math.exp(-(((self.wavelength_nm - s.tuning_center_nm) / s.tuning_width_nm) ** 2))

    def malus_transmission(self) -> float:
        theta = math.radians(self.hwp.at(time.monotonic()))
        return math.cos(2 * theta) ** 2

    def knife_edge_transmission(self) -> float:
        s = self.settings
        x = self.stage[1].at(time.monotonic())
        return 0.5 * math.erfc(math.sqrt(2) * (x - s.beam_center_mm) / s.beam_waist_mm)

    def beam_after_optics_w(self) -> float:
        """Power reaching the beam splitter (W), without noise."""
        with self.lock:
            return self.laser_output_w() * self.malus_transmission() * self.knife_edge_transmission()

    def power_meter_w(self) -> float:
        """What the 1830-C head receives (W), with detector noise and a dark floor."""
        p = self.beam_after_optics_w() * self.settings.splitter_to_meter
        noise = self.rng.normal(0.0, self.settings.noise_fraction * p + 2e-10)
        return max(p + noise, 0.0) + 1e-10

    def photodiode_trace(self, n: int, dt: float, t0: float | None = None) -> np.ndarray:
        """Photodiode voltage (V): the chopped beam plus noise, sampled every ``dt`` s."""
        s = self.settings
        t0 = time.time() if t0 is None else t0
        t = t0 + np.arange(n) * dt
        p = self.beam_after_optics_w() * (1 - s.splitter_to_meter)
        volts = p * s.photodiode_a_per_w * s.transimpedance_ohm
        signal = volts * (1.0 + s.modulation_depth * np.sin(2 * np.pi * s.chopper_hz * t)) / 2
        noise = self.rng.normal(0.0, 0.01 * max(volts, 1e-3), n)
        return signal + noise

    def spot_center_px(self) -> tuple[float, float]:
        """(row, column) of the beam spot on the camera."""
        s = self.settings
        now = time.monotonic()
        h, w = s.camera_shape
        col = w / 2 + self.stage[2].at(now) * s.camera_px_per_mm
        row = h / 2 + self.stage[3].at(now) * s.camera_px_per_mm
        return row, col

    def camera_frame(
        self, exposure_s: float, shape: tuple[int, int] | None = None, dtype: type[np.integer] = np.uint16
    ) -> np.ndarray:
        """A frame of the beam spot with shot noise (counts)."""
        s = self.settings
        h, w = shape or s.camera_shape
        row, col = self.spot_center_px()
        scale_r, scale_c = h / s.camera_shape[0], w / s.camera_shape[1]
        rr = (np.arange(h) - row * scale_r)[:, None] / (s.spot_sigma_px * scale_r)
        cc = (np.arange(w) - col * scale_c)[None, :] / (s.spot_sigma_px * scale_c)
        power = self.beam_after_optics_w() * (1 - s.splitter_to_meter)
        peak = min(power / s.laser_power_w, 1.0) * s.camera_full_well * exposure_s / 0.01
        expected = peak * np.exp(-0.5 * (rr**2 + cc**2)) + 20.0  # + dark counts
        frame = self.rng.poisson(expected)
        top = np.iinfo(dtype).max if np.issubdtype(dtype, np.integer) else None
        return np.clip(frame, 0, top).astype(dtype) if top else frame.astype(dtype)


class SharedSlot(Generic[T]):
    """An attribute kept in a shared-memory array (``obj.<array>[index]``, float64), read back as ``kind``."""

    def __init__(self, index: int, kind: Callable[[Any], T], array: str = "_slots") -> None:
        self.index, self.kind, self.array = index, kind, array

    def __get__(self, obj: Any, owner: type | None = None) -> T:
        return self.kind(getattr(obj, self.array)[self.index])

    def __set__(self, obj: Any, value: T) -> None:
        getattr(obj, self.array)[self.index] = self.kind(value)


class SharedMotion(Motion):
    """A Motion whose four numbers live in shared memory (see :class:`SharedOpticalTable`)."""

    def __init__(self, slots: np.ndarray) -> None:  # position, target, speed, started
        object.__setattr__(self, "_slots", slots)

    position = SharedSlot(0, float)
    target = SharedSlot(1, float)
    speed = SharedSlot(2, float)
    started = SharedSlot(3, float)

    def __repr__(self) -> str:
        return f"SharedMotion(position={self.position}, target={self.target}, speed={self.speed})"


class SharedOpticalTable(OpticalTable):
    """An optical table whose state lives in a memory-mapped file, so several processes share it.

    ``arrowdaq sim --table FILE`` uses it: simulators started by separate commands
    then see each other's effects (the laser's shutter, the half-wave plate's angle,
    the stage). The first process creates the file with the table's starting state;
    the others attach to it. Motion times are ``time.monotonic()``, one clock for
    every process on the machine. Each number is written whole; a lock per process
    keeps a process's own updates consistent.
    """

    SLOTS = 3 + 4 * 4  # wavelength, emission, shutter; hwp and three stage axes (4 numbers each)

    def __init__(
        self, path: str, settings: TableSettings | None = None, *, latency_scale: float = 1.0, seed: int | None = None
    ) -> None:
        import os

        self.settings = settings or TableSettings()
        self.latency_scale = latency_scale
        self.lock = threading.RLock()
        self.rng = np.random.default_rng(seed)
        self.path = path
        fresh = not os.path.exists(path) or os.path.getsize(path) != self.SLOTS * 8
        self._state = np.memmap(path, dtype=np.float64, mode="w+" if fresh else "r+", shape=(self.SLOTS,))
        if fresh:
            now = time.monotonic()
            self._state[:3] = (800.0, 0.0, 0.0)
            for i, speed in enumerate((430.0, 5.0, 5.0, 5.0)):
                self._state[3 + 4 * i : 7 + 4 * i] = (0.0, 0.0, speed, now)
            self._state.flush()
        self.hwp = SharedMotion(self._state[3:7])
        self.stage = {axis: SharedMotion(self._state[3 + 4 * axis : 7 + 4 * axis]) for axis in (1, 2, 3)}

    wavelength_nm = SharedSlot(0, float, "_state")
    emission = SharedSlot(1, bool, "_state")
    shutter_open = SharedSlot(2, bool, "_state")
