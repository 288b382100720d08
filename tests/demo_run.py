"""``arrowdaq demo`` recorded until its run file has what a test needs, then stopped with Ctrl-C.

A fixed ``--duration`` is a race on a loaded machine (start-up alone can take longer than a
short demo); waiting for the rows in the file is not."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterable
from pathlib import Path

import arrowdaq

#: Every stream the demo declares, with its unit.
DEMO_STREAMS: dict[str, str | None] = {
    "laser/wavelength": "nm",
    "laser/power": "W",
    "laser/shutter": None,
    "hwp/position": "deg",
    "stage/axis1_position": "mm",
    "stage/axis2_position": "mm",
    "stage/axis3_position": "mm",
    "stage/axis1_velocity": "mm/s",
    "stage/axis2_velocity": "mm/s",
    "stage/axis3_velocity": "mm/s",
    "pm1/power": "W",
    "scope1/voltage": "V",
    "scope1/trace": "V",
    "cam1/frames": "counts",
    "scope1_fft/spectrum": "V",
    "pm1_lowpass/filtered": "W",
    "pm1_trigger/segments": "W",
    "pm1_trigger/events": "W",
}


def rows_so_far(path: Path, stream: str) -> int:
    """Rows a running run has flushed (0 while the file cannot be read yet)."""
    try:
        return arrowdaq.open_run(path).num_rows(stream)
    except Exception:
        return 0


def record_demo(data: Path, streams: Iterable[str] = DEMO_STREAMS, timeout: float = 120.0) -> tuple[Path, str]:
    """Run the demo until each of ``streams`` has rows in its run file (the trigger's come last: the
    plate must turn the power through the trigger level), Ctrl-C it; the run file and the output."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "arrowdaq.cli.main", "demo", "--no-gui", "--duration", str(timeout)]
        + ["--data-dir", str(data)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + timeout
        while proc.poll() is None and time.monotonic() < deadline:
            files = list(data.glob("*.h5"))
            if files and all(rows_so_far(files[0], stream) > 0 for stream in streams):
                break
            time.sleep(0.5)  # polling the file, not waiting for something to happen
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, stderr
    assert "Traceback" not in stderr, stderr
    match = re.search(r"^run file: (\S+\.h5)", stdout, re.M)
    assert match, stdout
    return Path(match.group(1)), stdout
