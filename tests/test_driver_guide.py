"""docs/drivers.md works the first time: its files, copied out of the page, make a plugin that installs,
passes its own byte-level tests and runs under ``arrowdaq run`` with ``port = "sim"``.

The package is installed with pip into a directory of its own (``--target``), so its
entry points are found the way any installed plugin's are, without touching this venv.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

import arrowdaq

from .plugins import pip_install
from .processes import ArrowdaqProcess

GUIDE = Path(__file__).parent.parent / "docs" / "drivers.md"
BLOCK = re.compile(r"```(?:python|toml)\n# (?P<path>[\w./-]+)\n(?P<body>.*?)```", re.S)


@pytest.fixture(scope="module")
def plugin(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    """The guide's files written out and installed; the directory and the environment that sees the plugin."""
    root = tmp_path_factory.mktemp("guide")
    source = root / "arrowdaq-tc1"
    files = {m.group("path"): m.group("body") for m in BLOCK.finditer(GUIDE.read_text(encoding="utf-8"))}
    assert {"arrowdaq_tc1/driver.py", "arrowdaq_tc1/sim.py", "pyproject.toml", "tests/test_tc1.py"} <= set(files)
    for path, body in files.items():
        target = (root if path == "lab.toml" else source) / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(body, encoding="utf-8")
    env = pip_install(source, root / "site")
    assert list((root / "site").glob("arrowdaq_tc1-*.dist-info/entry_points.txt"))
    return root, env


def test_the_plugins_own_byte_level_tests_pass(plugin):
    root, env = plugin
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(root / "arrowdaq-tc1" / "tests")],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "2 passed" in proc.stdout


def test_arrowdaq_run_finds_the_plugin_and_its_simulator_and_applies_its_settings(plugin):
    root, env = plugin
    data = root / "data"
    with ArrowdaqProcess("run", str(root / "lab.toml"), "--data-dir", str(data), cwd=root, env=env) as proc:
        proc.wait_for_rows(data, {"oven/temperature": 2})  # the plugin's readings are recorded
        _, err = proc.interrupt()
    assert proc.returncode == 0, err
    run = arrowdaq.open_run(next(data.glob("*.h5")))
    settings = run.metadata["instrument"]["oven"]["settings"]
    assert settings == {"setpoint": 80.0, "rate": 5.0, "heater": "on"}
    temperature = run.table("oven/temperature").column("value").to_numpy()
    assert len(temperature) >= 2 and temperature[-1] > 22.0  # heating towards 80 °C


def test_a_bad_value_for_the_plugins_setting_stops_the_run_before_it_starts(plugin):
    root, env = plugin
    bad = root / "bad.toml"
    bad.write_text((root / "lab.toml").read_text().replace("setpoint = 80", "setpoint = 500"))
    proc = subprocess.run(
        [sys.executable, "-m", "arrowdaq.cli.main", "run", str(bad), "--duration", "1", "--data-dir", str(root / "x")],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode != 0
    assert "bad.toml: instruments[0].settings: oven: setting setpoint: 500 is outside -50..200" in proc.stderr
