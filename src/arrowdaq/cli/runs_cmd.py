"""``arrowdaq runs [DATA_DIR] [TEXT] [--sample S] [--operator O] [--since DATE]``: the catalogue of runs."""

from __future__ import annotations

import argparse


def _length(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 120:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def _streams(names: list[str], shown: int = 3) -> str:
    if not names:
        return "0"
    more = f", +{len(names) - shown}" if len(names) > shown else ""
    return f"{len(names)}: {', '.join(names[:shown])}{more}"


def run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from ..storage.catalogue import runs

    df = runs(args.data_dir, sample=args.sample, operator=args.operator, since=args.since, text=args.text)
    table = Table(title=f"{df.height} run(s) in {args.data_dir}", title_justify="left")
    for column in ("id", "name", "start (UTC)", "length", "operator", "sample", "status", "streams"):
        table.add_column(column, overflow="fold")
    for row in df.iter_rows(named=True):
        start = row["start"].strftime("%Y-%m-%d %H:%M:%S") if row["start"] is not None else "-"
        table.add_row(
            row["run_id"] or "-",
            row["name"] or "-",
            start,
            _length(row["length_s"]),
            row["operator"] or "-",
            row["sample"] or "-",
            row["status"],
            _streams(row["streams"]),
        )
    Console(width=max(160, Console().width)).print(table)
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "runs",
        help="list the runs in a data directory (id, name, start, length, operator, sample, status, streams)",
        description="List the run files in DATA_DIR, newest first. An index beside them (.arrowdaq-runs.json) "
        "keeps this quick; it is rebuilt from the files when missing or when a file changed.",
    )
    p.add_argument("data_dir", nargs="?", default="data", metavar="DATA_DIR", help="default: ./data")
    p.add_argument(
        "text",
        nargs="?",
        default=None,
        metavar="TEXT",
        help="keep runs whose name, id, notes, sample, operator or streams contain TEXT (any case)",
    )
    p.add_argument("--sample", metavar="S", help="keep runs whose sample contains S (any case)")
    p.add_argument("--operator", metavar="O", help="keep runs whose operator contains O (any case)")
    p.add_argument("--since", metavar="DATE", help="keep runs started at or after DATE (ISO 8601, UTC by default)")
    p.set_defaults(func=run)
