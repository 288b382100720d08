"""The control commands: ``status``, ``watch``, ``do``, ``get``, ``set``, ``record`` — clients of a running daemon.

They find the local daemon by its address file (or ``--address``/``--token``/``--tls-cert``,
``ARROWDAQ_ADDRESS``/``ARROWDAQ_TOKEN``/``ARROWDAQ_TLS_CERT``) and use the same Python client as a
notebook or the GUI (``arrowdaq.connect``); errors are the daemon's own messages.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import math
import sys
import threading
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..live.client import Client


def _client(args: argparse.Namespace) -> Client:
    from ..live.client import connect

    return connect(args.address, args.token, name=f"arrowdaq {args.command}", tls_cert=args.tls_cert)


def parse_value(text: str) -> Any:
    """``780`` → 780, ``true`` → True, ``[1, 2]`` → [1, 2], anything else stays text (``open``)."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def assignment(text: str) -> tuple[str, Any]:
    """A command's argument as argparse reads it: ``nm=780`` → ("nm", 780); anything else is a usage error."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE (e.g. nm=780), got {text!r}")
    return key, parse_value(value)


def _show(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


# --- status ------------------------------------------------------------------------------
def status(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    with _client(args) as daq:
        s = daq.status()
    if args.json:
        print(json.dumps(s, indent=2))
        return 0
    console = Console()
    actors = Table(title=f"arrowdaq at {daq.address}")
    for col in ("actor", "role", "status", "restarts", "last error"):
        actors.add_column(col, overflow="fold")
    for name, a in s["actors"].items():
        actors.add_row(name, a["role"], a["status"], str(a["restarts"]), a["error"] or "")
    console.print(actors)
    streams = Table(title="Streams")
    for col in ("stream", "kind", "rows", "rows/s"):
        streams.add_column(col, justify="left" if col in ("stream", "kind") else "right")
    for name, st in s["streams"].items():
        streams.add_row(name, st.get("kind") or "", f"{st['rows']:,}", f"{st['rows_per_s']:,.1f}")
    console.print(streams)
    drops = {n: sub["drops"] for n, sub in s["subscribers"].items() if sub.get("drops")}
    live = s.get("live") or {}
    rec = s.get("recording") or {}
    where = rec.get("file") or "none"
    console.print(f"recording: {'on' if rec.get('recording') else 'off'} ({where})", highlight=False)
    console.print(f"live streams open: {live.get('streams_open', 0)} of {live.get('max_streams', '?')}")
    for name, n in drops.items():
        console.print(f"drops: {name}: {n} batches", highlight=False)
    return 0


# --- watch ---------------------------------------------------------------------------------
class Watched:
    """The last value of one stream, updated by its subscription's thread."""

    def __init__(self, name: str, unit: str | None) -> None:
        self.name = name
        self.unit = unit or ""
        self.value = "—"
        self.time_ns = 0
        self.rows = 0
        self.dropped = 0
        self.error: str | None = None

    def take(self, batch: Any, dropped: int) -> None:
        self.rows += batch.num_rows
        self.dropped = dropped
        self.time_ns = int(batch.column("timestamp_ns")[-1].as_py()) if "timestamp_ns" in batch.schema.names else 0
        if "value" in batch.schema.names:
            self.value = f"{batch.column('value')[-1].as_py():.6g}"
        elif "values" in batch.schema.names:
            values = batch.column("values")[-1].values.to_numpy(zero_copy_only=False)
            self.value = f"{len(values)} points, max {values.max():.4g}" if len(values) else "0 points"
        elif "pixels" in batch.schema.names:
            import pyarrow.compute as pc

            pixels = batch.column("pixels").storage[-1].values  # the last frame's (the unit's) values
            self.value = f"frame {batch.column('frame_number')[-1].as_py()}, max {pc.max(pixels).as_py():.4g}"
        elif "message" in batch.schema.names:
            self.value = str(batch.column("message")[-1].as_py())
        else:
            self.value = f"{batch.num_rows} rows"


