"""The catalogue of runs in a data directory: ``arrowdaq.runs(data_dir)`` and ``arrowdaq runs``.

The run files are the truth. A small index beside them (``.arrowdaq-runs.json``)
keeps what each file says (id, name, times, operator, sample, status, streams)
with the file's size and modification time: a listing stats every ``*.h5`` file
and reads only those that are new or changed since (a run still being written
changes, so it is read again), and drops files that are gone. Deleting the index
only costs one full read of the directory.
"""

from __future__ import annotations

import json
import os
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl

from ..errors import ArrowDAQError, StorageError
from ..log import get_logger
from . import layout as L

log = get_logger(__name__)

INDEX_NAME = ".arrowdaq-runs.json"
INDEX_FORMAT = 1
RUN_FILES = "*.h5"

#: The catalogue's columns and their Polars types, in the order they are listed.
COLUMNS: dict[str, Any] = {
    "run_id": pl.String,
    "name": pl.String,
    "start": pl.Datetime("us", "UTC"),
    "length_s": pl.Float64,
    "operator": pl.String,
    "sample": pl.String,
    "status": pl.String,  # complete | complete, N problems | incomplete | not written by arrowdaq | unreadable
    "complete": pl.Boolean,
    "problems": pl.Int64,
    "streams": pl.List(pl.String),
    "notes": pl.String,
    "path": pl.String,
}


def describe_file(path: Path) -> dict[str, Any]:
    """What the catalogue keeps of one run file (never raises: an unreadable file says why)."""
    from .reader import open_run

    entry: dict[str, Any] = dict.fromkeys(COLUMNS)
    entry.update(path=str(path), streams=[], problems=0, complete=False, run_id="", name="", operator="", sample="")
    entry["notes"] = ""
    try:
        with open_run(path) as run:
            overview = run.overview()
        meta, summaries, arrowdaq_file = overview.metadata, overview.streams, overview.written_by_arrowdaq
        problems = overview.problems if arrowdaq_file else 0
    except ArrowDAQError as exc:
        entry["status"] = f"unreadable: {exc}"
        return entry
    except Exception as exc:  # a damaged file must not stop the listing of the others
        entry["status"] = f"unreadable: {type(exc).__name__}: {exc}"
        return entry
    entry.update(
        run_id=meta.get("run_id") or "",
        name=meta.get("name") or path.stem,
        operator=meta.get("operator") or "",
        sample=meta.get("sample") or "",
        notes=meta.get("notes") or "",
        complete=bool(meta.get("complete")),
        problems=int(problems),
        streams=[s.name for s in summaries],
    )
    start = meta.get("start_time")
    firsts = [s.first_ns for s in summaries if s.first_ns is not None]
    lasts = [s.last_ns for s in summaries if s.last_ns is not None]
    start_ns = L.iso_ns(start) if start else min(firsts, default=None)
    entry["start"] = start_ns
    if meta.get("end_time") and start and start_ns is not None:
        entry["length_s"] = (L.iso_ns(meta["end_time"]) - start_ns) / 1e9
    elif start_ns is not None and lasts:  # still being written, or stopped abnormally: up to the last row
        entry["length_s"] = (max(lasts) - start_ns) / 1e9
    if not arrowdaq_file:
        entry["status"] = "not written by arrowdaq"
    elif entry["complete"]:
        entry["status"] = "complete" + (f", {problems} problem{'s' * (problems != 1)}" if problems else "")
    else:
        entry["status"] = "incomplete"
    return entry


def _load_index(index: Path) -> dict[str, dict[str, Any]]:
    try:
        data = json.loads(index.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict) or data.get("format") != INDEX_FORMAT or not isinstance(data.get("runs"), dict):
        return {}
    return data["runs"]


def _save_index(index: Path, runs: dict[str, dict[str, Any]]) -> None:
    """Atomically (a temporary file renamed over it); mode from the umask, like any file the user makes."""
    try:
        fd, tmp = tempfile.mkstemp(prefix=f"{index.name}.", suffix=".part", dir=index.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump({"format": INDEX_FORMAT, "runs": runs}, f, ensure_ascii=False)
            os.chmod(tmp, 0o666 & ~_umask())
            os.replace(tmp, index)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    except OSError as exc:  # a read-only data directory: list anyway, from the files
        log.warning(f"{index}: cannot save the run index ({exc.strerror or exc}); the listing read every file")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def scan(data_dir: str | Path) -> list[dict[str, Any]]:
    """Every run file under ``data_dir`` (recursively), from the index where the file is unchanged."""
    root = Path(data_dir)
    if not root.is_dir():
        raise StorageError(f"{root}: no such data directory")
    index = root / INDEX_NAME
    known = _load_index(index)
    found: dict[str, dict[str, Any]] = {}
    changed = False
    for path in sorted(root.rglob(RUN_FILES)):
        try:
            st = path.stat()
        except OSError:  # deleted meanwhile
            continue
        key = path.relative_to(root).as_posix()
        stamp = [st.st_size, st.st_mtime_ns]
        cached = known.get(key)
        if cached is not None and cached.get("stamp") == stamp:
            found[key] = cached
            continue
        entry = describe_file(path)
        entry["stamp"] = stamp
        found[key] = entry
        changed = True
    if changed or set(found) != set(known):
        _save_index(index, found)
    return [{**entry, "path": str(root / key)} for key, entry in found.items()]


def _since(value: str | datetime) -> datetime:
    if isinstance(value, datetime):
        moment = value
    else:
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            raise StorageError(
                f"since: expected an ISO 8601 date or time (2026-11-27, 2026-11-27T14:00), got {value!r}"
            ) from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def runs(
    data_dir: str | Path = "data",
    *,
    sample: str | None = None,
    operator: str | None = None,
    since: str | datetime | None = None,
    text: str | None = None,
) -> pl.DataFrame:
    """The runs in ``data_dir`` as a Polars DataFrame, newest first.

    Columns: run_id, name, start (UTC), length_s, operator, sample, status
    ("complete", "complete, 2 problems", "incomplete", "not written by arrowdaq",
    "unreadable: ..."), complete, problems, streams (list), notes, path.
    ``sample`` and ``operator`` keep runs whose field contains the text (any
    case); ``since`` keeps runs started at or after an ISO 8601 date or time
    (UTC unless it says otherwise); ``text`` searches name, run id, notes,
    sample, operator and stream names.
    """
    rows = [{k: entry.get(k) for k in COLUMNS} for entry in scan(data_dir)]
    for row in rows:
        start = row["start"]
        row["start"] = L.EPOCH + timedelta(microseconds=start // 1000) if start is not None else None
    df = pl.DataFrame(rows, schema=COLUMNS)
    if sample:
        df = df.filter(pl.col("sample").str.to_lowercase().str.contains(sample.lower(), literal=True))
    if operator:
        df = df.filter(pl.col("operator").str.to_lowercase().str.contains(operator.lower(), literal=True))
    if since is not None:
        df = df.filter(pl.col("start") >= _since(since))
    if text:
        needle = text.lower()
        haystack = pl.concat_str(
            [pl.col(c).fill_null("") for c in ("name", "run_id", "notes", "sample", "operator")]
            + [pl.col("streams").list.join(" ")],
            separator="\n",
        ).str.to_lowercase()
        df = df.filter(haystack.str.contains(needle, literal=True))
    return df.sort("start", descending=True, nulls_last=True)
