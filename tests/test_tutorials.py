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
import pytest

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


@pytest.mark.timeout(900)
@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.stem)
def test_tutorial(page: Path, tmp_path: Path) -> None:
    assert page.stem in CHECKS, f"{page.name}: add a check of what it promises to tests/test_tutorials.py"
    for run in tutorials.run_page(page, tmp_path):
        CHECKS[page.stem](run)
        for name in tutorials.images(page):
            png(run.workdir / f"{name}.png")  # each picture the page shows is one its code makes
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
