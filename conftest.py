"""pytest setup for the whole repository.

- Chapters are MyST Markdown notebooks (``book/*.md``); nbval only collects ``.ipynb``.
  :class:`MystNotebook` reads a chapter with jupytext and hands it to nbval, so
  ``pytest --nbval-lax`` (set in ``pyproject.toml``) executes every chapter cell by cell.
  The paired ``book/*.ipynb`` files (for Colab) are not collected a second time.
- ``VICOURSE_DATA`` is made absolute, because chapter kernels run with ``book/`` as their
  working folder.
"""

from __future__ import annotations

import os
from pathlib import Path
from unittest import mock

import jupytext
import nbval.plugin
import pytest

from tests.bookpages import has_kernel

ROOT = Path(__file__).parent
BOOK = ROOT / "book"

collect_ignore_glob = ["book/*.ipynb", "_build/*"]
pytest_plugins = ["pytester"]  # tests/test_book.py runs the chapter collector in a scratch project

if os.environ.get("VICOURSE_DATA"):
    os.environ["VICOURSE_DATA"] = str(Path(os.environ["VICOURSE_DATA"]).expanduser().resolve())


def is_chapter(path: Path) -> bool:
    """A chapter is a book/*.md file with a jupytext header (not e.g. the bibliography page)."""
    if path.suffix != ".md" or path.parent != BOOK:
        return False
    return has_kernel(path.read_text(encoding="utf-8"))


class MystNotebook(nbval.plugin.IPyNbFile):
    """nbval's notebook collector, fed from a MyST Markdown chapter via jupytext."""

    def collect(self):
        notebook = jupytext.read(self.path, fmt="md:myst")
        if not any(cell.cell_type == "code" for cell in notebook.cells):
            raise pytest.UsageError(
                f"{self.path} yields no code cells: is it a MyST notebook with "
                "```{code-cell} blocks and a jupytext header?"
            )
        # nbval reads the file with nbformat.read; give it the jupytext notebook instead.
        with mock.patch.object(nbval.plugin.nbformat, "read", return_value=notebook):
            yield from super().collect()


def pytest_collect_file(file_path: Path, parent):
    opt = parent.config.option
    if (opt.nbval or opt.nbval_lax) and is_chapter(file_path):
        return MystNotebook.from_parent(parent, path=file_path)
    return None
