"""Structure of the book: table of contents, Colab pairing, and the build configuration.

These tests guard the conventions that keep the website, Colab and CI in agreement:
every chapter is in the table of contents, has a paired ``.ipynb`` in sync with its MyST
source (Colab opens the ``.ipynb``), starts with a hidden cell that installs vicourse from
the one repository URL in ``_config.yml``, and the build fails on any cell error.
"""

from __future__ import annotations

import sys
from pathlib import Path

import jupytext
import nbformat
import pytest
import yaml
from bookpages import has_kernel, toc_files

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"
CONFIG = yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))
TOC = yaml.safe_load((ROOT / "_toc.yml").read_text(encoding="utf-8"))


def is_notebook(path: Path) -> bool:
    return has_kernel(path.read_text(encoding="utf-8"))


PAGES = [ROOT / f"{name}.md" for name in toc_files(TOC)]
CHAPTERS = [page for page in PAGES if is_notebook(page)]


def cell_signature(notebook: nbformat.NotebookNode) -> list[tuple[str, str, list[str]]]:
    """What must agree between a chapter and its paired notebook: type, source and tags."""
    return [
        (cell.cell_type, cell.source.strip(), sorted(cell.metadata.get("tags", [])))
        for cell in notebook.cells
    ]


def test_toc_pages_exist_and_every_book_page_is_listed():
    missing = [str(p.relative_to(ROOT)) for p in PAGES if not p.exists()]
    assert not missing, f"_toc.yml lists pages that do not exist: {missing}"
    unlisted = sorted(str(p.relative_to(ROOT)) for p in BOOK.glob("*.md") if p not in PAGES)
    assert not unlisted, f"book pages missing from _toc.yml (they would not be built): {unlisted}"
    assert len(CHAPTERS) >= 3, f"expected at least three executable chapters, found {CHAPTERS}"


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.name)
def test_paired_notebook_is_in_sync_and_has_no_outputs(chapter: Path):
    paired = chapter.with_suffix(".ipynb")
    fix = f"run `jupytext --sync {chapter.relative_to(ROOT)}` (or `jupytext --to ipynb ...`)"
    assert paired.exists(), f"{paired.name} is missing: Colab needs it; {fix}"
    source = jupytext.read(chapter, fmt="md:myst")
    notebook = nbformat.read(paired, as_version=4)
    in_sync = cell_signature(notebook) == cell_signature(source)
    assert in_sync, f"{paired.name} is out of sync; {fix}"
    with_outputs = [i for i, c in enumerate(notebook.cells) if c.cell_type == "code" and c.outputs]
    assert not with_outputs, f"{paired.name} stores outputs in cells {with_outputs}; strip them"


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.name)
def test_first_code_cell_installs_vicourse_only_in_colab(chapter: Path):
    cells = jupytext.read(chapter, fmt="md:myst").cells
    first = next(cell for cell in cells if cell.cell_type == "code")
    repo = CONFIG["repository"]["url"].rstrip("/")
    assert "remove-cell" in first.metadata.get("tags", []), f"{chapter.name}: hide the install cell"
    assert '"google.colab" in sys.modules' in first.source, f"{chapter.name}: guard the install"
    assert f"git+{repo}" in first.source, (
        f"{chapter.name}: the install cell must use the repository URL of _config.yml ({repo})"
    )


def test_build_fails_on_errors_and_offers_colab():
    execute = CONFIG["execute"]
    # "cache": executed notebooks are stored where conftest.py can reuse them for nbval.
    assert execute["execute_notebooks"] == "cache"
    assert execute["cache"] == "_build/.jupyter_cache"
    assert execute["raise_on_error"] is True and execute["allow_errors"] is False
    assert "**.ipynb" in CONFIG["exclude_patterns"], "paired notebooks must not be built twice"
    assert CONFIG["launch_buttons"]["colab_url"].startswith("https://colab.research.google.com")
    assert CONFIG["repository"]["url"].startswith("https://github.com/")


HEADER = (
    "---\njupytext:\n  formats: ipynb,md:myst\nkernelspec:\n"
    "  display_name: Python 3\n  language: python\n  name: python3\n---\n"
)


