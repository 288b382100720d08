"""``arrowdaq inspect FILE``: what a run file holds, even while written or after a crash."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime


def _time(ns: int | None) -> str:
    if ns is None:
        return "-"
    return datetime.fromtimestamp(ns / 1e9, UTC).isoformat(timespec="milliseconds")


def describe_run(path: str) -> str:
    """The tree ``arrowdaq inspect`` prints."""
    from ..storage import open_run  # loaded when a file is inspected, not for --help

    run = open_run(path)
    meta = run.metadata
    state = (
        "complete"
        if meta.get("complete")
        else (
            "INCOMPLETE (still being written, or the writer stopped abnormally: then"
            f" `h5clear -s {run.path}` lets stock HDF5 tools open it)"
        )
    )
    lines = [
        f"{run.path}",
        f"  run      {meta.get('title', '?')}  id {meta.get('entry_identifier', '?')}  layout {run.layout}",
        f"  status   {state}",
        f"  start    {meta.get('start_time', '-')}",
        f"  end      {meta.get('end_time', '-')}",
    ]
    if meta.get("operator") or meta.get("sample", {}).get("name"):
        lines.append(f"  operator {meta.get('operator') or '-'}  sample {meta.get('sample', {}).get('name') or '-'}")
    instruments = meta.get("instrument", {})
    if instruments:
        lines.append(f"  instruments: {', '.join(instruments)}")
    summaries = run.summary()
    lines.append(f"  streams ({len(summaries)}):")
    for s in summaries:
        rate = f"{s.rate:.4g} rows/s" if s.rate is not None else "- rows/s"
        units = ", ".join(f"{k} [{v}]" for k, v in s.units.items()) or "no units"
        lines.append(f"    {s.name}  ({s.kind}, from {s.producer or '?'})")
        lines.append(f"      rows {s.rows}  span {s.span_s:.6g} s  {rate}")
        lines.append(f"      from {_time(s.first_ns)} to {_time(s.last_ns)}")
        lines.append(f"      units {units}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    print(describe_run(args.file))
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "inspect",
        help="show the streams, rows, time span and status of a run file",
        description="Print a run file's tree: streams, rows, time span, rates, units, complete or not.",
    )
    p.add_argument("file", help="the run file (.h5)")
    p.set_defaults(func=run)
