"""Scan engine throughput: points per second.

1. the engine alone with zero-latency in-process devices (its own overhead per point:
   move, read back, read, keep the row, the observers);
2. the same through the daemon's ScanService: each point also published as
   ``scan/points`` on a hub and recorded in the scan's HDF5 file;
3. a scan of the simulated optical table (half-wave plate on the ELL14 simulator,
   1830-C power meter, over pseudo-terminals) at latency scale 0: the cost of
   the real drivers, serial transports and instrument actors;
4. the baseline, measured in the same run: Bluesky's RunEngine running
   ``bluesky.plans.scan`` over ophyd's simulated motor and detector
   (``pip install bluesky ophyd``; skipped when they are not installed).

    .venv/bin/python benchmarks/scans.py [--points N] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import tempfile
import time
import tomllib

from arrowdaq.scans import RunEngine, SoftAxis, SoftDetector, scan


def soft_devices():
    x = SoftAxis("x", "mm")
    return x, SoftDetector("det", lambda: x.value * 2.0, "V")


def engine_alone(points: int) -> float:
    x, det = soft_devices()
    t0 = time.perf_counter()
    result = RunEngine().run(scan(x, 0, 1, points), [det])
    elapsed = time.perf_counter() - t0
    assert result.num_points == points
    return points / elapsed


async def engine_in_service(points: int, data_dir: str) -> float:
    from arrowdaq.hub import InstrumentManager
    from arrowdaq.scans.service import ScanService
    from arrowdaq.storage import StorageOptions

    hub = InstrumentManager()
    service = ScanService(hub, options=StorageOptions(data_dir=data_dir), record=["scan/*"])
    x, det = soft_devices()
    t0 = time.perf_counter()
    result = await service.run(scan(x, 0, 1, points), [det])
    elapsed = time.perf_counter() - t0
    await hub.stop()
    assert result.num_points == points and result.exit_status == "success", result.reason
    return points / elapsed


async def simulated_table(points: int, data_dir: str) -> float:
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
        t0 = time.perf_counter()
        result = await service.run(scan("hwp", 0, 90, points), ["pm1"])
        elapsed = time.perf_counter() - t0
    finally:
        await app.stop()
    assert result.num_points == points and result.exit_status == "success", result.reason
    return points / elapsed


def bluesky_baseline(points: int) -> float | None:
    try:
        from bluesky import RunEngine as BlueskyRunEngine
        from bluesky.plans import scan as bluesky_scan
        from ophyd.sim import det, motor
    except ImportError:
        return None
    engine = BlueskyRunEngine({})
    engine.subscribe(lambda name, doc: None)  # a document consumer, as any real use has
    t0 = time.perf_counter()
    engine(bluesky_scan([det], motor, 0, 1, points))
    return points / (time.perf_counter() - t0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--points", type=int, default=5000, help="points per in-process scan")
    parser.add_argument("--table-points", type=int, default=200, help="points of the simulated-table scan")
    parser.add_argument("--quick", action="store_true", help="fewer points")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    points = 500 if args.quick else args.points
    table_points = 50 if args.quick else args.table_points
    with tempfile.TemporaryDirectory() as data_dir:
        rows = [
            ("arrowdaq engine, zero-latency devices", points, max(engine_alone(points) for _ in range(3))),
            ("arrowdaq ScanService (hub + scan file)", points, asyncio.run(engine_in_service(points, data_dir))),
            (
                "arrowdaq, simulated table (latency 0)",
                table_points,
                asyncio.run(simulated_table(table_points, data_dir)),
            ),
        ]
    baseline = bluesky_baseline(points)
    print(f"{'scan':42} {'points':>7} {'points/s':>10} {'vs Bluesky':>11}")
    for name, n, rate in rows:
        ratio = f"{rate / baseline:10.2f}x" if baseline else "          -"
        print(f"{name:42} {n:7d} {rate:10,.0f} {ratio}")
    if baseline:
        print(f"{'Bluesky RunEngine, ophyd.sim motor + det':42} {points:7d} {baseline:10,.0f} {'1.00x':>11}")
    else:
        print("Bluesky baseline skipped: pip install bluesky ophyd")


if __name__ == "__main__":
    main()