def _book_project(pytester: pytest.Pytester, chapter: str) -> None:
    """A copy of the chapter collector in a scratch project with one chapter book/ch.md."""
    pytester.makeconftest((ROOT / "conftest.py").read_text(encoding="utf-8"))
    pytester.mkpydir("tests").joinpath("bookpages.py").write_text(
        (ROOT / "tests" / "bookpages.py").read_text(encoding="utf-8"), encoding="utf-8"
    )
    pytester.mkdir("book").joinpath("ch.md").write_text(HEADER + chapter, encoding="utf-8")


def test_collector_executes_myst_chapters_and_their_assertions(pytester: pytest.Pytester):
    body = "# A chapter\n\n```{code-cell} ipython3\nx = 2\n```\n\n"
    body += "```{code-cell} ipython3\nassert x == 3, 'the claim is false'\n```\n"
    _book_project(pytester, body)
    result = pytester.runpytest("--nbval-lax", "--nbval-current-env", "book")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*the claim is false*"])


def test_collector_fails_loudly_on_a_chapter_without_code_cells(pytester: pytest.Pytester):
    _book_project(pytester, "# Prose only\n\nNo code here.\n")
    result = pytester.runpytest("--nbval-lax", "--nbval-current-env", "book")
    assert result.ret != 0
    result.stdout.fnmatch_lines(["*yields no code cells*"])


CACHE_SCRIPT = """
import sys
import jupytext, nbformat
from jupyter_cache import get_cache
from jupyter_cache.base import CacheBundleIn

path, folder, error = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
notebook = jupytext.read(path, fmt="md:myst")
code = [cell for cell in notebook.cells if cell.cell_type == "code"]
for cell in code:
    cell.outputs = []
if error:
    code[-1].outputs = [nbformat.v4.new_output(
        "error", ename="AssertionError", evalue="the claim is false", traceback=[])]
get_cache(folder).cache_notebook_bundle(
    CacheBundleIn(notebook, path), check_validity=False, overwrite=True)
"""


def _cache_executed_copy(pytester: pytest.Pytester, error: bool) -> Path:
    """Store an 'executed' copy of book/ch.md in a jupyter-cache, as the book build would.

    In a subprocess: jupyter-cache's database layer (SQLAlchemy) does not survive the module
    reloading of pytester's in-process runs.
    """
    folder = pytester.path / "cache"
    script = pytester.path / "cache_it.py"
    script.write_text(CACHE_SCRIPT, encoding="utf-8")
    result = pytester.run(sys.executable, script, pytester.path / "book" / "ch.md", folder,
                          "1" if error else "0")
    assert result.ret == 0, result.stderr.str()
    return folder


@pytest.mark.parametrize("error", [False, True])
def test_collector_reuses_the_build_execution(pytester: pytest.Pytester, monkeypatch, error):
    body = "# A chapter\n\n```{code-cell} ipython3\nraise SystemExit('must not run')\n```\n"
    _book_project(pytester, body)
    monkeypatch.setenv("VICOURSE_BUILD_CACHE", str(_cache_executed_copy(pytester, error)))
    result = pytester.runpytest_subprocess("--nbval-lax", "--nbval-current-env", "book", "-v")
    if error:
        result.assert_outcomes(failed=1)
        result.stdout.fnmatch_lines(["*code cell 1 raised AssertionError: the claim is false*"])
    else:
        result.assert_outcomes(passed=1)
        result.stdout.fnmatch_lines(["*executed-by-build PASSED*"])


def test_collector_runs_a_chapter_whose_code_changed_since_the_build(
    pytester: pytest.Pytester, monkeypatch
):
    body = "# A chapter\n\n```{code-cell} ipython3\nx = 2\n```\n"
    _book_project(pytester, body)
    folder = _cache_executed_copy(pytester, error=False)
    changed = body.replace("x = 2", "assert False, 'the new code ran'")
    (pytester.path / "book" / "ch.md").write_text(HEADER + changed, encoding="utf-8")
    monkeypatch.setenv("VICOURSE_BUILD_CACHE", str(folder))
    result = pytester.runpytest_subprocess("--nbval-lax", "--nbval-current-env", "book")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*the new code ran*"])
