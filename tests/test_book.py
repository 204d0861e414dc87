"""Structure of the book: table of contents, chapter style, Colab notebooks, build settings.

These tests guard the conventions that keep the website, Colab and CI in agreement (the
README's "Working on the book" states them): every chapter is in the table of contents,
starts with a hidden cell that installs vicourse from the one repository URL in
``_config.yml``, glues and asserts only in hidden cells, shows package code with ``show()``
(never a second copy), and has a current Colab notebook ``book/<chapter>.ipynb`` without raw
MyST; and the build fails on any cell error (the build is the chapter test).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import jupytext
import nbformat
import pytest
import yaml
from bookpages import has_kernel, toc_files

from vicourse.course import colab

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"
CONFIG = yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))
TOC = yaml.safe_load((ROOT / "_toc.yml").read_text(encoding="utf-8"))
HIDDEN = {"remove-cell", "remove-input"}


def is_notebook(path: Path) -> bool:
    return has_kernel(path.read_text(encoding="utf-8"))


PAGES = [ROOT / f"{name}.md" for name in toc_files(TOC)]
CHAPTERS = [page for page in PAGES if is_notebook(page)]
COLAB_CHAPTERS = [page for page in CHAPTERS if f"book/{page.stem}" not in colab.NO_COLAB]


def code_cells(chapter: Path) -> list[nbformat.NotebookNode]:
    return [c for c in jupytext.read(chapter, fmt="md:myst").cells if c.cell_type == "code"]


def is_hidden(cell: nbformat.NotebookNode) -> bool:
    return bool(HIDDEN & set(cell.metadata.get("tags", [])))


def test_toc_pages_exist_and_every_book_page_is_listed():
    missing = [str(p.relative_to(ROOT)) for p in PAGES if not p.exists()]
    assert not missing, f"_toc.yml lists pages that do not exist: {missing}"
    unlisted = sorted(str(p.relative_to(ROOT)) for p in BOOK.glob("*.md") if p not in PAGES)
    assert not unlisted, f"book pages missing from _toc.yml (they would not be built): {unlisted}"
    assert len(CHAPTERS) >= 3, f"expected at least three executable chapters, found {CHAPTERS}"


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.name)
def test_first_code_cell_installs_vicourse_only_in_colab(chapter: Path):
    first = code_cells(chapter)[0]
    repo = CONFIG["repository"]["url"].rstrip("/")
    assert "remove-cell" in first.metadata.get("tags", []), f"{chapter.name}: hide the install cell"
    assert '"google.colab" in sys.modules' in first.source, f"{chapter.name}: guard the install"
    assert f"git+{repo}" in first.source, (
        f"{chapter.name}: the install cell must use the repository URL of _config.yml ({repo})"
    )


GLUE_OR_ASSERT = re.compile(r"^\s*(glue\(|assert\b)", re.M)


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.name)
def test_glue_and_assertions_live_in_hidden_cells(chapter: Path):
    visible = [(number, found[0].strip()) for number, cell in enumerate(code_cells(chapter), 1)
               if not is_hidden(cell) and (found := GLUE_OR_ASSERT.search(cell.source))]
    assert not visible, (
        f"{chapter.name}: code cells {[n for n, _ in visible]} glue or assert in a cell the "
        f"reader sees ({visible[0][1]!r}); move it to a hidden cell (:tags: [remove-cell]) "
        "right after, see README 'Working on the book'"
    )


def assigned_names(source: str) -> set[str]:
    """Names a cell binds at top level (assignments, loops, definitions), imports excepted."""
    names = set()
    for node in ast.parse(source).body:
        targets = list(getattr(node, "targets", []))
        if isinstance(node, (ast.AnnAssign, ast.AugAssign, ast.For, ast.With)):
            targets.append(getattr(node, "target", None) or node)
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.add(node.name)
        for target in targets:
            names |= {n.id for n in ast.walk(target) if isinstance(n, ast.Name)
                      and isinstance(n.ctx, ast.Store)}
    return names


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.name)
def test_hidden_cells_name_their_variables_with_an_underscore(chapter: Path):
    """Checks and glue cells never rebind a name the reader sees (exercise cells excepted)."""
    offending = {}
    for number, cell in enumerate(code_cells(chapter), 1):
        if ("remove-cell" not in cell.metadata.get("tags", []) or cell.metadata.get("nbgrader")
                or "google.colab" in cell.source):
            continue
        public = sorted(n for n in assigned_names(cell.source) if not n.startswith("_"))
        if public:
            offending[number] = public
    assert not offending, (
        f"{chapter.name}: hidden code cells bind names without a leading underscore "
        f"{offending} (cell number: names); rename them _name"
    )


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.name)
def test_package_code_is_shown_not_copied(chapter: Path):
    text = chapter.read_text(encoding="utf-8")
    assert not re.search(r"\{literalinclude\}\s+\S*vicourse/", text), (
        f"{chapter.name} includes package code with literalinclude; show it with a cell "
        '`show("vicourse.module.name")` tagged remove-input (Colab shows the same)'
    )
    for cell in code_cells(chapter):
        if "show(" in cell.source and colab.SHOW_CELL.match(cell.source.strip()):
            assert "remove-input" in cell.metadata.get("tags", []), (
                f"{chapter.name}: the cell {cell.source!r} must be tagged remove-input, so "
                "the website shows the code and not the call"
            )


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.name)
def test_colab_notebook_is_present_current_and_plain_markdown(chapter: Path):
    book = colab.Book.read(ROOT)
    found = colab.problems(book, f"book/{chapter.stem}")
    assert not found, "\n".join(found) + (
        "\nRefresh: jupyter-book build . && python -m vicourse.course.colab"
    )


@pytest.mark.parametrize("chapter", COLAB_CHAPTERS, ids=lambda p: p.name)
def test_colab_notebook_runs_the_chapters_code(chapter: Path):
    notebook = nbformat.read(chapter.with_suffix(".ipynb"), as_version=4)
    colab_code = [re.sub(r"\A# @title [^\n]*\n", "", c.source)
                  for c in notebook.cells if c.cell_type == "code"]
    assert colab_code == [c.source for c in code_cells(chapter)], (
        f"{chapter.with_suffix('.ipynb').name} does not run the code of {chapter.name}"
    )
    hidden = [c for c in notebook.cells if c.cell_type == "code" and is_hidden(c)
              and not colab.SHOW_CELL.match(c.source)]
    assert all(c.metadata.get("cellView") == "form" for c in hidden), (
        "cells hidden on the website must be collapsed Colab forms"
    )


def test_build_fails_on_errors_and_offers_colab():
    execute = CONFIG["execute"]
    assert execute["raise_on_error"] is True and execute["allow_errors"] is False
    assert "**.ipynb" in CONFIG["exclude_patterns"], "Colab notebooks must not be built twice"
    assert CONFIG["launch_buttons"]["colab_url"].startswith("https://colab.research.google.com")
    assert CONFIG["repository"]["url"].startswith("https://github.com/")
    assert CONFIG["html"]["baseurl"].startswith("https://"), "Colab notebooks link to it"
