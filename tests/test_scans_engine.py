"""The run engine with in-process devices: plans, pause/resume/stop/abort, dry run, statistics."""

from __future__ import annotations

import math
import threading

import numpy as np
import pytest

from arrowdaq.errors import CommandError, DeviceStatusError, MotionStopped
from arrowdaq.scans import (
    ABORTED,
    FAILED,
    SUCCESS,
    RunEngine,
    ScanState,
    SoftAxis,
    SoftDetector,
    count,
    derivative_stats,
    grid_scan,
    list_scan,
    log_scan,
    malus_fit,
    peak_stats,
    rel_scan,
    scan,
)


class Recorder:
    """A ScanObserver keeping what it is told; ``on_point(index)`` may act from the engine's thread."""

    def __init__(self, on_point=None):
        self.rows, self.states, self.on_point = [], [], on_point

    def start(self, setup):
        self.setup = setup

    def point(self, batch, row):
        self.rows.append(row)
        if self.on_point:
            self.on_point(row["index"])

    def state(self, state):
        self.states.append(state)

    def end(self, result):
        self.result = result


class TrackedAxis(SoftAxis):
    """Remembers every target it was sent to."""

    def __init__(self, *a, **k):
        super().__init__(*a, **k)
        self.targets = []

    def move_to(self, target, wait=True):
        self.targets.append(float(target))
        return super().move_to(target, wait)


class SlowAxis(SoftAxis):
    """Moves until released or stopped: ``wait_motion`` blocks; ``stop()`` ends it with an error."""

    def __init__(self, *a, stall_at=None, **k):
        super().__init__(*a, **k)
        self.stall_at = stall_at
        self.moving = threading.Event()
        self.stopped = threading.Event()
        self.stalled_once = False

    def move_to(self, target, wait=True):
        super().move_to(target, wait=False)
        return self.wait_motion() if wait else None

    def wait_motion(self):
        if self.value == self.stall_at and not self.stalled_once:
            self.stalled_once = True
            self.moving.set()
            assert self.stopped.wait(10), "never stopped"
            raise CommandError(f"{self.name}: move stopped")
        return self.value

    def stop(self):
        self.stopped.set()


def line(n=10):
    x = TrackedAxis("x", "mm")
    det = SoftDetector("d", lambda: 2 * x.value + 1, "V")
    return x, det


def test_a_linear_scan_measures_each_point_with_setpoints_readbacks_and_detector_mean():
    x, det = line()
    result = RunEngine().run(scan(x, 0, 9, 10), [det])
    t = result.table.to_pydict()
    assert result.exit_status == SUCCESS and result.num_points == 10
    assert t["index"] == list(range(10))
    assert t["x"] == pytest.approx(np.linspace(0, 9, 10)) and t["x_readback"] == t["x"]
    assert t["d"] == pytest.approx(2 * np.linspace(0, 9, 10) + 1) and t["d_std"] == [0.0] * 10
    assert all(b >= a for a, b in zip(t["elapsed"], t["elapsed"][1:], strict=False))
    assert result.table.schema.field("x").metadata[b"unit"] == b"mm"


def test_several_reads_per_point_give_mean_and_std():
    values = iter([1.0, 3.0, 2.0, 4.0] * 3)
    det = SoftDetector("d", lambda: next(values))
    result = RunEngine().run(count(3), [det], reads=4)
    assert result.table.column("d").to_pylist() == [2.5] * 3
    assert result.table.column("d_std").to_pylist() == pytest.approx([np.std([1, 3, 2, 4], ddof=1)] * 3)


def test_plans_points():
    x, det = line()
    engine = RunEngine()
    assert engine.run(list_scan(x, [3, 1, 2]), [det]).table.column("x").to_pylist() == [3, 1, 2]
    assert engine.run(log_scan(x, 1, 100, 3), [det]).table.column("x").to_pylist() == pytest.approx([1, 10, 100])
    x.value = 5.0
    rel = engine.run(rel_scan(x, -1, 1, 3), [det])
    assert rel.table.column("x").to_pylist() == [4, 5, 6] and x.value == 5.0  # back where it started
    with pytest.raises(CommandError, match="log_scan: start 0 and stop 10 must have the same sign"):
        log_scan(x, 0, 10, 3)
    with pytest.raises(CommandError, match="scan: num: expected a whole number >= 1"):
        scan(x, 0, 1, 2.5)


