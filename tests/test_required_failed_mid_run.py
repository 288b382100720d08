"""A required instrument whose driver breaks mid-run (a code fault, not a lost link): restarted until
its failure budget is spent, then Failed; the run goes on, keeps what was recorded, and ``arrowdaq run``
exits 4 naming the instrument, with the failure in the run file's event log.

The driver is a plugin, found through its entry point as any installed driver is: a 1830-C whose
``read`` has a bug that shows from its 10th reading on (every restart meets it again).
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import arrowdaq

from .configs import instrument, lab, write_config
from .plugins import environment, write_dist

PLUGIN = '''
from arrowdaq.instruments.drivers.newport_1830c import Newport1830C


class FaultyMeter(Newport1830C):
    """A power meter driver with a bug: from its 10th reading on it looks up a key that is not there."""

    driver_name = "faulty_meter"
    readings = 0

    def read(self, stream):
        FaultyMeter.readings += 1
        if FaultyMeter.readings >= 10:
            return {}["calibration"]  # the bug: a KeyError, a fault in the code
        return super().read(stream)
'''

CONFIG = lab(
    instrument("pm1", "faulty_meter", poll_hz=20.0), instrument("pm2", poll_hz=20.0), name="faulty", latency_scale=0.0
)


def test_a_required_instrument_failed_by_a_code_fault_mid_run_makes_the_run_exit_4(tmp_path):
    plugin = {"arrowdaq.drivers": {"faulty_meter": "faulty_meter:FaultyMeter"}}
    env = environment(write_dist(tmp_path / "site", "faulty", {"faulty_meter.py": PLUGIN}, plugin))
    config = write_config(tmp_path, CONFIG)
    command = [sys.executable, "-m", "arrowdaq.cli.main", "run", str(config)]
    proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    seen: list[str] = []
    try:
        deadline = time.monotonic() + 120
        for line in proc.stdout:  # plain lines (not a terminal): one per status change
            seen.append(line)
            if "pm1 Failed" in line or time.monotonic() > deadline:
                break
        assert any("pm1 Failed" in line for line in seen), "".join(seen)
        assert proc.poll() is None, "the run went on after an instrument failed"
        proc.send_signal(signal.SIGINT)
        rest, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    out = "".join(seen) + rest
    assert proc.returncode == 4, out
    failed = next(line for line in seen if "pm1 Failed" in line)
    assert "KeyError" in failed and "calibration" in failed, failed
    assert "pm1 (required)" in rest and "Failed" in rest, rest  # the summary names it
    # a code fault is a bug to report: its traceback points at the driver's line
    assert 'faulty_meter.py", line' in out

    run = arrowdaq.open_run(next((tmp_path / "data").glob("*.h5")))
    assert run.num_rows("pm1/power") == 9  # every reading before the fault is kept
    assert run.num_rows("pm2/power") > 9  # the other meter recorded on until the stop
    events = run.events.to_pylist()
    failures = [e for e in events if e["source"] == "pm1" and "Failed" in e["message"]]
    assert failures and failures[0]["level"] == "error", events
