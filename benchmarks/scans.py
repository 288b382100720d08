"""Scan engine throughput: points per second.

1. the engine alone with zero-latency in-process devices (its own overhead per point:
   move, read back, read, keep the row, the observers);
2. the same through the daemon's ScanService: each point also published as
   ``scan/points`` on a hub and recorded in the scan's HDF5 file;
3. a scan of the simulated optical table (half-wave plate on the ELL14 simulator,
   1830-C power meter, over pseudo-terminals) at latency scale 0: the cost of
   the real drivers, serial transports and instrument actors;
4. the baseline, measured in the same run: Bluesky's RunEngine running
   ``bluesky.plans.scan`` over ophyd's simulated motor and detector, over
   zero-latency devices (the RunEngine's own cost, as 1. is ours), and the same
   without its per-plan stack capture (``pip install 'arrowdaq[bench]'``;
   skipped when bluesky and ophyd are not installed). Why the baseline is what
   it is: docs/decisions/0111-scan-benchmark-baseline.md.

Each rate is given per second of wall time and per CPU-second of the process:
on a loaded machine (2 cores shared by many) the first falls with the load,
the second much less; the ratios are against Bluesky's as-shipped scan over
ophyd.sim, in the same run.

    .venv/bin/python benchmarks/scans.py [--points N] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import tempfile
import time
import tomllib

from arrowdaq.scans import RunEngine, SoftAxis, SoftDetector, scan


def soft_devices():
    x = SoftAxis("x", "mm")
    return x, SoftDetector("det", lambda: x.value * 2.0, "V")


def engine_alone(points: int) -> Rate:
    x, det = soft_devices()
    w0, c0 = time.perf_counter(), time.process_time()
    result = RunEngine().run(scan(x, 0, 1, points), [det])
    rate = Rate(points, time.perf_counter() - w0, time.process_time() - c0)
    assert result.num_points == points
    return rate


async def engine_in_service(points: int, data_dir: str) -> Rate:
    from arrowdaq.hub import InstrumentManager
    from arrowdaq.scans.service import ScanService
    from arrowdaq.storage import StorageOptions

    hub = InstrumentManager()
    service = ScanService(hub, options=StorageOptions(data_dir=data_dir), record=["scan/*"])
    x, det = soft_devices()
    w0, c0 = time.perf_counter(), time.process_time()
    result = await service.run(scan(x, 0, 1, points), [det])
    rate = Rate(points, time.perf_counter() - w0, time.process_time() - c0)
    await hub.stop()
    assert result.num_points == points and result.exit_status == "success", result.reason
    return rate


async def simulated_table(points: int, data_dir: str) -> Rate:
    from arrowdaq.app.config import parse_config
    from arrowdaq.app.demo import prepare_table
    from arrowdaq.app.runner import Application
    from arrowdaq.cli.demo_cmd import demo_config_text
    from arrowdaq.scans.service import ScanService
    from arrowdaq.storage import StorageOptions

    config = parse_config(tomllib.loads(demo_config_text()), "demo.toml")
    config.storage.record = False
    config.simulation.latency_scale = 0.0
    config.processors = []
    config.instruments = [i for i in config.instruments if i.id in ("laser", "hwp", "pm1")]
    app = Application(config)
    await app.start()
    try:
        await prepare_table(app.hub)
        service = ScanService(app.hub, options=StorageOptions(data_dir=data_dir), record=["scan/*"])
        w0, c0 = time.perf_counter(), time.process_time()
        result = await service.run(scan("hwp", 0, 90, points), ["pm1"])
        rate = Rate(points, time.perf_counter() - w0, time.process_time() - c0)
    finally:
        await app.stop()
    assert result.num_points == points and result.exit_status == "success", result.reason
    return rate


class Rate:
    """Points per second of wall time and per CPU-second of this process (all its threads): on a loaded
    machine the wall rate says how long a scan takes, the CPU rate what each point costs."""

    def __init__(self, points: int, wall: float, cpu: float) -> None:
        self.points, self.wall, self.cpu = points, points / wall, points / max(cpu, 1e-9)


def timed(points: int, run) -> Rate:  # type: ignore[no-untyped-def]
    w0, c0 = time.perf_counter(), time.process_time()
    run()
    return Rate(points, time.perf_counter() - w0, time.process_time() - c0)


def bluesky_baselines(points: int) -> dict[str, Rate] | None:
    """Bluesky's RunEngine running ``bluesky.plans.scan`` (document consumer subscribed, as any real use):

    * over ophyd.sim's ``motor`` and ``det``: each ``motor.set`` starts a thread (even with delay 0) and
      completes its status from it, so every point waits for the OS to schedule a thread;
    * over zero-latency devices like arrowdaq's SoftAxis/SoftDetector: ``set``/``trigger`` return a
      finished status, no thread: the RunEngine's own cost;
    * the same with Bluesky's per-plan stack capture off (since 1.13 every plan stub records
      ``traceback.format_stack()`` for a "never iterated" warning: about 40 % of its time here).
    """
    try:
        import bluesky.utils
        from bluesky import RunEngine as BlueskyRunEngine
        from bluesky.plans import scan as bluesky_scan
        from ophyd.sim import det, motor
        from ophyd.status import StatusBase
    except ImportError:
        return None

    def finished() -> StatusBase:
        status = StatusBase()
        status.set_finished()
        return status

    class ZeroAxis:
        parent = None

        def __init__(self, name: str) -> None:
            self.name, self.value, self.hints = name, 0.0, {"fields": [name]}

        def set(self, value: float) -> StatusBase:
            self.value = float(value)
            return finished()

        def read(self) -> dict:
            return {self.name: {"value": self.value, "timestamp": time.time()}}

        def describe(self) -> dict:
            return {self.name: {"source": f"SIM:{self.name}", "dtype": "number", "shape": []}}

        def read_configuration(self) -> dict:
            return {}

        def describe_configuration(self) -> dict:
            return {}

    class ZeroDetector(ZeroAxis):
        def __init__(self, name: str, axis: ZeroAxis) -> None:
            super().__init__(name)
            self.axis = axis

        def trigger(self) -> StatusBase:
            return finished()

        def read(self) -> dict:
            return {self.name: {"value": self.axis.value * 2.0, "timestamp": time.time()}}

    def no_stack_capture(self, f, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        self._iter, self._stack = f(*args, **kwargs), None

    engine = BlueskyRunEngine({})
    engine.subscribe(lambda name, doc: None)
    x = ZeroAxis("x")
    d = ZeroDetector("det", x)
    shipped = bluesky.utils.Plan.__init__
    rates = {}
    try:
        rates["ophyd.sim motor + det"] = timed(points, lambda: engine(bluesky_scan([det], motor, 0, 1, points)))
        rates["zero-latency devices"] = timed(points, lambda: engine(bluesky_scan([d], x, 0, 1, points)))
        bluesky.utils.Plan.__init__ = no_stack_capture
        rates["zero-latency, no stack capture"] = timed(points, lambda: engine(bluesky_scan([d], x, 0, 1, points)))
    finally:
        bluesky.utils.Plan.__init__ = shipped
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--points", type=int, default=5000, help="points per in-process scan")
    parser.add_argument("--bluesky-points", type=int, default=500, help="points of each Bluesky scan")
    parser.add_argument("--table-points", type=int, default=200, help="points of the simulated-table scan")
    parser.add_argument("--quick", action="store_true", help="fewer points")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    points = 500 if args.quick else args.points
    table_points = 50 if args.quick else args.table_points
    bluesky_points = 100 if args.quick else args.bluesky_points
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as data_dir:
        rows = [
            (
                "arrowdaq engine, zero-latency devices",
                max((engine_alone(points) for _ in range(3)), key=lambda r: r.cpu),
            ),
            ("arrowdaq ScanService (hub + scan file)", asyncio.run(engine_in_service(points, data_dir))),
            ("arrowdaq, simulated table (latency 0)", asyncio.run(simulated_table(table_points, data_dir))),
        ]
    baselines = bluesky_baselines(bluesky_points)
    if baselines:
        rows += [(f"Bluesky RunEngine, {name}", rate) for name, rate in baselines.items()]
    reference = baselines["ophyd.sim motor + det"] if baselines else None
    print(f"load average {load:.1f} on {os.cpu_count()} CPUs (wall rates fall with load; CPU rates much less)")
    print(f"{'scan':52} {'points':>6} {'points/s':>9} {'per CPU-s':>10} {'vs Bluesky (wall, CPU)':>24}")
    for name, rate in rows:
        ratio = f"{rate.wall / reference.wall:9.1f}x {rate.cpu / reference.cpu:9.1f}x" if reference else "-"
        print(f"{name:52} {rate.points:6d} {rate.wall:9,.0f} {rate.cpu:10,.0f} {ratio:>24}")
    if not baselines:
        print("Bluesky baseline skipped: pip install 'arrowdaq[bench]' (bluesky, ophyd)")


if __name__ == "__main__":
    main()
