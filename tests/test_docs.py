"""The documentation site builds with zero warnings, and its reference follows the code.

The build is Sphinx with the flags of ``make docs`` (-W --keep-going -n: warnings are errors, every
cross-reference and every local link or #anchor must resolve), with the ``dummy`` builder: all
pages are read and every reference is resolved, but no HTML is written (decision 0181).
"""

from __future__ import annotations

import re
import subprocess
import sys
import typing
from pathlib import Path

import pytest
from pydantic import BaseModel

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
GENERATED = DOCS / "reference" / "generated"


@pytest.fixture(scope="module")
def build(tmp_path_factory: pytest.TempPathFactory) -> subprocess.CompletedProcess[str]:
    out = tmp_path_factory.mktemp("docs")
    return subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-n", "-q", "-b", "dummy", str(DOCS), str(out)],
        capture_output=True,
        text=True,
        timeout=900,
    )


@pytest.mark.timeout(900)
def test_the_site_builds_without_a_warning(build: subprocess.CompletedProcess[str]) -> None:
    assert build.returncode == 0, f"sphinx-build failed:\n{build.stderr[-6000:]}"
    assert "WARNING" not in build.stderr, build.stderr


@pytest.mark.timeout(900)
def test_the_configuration_reference_lists_every_key(build: subprocess.CompletedProcess[str]) -> None:
    from arrowdaq.app.config import Config

    page = (GENERATED / "config.md").read_text(encoding="utf-8")
    for section, info in Config.model_fields.items():
        model = info.annotation
        if typing.get_origin(model) is list:
            model = typing.get_args(model)[0]
            heading = f"## `[[{section}]]`"
        else:
            heading = f"## `[{section}]`"
        assert heading in page
        assert isinstance(model, type) and issubclass(model, BaseModel)
        body = page.split(heading)[1].split("\n## ")[0]
        for key in model.model_fields:
            assert re.search(rf"^\| `{key}` \|", body, re.M), f"[{section}] {key} is not in the reference"


@pytest.mark.timeout(900)
def test_the_cli_reference_lists_every_subcommand_and_option(build: subprocess.CompletedProcess[str]) -> None:
    import argparse

    from arrowdaq.cli.main import build_parser

    page = (GENERATED / "cli.md").read_text(encoding="utf-8")
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    assert len(sub.choices) >= 10
    for name, parser in sub.choices.items():
        assert f"## `arrowdaq {name}`" in page, name
        section = page.split(f"## `arrowdaq {name}`")[1].split("\n## ")[0]
        for action in parser._actions:
            for option in action.option_strings:
                if option not in ("-h", "--help"):
                    assert option in section, f"arrowdaq {name} {option} is not in the reference"


@pytest.mark.timeout(900)
def test_every_decision_record_is_on_the_site(build: subprocess.CompletedProcess[str]) -> None:
    # -W fails on a page outside every toctree; this says which toctree holds the records
    toctree = (DOCS / "explanation" / "decisions.md").read_text(encoding="utf-8")
    assert "../decisions/*" in toctree
    assert len(list((DOCS / "decisions").glob("*.md"))) >= 40


@pytest.mark.timeout(900)
def test_every_driver_processor_and_plan_has_its_reference(build: subprocess.CompletedProcess[str]) -> None:
    from arrowdaq.instruments import available, driver_class
    from arrowdaq.processors import PROCESSORS
    from arrowdaq.scans import PLANS

    drivers = (GENERATED / "drivers.md").read_text(encoding="utf-8")
    for name in available():
        section = drivers.split(f"## `{name}`")[1].split("\n## ")[0]
        for control in driver_class(name).describe()["controls"]:
            assert f"`{control['name']}`" in section, f"{name}.{control['name']} is not in the reference"
    processors = (GENERATED / "processors.md").read_text(encoding="utf-8")
    for kind, cls in PROCESSORS.items():
        section = processors.split(f"## `{kind}`")[1].split("\n## ")[0]
        for param in cls.Params.model_fields:
            assert f"| `{param}` |" in section, f"{kind} parameter {param} is not in the reference"
    plans = (GENERATED / "plans.md").read_text(encoding="utf-8")
    assert all(f"## `{name}`" in plans for name in PLANS)
