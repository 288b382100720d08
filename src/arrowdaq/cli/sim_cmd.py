"""``arrowdaq sim``: serve simulators so a configuration or another program can use them.

    $ arrowdaq sim newport_1830c --tcp 5025
    newport_1830c simulator listening on socket://127.0.0.1:5025

    $ arrowdaq sim maitai=5001 ell14=pty newport_1830c=5003 --table /tmp/table
    maitai simulator listening on socket://127.0.0.1:5001
    ell14 simulator listening on /dev/pts/4
    newport_1830c simulator listening on socket://127.0.0.1:5003

Several devices given at once share one optical table; with ``--table FILE``
the table lives in that file, so separate ``arrowdaq sim`` processes share it too
(the laser of one lights the power meter of another). ``DRIVER=PORT`` serves on a
TCP port (0: a free one), ``DRIVER=pty`` on a pseudo-terminal. Faults are injected
from the command line: ``--fault [DRIVER=]KIND[:VALUE][@AFTER]`` with KIND one of
``disconnect``, ``silent``, ``slow`` (VALUE: extra seconds per reply), ``garbage``,
``error`` (the device's own error reply), starting AFTER seconds (default at once),
e.g. ``--fault newport_1830c=disconnect@5``. Runs until Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import math
import re
import signal
import sys
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..errors import ConfigError

if TYPE_CHECKING:
    from ..sim.device import SimDevice

FAULT_KINDS = ("disconnect", "silent", "slow", "garbage", "error")
_FAULT = re.compile(r"^(?:(?P<driver>[\w.-]+)=)?(?P<kind>[a-z]+)(?::(?P<value>[0-9.]+))?(?:@(?P<after>[0-9.]+))?$")


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


@dataclass(frozen=True)
class Fault:
    driver: str | None  # None: every device served
    kind: str
    value: float
    after: float


def fault(text: str) -> Fault:
    match = _FAULT.match(text)
    if match is None or match.group("kind") not in FAULT_KINDS:
        raise argparse.ArgumentTypeError(
            f"expected [DRIVER=]KIND[:VALUE][@AFTER] with KIND one of {', '.join(FAULT_KINDS)}, got {text!r}"
        )
    value = float(match.group("value") or (1.0 if match.group("kind") == "slow" else 0.0))
    return Fault(match.group("driver"), match.group("kind"), value, float(match.group("after") or 0.0))


@dataclass(frozen=True)
class Device:
    driver: str
    where: str  # "pty" or a TCP port number as text


def device(text: str) -> Device:
    driver, sep, where = text.partition("=")
    if not sep:
        return Device(driver, "")
    if where != "pty":
        tcp_port(where)  # checked here: a clear argparse error
    return Device(driver, where)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "sim",
        help="serve instrument simulators on TCP ports or pseudo-terminals, on one optical table",
        description="Serve instrument simulators on one optical table until Ctrl-C or SIGTERM.",
    )
    parser.add_argument(
        "devices",
        nargs="+",
        type=device,
        metavar="DRIVER[=PORT|=pty]",
        help="the drivers whose protocols to speak (e.g. newport_1830c, esp300, maitai, ell14, scpi)",
    )
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        "--tcp", type=tcp_port, metavar="PORT", default=0, help="one device: TCP port on 127.0.0.1 (default: free)"
    )
    where.add_argument("--pty", action="store_true", help="one device: serve on a pseudo-terminal (Linux, macOS)")
    parser.add_argument(
        "--addresses",
        metavar="HEX",
        default=None,
        help="ell14 only: the mounts on the bus, e.g. 012 (default 0); the first is the half-wave plate",
    )
    parser.add_argument(
        "--table",
        metavar="FILE",
        default=None,
        help="keep the optical table in FILE, shared with other `arrowdaq sim` processes given the same FILE",
    )
    parser.add_argument(
        "--fault",
        type=fault,
        action="append",
        default=[],
        metavar="[DRIVER=]KIND[:VALUE][@AFTER]",
        help=f"inject a fault ({', '.join(FAULT_KINDS)}), optionally after AFTER seconds; repeatable",
    )
    parser.add_argument(
        "--latency-scale",
        type=latency_scale,
        default=1.0,
        metavar="X",
        help="multiply the devices' real latencies by X (default 1: like hardware)",
    )
    parser.set_defaults(func=run)


def _simulator(driver: str) -> type[SimDevice] | None:
    """The simulator of a registered driver (found from the driver); None if there is none."""
    from ..app.simulators import simulator_class
    from ..instruments import driver_class

    try:
        return simulator_class(driver_class(driver))
    except ConfigError:
        return None


def _known_simulators() -> list[str]:
    from ..instruments import available

    return [name for name in available() if _simulator(name) is not None]


def _addresses(text: str | None, drivers: list[str], simulators: dict[str, type[SimDevice]]) -> str | None:
    if text is None:
        return None
    addresses = text.upper()
    if not any(simulators[d].shared_bus for d in drivers):
        raise ConfigError("--addresses applies to the ell14 bus simulator only")
    if not addresses or any(a not in "0123456789ABCDEF" for a in addresses) or len(set(addresses)) != len(addresses):
        raise ConfigError(f"--addresses: {text!r} is not a list of distinct hex digits such as 012")
    return addresses


def run(args: argparse.Namespace) -> int:
    from ..sim import OpticalTable, serve
    from ..sim.server import TcpSimServer
    from ..sim.table import SharedOpticalTable

    drivers = [d.driver for d in args.devices]
    found = {d: _simulator(d) for d in drivers}
    simulators = {d: s for d, s in found.items() if s is not None}
    missing = [d for d in drivers if d not in simulators]
    if missing:
        print(
            f"arrowdaq sim: no simulator for {missing[0]!r} (simulators: {', '.join(_known_simulators())})",
            file=sys.stderr,
        )
        return 2
    if len(args.devices) > 1 and (args.tcp or args.pty):
        raise ConfigError("--tcp and --pty apply to one device; give several as DRIVER=PORT or DRIVER=pty")
    addresses = _addresses(args.addresses, drivers, simulators)
    for f in args.fault:
        if f.driver is not None and f.driver not in drivers:
            raise ConfigError(f"--fault {f.driver}={f.kind}: {f.driver!r} is not served here ({', '.join(drivers)})")
    table: OpticalTable
    if args.table:
        table = SharedOpticalTable(args.table, latency_scale=args.latency_scale)
    else:
        table = OpticalTable(latency_scale=args.latency_scale)
    servers = []
    try:
        for spec in args.devices:
            sim = simulators[spec.driver]
            settings = [{"address": a} for a in addresses] if addresses and sim.shared_bus else []
            dev = sim.for_instruments(table, settings)
            transport = "pty" if spec.where == "pty" or (args.pty and not spec.where) else "tcp"
            port = int(spec.where) if spec.where not in ("", "pty") else args.tcp
            try:
                server = serve(dev, transport, port=port)
            except OSError as exc:
                where = "a pseudo-terminal" if transport == "pty" else f"127.0.0.1:{port}"
                raise ConfigError(f"cannot serve the {spec.driver} simulator on {where}: {exc}") from None
            servers.append((spec.driver, dev, server))
            print(f"{spec.driver} simulator listening on {server.address}", flush=True)
            if dev.visa and isinstance(server, TcpSimServer):  # the scpi driver reads binary traces through VISA
                print(f"  as a VISA resource: {server.visa_resource}", flush=True)
        stop = threading.Event()
        previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
        timers = [_schedule(f, servers, stop) for f in args.fault]
        try:
            while not stop.wait(0.2):
                pass
        except KeyboardInterrupt:
            pass
        finally:
            stop.set()
            signal.signal(signal.SIGTERM, previous)
            for timer in timers:
                timer.join(timeout=2)
    finally:
        for driver, _, server in servers:
            server.stop()
            print(f"{driver} simulator stopped", flush=True)
    return 0


def _schedule(f: Fault, servers: list, stop: threading.Event) -> threading.Thread:
    """Apply ``f`` after its delay (unless stopped first) to the devices it names."""

    def apply() -> None:
        if f.after and stop.wait(f.after):
            return
        for driver, dev, server in servers:
            if f.driver not in (None, driver):
                continue
            if f.kind == "disconnect":
                server.disconnect()
            elif f.kind == "silent":
                server.faults.silent = True
            elif f.kind == "slow":
                server.faults.extra_delay = f.value
            elif f.kind == "garbage":
                server.faults.garbage = True
            elif f.kind == "error":
                try:
                    dev.inject_error()
                except NotImplementedError as exc:
                    print(f"arrowdaq sim: {driver}: {exc}", file=sys.stderr, flush=True)
                    continue
            print(f"{driver}: fault {f.kind} injected", flush=True)

    thread = threading.Thread(target=apply, name=f"fault-{f.kind}", daemon=True)
    thread.start()
    return thread
