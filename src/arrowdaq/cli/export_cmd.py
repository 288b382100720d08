"""``arrowdaq export FILE --stream NAME --format parquet|csv|arrow -o OUT [--force]``.

The export is written to a temporary file beside ``OUT`` and renamed over it at the
end, so an error never leaves a half-written export (nor touches an existing file).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import StorageError

if TYPE_CHECKING:  # pyarrow and the storage package load when an export runs, not for --help
    import pyarrow as pa

FORMATS = ("parquet", "csv", "arrow")
#: Rows written per step: the progress bar's unit and the writers' batch size.
STEP_ROWS = 65_536


@contextlib.contextmanager
def _writer(fmt: str, out: Path, schema: pa.Schema) -> Iterator[Callable[[pa.RecordBatch], None]]:
    import pyarrow as pa

    if fmt == "parquet":
        import pyarrow.parquet as pq

        with pq.ParquetWriter(out, schema) as w:
            yield w.write_batch
    elif fmt == "csv":
        import pyarrow.csv as pcsv

        with pcsv.CSVWriter(out, schema) as w:
            yield w.write_batch
    elif fmt == "arrow":
        with pa.OSFile(str(out), "wb") as sink, pa.ipc.new_file(sink, schema) as w:
            yield w.write_batch
    else:
        raise StorageError(f"unknown export format {fmt!r} (formats: {', '.join(FORMATS)})")


def _check_output(path: Path, out: Path, force: bool) -> None:
    if out.exists():
        if path.exists() and os.path.samefile(path, out):
            raise StorageError(f"{out}: is the run file being exported; choose another output file")
        if not force:
            raise StorageError(f"{out}: exists; use --force to replace it")
        if out.is_dir():
            raise StorageError(f"{out}: is a directory; give a file name")


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
    import pyarrow as pa

    from ..data import decode, plain_schema
    from ..storage import open_run

    path, out = Path(path), Path(out)
    _check_output(path, out, force)
    run = open_run(path)
    schema, total = plain_schema(run.schema(stream)), run.num_rows(stream)
    if fmt == "csv":
        nested = [f.name for f in schema if pa.types.is_nested(f.type) or isinstance(f.type, pa.BaseExtensionType)]
        if nested:
            raise StorageError(
                f"{path}: stream {stream!r}: CSV holds flat columns only, and {', '.join(nested)}"
                " hold traces or frames; export to parquet or arrow instead"
            )
    if fmt not in FORMATS:
        raise StorageError(f"unknown export format {fmt!r} (formats: {', '.join(FORMATS)})")
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".part", dir=out.parent)
        os.close(fd)
    except OSError as exc:
        raise StorageError(f"{out}: cannot write the export: {exc.strerror or exc}") from None
    tmp = Path(tmp_name)
    done = 0
    try:
        with _writer(fmt, tmp, schema) as write:
            for batch in run.iter_batches(stream, STEP_ROWS):
                write(decode(batch))  # plain strings: every reader of the export understands them
                done += batch.num_rows
                if progress is not None:
                    progress(done, max(total, done))
        os.replace(tmp, out)
    except OSError as exc:
        raise StorageError(f"{out}: cannot write the export: {exc.strerror or exc}") from None
    finally:
        tmp.unlink(missing_ok=True)
    return done


def run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.progress import Progress

    console = Console()
    if console.is_terminal:
        with Progress(console=console, transient=True) as bar:
            task = bar.add_task(f"export {args.stream}", total=None)
            rows = export_stream(
                args.file,
                args.stream,
                args.format,
                args.output,
                lambda done, total: bar.update(task, completed=done, total=total),
                force=args.force,
            )
    else:
        rows = export_stream(args.file, args.stream, args.format, args.output, force=args.force)
    print(f"{args.output}: {rows} rows of {args.stream!r} ({args.format})")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "export",
        help="export one stream of a run file to Parquet, CSV or Arrow IPC",
        description="Export one stream of a run file.",
    )
    p.add_argument("file", help="the run file (.h5)")
    p.add_argument("--stream", required=True, help="the stream, e.g. pm1/power (see `arrowdaq inspect FILE`)")
    p.add_argument("--format", choices=FORMATS, default="parquet")
    p.add_argument(
        "-o", "--output", required=True, help="the file to write (not the run file; an existing one needs --force)"
    )
    p.add_argument("--force", action="store_true", help="replace the output file if it exists")
    p.set_defaults(func=run)
