"""``arrowdaq export FILE [--stream NAME ...] --format parquet|csv|arrow -o OUT [--join] [--force]``.

* one ``--stream`` and ``-o FILE``: that stream to one file;
* several ``--stream`` or none (every stream): ``-o DIR``, one file per stream
  (``DIR/pm1_power.parquet``);
* ``--join``: scalar streams side by side in one file, as-of joined on time
  (each row of the first stream gets every other stream's nearest reading within
  ``--tolerance`` seconds, or null).

CSV files get a first column ``time``: the timestamp in ISO 8601 UTC, to the ns.
Every output is written to a temporary file beside it and renamed over it at the
end, so an error never leaves a half-written export (nor touches an existing
file), and gets the mode a new file gets from the umask (not 0600).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import StorageError

if TYPE_CHECKING:  # pyarrow and the storage package load when an export runs, not for --help
    import pyarrow as pa

FORMATS = ("parquet", "csv", "arrow")
EXTENSIONS = {"parquet": "parquet", "csv": "csv", "arrow": "arrow"}
#: Rows written per step: the progress bar's unit and the writers' batch size.
STEP_ROWS = 65_536
#: Default as-of join tolerance, seconds.
TOLERANCE_S = 1.0


@contextlib.contextmanager
def _writer(fmt: str, out: Path, schema: pa.Schema) -> Iterator[Callable[[pa.RecordBatch], None]]:
    import pyarrow as pa

    if fmt == "parquet":
        import pyarrow.parquet as pq

        with pq.ParquetWriter(out, schema) as w:
            yield w.write_batch
    elif fmt == "csv":
        import pyarrow.csv as pcsv

        with pcsv.CSVWriter(out, _with_iso_time(schema)) as w:
            yield lambda batch: w.write_batch(_with_iso_time(batch))
    elif fmt == "arrow":
        with pa.OSFile(str(out), "wb") as sink, pa.ipc.new_file(sink, schema) as w:
            yield w.write_batch
    else:
        raise StorageError(f"unknown export format {fmt!r} (formats: {', '.join(FORMATS)})")


def _with_iso_time(data: Any) -> Any:  # a pyarrow Schema or RecordBatch, the same back
    """A schema or batch with a first column ``time``: ``timestamp_ns`` as ISO 8601 UTC text (to the ns)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    names = data.names if isinstance(data, pa.Schema) else data.schema.names
    if "timestamp_ns" not in names or "time" in names:
        return data
    if isinstance(data, pa.Schema):
        return data.insert(0, pa.field("time", pa.string()))
    stamps = data.column("timestamp_ns").cast(pa.int64()).cast(pa.timestamp("ns", "UTC"))
    return data.add_column(0, "time", pc.strftime(stamps, format="%Y-%m-%dT%H:%M:%SZ"))


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _check_output(path: Path, out: Path, force: bool) -> None:
    if out.exists():
        if path.exists() and os.path.samefile(path, out):
            raise StorageError(f"{out}: is the run file being exported; choose another output file")
        if not force:
            raise StorageError(f"{out}: exists; use --force to replace it")
        if out.is_dir():
            raise StorageError(f"{out}: is a directory; give a file name")


def _check_format(path: Path, fmt: str, stream: str, schema: pa.Schema) -> None:
    import pyarrow as pa

    if fmt not in FORMATS:
        raise StorageError(f"unknown export format {fmt!r} (formats: {', '.join(FORMATS)})")
    if fmt == "csv":
        nested = [f.name for f in schema if pa.types.is_nested(f.type) or isinstance(f.type, pa.BaseExtensionType)]
        if nested:
            raise StorageError(
                f"{path}: stream {stream!r}: CSV holds flat columns only, and {', '.join(nested)}"
                " hold traces or frames; export to parquet or arrow instead"
            )


def _write(
    out: Path,
    fmt: str,
    schema: pa.Schema,
    batches: Iterable[pa.RecordBatch],
    progress: Callable[[int], None] | None = None,
) -> int:
    """Write ``batches`` to a temporary file beside ``out``, give it the umask's mode, rename it over ``out``."""
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".part", dir=out.parent)
        os.close(fd)
    except OSError as exc:
        raise StorageError(f"{out}: cannot write the export: {exc.strerror or exc}") from None
    tmp = Path(tmp_name)
    done = 0
    try:
        with _writer(fmt, tmp, schema) as write:
            for batch in batches:
                write(batch)
                done += batch.num_rows
                if progress is not None:
                    progress(done)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600: others could not read the export
        os.replace(tmp, out)
    except OSError as exc:
        raise StorageError(f"{out}: cannot write the export: {exc.strerror or exc}") from None
    finally:
        tmp.unlink(missing_ok=True)
    return done


