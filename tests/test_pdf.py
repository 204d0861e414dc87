"""The PDF of the whole book (``jupyter-book build . --builder pdflatex``, built by CI).

Read with poppler's ``pdftotext`` and ``pdfinfo``: every page of the table of contents is in
it under its title, no reference is left unresolved (LaTeX prints ``??``), the cited works are
in its bibliography, the figures are in it, and the website links to it.

Environment:

- ``VICOURSE_PDF``: the PDF (default ``_build/latex/vicourse.pdf``).
- ``VICOURSE_REQUIRE_PDF=1`` (set by CI): a missing PDF or poppler fails the tests instead of
  skipping them.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import unicodedata
from functools import cache
from pathlib import Path

import pytest
from pybtex.database import parse_file

from vicourse.course.book_pdf import PDF_NAME
from vicourse.course.colab import Book

ROOT = Path(__file__).resolve().parents[1]
PDF = Path(os.environ.get("VICOURSE_PDF", ROOT / "_build" / "latex" / PDF_NAME))
HTML = ROOT / "_build" / "html"
REQUIRE = os.environ.get("VICOURSE_REQUIRE_PDF") == "1"
BOOK = Book.read(ROOT)
PAGES_PER_CHAPTER = 3  # a floor: the shortest chapter fills more than three pages


def unavailable(message: str) -> None:
    """Skip (no PDF built here), or fail under VICOURSE_REQUIRE_PDF=1 (CI)."""
    if REQUIRE:
        pytest.fail(f"VICOURSE_REQUIRE_PDF=1 but {message}", pytrace=False)
    pytest.skip(f"{message} (build it: jupyter-book build . --builder pdflatex)")


def poppler(tool: str, *args: str) -> str:
    if shutil.which(tool) is None:
        unavailable(f"poppler's {tool} is not installed (apt-get install poppler-utils)")
    if not PDF.exists():
        unavailable(f"{PDF} does not exist")
    return subprocess.run([tool, *args], capture_output=True, text=True, check=True).stdout


@cache
def _text() -> str:
    return poppler("pdftotext", "-enc", "UTF-8", str(PDF), "-")


@pytest.fixture(scope="module")
def text() -> str:
    return _text()


def letters(text: str) -> str:
    """Lowercase letters and digits only: compares text across line breaks, hyphenation,
    ligatures (NFKC turns "ﬁ" into "fi") and typography."""
    return re.sub(r"[^a-z0-9]", "", unicodedata.normalize("NFKC", text).lower())


@pytest.mark.parametrize("page", BOOK.pages)
def test_every_page_of_the_book_is_in_the_pdf_under_its_title(page: str, text: str):
    title = BOOK.titles[page]
    assert letters(title) in letters(text), f"the PDF has no chapter {title!r} ({page}.md)"


def test_no_unresolved_reference(text: str):
    lines = [line.strip() for line in text.splitlines() if "??" in line]
    assert not lines, f"unresolved references (LaTeX prints ??) in the PDF: {lines[:10]}"
    log = PDF.with_suffix(".log")
    if log.exists():
        warnings = re.findall(r"LaTeX Warning: (?:Reference|Citation) [^\n]*undefined[^\n]*",
                              log.read_text(encoding="utf-8", errors="replace"))
        assert not warnings, f"{log.name}: {warnings[:10]}"


def test_cited_works_are_in_the_bibliography(text: str):
    cited = {key.strip() for path in (ROOT / "book").glob("*.md")
             for keys in re.findall(r"\{cite(?::[tp])?\}`([^`]+)`", path.read_text("utf-8"))
             for key in keys.split(",")}
    entries = {}
    for bibfile in ["book/references.bib"]:
        entries.update(parse_file(ROOT / bibfile).entries)
    assert cited and cited <= set(entries), f"cited but not in the .bib: {cited - set(entries)}"
    missing = []
    for key in sorted(cited):
        title = entries[key].fields["title"]
        words = [w for w in re.sub(r"[{}]", "", title).split() if "$" not in w and "\\" not in w]
        if letters(" ".join(words[:4])) not in letters(text):
            missing.append(f"{key}: {title}")
    assert not missing, f"cited works missing from the PDF's bibliography: {missing}"


def test_pages_and_figures(text: str):
    pages = int(re.search(r"^Pages:\s+(\d+)", poppler("pdfinfo", str(PDF)), re.M)[1])
    assert pages >= PAGES_PER_CHAPTER * len(BOOK.pages), f"only {pages} pages"
    executed = ROOT / "_build" / "jupyter_execute"
    figures = sum(
        1 for path in executed.rglob("*.ipynb") if not path.name.startswith("_")
        for cell in json.loads(path.read_text(encoding="utf-8"))["cells"]
        for output in cell.get("outputs", [])
        if "image/png" in output.get("data", {}) and "remove-cell" not in
        cell.get("metadata", {}).get("tags", []))
    images = len(poppler("pdfimages", "-list", str(PDF)).splitlines()[2:])
    assert images >= figures, f"the PDF has {images} images, the executed chapters {figures}"


def test_the_website_links_the_pdf():
    if not (HTML / "index.html").exists():
        unavailable("the website is not built")
    page = (HTML / "book" / "intro.html").read_text(encoding="utf-8")
    assert f'href="../{PDF_NAME}"' in page, "the download menu has no link to the book's PDF"
    if REQUIRE:
        assert (HTML / PDF_NAME).exists(), f"copy the PDF to {HTML / PDF_NAME} (.ci/run does)"
