"""Where a local daemon says how to reach it: a file only its user can read.

``$XDG_RUNTIME_DIR/arrowdaq/live.json`` (per-user, in memory, removed at
logout); without XDG_RUNTIME_DIR ``~/.cache/arrowdaq/live.json``. The
directory is 0700 and the file 0600: the token in it is the key to the
instruments. ``ARROWDAQ_LIVE_FILE`` names another file.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


def runtime_dir() -> Path:
    base = os.environ.get("XDG_RUNTIME_DIR")
    return (Path(base) if base else Path.home() / ".cache") / "arrowdaq"


def address_file() -> Path:
    explicit = os.environ.get("ARROWDAQ_LIVE_FILE")
    return Path(explicit) if explicit else runtime_dir() / "live.json"


def write_address_file(info: dict[str, Any], path: Path | None = None) -> Path:
    """Write atomically, readable by this user only (created 0600, never world-readable for an instant)."""
    path = path or address_file()
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(info, f)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)
    return path


def read_address_file(path: Path | None = None) -> dict[str, Any] | None:
    path = path or address_file()
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def process_running(pid: object) -> bool:
    """Whether the process an address file names still runs (a daemon killed with -9 leaves its file behind).

    True when it cannot be told (no pid, not POSIX, another user's process)."""
    if not isinstance(pid, int) or pid <= 0 or os.name != "posix":
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


def remove_address_file(pid: int, path: Path | None = None) -> None:
    """Remove the file if it is still this daemon's (another one may have started since)."""
    path = path or address_file()
    info = read_address_file(path)
    if info is not None and info.get("pid") == pid:
        path.unlink(missing_ok=True)