def export_stream(
    path: str | Path,
    stream: str,
    fmt: str,
    out: str | Path,
    progress: Callable[[int, int], None] | None = None,
    force: bool = False,
) -> int:
    """Write one stream of a run file to ``out``; returns the rows written.

    Refuses to overwrite the run file itself, and an existing ``out`` unless ``force``.
    ``progress(rows_done, rows_total)`` is called after each step of ``STEP_ROWS`` rows."""
    from ..data import decode, plain_schema
    from ..storage import open_run

    path, out = Path(path), Path(out)
    _check_output(path, out, force)
    with open_run(path) as run:
        schema, total = plain_schema(run.schema(stream)), run.num_rows(stream)
        _check_format(path, fmt, stream, schema)
        batches = (decode(b) for b in run.iter_batches(stream, STEP_ROWS))  # plain strings: any reader knows them
        step = None if progress is None else (lambda done: progress(done, max(total, done)))
        return _write(out, fmt, schema, batches, step)


def stream_file_name(stream: str, fmt: str) -> str:
    """``pm1/power`` → ``pm1_power.parquet``."""
    return f"{stream.replace('/', '_')}.{EXTENSIONS[fmt]}"


def export_streams(
    path: str | Path, streams: list[str] | None, fmt: str, out_dir: str | Path, force: bool = False
) -> dict[str, int]:
    """Several streams (None: all) of a run file, one file each in ``out_dir`` (created if missing);
    returns rows per stream. Everything is checked before the first file is written."""
    from ..data import plain_schema
    from ..storage import open_run

    path, out_dir = Path(path), Path(out_dir)
    if fmt not in FORMATS:
        raise StorageError(f"unknown export format {fmt!r} (formats: {', '.join(FORMATS)})")
    if out_dir.exists() and not out_dir.is_dir():
        raise StorageError(f"{out_dir}: is a file; several streams go to a directory (one file each)")
    with open_run(path) as run:
        names = run.streams if streams is None else streams
        for stream in names:
            _check_format(path, fmt, stream, plain_schema(run.schema(stream)))
    if not names:
        raise StorageError(f"{path}: has no streams to export")
    targets = {stream: out_dir / stream_file_name(stream, fmt) for stream in names}
    taken = [str(t) for t in targets.values() if t.exists()]
    if taken and not force:
        raise StorageError(f"{taken[0]}: exists; use --force to replace it ({len(taken)} file(s) would be replaced)")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StorageError(f"{out_dir}: cannot create the export directory: {exc.strerror or exc}") from None
    return {stream: export_stream(path, stream, fmt, target, force=True) for stream, target in targets.items()}


def joined_table(path: str | Path, streams: list[str], tolerance_s: float = TOLERANCE_S) -> pa.Table:
    """Scalar streams side by side: each row of ``streams[0]`` with every other stream's reading
    nearest in time within ``tolerance_s`` seconds (null if none). Columns: ``timestamp_ns``, then
    one per stream named ``"<stream> (<unit>)"`` (the unit also in the field metadata)."""
    import polars as pl
    import pyarrow as pa

    from ..data.schemas import SCALAR, UNIT_KEY, kind_of, unit_of
    from ..storage import open_run

    path = Path(path)
    if len(streams) < 2:
        raise StorageError("--join needs at least two streams (--stream A --stream B ...)")
    if not tolerance_s >= 0:
        raise StorageError(f"--tolerance: expected seconds >= 0, got {tolerance_s!r}")
    frames, fields = [], []
    with open_run(path) as run:
        for stream in streams:
            schema = run.schema(stream)
            if kind_of(schema) != SCALAR:
                raise StorageError(
                    f"{path}: stream {stream!r} is not a scalar stream (timestamp_ns, value); --join joins scalars"
                )
            unit = unit_of(schema)
            column = f"{stream} ({unit})" if unit else stream
            fields.append(pa.field(column, pa.float64(), metadata={UNIT_KEY: unit.encode()} if unit else None))
            frame = run.lazy(stream).select(pl.col("timestamp_ns").cast(pl.Int64), pl.col("value").alias(column))
            frames.append(frame.sort("timestamp_ns"))
    joined = frames[0]
    for frame in frames[1:]:
        joined = joined.join_asof(
            frame, on="timestamp_ns", strategy="nearest", tolerance=int(round(tolerance_s * 1e9)), coalesce=True
        )
    table = joined.collect().to_arrow()
    schema = pa.schema([pa.field("timestamp_ns", pa.uint64(), nullable=False), *fields])
    return pa.Table.from_arrays(
        [table.column("timestamp_ns").cast(pa.uint64())] + [table.column(f.name).cast(pa.float64()) for f in fields],
        schema=schema,
    )


