"""The tutorials (docs/tutorials/*.md) work as written: every block runs, in order, as a reader would run it.

``scripts/tutorials.py`` runs a page (Python blocks in one namespace, console blocks as real commands
whose shown output must appear, files written where the page says); the checks here then assert what
the page tells the reader they will see. Only blocks marked ``% tutorial-test: skip: WHY`` in the page
are not run.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import matplotlib
import numpy as np
import pytest

import arrowdaq

matplotlib.use("Agg")  # the pages' plots go to files

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
import tutorials  # scripts/tutorials.py: the runner, shared with the docs image script

PAGES = sorted(p for p in tutorials.PAGES.glob("*.md") if p.name != "index.md")
CHECKS: dict[str, Callable[[tutorials.PageRun], None]] = {}


def check(page: str) -> Callable[[Callable[[tutorials.PageRun], None]], Callable[[tutorials.PageRun], None]]:
    """Register what a page promises, asserted after its blocks ran (its background jobs still running)."""

    def register(fn: Callable[[tutorials.PageRun], None]) -> Callable[[tutorials.PageRun], None]:
        CHECKS[page] = fn
        return fn

    return register


def png(path: Path) -> bytes:
    data = path.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 5000, f"{path} is not a plot"
    return data


@check("first-run")
def _first_run(run: tutorials.PageRun) -> None:
    ns = run.namespace
    power, angle = ns["power"], ns["angle"]
    assert power.height > 0 and angle.height > 0, "the demo recorded no power or no plate angle"
    assert set(power["unit"].cast(str)) == {"W"}
    assert (power["time"].diff().drop_nulls() >= 0).all(), "time goes backwards"
    assert ns["run"].complete and ns["run"].metadata["name"] == "optical-table-demo"
    assert "pm1/power" in run.output_of("arrowdaq inspect")
    png(run.workdir / "first-run.png")


@check("scan-and-fit")
def _scan_and_fit(run: tutorials.PageRun) -> None:
    ns = run.namespace
    assert ns["points"].height == 31 and ns["run"].metadata["scan"]["exit_status"] == "success"
    assert ns["error"] < 0.01, "the plate stood more than 0.01 deg from a setpoint"
    # the simulated table: 3 W at 800 nm, half of it to the meter, the plate's zero at 0 deg
    assert abs(ns["amplitude"] - 1.5) < 0.015 and abs(ns["theta0"]) < 0.3 and abs(ns["background"]) < 0.01
    png(run.workdir / "scan-fit.png")


@check("lab-config")
def _lab_config(run: tutorials.PageRun) -> None:
    ns = run.namespace
    instruments = ns["run"].metadata["instrument"]
    assert (
        instruments["laser"]["settings"]["wavelength"] == 780.0
        and instruments["laser"]["settings"]["shutter"] == "closed"
    )
    assert instruments["pm1"]["settings"]["wavelength"] == 780 and instruments["pm1"]["settings"]["filter"] == 3
    assert instruments["hwp"]["settings"]["velocity"] == 60
    assert set(ns["run"].streams) == {"laser/wavelength", "laser/power", "laser/shutter", "hwp/position", "pm1/power"}
    assert ns["run"].num_rows("pm1/power") > 0
    assert 'port = "socket://127.0.0.1:20319"' in ns["run"].metadata["configuration"]  # the file that ran
    assert not list(run.workdir.glob("data/*typo*")) and not list(run.workdir.glob("data/*far*"))  # nothing started


@check("live-notebook")
def _live_notebook(run: tutorials.PageRun) -> None:
    assert run.kernel is not None, "the page's cells run in a Jupyter kernel"
    assert run.evaluate("len(readings)") >= 30 and run.evaluate('streams["pm1/power"].unit') == "W"
    assert "laser.wavelength: 2000 is outside 690..1040" in run.evaluate("refused")
    assert run.evaluate("[result.exit_status, result.num_points]") == ["success", 16]
    power = run.evaluate('[p["pm1"] for p in result.points]')
    # the plate turned through Malus's curve: full power (1.5 W) at 0 and 90 deg, dark at 45
    assert max(power) > 1.4 and min(power) < 0.05
    assert run.output_of("python watch_power.py").count("pm1/power") == 5


def _commands_in_the_event_log(run: tutorials.PageRun) -> None:
    """After the daemon stopped: the notebook's commands are in its run file's event log, by name."""
    daemon_run = arrowdaq.open_run(next(run.workdir.glob("data/optical-table-demo_*.h5")))
    messages = daemon_run.events.column("message").to_pylist()
    assert any("notebook" in m and "close_shutter" in m for m in messages), messages


@check("reading-run-files")
def _reading_run_files(run: tutorials.PageRun) -> None:
    ns = run.namespace
    assert len(ns["power"]) == ns["run"].num_rows("pm1/power") > 0 and ns["unit"] == "W"  # h5py and open_run agree
    # angles the plate stood at for a while (a loaded machine polls it late: the first readings after a move
    # are paired with the old angle; the median must not move): Malus, 1.5 W cos²(2θ) at the meter
    turned = ns["by_angle"].filter((ns["by_angle"]["angle"] > 0) & (ns["by_angle"]["readings"] >= 8))
    for angle, power in zip(turned["angle"], turned["power"], strict=True):
        assert power == pytest.approx(1.5 * np.cos(np.radians(2 * angle)) ** 2, abs=0.1), (angle, power)
    csv = (run.workdir / "power.csv").read_text().splitlines()
    assert len(csv) == ns["run"].num_rows("pm1/power") + 1
    if not run.missing:  # R read the same file
        assert f"{len(ns['power'])} readings of pm1/power in W" in run.output_of("Rscript read_run.R")


@check("write-a-driver")
def _write_a_driver(run: tutorials.PageRun) -> None:
    assert run.namespace["refused"] == "ls.current: 150 is outside 0..100"
    assert "2 passed" in run.output_of("python -m pytest")  # the page's byte-level and end-to-end tests


@check("write-a-processor")
def _write_a_processor(run: tutorials.PageRun) -> None:
    ns = run.namespace
    power, peak, fraction = ns["power"], ns["peak"], ns["fraction"]
    assert len(peak) == len(fraction) == len(power) == 2000  # every reading, in whatever batches it came
    assert np.array_equal(peak, np.maximum.accumulate(np.maximum(power, 1e-6)))  # the state crossed the batches
    assert np.allclose(fraction, power / peak) and fraction.max() <= 1.0
    assert ns["run"].table("pm1_peak/peak").schema.field("value").metadata[b"unit"] == b"W"
    png(run.workdir / "peak-hold.png")


@pytest.mark.timeout(900)
@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.stem)
def test_tutorial(page: Path, tmp_path: Path) -> None:
    assert page.stem in CHECKS, f"{page.name}: add a check of what it promises to tests/test_tutorials.py"
    for run in tutorials.run_page(page, tmp_path):
        CHECKS[page.stem](run)
        for name in tutorials.images(page):
            png(run.workdir / f"{name}.png")  # each picture the page shows is one its code makes
    if page.stem == "live-notebook":
        _commands_in_the_event_log(run)
    import matplotlib.pyplot as plt

    plt.close("all")
    for block in run.skipped:
        assert block.skip, f"{block.where}: skipped without a reason"
    if run.missing:
        pytest.skip(
            "; ".join(f"{b.where} not run: {b.requires} is not installed" for b in run.missing)
            + " (scripts/bootstrap.sh installs it as root on Debian)"
        )


def test_every_page_is_in_the_index_and_every_picture_is_in_the_docs() -> None:
    index = (tutorials.PAGES / "index.md").read_text(encoding="utf-8")
    images = tutorials.ROOT / "docs" / "images"
    for page in PAGES:
        assert f"\n{page.stem}\n" in index, f"{page.name} is not in docs/tutorials/index.md's toctree"
        for name in tutorials.images(page):
            png(images / f"tutorial-{name}.png")  # made by scripts/tutorials.py --images docs/images


def test_the_runner_refuses_an_unmarked_block_and_skips_only_marked_ones(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "# A page\n\n% tutorial-test: skip: needs a real MaiTai\n```python\nraise SystemExit('ran')\n```\n\n"
        "```python\nx = 1 + 1\n```\n\n```matlab\nx = h5read('run.h5', '/entry/pm1_power/value');\n```\n",
        encoding="utf-8",
    )
    blocks = tutorials.blocks(page)
    assert [(b.lang, b.skip) for b in blocks] == [("python", "needs a real MaiTai"), ("python", None), ("matlab", None)]
    with pytest.raises(AssertionError, match=r"page.md:12: a 'matlab' block that is neither run"):
        for _ in tutorials.run_page(page, tmp_path):
            pass


def test_console_output_must_appear_in_order_and_exit_statuses_are_checked(tmp_path: Path) -> None:
    assert tutorials.unmatched(["a ... c", "...", "d"], "x\na b c\nd\n") is None
    assert tutorials.unmatched(["d", "a ... c"], "a b c\nd\n") == "a ... c"
    page = tmp_path / "page.md"
    page.write_text("```console\n$ echo hello; exit 3\nhello\n$ echo $?\n3\n$ false\n```\n", encoding="utf-8")
    with pytest.raises(AssertionError, match=r"`false` exited 1"):
        for _ in tutorials.run_page(page, tmp_path):
            pass
    daemon = "import signal; signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGINT]); print('live: up'); signal.sigwait([signal.SIGINT])"
    page.write_text(f'```console\n$ python -c "{daemon}" &\nlive: ...\n$ kill -INT %1\n```\n', encoding="utf-8")
    for run in tutorials.run_page(page, tmp_path):
        assert run.output_of("python -c").startswith("live: up")
