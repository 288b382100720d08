"""A processor of one's own, named in a configuration: the ``arrowdaq.processors`` entry point group.

The package is the one docs/tutorials/write-a-processor.md builds (its files copied out of the page),
installed with pip into a directory of its own (``--target``) that the runs see on PYTHONPATH: its
entry point is found the way any installed plugin's is, and this venv is left as it was. Drivers and
processors are looked up by the same code (``arrowdaq.plugins``), so a broken plugin of either is
refused with the same kind of message, naming the configuration key.
"""

from __future__ import annotations

import re
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import numpy as np
import pytest

import arrowdaq
from arrowdaq.cli.main import main
from arrowdaq.errors import ConfigError
from arrowdaq.processors import FFTProcessor, available, processor_class

from .configs import PM1, config_from, instrument, lab, processor, write_config
from .plugins import pip_install, write_dist
from .processes import ArrowdaqProcess

PAGE = Path(__file__).parent.parent / "docs" / "tutorials" / "write-a-processor.md"
BLOCK = re.compile(r"```(?:python|toml)\n# (?P<path>[\w./-]+)\n(?P<body>.*?)```", re.S)


@pytest.fixture(scope="module")
def plugin(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    """The page's package installed into a directory of its own; the folder and an environment that sees it."""
    root = tmp_path_factory.mktemp("peak_hold")
    files = {m.group("path"): m.group("body") for m in BLOCK.finditer(PAGE.read_text(encoding="utf-8"))}
    assert {"peak_hold.py", "pyproject.toml", "lab.toml"} <= set(files)
    source = root / "arrowdaq-peak-hold"
    for path, body in files.items():
        target = (root if path == "lab.toml" else source) / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(body, encoding="utf-8")
    env = pip_install(source, root / "site")
    entry_points = next((root / "site").glob("arrowdaq_peak_hold-*.dist-info/entry_points.txt"))
    assert "arrowdaq.processors" in entry_points.read_text()
    return root, env


def test_a_configuration_names_an_installed_processor_kind_and_its_outputs_are_recorded(plugin):
    root, env = plugin
    data = root / "data"
    with ArrowdaqProcess("run", str(root / "lab.toml"), "--data-dir", str(data), cwd=root, env=env) as proc:
        proc.wait_for_rows(data, {"pm1_peak/peak": 20, "pm1_peak/fraction": 20})
        _, err = proc.interrupt()
    assert proc.returncode == 0, err
    run = arrowdaq.open_run(next(data.glob("*.h5")))
    power = run.table("pm1/power")
    peak, fraction = run.table("pm1_peak/peak"), run.table("pm1_peak/fraction")
    # every reading went through the plugin (the processor drains its input at the stop), in step
    assert peak.num_rows == fraction.num_rows == power.num_rows >= 20
    assert np.array_equal(peak.column("timestamp_ns").to_numpy(), power.column("timestamp_ns").to_numpy())
    watts = power.column("value").to_numpy()
    held = peak.column("value").to_numpy()
    assert np.array_equal(held, np.maximum.accumulate(np.maximum(watts, 1e-6)))  # the page's floor = 1e-6
    assert np.allclose(fraction.column("value").to_numpy(), watts / held)
    assert peak.schema.field("value").metadata[b"unit"] == b"W"


def run_variant(root: Path, env: dict[str, str], old: str, new: str) -> subprocess.CompletedProcess[str]:
    """``arrowdaq run`` on the page's lab.toml with ``old`` replaced by ``new``."""
    config = root / "variant.toml"
    text = (root / "lab.toml").read_text(encoding="utf-8")
    assert old in text
    config.write_text(text.replace(old, new), encoding="utf-8")
    command = [sys.executable, "-m", "arrowdaq.cli.main", "run", str(config), "--duration", "1"]
    return subprocess.run(
        [*command, "--data-dir", str(root / "not-started")], cwd=root, env=env, capture_output=True, text=True
    )


def test_a_misspelt_kind_is_refused_naming_the_key_and_listing_the_installed_kinds(plugin):
    root, env = plugin
    proc = run_variant(root, env, 'kind = "peak_hold"', 'kind = "peak_holt"')
    assert proc.returncode != 0
    message = "variant.toml: processors[0].kind: unknown processor kind 'peak_holt' (kinds: decimate, fft, "
    assert message in proc.stderr, proc.stderr
    assert "peak_hold, sql" in proc.stderr  # the plugin's kind among the shipped ones
    assert "Traceback" not in proc.stderr
    assert not (root / "not-started").exists()


def test_the_plugins_parameters_are_checked_before_anything_starts(plugin):
    root, env = plugin
    proc = run_variant(root, env, "floor = 1e-6", "floor = -1")
    assert proc.returncode != 0
    assert "variant.toml: processors[0] ('pm1_peak')" in proc.stderr and "floor" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (root / "not-started").exists()


# --- broken plugins, drivers and processors alike ------------------------------------------------

BROKEN = {
    "not importable": (
        "broken_plugin:Missing",
        "import no_such_module_for_arrowdaq\n",
        "cannot be loaded: ModuleNotFoundError: No module named 'no_such_module_for_arrowdaq' (at ",
    ),
    "failing on import": (  # the one-line message names the line, for the plugin's author
        "broken_plugin:Late",
        "import math\n\nSCALE = math.tau * undefined_setting\n",
        "cannot be loaded: NameError: name 'undefined_setting' is not defined (at ",
    ),
    "not the right class": ("broken_plugin:NotOne", "class NotOne:\n    pass\n", "is not a {base} subclass"),
}
GROUPS = {
    "arrowdaq.drivers": (
        instrument("x", "broken"),
        "lab.toml: instruments[0].driver: driver 'broken' from 'broken_plugin:{cls}' ",
        "Driver",
    ),
    "arrowdaq.processors": (
        PM1 + processor("p", "broken", "pm1/power"),
        "lab.toml: processors[0].kind: processor kind 'broken' from 'broken_plugin:{cls}' ",
        "Processor",
    ),
}


@pytest.mark.parametrize("group", GROUPS)
@pytest.mark.parametrize("case", BROKEN)
def test_a_broken_plugin_is_refused_naming_the_key_and_the_entry_point(group, case, tmp_path, monkeypatch):
    target, module, problem = BROKEN[case]
    site = write_dist(tmp_path / "site", "broken", {"broken_plugin.py": module}, {group: {"broken": target}})
    monkeypatch.syspath_prepend(str(site))  # undone after the test: the plugin is gone again
    text, where, base = GROUPS[group]
    try:
        with pytest.raises(ConfigError) as info:
            config_from(text, "lab.toml")
    finally:
        sys.modules.pop("broken_plugin", None)  # and so is its module, where it could be imported
    message = str(info.value)
    assert message.startswith(where.format(cls=target.partition(":")[2])), message
    assert problem.format(base=base) in message, message
    if "(at " in problem:
        line = 3 if case == "failing on import" else 1
        assert message.endswith(f"{site / 'broken_plugin.py'}:{line})"), message


def test_a_plugin_cannot_change_what_a_shipped_kind_means(tmp_path, monkeypatch):
    shadow = {"arrowdaq.processors": {"fft": "shadow_plugin:Shadow"}}
    site = write_dist(tmp_path / "site", "shadow", {"shadow_plugin.py": "class Shadow:\n    pass\n"}, shadow)
    monkeypatch.syspath_prepend(str(site))
    assert entry_points(group="arrowdaq.processors", name="fft")  # installed and seen
    assert processor_class("fft") is FFTProcessor  # the built-in wins
    assert available().count("fft") == 1
    assert "shadow_plugin" not in sys.modules  # never imported


def test_v_shows_a_broken_plugins_own_traceback(tmp_path, monkeypatch, capsys):
    module = "import math\n\nSCALE = math.tau * undefined_setting\n"
    site = write_dist(
        tmp_path / "site", "broken", {"broken_plugin.py": module}, {"arrowdaq.drivers": {"broken": "broken_plugin:X"}}
    )
    monkeypatch.syspath_prepend(str(site))
    config = write_config(tmp_path, lab(instrument("x", "broken")))
    try:
        assert main(["run", str(config)]) == 1
        quiet = capsys.readouterr().err
        assert main(["-v", "run", str(config)]) == 1
        verbose = capsys.readouterr().err
    finally:
        sys.modules.pop("broken_plugin", None)
    line = "cannot be loaded: NameError: name 'undefined_setting' is not defined"
    assert line in quiet and "Traceback" not in quiet, quiet  # one line by default
    assert "Traceback" in verbose and f'File "{site / "broken_plugin.py"}", line 3' in verbose, verbose
    assert verbose.rstrip().splitlines()[-1] == quiet.rstrip().splitlines()[-1]  # and the same line last