def test_grid_scan_snakes_and_records_grid_indices():
    y, x = SoftAxis("y"), SoftAxis("x")
    det = SoftDetector("d", lambda: 10 * y.value + x.value)
    result = RunEngine().run(grid_scan(y, 0, 1, 2, x, 0, 2, 3, snake=True), [det])
    t = result.table.to_pydict()
    assert t["x"] == [0, 1, 2, 2, 1, 0] and t["y"] == [0, 0, 0, 1, 1, 1]
    assert t["x_index"] == [0, 1, 2, 2, 1, 0] and t["y_index"] == [0, 0, 0, 1, 1, 1]
    assert t["d"] == [0, 1, 2, 12, 11, 10]


def test_a_user_plan_is_a_generator_that_sees_each_points_readings():
    x, det = line()

    def until_bright(axis, limit):
        position = 0.0
        while True:
            row = yield {axis: position}
            if row["d"] > limit:
                return
            position += 1.0

    result = RunEngine().run(until_bright(x, 6.0), [det])
    assert result.plan == "until_bright" and result.args == {"axis": "x", "limit": 6.0}
    assert result.table.column("x").to_pylist() == [0, 1, 2, 3]


class ScanInThread:
    """``with ScanInThread(engine, plan, detectors) as scan_run:`` runs the scan in a thread, as the GUI's and the
    live service's requests do, while the test pauses or aborts it; ``scan_run.result`` after the block."""

    def __init__(self, engine: RunEngine, plan, detectors, observers=()):
        self.results = []
        self.thread = threading.Thread(
            target=lambda: self.results.append(engine.run(plan, detectors, observers=list(observers)))
        )

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.thread.join(10)

    @property
    def result(self):
        assert self.results, "the scan did not end"
        return self.results[0]


def slow_line(stall_at: float):
    """An axis that stalls on its way to ``stall_at`` until stopped, and a detector reading its position."""
    x = SlowAxis("x", stall_at=stall_at)
    return x, SoftDetector("d", lambda: x.value)


def test_deferred_pause_then_resume_measures_every_point_once_in_order_and_returns_the_axes():
    x, det = line()
    engine = RunEngine()
    engine_thread_pauses = Recorder(on_point=lambda i: engine.pause() if i == 3 else None)
    with ScanInThread(engine, scan(x, 0, 9, 10), [det], [engine_thread_pauses]) as scan_run:
        engine.wait_state(ScanState.PAUSED, timeout=10)
        assert len(engine_thread_pauses.rows) == 4
        x.move_to(42.0)  # someone moves the axis while the scan is paused
        engine.resume()
    result = scan_run.result
    assert result.exit_status == SUCCESS
    assert result.table.column("index").to_pylist() == list(range(10))
    assert result.table.column("x").to_pylist() == pytest.approx(np.linspace(0, 9, 10))
    assert x.targets[x.targets.index(42.0) + 1] == 3.0  # resume went back to the paused point first
    assert ScanState.PAUSED in engine_thread_pauses.states and engine.state is ScanState.IDLE


def test_immediate_pause_stops_motion_and_measures_the_interrupted_point_after_resume():
    x, det = slow_line(stall_at=5.0)
    engine = RunEngine()
    with ScanInThread(engine, scan(x, 0, 9, 10), [det]) as scan_run:
        assert x.moving.wait(10)
        engine.pause(immediate=True)
        engine.wait_state(ScanState.PAUSED, timeout=10)
        assert x.stopped.is_set()
        engine.resume()
    t = scan_run.result.table.to_pydict()
    assert scan_run.result.exit_status == SUCCESS
    assert t["index"] == list(range(10)) and t["d"] == pytest.approx(np.linspace(0, 9, 10))


