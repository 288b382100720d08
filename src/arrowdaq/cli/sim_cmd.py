"""``arrowdaq sim DRIVER``: serve one simulator so a configuration or a program can use it.

    $ arrowdaq sim newport_1830c --tcp 5025
    newport_1830c simulator listening on socket://127.0.0.1:5025

Point the instrument's ``port`` at the printed address (a pyserial URL, or a
``/dev/pts/N`` path with ``--pty``). Runs until Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import math
import signal
import sys
import threading

from ..errors import ConfigError


def tcp_port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port number, got {text!r}") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"a TCP port is 0-65535, got {port}")
    return port


def latency_scale(text: str) -> float:
    try:
        scale = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not (math.isfinite(scale) and 0 <= scale <= 100):
        raise argparse.ArgumentTypeError(f"expected a factor between 0 and 100, got {text!r}")
    return scale


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "sim",
        help="serve an instrument simulator on a TCP port or a pseudo-terminal",
        description="Serve one instrument simulator (on a fresh optical table) until Ctrl-C or SIGTERM.",
    )
    parser.add_argument(
        "driver", help="the driver whose protocol to speak (e.g. newport_1830c, esp300, maitai, ell14, scpi)"
    )
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        "--tcp", type=tcp_port, metavar="PORT", default=0, help="TCP port on 127.0.0.1 (default: a free one)"
    )
    where.add_argument("--pty", action="store_true", help="serve on a pseudo-terminal (Linux, macOS)")
    parser.add_argument(
        "--addresses",
        metavar="HEX",
        default=None,
        help="ell14 only: the mounts on the bus, e.g. 012 (default 0); the first is the half-wave plate",
    )
    parser.add_argument(
        "--latency-scale",
        type=latency_scale,
        default=1.0,
        metavar="X",
        help="multiply the devices' real latencies by X (default 1: like hardware)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..sim import OpticalTable, serve
    from ..sim.registry import SIMULATORS, simulator_class

    if args.driver not in SIMULATORS:
        print(
            f"arrowdaq sim: no simulator for {args.driver!r} (simulators: {', '.join(sorted(SIMULATORS))})",
            file=sys.stderr,
        )
        return 2
    table = OpticalTable(latency_scale=args.latency_scale)
    if args.addresses is not None:
        addresses = args.addresses.upper()
        if args.driver != "ell14":
            raise ConfigError("--addresses applies to the ell14 bus simulator only")
        if (
            not addresses
            or any(a not in "0123456789ABCDEF" for a in addresses)
            or len(set(addresses)) != len(addresses)
        ):
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
        if args.driver == "scpi" and not args.pty:  # the scpi driver reads binary traces through VISA
            print(f"  as a VISA resource: {server.visa_resource}", flush=True)
        while not stop.wait(0.2):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        server.stop()
    print(f"{args.driver} simulator stopped", flush=True)
    return 0
