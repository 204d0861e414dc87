"""pytest setup for the whole repository.

- Chapters are MyST Markdown notebooks (``book/*.md``); nbval only collects ``.ipynb``.
  :class:`MystNotebook` reads a chapter with jupytext and hands it to nbval, so
  ``pytest --nbval-lax`` (set in ``pyproject.toml``) executes every chapter cell by cell.
  The paired ``book/*.ipynb`` files (for Colab) are not collected a second time.
- ``VICOURSE_DATA`` is made absolute, because chapter kernels run with ``book/`` as their
  working folder.
- With ``VICOURSE_BUILD_CACHE`` set to the book build's jupyter-cache folder (``.ci/run``
  sets ``_build/.jupyter_cache``), a chapter that the build has just executed is not run a
  second time: its test checks the build's executed copy instead (same code cells, no error
  outputs, executed after the last change to the chapter and to ``vicourse/``). Any
  mismatch, and any chapter the build did not execute, falls back to running it cell by cell.
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


def code_sources(notebook) -> list[str]:
    return [cell.source.strip() for cell in notebook.cells if cell.cell_type == "code"]


def build_execution(chapter: Path, notebook):
    """The book build's executed copy of ``chapter``, if it is current; else None.

    Current means: executed from the same code cells, after the last modification of the
    chapter and of every module of vicourse.
    """
    folder = os.environ.get("VICOURSE_BUILD_CACHE")
    if not folder or not (Path(folder) / "global.db").exists():
        return None
    from jupyter_cache import get_cache

    cache = get_cache(folder)
    records = [r for r in cache.list_cache_records() if Path(r.uri).resolve() == chapter]
    if not records:
        return None
    record = max(records, key=lambda r: r.created)
    executed = cache.get_cache_bundle(record.pk).nb
    sources = [chapter, *(ROOT / "vicourse").glob("*.py")]
    newest_change = max(path.stat().st_mtime for path in sources)
    if record.created.timestamp() < newest_change:
        return None
    if code_sources(executed) != code_sources(notebook):
        return None
    return executed


class ExecutedByBuild(pytest.Item):
    """Checks the build's executed copy of a chapter: every code cell ran, none errored."""

    def __init__(self, *, executed, **kwargs):
        super().__init__(**kwargs)
        self.executed = executed

    def runtest(self):
        code_cells = [cell for cell in self.executed.cells if cell.cell_type == "code"]
        for number, cell in enumerate(code_cells, start=1):
            errors = [out for out in cell.get("outputs", []) if out.output_type == "error"]
            if errors:
                raise AssertionError(
                    f"code cell {number} raised {errors[0].ename}: {errors[0].evalue}"
                )

    def repr_failure(self, excinfo):
        return f"{self.path.name}, as executed by the book build: {excinfo.value}"

    def reportinfo(self):
        return self.path, None, f"{self.path.name}: executed by the book build"


class MystNotebook(nbval.plugin.IPyNbFile):
    """nbval's notebook collector, fed from a MyST Markdown chapter via jupytext."""

    reuse_build = False

    def collect(self):
        notebook = jupytext.read(self.path, fmt="md:myst")
        if not any(cell.cell_type == "code" for cell in notebook.cells):
            raise pytest.UsageError(
                f"{self.path} yields no code cells: is it a MyST notebook with "
                "```{code-cell} blocks and a jupytext header?"
            )
        executed = build_execution(Path(self.path).resolve(), notebook)
        self.reuse_build = executed is not None
        if self.reuse_build:
            yield ExecutedByBuild.from_parent(self, name="executed-by-build", executed=executed)
            return
        # nbval reads the file with nbformat.read; give it the jupytext notebook instead.
        with mock.patch.object(nbval.plugin.nbformat, "read", return_value=notebook):
            yield from super().collect()

    def setup(self):  # no kernel needed to check the build's executed copy
        if not self.reuse_build:
            super().setup()

    def teardown(self):
        if not self.reuse_build:
            super().teardown()


def pytest_collect_file(file_path: Path, parent):
    opt = parent.config.option
    if (opt.nbval or opt.nbval_lax) and is_chapter(file_path):
        return MystNotebook.from_parent(parent, path=file_path)
    return None