def test_abort_stops_motion_and_keeps_only_the_measured_points():
    x, det = slow_line(stall_at=4.0)
    engine = RunEngine()
    with ScanInThread(engine, scan(x, 0, 9, 10), [det]) as scan_run:
        assert x.moving.wait(10)
        engine.abort()
    result = scan_run.result
    assert x.stopped.is_set()
    assert result.exit_status == ABORTED and "after 4 of 10 points" in result.reason
    assert result.table.column("x").to_pylist() == [0, 1, 2, 3]


class CutShortAxis(SoftAxis):
    """A device whose calls in flight a stop may cut short (as the ELL14's read-back was: "'0gp' answered
    status 00: OK"). ``hold`` (``"read"``, ``"readback"``) at ``hold_at`` waits, in flight, until stopped."""

    def __init__(self, name, hold, hold_at):
        super().__init__(name)
        self.hold, self.hold_at = hold, hold_at
        self.in_flight, self.stopped = threading.Event(), threading.Event()

    def stop(self):
        self.stopped.set()

    def call(self, what):
        if self.hold == what and self.value == self.hold_at and not self.stopped.is_set():
            self.in_flight.set()
            assert self.stopped.wait(10), "never stopped"
            raise DeviceStatusError(f"{self.name}: {what} cut short by the stop")
        return self.value

    def position(self):
        return self.call("readback")


@pytest.mark.parametrize("hold", ["read", "readback"])
def test_abort_while_a_device_call_is_in_flight_ends_aborted_even_if_the_stop_cuts_it_short(hold, caplog):
    x = CutShortAxis("x", hold, hold_at=3.0)
    det = SoftDetector("d", lambda: x.call("read"))
    engine = RunEngine()
    with ScanInThread(engine, scan(x, 0, 9, 10), [det]) as scan_run:
        assert x.in_flight.wait(10)
        engine.abort()
    result = scan_run.result
    assert (result.exit_status, result.reason) == (ABORTED, "aborted by request after 3 of 10 points")
    assert result.table.column("x").to_pylist() == [0, 1, 2]
    assert f"point 3 cut short by the abort: x: {hold} cut short by the stop" in caplog.text  # said, not hidden


def test_an_immediate_pause_that_cuts_a_read_short_measures_that_point_after_resume():
    x = CutShortAxis("x", "read", hold_at=3.0)
    det = SoftDetector("d", lambda: x.call("read"))
    engine = RunEngine()
    with ScanInThread(engine, scan(x, 0, 9, 10), [det]) as scan_run:
        assert x.in_flight.wait(10)
        engine.pause(immediate=True)
        engine.wait_state(ScanState.PAUSED, timeout=10)
        engine.resume()
    t = scan_run.result.table.to_pydict()
    assert scan_run.result.exit_status == SUCCESS
    assert t["index"] == list(range(10)) and t["d"] == pytest.approx(np.linspace(0, 9, 10))


def test_a_device_that_fails_on_its_own_fails_the_scan_with_its_reason():
    x = SoftAxis("x")

    def read():
        if x.value == 3.0:
            raise DeviceStatusError("pm1: 'D?' answered status 0B: motor error")
        return x.value

    result = RunEngine().run(scan(x, 0, 9, 10), [SoftDetector("pm1", read)])
    assert (result.exit_status, result.reason) == (FAILED, "pm1: 'D?' answered status 0B: motor error")
    assert result.num_points == 3


class LateMoveAxis(SoftAxis):
    """Its move reaches the device only when ``release`` is set, after a stop may have gone out: that stop
    stopped nothing. The move then runs until stopped (or arrives after 5 s)."""

    def __init__(self, name, late_at):
        super().__init__(name)
        self.late_at = late_at
        self.sending, self.release, self.halted = threading.Event(), threading.Event(), threading.Event()
        self.arrived_late = False

    def move_to(self, target, wait=True):
        if target == self.late_at:
            self.sending.set()
            assert self.release.wait(10)
            self.halted.clear()  # the mount moves now
        return super().move_to(target, wait)

    def wait_motion(self):
        if self.value == self.late_at:
            if self.halted.wait(5):
                raise MotionStopped(f"{self.name}: stopped")
            self.arrived_late = True
        return self.value

    def stop(self):
        self.halted.set()


