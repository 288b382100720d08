"""Plugin packages for a test, installed beside this venv, never into it.

Either a real install (``pip install --target``) of a package's source, or a hand-written
dist-info (a module and its ``entry_points.txt``) for a plugin that only needs to be found.
Either way the folder is one of the test's own: a process started with :func:`environment`
sees the plugin, and once the test's folder is gone nothing of it is left.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def pip_install(source: Path, site: Path) -> dict[str, str]:
    """Install the package at ``source`` into ``site``; the environment that sees it."""
    pip = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--target", str(site)]
    installed = subprocess.run([*pip, str(source)], capture_output=True, text=True, timeout=300)
    assert installed.returncode == 0, installed.stdout + installed.stderr
    return environment(site)


def write_dist(site: Path, name: str, modules: dict[str, str], entry_points: dict[str, dict[str, str]]) -> Path:
    """A distribution ``name`` in ``site``: its modules (file name → text) and entry points (group → name → target)."""
    info = site / f"{name}-0.1.dist-info"
    info.mkdir(parents=True)
    for file, text in modules.items():
        (site / file).write_text(text, encoding="utf-8")
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n", encoding="utf-8")
    groups = [
        f"[{group}]\n" + "".join(f"{k} = {v}\n" for k, v in names.items()) for group, names in entry_points.items()
    ]
    (info / "entry_points.txt").write_text("\n".join(groups), encoding="utf-8")
    return site


def environment(site: Path) -> dict[str, str]:
    """This process's environment with ``site`` first on PYTHONPATH."""
    return dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")])))