def export_joined(
    path: str | Path,
    streams: list[str],
    fmt: str,
    out: str | Path,
    tolerance_s: float = TOLERANCE_S,
    force: bool = False,
) -> int:
    """:func:`joined_table` written to ``out``; returns the rows written."""
    path, out = Path(path), Path(out)
    _check_output(path, out, force)
    if fmt not in FORMATS:
        raise StorageError(f"unknown export format {fmt!r} (formats: {', '.join(FORMATS)})")
    table = joined_table(path, streams, tolerance_s)
    return _write(out, fmt, table.schema, table.to_batches(max_chunksize=STEP_ROWS))


def run(args: argparse.Namespace) -> int:
    streams: list[str] | None = args.stream or None
    if args.join:
        from ..storage import open_run

        with open_run(args.file) as run_file:
            scalars = sorted((s for s in run_file.summary() if s.kind == "scalar"), key=lambda s: -s.rows)
            chosen = streams or [s.name for s in scalars]  # the densest stream gives the rows
        rows = export_joined(args.file, chosen, args.format, args.output, args.tolerance, force=args.force)
        print(f"{args.output}: {rows} rows, {len(chosen)} streams joined on time ({args.format})")
        return 0
    if streams is not None and len(streams) == 1 and not Path(args.output).is_dir():
        return _run_one(args, streams[0])
    done = export_streams(args.file, streams, args.format, args.output, force=args.force)
    for stream, rows in done.items():
        print(f"{Path(args.output) / stream_file_name(stream, args.format)}: {rows} rows of {stream!r}")
    return 0


def _run_one(args: argparse.Namespace, stream: str) -> int:
    from rich.console import Console
    from rich.progress import Progress

    console = Console()
    if console.is_terminal:
        with Progress(console=console, transient=True) as bar:
            task = bar.add_task(f"export {stream}", total=None)
            rows = export_stream(
                args.file,
                stream,
                args.format,
                args.output,
                lambda done, total: bar.update(task, completed=done, total=total),
                force=args.force,
            )
    else:
        rows = export_stream(args.file, stream, args.format, args.output, force=args.force)
    print(f"{args.output}: {rows} rows of {stream!r} ({args.format})")
    return 0


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, got {text!r}") from None
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"expected seconds >= 0, got {text!r}")
    return value


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "export",
        help="export streams of a run file to Parquet, CSV or Arrow IPC (one, several, all, or joined on time)",
        description="Export streams of a run file: one stream to a file, several (or all, without --stream) to a "
        "directory with one file per stream, or scalar streams joined on time (--join) to one file. "
        "CSV gets an ISO 8601 UTC 'time' column.",
    )
    p.add_argument("file", help="the run file (.h5)")
    p.add_argument(
        "--stream",
        action="append",
        metavar="NAME",
        help="a stream, e.g. pm1/power (see `arrowdaq inspect FILE`); repeat for several; none: every stream",
    )
    p.add_argument("--format", choices=FORMATS, default="parquet")
    p.add_argument(
        "-o",
        "--output",
        required=True,
        help="the file to write (one stream, or --join), else the directory (not the run file; existing files"
        " need --force)",
    )
    p.add_argument(
        "--join",
        action="store_true",
        help="join scalar streams on time into one file, on the first stream's rows (default: every scalar"
        " stream, the one with most rows first)",
    )
    p.add_argument(
        "--tolerance",
        type=_seconds,
        default=TOLERANCE_S,
        metavar="S",
        help=f"--join: the farthest reading (seconds) that counts as simultaneous (default {TOLERANCE_S})",
    )
    p.add_argument("--force", action="store_true", help="replace output files that exist")
    p.set_defaults(func=run)
