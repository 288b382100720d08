"""Sphinx configuration of the arrowdaq documentation (``make docs``; decision 0181).

Markdown pages through MyST; the reference is generated from the code at build
time (config keys from the pydantic models, the CLI from argparse, the API from
docstrings). Nothing is fetched from the network: no intersphinx.
"""

from __future__ import annotations

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


def _plain_signature_types(app: Sphinx, env: object, node: pending_xref, contnode: Element) -> Element | None:
    """A type in a signature that names an undocumented internal class (``ActorRef``) stays plain
    text; references written in docstrings and pages must still resolve, or the build fails."""
    parent = node.parent
    while parent is not None:
        if isinstance(parent, addnodes.desc_signature):
            return contnode
        parent = parent.parent
    return None


def setup(app: Sphinx) -> None:
    app.connect("missing-reference", _plain_signature_types)
