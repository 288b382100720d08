"""``arrowdaq export FILE --stream NAME --format parquet|csv|arrow -o OUT``."""

from __future__ import annotations

import argparse
from pathlib import Path

import pyarrow as pa

from ..errors import StorageError
from ..storage import open_run

FORMATS = ("parquet", "csv", "arrow")


def export_stream(path: str | Path, stream: str, fmt: str, out: str | Path) -> int:
    """Write one stream of a run file to ``out``; returns the rows written."""
    table = open_run(path).table(stream)
    out = Path(out)
    if fmt == "parquet":
        import pyarrow.parquet as pq

        pq.write_table(table, out)
    elif fmt == "csv":
        import pyarrow.csv as pcsv

        nested = [f.name for f in table.schema if pa.types.is_nested(f.type) or isinstance(f.type, pa.BaseExtensionType)]
        if nested:
            raise StorageError(f"{path}: stream {stream!r}: CSV holds flat columns only, and {', '.join(nested)}"
                               " hold traces or frames; export to parquet or arrow instead")
        pcsv.write_csv(table, out)
    elif fmt == "arrow":
        with pa.OSFile(str(out), "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
            writer.write_table(table)
    else:
        raise StorageError(f"unknown export format {fmt!r} (formats: {', '.join(FORMATS)})")
    return table.num_rows


def run(args: argparse.Namespace) -> int:
    rows = export_stream(args.file, args.stream, args.format, args.output)
    print(f"{args.output}: {rows} rows of {args.stream!r} ({args.format})")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("export", help="export one stream of a run file to Parquet, CSV or Arrow IPC",
                              description="Export one stream of a run file.")
    p.add_argument("file", help="the run file (.h5)")
    p.add_argument("--stream", required=True, help="the stream, e.g. pm1/power (see `arrowdaq inspect FILE`)")
    p.add_argument("--format", choices=FORMATS, default="parquet")
    p.add_argument("-o", "--output", required=True, help="the file to write")
    p.set_defaults(func=run)
