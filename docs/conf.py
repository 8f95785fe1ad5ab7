"""Sphinx configuration of the glore documentation (``make docs``: warnings are errors).

Pages are Markdown (MyST); the API reference comes from the docstrings (autodoc, napoleon), the
command-line reference from the argparse parsers (sphinx-argparse), and the model zoo from the
configs' ``reference:`` sections (generated at build time into ``docs/generated/``). MathJax is copied
from the installed django-static-mathjax package, so the site renders equations with no network.
"""

from __future__ import annotations

import shutil
import sys
from importlib import resources
from pathlib import Path

DOCS = Path(__file__).resolve().parent
sys.path.insert(0, str(DOCS.parent / "src"))
sys.path.insert(0, str(DOCS))

import glore  # noqa: E402

project = "glore"
author = "the glore developers"
release = version = glore.__version__
extensions = ["myst_parser", "sphinx.ext.autodoc", "sphinx.ext.napoleon", "sphinx.ext.mathjax", "sphinxarg.ext"]
source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
exclude_patterns = ["_build", "generated/tables"]   # included by the pages that show them
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence"]
myst_heading_anchors = 3
html_theme = "furo"
html_title = "glore"
html_static_path = ["_static"]
mathjax_path = "mathjax/tex-svg.js"
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"members": True, "show-inheritance": True}
napoleon_google_docstring = True
suppress_warnings = ["myst.header"]
nitpicky = False


def _copy_mathjax(app) -> None:
    target = DOCS / "_static" / "mathjax" / "tex-svg.js"
    target.parent.mkdir(parents=True, exist_ok=True)
    with resources.as_file(resources.files("mathjax") / "static" / "mathjax" / "es5" / "tex-svg.js") as source:
        shutil.copyfile(source, target)


def _generate_pages(app) -> None:
    from generate import write_pages

    write_pages(DOCS / "generated")


def setup(app):
    app.connect("builder-inited", _copy_mathjax)
    app.connect("builder-inited", _generate_pages)
