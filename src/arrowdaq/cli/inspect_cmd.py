"""``arrowdaq inspect FILE``: what a run file holds, even while written or after a crash."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pyarrow as pa

    from ..storage.reader import StreamSummary

#: Events printed in full; longer logs show their problems only.
MAX_EVENTS = 200


def _time(ns: int | None) -> str:
    if ns is None:
        return "-"
    return datetime.fromtimestamp(ns / 1e9, UTC).isoformat(timespec="milliseconds")


def describe_run(path: str) -> str:
    """The tree ``arrowdaq inspect`` prints."""
    from ..storage import open_run  # loaded when a file is inspected, not for --help

    with open_run(path) as run:
        overview = run.overview()  # one opening: a consistent picture of a file still being written
        layout = run.layout
        damage = run.damage
    meta, events, problems = overview.metadata, overview.events, overview.problems
    if damage:
        state = f"DAMAGED: {damage}; what could be read is shown"
    elif not overview.written_by_arrowdaq:
        state = "not written by arrowdaq (Arrow IPC data under /arrow_data; no record of completion)"
    elif meta.get("complete"):
        state = "complete" + (f", with {problems} problem{'s' * (problems != 1)}" if problems else "")
    else:
        state = (
            "INCOMPLETE (still being written, or the writer stopped abnormally: then"
            f" `h5clear -s {run.path}` lets stock HDF5 tools open it)"
        )
    lines = [
        f"{run.path}",
        f"  run      {meta.get('name') or '?'}  id {meta.get('run_id') or '?'}  layout {layout}",
        f"  status   {state}",
        f"  start    {meta.get('start_time') or '-'}",
        f"  end      {meta.get('end_time') or '-'}",
    ]
    if meta.get("operator") or meta.get("sample"):
        lines.append(f"  operator {meta.get('operator') or '-'}  sample {meta.get('sample') or '-'}")
    instruments = meta.get("instrument", {})
    if instruments:
        lines.append(f"  instruments: {', '.join(instruments)}")
    summaries = overview.streams
    lines.append(f"  streams ({len(summaries)}):")
    for s in summaries:
        rate = f"{s.rate:.4g} rows/s" if s.rate is not None else "- rows/s"
        units = ", ".join(f"{k} [{v}]" for k, v in s.units.items()) or "no units"
        lines.append(f"    {s.name}  ({s.kind}, from {s.producer or '?'})")
        lines.append(f"      rows {s.rows}{_not_stored(s)}  span {s.span_s:.6g} s  {rate}")
        lines.append(f"      from {_time(s.first_ns)} to {_time(s.last_ns)}")
        lines.append(f"      units {units}")
    lines += describe_events(events)
    return "\n".join(lines)


def _not_stored(s: StreamSummary) -> str:
    """`` of N published (M lost: see the events)`` when rows published were not all stored."""
    if s.published is None or s.published == s.rows:
        return ""
    lost = f"; {s.lost} lost: see the events" if s.lost else ""
    return f" stored of {s.published} published{lost}"


def describe_events(events: pa.Table, limit: int = MAX_EVENTS) -> list[str]:
    """The event log, oldest first; past ``limit`` rows, the problems are kept and the rest folded."""
    from ..hub.events import PROBLEMS

    rows = events.to_pylist()
    if not rows:
        return ["  events: none"]
    if len(rows) > limit:
        problems = [r for r in rows if r["level"] in PROBLEMS]
        rows = problems[-limit:]
        head = f"  events ({events.num_rows}; showing the last {len(rows)} problems):"
    else:
        head = f"  events ({events.num_rows}):"
    lines = [head]
    for r in rows:
        level = r["level"].upper() if r["level"] in PROBLEMS else r["level"]
        lines.append(f"    {r['time']:10.3f} s  {level:<7}  {r['source']} [{r['kind']}] {r['message']}")
    return lines


def run(args: argparse.Namespace) -> int:
    from ..storage import open_run

    print(describe_run(args.file))
    return 1 if open_run(args.file).damage else 0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "inspect",
        help="show the streams, rows, time span and status of a run file",
        description="Print a run file's tree: streams, rows, time span, rates, units, complete or not.",
    )
    p.add_argument("file", help="the run file (.h5)")
    p.set_defaults(func=run)
