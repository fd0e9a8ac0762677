"""Sphinx configuration of fastconv's documentation.

Build (the package must be importable: installed, or built in place and run
from the repository's root):

    pip install ".[docs]"
    sphinx-build -W --keep-going -b html docs build/docs

The API reference (api.rst) is written from the docstrings by autodoc; the
guides are the Markdown files of this folder, read by MyST.
"""

import os
import re

import fastconv

project = "fastconv"
author = "The fastconv developers"
copyright = "2026, The fastconv developers"
version = release = fastconv.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.viewcode",
    "myst_parser",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build"]

# The docstrings are prose with ``literals`` and >>> examples; numpydoc
# sections (Parameters / Returns with dashes), where a docstring has them,
# are read too. Google-style headings are not: a line such as "Returns:" in
# the prose stays prose.
napoleon_google_docstring = False
napoleon_numpy_docstring = True

autodoc_default_options = {"members": True, "member-order": "bysource"}
autodoc_typehints = "description"
autodoc_inherit_docstrings = False

myst_heading_anchors = 3

html_theme = "alabaster"
html_title = f"fastconv {release}"
html_static_path = []


def _indent_of(line):
    return len(line) - len(line.lstrip())


def _plain_text_blocks(app, what, name, obj, options, lines):
    """Two docstring layouts that read well as text but are not reST, shown
    as their authors meant them (the docstrings stay as they are):

    - CS231n's "Inputs:" / "Returns a tuple of:" followed directly by a dash
      list whose items wrap and nest without blank lines (the assignments'
      own convention, which fastconv.compat.cs231n keeps): the list becomes a
      literal block under its heading.
    - A first line ending in "::" whose indented block is the only indented
      text of the docstring: the docstring's dedent leaves the block flush
      left; it is indented again.
    """
    out = []
    i = 0
    while i < len(lines):
        line = lines[i]
        nxt = lines[i + 1] if i + 1 < len(lines) else ""
        if (line.rstrip().endswith(":") and not line.rstrip().endswith("::")
                and nxt.lstrip().startswith("- ")):
            base = _indent_of(nxt)
            out += [line.rstrip() + ":", ""]
            i += 1
            while i < len(lines) and lines[i].strip() and _indent_of(lines[i]) >= base:
                out.append("    " + lines[i])
                i += 1
            out.append("")
            continue
        if (line.rstrip().endswith("::") and not nxt.strip() and i + 2 < len(lines)
                and lines[i + 2].strip() and _indent_of(lines[i + 2]) <= _indent_of(line)):
            out += [line, ""]
            i += 2
            while i < len(lines) and lines[i].strip():
                out.append("    " + lines[i])
                i += 1
            continue
        out.append(line)
        i += 1
    lines[:] = out


def _check_api_covers_all(app):
    """Every public name (fastconv.__all__) has an entry in api.rst: a name
    added to the package without one fails the build."""
    with open(os.path.join(app.srcdir, "api.rst"), encoding="utf-8") as f:
        documented = set(re.findall(r"^\.\. auto\w+:: fastconv\.(\w+)\s*$", f.read(), re.M))
    missing = sorted(set(fastconv.__all__) - documented - {"__version__"})
    if missing:
        raise RuntimeError("docs/api.rst has no entry for fastconv." + ", fastconv.".join(missing))


def setup(app):
    app.connect("builder-inited", _check_api_covers_all)
    app.connect("autodoc-process-docstring", _plain_text_blocks)
