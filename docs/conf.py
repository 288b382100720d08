"""Sphinx configuration of the arrowdaq documentation (``make docs``; decision 0181).

Markdown pages through MyST; the reference is generated from the code at build
time (config keys from the pydantic models, the CLI from argparse, the API from
docstrings). Nothing is fetched from the network: no intersphinx.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "_ext"))

from docutils.nodes import Element  # noqa: E402
from sphinx import addnodes  # noqa: E402
from sphinx.addnodes import pending_xref  # noqa: E402
from sphinx.application import Sphinx  # noqa: E402
from sphinx.ext.napoleon.docstring import GoogleDocstring  # noqa: E402

import arrowdaq  # noqa: E402  (the installed, editable package: its version and docstrings)
import arrowdaq.errors  # noqa: E402

project = "arrowdaq"
author = "the arrowdaq developers"
copyright = "the arrowdaq developers"
release = arrowdaq.__version__
version = release

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "arrowdaq_reference",
]

source_suffix = {".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store", "_ext"]

# The tutorials (docs/tutorials/) come from their own branch; until they are there, the root toctree's
# entry for them is the one reference allowed to name a missing page.
suppress_warnings: list[str] = [] if (HERE / "tutorials" / "index.md").exists() else ["toc.not_readable"]

# MyST: heading anchors so that [text](page.md#a-heading) links are checked like page links.
myst_heading_anchors = 3
myst_enable_extensions = ["colon_fence", "deflist"]

# Every reference must resolve (-n on the command line); types from other packages are not documented here.
nitpicky = True
nitpick_ignore_regex = [
    (r"py:.*", r"(pa|pl|np|pyarrow|polars|numpy|pydantic|asyncio|concurrent|collections|typing|types)\..*"),
    (r"py:.*", r"(pathlib|os|enum|abc|threading|queue|argparse|logging|datetime|contextlib|io|socket)\..*"),
    (r"py:.*", r"(h5py|serial|pyvisa|scipy|PySide6|pyqtgraph)\..*"),
]

autodoc_default_options = {"members": True, "member-order": "bysource"}
autodoc_typehints = "signature"
autodoc_preserve_defaults = True
autodoc_mock_imports: list[str] = []
napoleon_google_docstring = True
napoleon_numpy_docstring = False
# "Raises: StorageError: ..." in a docstring links to arrowdaq.errors.StorageError without spelling the module.
napoleon_type_aliases = {
    name: f"~arrowdaq.errors.{name}"
    for name, value in vars(arrowdaq.errors).items()
    if isinstance(value, type) and issubclass(value, Exception) and value.__module__ == "arrowdaq.errors"
}

html_theme = "furo"
html_title = f"arrowdaq {release}"
html_static_path: list[str] = []
html_show_sourcelink = False


# --- two adjustments that keep "zero warnings" meaningful ---------------------------------------


def _prose_attribute_docstring(self: GoogleDocstring) -> list[str]:
    """Napoleon reads an attribute docstring "The event log: ..." as a type ("The event log") and
    a description; arrowdaq's attribute comments are prose, so keep them as they are."""
    return list(self._consume_to_end())


GoogleDocstring._parse_attribute_docstring = _prose_attribute_docstring  # type: ignore[method-assign]


def _existing_object(node: pending_xref) -> bool:
    """Whether a Python reference names something that exists in the code: the target as written,
    or relative to the module and class it was written in (and their parents), as Sphinx looks."""
    target = str(node.get("reftarget", "")).lstrip(".~")
    if not target:
        return False
    module = str(node.get("py:module") or "")
    klass = str(node.get("py:class") or "")
    scopes = [".".join(module.split(".")[:i]) for i in range(len(module.split(".")), 0, -1)] if module else []
    candidates = [target]
    for scope in scopes:
        if klass:
            candidates.append(f"{scope}.{klass}.{target}")
        candidates.append(f"{scope}.{target}")
    return any(_importable(name) for name in candidates)


def _importable(dotted: str) -> bool:
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj: object = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        try:
            for attr in parts[cut:]:
                obj = getattr(obj, attr)
        except AttributeError:
            # an attribute set in __init__ or declared by annotation only
            return cut == len(parts) - 1 and isinstance(obj, type) and parts[-1] in getattr(obj, "__annotations__", {})
        return True
    return False


def _undocumented_but_real(app: Sphinx, env: object, node: pending_xref, contnode: Element) -> Element | None:
    """A Python reference that names a real but undocumented object (an internal class a docstring
    mentions, a type in a signature) is shown as plain text. One that names nothing that exists (a
    renamed or removed function, a typo) stays unresolved: with -n -W that fails the build."""
    if node.get("refdomain") != "py":
        return None
    parent = node.parent
    while parent is not None:
        if isinstance(parent, addnodes.desc_signature):
            return contnode
        parent = parent.parent
    return contnode if _existing_object(node) else None


def setup(app: Sphinx) -> None:
    app.connect("missing-reference", _undocumented_but_real)