def watch(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.live import Live
    from rich.table import Table

    from ..errors import ArrowDAQError

    daq = _client(args)
    known = daq.streams()
    names: list[str] = []
    for pattern in args.streams:  # names or globs (laser/*)
        matched = sorted(s for s in known if fnmatch.fnmatchcase(s, pattern))
        if not matched:
            daq.close()
            raise ArrowDAQError(f"unknown stream {pattern!r} (streams: {', '.join(sorted(known))})")
        names += [m for m in matched if m not in names]
    watched = {s: Watched(s, known[s].unit) for s in names}
    subs = [daq.subscribe(name, "latest") for name in names]

    def follow(sub: Any, w: Watched) -> None:
        try:
            for batch in sub:
                w.take(batch, sub.dropped)
        except ArrowDAQError as exc:
            w.error = str(exc)

    threads = [threading.Thread(target=follow, args=(sub, watched[sub.stream]), daemon=True) for sub in subs]
    for t in threads:
        t.start()

    def table() -> Table:
        t = Table(title=f"arrowdaq watch ({daq.address})")
        for col in ("stream", "value", "unit", "age", "rows", "dropped"):
            t.add_column(col, justify="right" if col in ("value", "age", "rows", "dropped") else "left")
        now = time.time_ns()
        for w in watched.values():
            age = f"{(now - w.time_ns) / 1e9:.1f} s" if w.time_ns else "—"
            t.add_row(w.name, w.error or w.value, w.unit, age, f"{w.rows:,}", str(w.dropped))
        return t

    console = Console()
    end = math.inf if args.duration is None else time.monotonic() + args.duration
    try:
        if console.is_terminal:
            with Live(table(), console=console, refresh_per_second=4) as live:
                while time.monotonic() < end and any(t.is_alive() for t in threads):
                    time.sleep(0.25)
                    live.update(table())
        else:  # a pipe or a log: one line per stream each second
            while time.monotonic() < end and any(t.is_alive() for t in threads):
                time.sleep(min(1.0, max(0.0, end - time.monotonic())))
                for w in watched.values():
                    print(f"{w.name} {w.error or w.value} {w.unit} rows={w.rows} dropped={w.dropped}", flush=True)
    except KeyboardInterrupt:
        pass
    finally:
        for sub in subs:
            sub.close()
        daq.close()
    errors = [w.error for w in watched.values() if w.error]
    if errors:
        print(f"arrowdaq watch: {errors[0]}", file=sys.stderr)
        return 1
    return 0


# --- do / get / set / record ------------------------------------------------------------------
def do(args: argparse.Namespace) -> int:
    with _client(args) as daq:
        result = daq.command(args.instrument, args.name, timeout=args.timeout, **dict(args.args))
    print(_show(result) if result is not None else "ok")
    return 0


def get(args: argparse.Namespace) -> int:
    with _client(args) as daq:
        print(_show(daq.get(args.instrument, args.name, timeout=args.timeout)))
    return 0


def set_(args: argparse.Namespace) -> int:
    with _client(args) as daq:
        value = daq.set(args.instrument, args.name, parse_value(args.value), timeout=args.timeout)
    print(f"{args.instrument}.{args.name} = {_show(value)}")
    return 0


def record(args: argparse.Namespace) -> int:
    meta = {k: getattr(args, k) for k in ("name", "operator", "sample", "notes") if getattr(args, k, None)}
    with _client(args) as daq:
        state = daq.record(args.action, **meta)
    on = "recording" if state.get("recording") else "not recording"
    print(f"{on}: {state.get('file') or 'no file'}")
    return 0


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--address", help="the daemon's address (default: the local daemon's address file)")
    p.add_argument("--token", help="the daemon's token (default: from the address file, or ARROWDAQ_TOKEN)")
    add_tls_cert_option(p)


def add_tls_cert_option(p: argparse.ArgumentParser) -> None:
    """``--tls-cert``: the certificate to trust for a ``grpc+tls://`` daemon (shared with ``scan`` and ``gui``)."""
    p.add_argument(
        "--tls-cert",
        metavar="PEM",
        default=None,
        help="the certificate to trust for a grpc+tls:// daemon, e.g. its self-signed server.crt "
        "(default: ARROWDAQ_TLS_CERT, else the local daemon's address file, else the system's trusted roots)",
    )


def register(subparsers: argparse._SubParsersAction) -> None:
    from .run_cmd import positive_seconds

    p = subparsers.add_parser("status", help="what a running daemon is doing (instruments, streams, drops)")
    _common(p)
    p.add_argument("--json", action="store_true", help="the full status as JSON")
    p.set_defaults(func=status)

    p = subparsers.add_parser("watch", help="live values of streams (e.g. arrowdaq watch pm1/power laser/*)")
    _common(p)
    p.add_argument("streams", nargs="+", metavar="STREAM")
    p.add_argument("--duration", type=positive_seconds, metavar="S", help="stop after S seconds (default: Ctrl-C)")
    p.set_defaults(func=watch)

    for name, func, help_text in (
        ("do", do, "run an instrument command: arrowdaq do laser set_wavelength nm=780"),
        ("get", get, "read a setting: arrowdaq get laser wavelength"),
        ("set", set_, "change a setting: arrowdaq set laser wavelength 780"),
    ):
        p = subparsers.add_parser(name, help=help_text, description=help_text)
        _common(p)
        p.add_argument("instrument")
        p.add_argument("name", metavar="COMMAND" if name == "do" else "SETTING")
        if name == "do":
            p.add_argument(
                "args",
                nargs="*",
                type=assignment,
                metavar="KEY=VALUE",
                help='arguments (values as JSON: 780, true, "x")',
            )
        elif name == "set":
            p.add_argument("value")
        p.add_argument("--timeout", type=positive_seconds, default=30.0, metavar="S", help="default 30 s")
        p.set_defaults(func=func)

    p = subparsers.add_parser("record", help="start or stop recording in a running daemon")
    _common(p)
    p.add_argument("action", nargs="?", default="state", choices=("start", "stop", "state"))
    for key in ("name", "operator", "sample", "notes"):
        p.add_argument(f"--{key}", help=f"run {key} (start)")
    p.set_defaults(func=record)
