"""The README's first steps work as written, and its links lead somewhere.

The "First steps" section (from step 1 to "Where your data goes") is run by the tutorials' runner
(``scripts/tutorials.py``): each ``$`` command in a fresh folder with the venv first on PATH, its
shown output required in order, the Python blocks in one namespace, ``&`` jobs in the background.
Then what the steps promise is checked: a complete run file, a plot, a scan with a Malus fit,
a live daemon whose run file logged the command the Python block sent.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

import arrowdaq

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"

sys.path.insert(0, str(ROOT / "scripts"))
import tutorials  # noqa: E402  (scripts/tutorials.py: the runner of the tutorials)


def first_steps() -> str:
    text = README.read_text(encoding="utf-8")
    start = text.index("**1. Record.**")
    end = text.index("## Where your data goes")
    return text[start:end]


def test_the_readme_starts_with_the_set_up_commands() -> None:
    lines = README.read_text(encoding="utf-8").splitlines()
    assert lines[2] == "```sh" and lines[3].startswith("make demo") and lines[4].startswith("make test")


def test_every_relative_link_of_the_readme_exists() -> None:
    text = README.read_text(encoding="utf-8")
    links = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text)
    local = [link for link in links if "://" not in link]
    assert len(local) >= 15
    missing = [link for link in local if not (ROOT / link).exists()]
    assert not missing, f"README links to files that do not exist: {missing}"


@pytest.mark.timeout(900)
def test_the_first_steps_run_as_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    page = tmp_path / "readme-first-steps.md"
    page.write_text(first_steps(), encoding="utf-8")
    workdir = tmp_path / "work"
    workdir.mkdir()
    for run in tutorials.run_page(page, workdir):
        ns = run.namespace
        data = workdir / "data"
        demo = arrowdaq.open_run(sorted(data.glob("optical-table-demo_*.h5"))[0])
        assert demo.complete and demo.num_rows("pm1/power") > 0
        assert (workdir / "power.png").read_bytes().startswith(b"\x89PNG")
        assert ns["power"].height == demo.num_rows("pm1/power")
        scans = sorted(data.glob("angular_power_scan_*.h5"))
        assert len(scans) == 2  # standalone, then in the daemon
        for path in scans:
            scan = arrowdaq.open_run(path).metadata["scan"]
            assert scan["exit_status"] == "success"
        assert "Malus fit" in run.output_of("arrowdaq scan demo")
    # after `kill -INT %1`: the daemon's run file is complete and logged the Python client's set
    daemon_runs = sorted((workdir / "data").glob("optical-table-demo_*.h5"))
    assert len(daemon_runs) == 2
    daemon = arrowdaq.open_run(daemon_runs[-1])
    assert daemon.complete
    messages = " ".join(daemon.events.column("message").to_pylist())
    assert "wavelength" in messages and "800" in messages
