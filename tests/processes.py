"""``arrowdaq`` commands in their own processes, as a user runs them and stops them (Ctrl-C)."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping
from pathlib import Path

import arrowdaq

from .waiting import wait_until

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


def arrowdaq_cmd(*args: str) -> list[str]:
    """The command line of ``arrowdaq ARGS`` with this interpreter."""
    return [sys.executable, "-m", "arrowdaq.cli.main", *args]


def run_file_in(data_dir: Path) -> Path | None:
    """The run file a running ``arrowdaq run`` created in ``data_dir``, if any yet."""
    return next(data_dir.glob("*.h5"), None) if data_dir.exists() else None


def rows_recorded(path: Path | None, stream: str) -> int:
    """Rows of ``stream`` flushed to the run file so far (0 while it does not exist or cannot be read yet)."""
    if path is None:
        return 0
    try:
        return arrowdaq.open_run(path).num_rows(stream)
    except Exception:  # being created, or laid out but not flushed yet
        return 0


class ArrowdaqProcess:
    """``with ArrowdaqProcess("run", "lab.toml") as run:`` … ``out, err = run.interrupt()``.

    The process is killed on leaving the block if the test did not stop it (a failed assertion),
    so no test leaves a run behind.
    """

    def __init__(self, *args: str, cwd: Path | None = None, env: Mapping[str, str] | None = None) -> None:
        self.proc = subprocess.Popen(
            arrowdaq_cmd(*args), cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )

    def __enter__(self) -> ArrowdaqProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.communicate()

    def running(self) -> bool:
        """True while it runs; an AssertionError with its output once it has ended (a wait would be in vain)."""
        if self.proc.poll() is None:
            return True
        out, err = self.proc.communicate()
        raise AssertionError(f"arrowdaq exited with status {self.proc.returncode}:\n{out}{err}")

    def wait_for_rows(self, data_dir: Path, rows: Mapping[str, int], timeout: float = 60.0) -> Path:
        """The run file in ``data_dir`` once it holds at least ``rows[stream]`` rows of every stream."""

        def recorded() -> Path | None:
            path = run_file_in(data_dir) if self.running() else None
            return path if path and all(rows_recorded(path, s) >= n for s, n in rows.items()) else None

        return wait_until(recorded, timeout, f"rows {dict(rows)} in the run file in {data_dir}", every=0.2)

    def interrupt(self, signum: int = signal.SIGINT, times: int = 1, timeout: float = 60.0) -> tuple[str, str]:
        """Stop it as Ctrl-C (or ``signum``) does, ``times`` presses, and return its output once it has exited."""
        for press in range(times):
            if press:
                time.sleep(0.02)  # the thing tested: an impatient user presses Ctrl-C again 20 ms later
            self.proc.send_signal(signum)
        return self.proc.communicate(timeout=timeout)

    @property
    def returncode(self) -> int | None:
        return self.proc.returncode


def run_file_named(out: str) -> Path:
    """The run file a finished ``arrowdaq run`` or ``demo`` names in its output (``run file: PATH``)."""
    match = re.search(r"^run file: (\S+\.h5)", out, re.M)
    assert match, out
    return Path(match.group(1))


def record_demo(data: Path, streams: Iterable[str] = DEMO_STREAMS, timeout: float = 120.0) -> tuple[Path, str]:
    """``arrowdaq demo`` until each of ``streams`` has rows in its run file (the trigger's come last: the
    plate must turn the power through the trigger level), then Ctrl-C; the run file and the output.

    A fixed ``--duration`` is a race on a loaded machine (start-up alone can take longer than a
    short demo); waiting for the rows in the file is not."""
    with ArrowdaqProcess("demo", "--no-gui", "--duration", str(timeout), "--data-dir", str(data)) as demo:
        demo.wait_for_rows(data, dict.fromkeys(streams, 1), timeout)
        out, err = demo.interrupt()
    assert demo.returncode == 0, err
    assert "Traceback" not in err, err
    return run_file_named(out), out