def test_a_move_that_reaches_the_device_after_the_aborts_stop_is_stopped_too():
    x = LateMoveAxis("x", late_at=4.0)
    engine = RunEngine()
    with ScanInThread(engine, scan(x, 0, 9, 10), [SoftDetector("d", lambda: x.value)]) as scan_run:
        assert x.sending.wait(10)
        engine.abort()  # its stop goes out while the move is still on its way
        x.release.set()
    assert scan_run.result.exit_status == ABORTED and scan_run.result.num_points == 4
    assert not x.arrived_late  # stopped, not left to run to the next point


def test_stop_ends_after_the_current_point_with_success():
    x, det = line()
    engine = RunEngine()
    result = engine.run(scan(x, 0, 9, 10), [det], observers=[Recorder(lambda i: engine.stop() if i == 2 else None)])
    assert result.exit_status == SUCCESS and result.num_points == 3 and "stopped by request" in result.reason


def test_a_device_error_fails_the_scan_with_the_reason_and_keeps_the_points():
    x = SoftAxis("x", limits=(0, 5))
    det = SoftDetector("d", lambda: x.value)
    result = RunEngine().run(scan(x, 0, 9, 10), [det])
    assert result.exit_status == FAILED
    assert result.reason == "point 6: x 6 is outside its limits 0..5"
    assert result.num_points == 6


def test_pause_and_resume_are_refused_when_nothing_runs():
    engine = RunEngine()
    with pytest.raises(CommandError, match="cannot pause: the scan engine is idle"):
        engine.pause()
    with pytest.raises(CommandError, match="no scan is paused"):
        engine.resume()
    with pytest.raises(CommandError, match="no scan is running"):
        engine.abort()


def test_dry_run_checks_limits_and_estimates_time_without_moving():
    x = TrackedAxis("x", "mm", limits=(0, 5), speed=2.0)
    det = SoftDetector("d", lambda: 0.0)
    engine = RunEngine(settle=0.5)
    dry = engine.dry_run(engine.prepare(scan(x, 0, 8, 5), [det]))
    assert dry.points == 5 and x.targets == []
    assert dry.problems == [
        "point 3: x 6 mm is outside its limits 0..5 mm",
        "point 4: x 8 mm is outside its limits 0..5 mm",
    ]
    assert dry.estimated_s == pytest.approx(8 / 2.0 + 5 * 0.5, rel=0.01)


def test_no_detector_is_a_clear_error():
    with pytest.raises(CommandError, match="no detector to read"):
        RunEngine().run(scan(SoftAxis("x"), 0, 1, 2))


def test_malus_fit_recovers_amplitude_angle_and_offset():
    theta = np.arange(0, 181, 3.0)
    power = 1.5 * np.cos(2 * np.radians(theta - 7.0)) ** 2 + 0.02
    fit = malus_fit(theta, power)
    assert fit["A"] == pytest.approx(1.5) and fit["theta0"] == pytest.approx(7.0) and fit["B"] == pytest.approx(0.02)


def test_peak_statistics_of_a_gaussian_and_the_edge_of_an_erfc():
    x = np.linspace(-5, 5, 201)
    stats = peak_stats(x, np.exp(-0.5 * ((x - 1.0) / 0.8) ** 2))
    assert stats["max_at"] == pytest.approx(1.0) and stats["com"] == pytest.approx(1.0, abs=1e-3)
    assert stats["fwhm"] == pytest.approx(2 * math.sqrt(2 * math.log(2)) * 0.8, rel=1e-3)
    edge = derivative_stats(x, np.array([0.5 * math.erfc(math.sqrt(2) * (v - 0.7)) for v in x]))
    assert edge["com"] == pytest.approx(0.7, abs=0.01)
