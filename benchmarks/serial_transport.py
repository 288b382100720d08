"""Serial transport: query round trips per second over a pseudo-terminal.

Baseline measured in the same run, on the same pty and simulator: bare pyserial
(``write`` then ``read_until``), which reads one byte per Python call. The
transport reads the first byte, then everything that has arrived in one call,
so long replies cost it little more than short ones.

    .venv/bin/python benchmarks/serial_transport.py [--quick]
"""

from __future__ import annotations

import argparse
import time

import serial

from arrowdaq.instruments.transports import PortSettings
from arrowdaq.instruments.transports.serial import open_serial
from arrowdaq.sim import serve
from arrowdaq.sim.scripted import ScriptedDevice


def rate(fn, seconds: float) -> float:
    n, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        fn()
        n += 1
    return n / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="shorter runs")
    args = parser.parse_args()
    seconds = 0.5 if args.quick else 2.0
    replies = {"SHORT?": "+.7500E-9", "LONG?": ",".join(["1.2345"] * 400)}  # 10 B and 2.8 kB
    with serve(ScriptedDevice(replies), "pty") as server:
        print(f"{'reply':>8} {'pyserial q/s':>13} {'transport q/s':>14} {'ratio':>6}")
        for command in ("SHORT?", "LONG?"):
            bare = serial.Serial(server.address, timeout=1.0)
            expected = replies[command].encode() + b"\n"

            def bare_query() -> None:
                bare.write(command.encode() + b"\n")
                assert bare.read_until(b"\n") == expected

            baseline = rate(bare_query, seconds)
            bare.close()
            port = open_serial(server.address, PortSettings(timeout=1.0))
            measured = rate(lambda: port.query(command), seconds)
            port.close()
            size = f"{len(expected)} B"
            print(f"{size:>8} {baseline:13.0f} {measured:14.0f} {measured / baseline:6.2f}")


if __name__ == "__main__":
    main()
