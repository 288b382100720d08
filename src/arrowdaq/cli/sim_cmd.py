"""``arrowdaq sim DRIVER``: serve one simulator so a configuration or a program can use it.

    $ arrowdaq sim newport_1830c --tcp 5025
    newport_1830c simulator listening on socket://127.0.0.1:5025

Point the instrument's ``port`` at the printed address (a pyserial URL, or a
``/dev/pts/N`` path with ``--pty``). Runs until Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading

from ..errors import ConfigError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "sim",
        help="serve an instrument simulator on a TCP port or a pseudo-terminal",
        description="Serve one instrument simulator (on a fresh optical table) until Ctrl-C or SIGTERM.",
    )
    parser.add_argument("driver", help="the driver whose protocol to speak (e.g. newport_1830c, esp300, maitai, ell14, scpi)")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--tcp", type=int, metavar="PORT", default=0, help="TCP port on 127.0.0.1 (default: a free one)")
    where.add_argument("--pty", action="store_true", help="serve on a pseudo-terminal (Linux, macOS)")
    parser.add_argument("--addresses", metavar="HEX", default=None,
                        help="ell14 only: the mounts on the bus, e.g. 012 (default 0); the first is the half-wave plate")
    parser.add_argument("--latency-scale", type=float, default=1.0, metavar="X",
                        help="multiply the devices' real latencies by X (default 1: like hardware)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..sim import OpticalTable, serve
    from ..sim.registry import SIMULATORS, simulator_class

    if args.driver not in SIMULATORS:
        print(f"arrowdaq sim: no simulator for {args.driver!r} (simulators: {', '.join(sorted(SIMULATORS))})",
              file=sys.stderr)
        return 2
    if args.latency_scale < 0:
        raise ConfigError(f"--latency-scale must be >= 0, got {args.latency_scale}")
    table = OpticalTable(latency_scale=args.latency_scale)
    if args.addresses is not None:
        addresses = args.addresses.upper()
        if args.driver != "ell14":
            raise ConfigError("--addresses applies to the ell14 bus simulator only")
        if not addresses or any(a not in "0123456789ABCDEF" for a in addresses) or len(set(addresses)) != len(addresses):
            raise ConfigError(f"--addresses: {args.addresses!r} is not a list of distinct hex digits such as 012")
        device = simulator_class(args.driver)(table, addresses=addresses, hwp_address=addresses[0])
    else:
        device = simulator_class(args.driver)(table)
    try:
        server = serve(device, "pty" if args.pty else "tcp", port=args.tcp)
    except OSError as exc:
        where = "a pseudo-terminal" if args.pty else f"127.0.0.1:{args.tcp}"
        raise ConfigError(f"cannot serve the {args.driver} simulator on {where}: {exc}") from None
    stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        print(f"{args.driver} simulator listening on {server.address}", flush=True)
        while not stop.wait(0.2):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        server.stop()
    print(f"{args.driver} simulator stopped", flush=True)
    return 0
