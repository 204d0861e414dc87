"""The built website, rendered in a real browser (headless Chromium through Playwright).

A successful ``jupyter-book build -W`` proves that every cell ran and Sphinx saw no problem;
it does not prove that a reader sees typeset mathematics, theorem boxes, figures and folded
solutions. These tests open every page of ``_toc.yml`` in Chromium and check what the reader
gets. What each page should contain is read from its MyST source, so a chapter that gains a
theorem, a figure or an exercise is held to it without editing this file.

Offline by design: the pages load MathJax 3 from its CDN; here those requests are answered
from the npm package (``npm install`` at the repository root puts it in ``node_modules/``)
and every other request that leaves 127.0.0.1 is aborted. A screenshot of each page is
saved for a person to look at.

Environment:

- ``VICOURSE_HTML``: the built website (default ``_build/html``).
- ``VICOURSE_SCREENSHOTS``: where the screenshots go (default ``_build/screenshots``).
- ``VICOURSE_TOC``: a table of contents to take the pages from (default ``_toc.yml``), for
  checking a private build of a few chapters. Page sources are looked up next to that file
  first, then in the repository.
- ``VICOURSE_CHROMIUM``: the Chromium executable (default ``/usr/bin/chromium``).
- ``VICOURSE_REQUIRE_BROWSER=1`` (set by CI): a missing website, browser or MathJax fails
  the tests instead of skipping them.

Deselect with ``pytest -m "not browser"``.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jupytext
import pytest
import yaml
from bookpages import has_kernel, serve, toc_files

from vicourse.course.colab import NO_COLAB

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[1]
TOC_PATH = Path(os.environ.get("VICOURSE_TOC", ROOT / "_toc.yml")).resolve()
HTML = Path(os.environ.get("VICOURSE_HTML", ROOT / "_build" / "html")).resolve()
SCREENSHOTS = Path(os.environ.get("VICOURSE_SCREENSHOTS", ROOT / "_build" / "screenshots"))
MATHJAX = ROOT / "node_modules" / "mathjax"
CONFIG = yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))
REQUIRE_BROWSER = os.environ.get("VICOURSE_REQUIRE_BROWSER") == "1"

# Sphinx and Jupyter Book 1 load MathJax 3 from here; the rest of the path names a file of the
# npm package (es5/tex-mml-chtml.js, then es5/output/chtml/fonts/..., es5/input/tex/...).
MATHJAX_CDN = re.compile(r"^https://cdn\.jsdelivr\.net/npm/mathjax@3[^/]*/([^?#]+)")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PAGE_TIMEOUT_MS = 90_000  # two busy cores and a long chapter: generous, but finite
# The sphinx-proof directives other than {prf:proof}; each renders as div.proof.<kind>.
PRF_KINDS = {
    "algorithm", "assumption", "axiom", "conjecture", "corollary", "criterion", "definition",
    "example", "lemma", "observation", "property", "proposition", "remark", "theorem",
}  # fmt: skip
NOT_SHOWN = {"remove-cell", "remove-output"}  # cell tags that keep a cell's output off the page


# --- What a page should show, read from its MyST source -------------------------------------


@dataclass(frozen=True, repr=False)
class SourcePage:
    """One page of the table of contents and what its MyST source says the reader should see.

    ``markdown`` is the text of the markdown cells that reach the page (cells tagged
    remove-cell dropped), without literal code blocks (a directive shown as an example in a
    code block is not expected on the page); ``code_cells`` holds (source, tags) of every
    code cell.
    """

    file: str  # as in the toc, e.g. "book/intro"
    source: Path
    is_notebook: bool
    markdown: str
    code_cells: tuple[tuple[str, frozenset[str]], ...] = field(default=())

    def __repr__(self) -> str:
        return f"SourcePage({self.file!r})"

    @property
    def html(self) -> Path:
        return HTML / f"{self.file}.html"

    @property
    def name(self) -> str:
        return self.file.replace("/", "_")

    @property
    def is_bibliography(self) -> bool:
        return bool(re.search(r"^\s*(`{3,}|:{3,})\{bibliography\}", self.markdown, re.M))


def find_file(relative: str) -> Path:
    """A source file of the book: next to the toc first (a private book), then the repository."""
    for folder in (TOC_PATH.parent, ROOT):
        if (folder / relative).exists():
            return folder / relative
    raise FileNotFoundError(f"{relative} is neither in {TOC_PATH.parent} nor in {ROOT}")


def read_page(file: str) -> SourcePage:
    path = find_file(f"{file}.md")
    text = path.read_text(encoding="utf-8")
    if not has_kernel(text):
        return SourcePage(file, path, is_notebook=False, markdown=without_code_blocks(text))
    cells = jupytext.reads(text, fmt="md:myst").cells
    tags = [frozenset(cell.metadata.get("tags", [])) for cell in cells]
    markdown = "\n\n".join(
        cell.source
        for cell, t in zip(cells, tags, strict=True)
        if cell.cell_type == "markdown" and "remove-cell" not in t
    )
    code = tuple(
        (cell.source, t) for cell, t in zip(cells, tags, strict=True) if cell.cell_type == "code"
    )
    return SourcePage(
        file, path, is_notebook=True, markdown=without_code_blocks(markdown), code_cells=code
    )


def directive_count(markdown: str, name: str) -> int:
    """How many ```{name} (or :::{name}) directives open in the markdown."""
    return len(re.findall(rf"^\s*(?:`{{3,}}|:{{3,}})\{{{re.escape(name)}\}}", markdown, re.M))


def prf_counts(markdown: str) -> Counter:
    """{prf:kind} directives per kind, e.g. Counter({'theorem': 2, 'proof': 2})."""
    return Counter(re.findall(r"^\s*(?:`{3,}|:{3,})\{prf:([a-z]+)\}", markdown, re.M))


def dropdown_solution_count(markdown: str) -> int:
    """{solution} / {solution-start} directives whose options include ``:class: dropdown``."""
    count = 0
    opener = re.compile(r"^\s*(?:`{3,}|:{3,})\{solution(?:-start)?\}")
    lines = markdown.splitlines()
    for i, line in enumerate(lines):
        if opener.match(line):
            options = []
            yaml_block = i + 1 < len(lines) and lines[i + 1].strip() == "---"
            for following in lines[i + 1 + yaml_block :]:
                if following.strip() == "---" if yaml_block else not following.strip()[:1] == ":":
                    break
                options.append(following.strip().lstrip(":"))
            count += any(o.startswith("class:") and "dropdown" in o for o in options)
    return count


def without_code_blocks(markdown: str) -> str:
    """The markdown without literal code blocks (``` or ~~~ fences with no {directive}).

    Directive fences are kept, bodies included: they are rendered prose and math.
    """
    kept: list[str] = []
    directives: list[str] = []  # the fences of the directives open at this line
    lines = iter(markdown.splitlines())
    for line in lines:
        fence = re.match(r"^\s*(`{3,}|~{3,})\s*(.*)$", line)
        if fence is None:
            kept.append(line)
            continue
        marks, info = fence.groups()
        if not info and directives and marks[0] == directives[-1][0]:
            directives.pop()  # closes the innermost directive
        elif info.startswith("{"):
            directives.append(marks)
        else:  # a code block: drop it up to its closing fence
            close = re.compile(rf"^\s*{re.escape(marks[0])}{{{len(marks)},}}\s*$")
            next((inner for inner in lines if close.match(inner)), None)
            continue
        kept.append(line)
    return "\n".join(kept)


def inline_math_text(markdown: str) -> str:
    """The markdown without fence lines, inline code and escaped dollars: $ means math."""
    lines = [line for line in markdown.splitlines() if not re.match(r"\s*(`{3,}|~{3,})", line)]
    return re.sub(r"(`+)[^`]+?\1", "", "\n".join(lines)).replace(r"\$", "")


def math_count(markdown: str) -> int:
    """Pieces of math in the markdown ($$...$$, $...$, {math}): each becomes one MathJax box."""
    roles = re.findall(r"\{math\}`", markdown)
    directives = re.findall(r"^\s*(?:`{3,}|:{3,})\{math\}", markdown, re.M)
    text = inline_math_text(markdown)
    display = re.findall(r"\$\$.+?\$\$", text, flags=re.S)
    text = re.sub(r"\$\$.+?\$\$", " ", text, flags=re.S)
    inline = re.findall(r"(?<![\\$])\$[^$\n]+?\$", text)
    return len(display) + len(inline) + len(roles) + len(directives)


def figure_cell_count(page: SourcePage) -> int:
    """Code cells that call plt.show() and whose output is shown on the page."""
    return sum("plt.show()" in src and not (tags & NOT_SHOWN) for src, tags in page.code_cells)


def colab_url(page: SourcePage) -> str:
    """The Colab link that the launch button of a chapter must carry (from _config.yml)."""
    repo = CONFIG["repository"]
    owner_name = re.sub(r"^https://github\.com/", "", repo["url"].rstrip("/"))
    prefix = repo.get("path_to_book", "").strip("/")
    notebook = f"{prefix}/{page.file}.ipynb" if prefix else f"{page.file}.ipynb"
    colab = CONFIG["launch_buttons"]["colab_url"].rstrip("/")
    return f"{colab}/github/{owner_name}/blob/{repo.get('branch', 'main')}/{notebook}"


def bib_entry_count() -> int:
    """Entries in the book's .bib files (the bibliography page lists them all with :all:)."""
    entry = re.compile(r"^@(?!comment|string|preamble)\w+\s*\{", re.M | re.I)
    return sum(
        len(entry.findall(find_file(bib).read_text("utf-8"))) for bib in CONFIG["bibtex_bibfiles"]
    )


PAGES = [read_page(file) for file in toc_files(yaml.safe_load(TOC_PATH.read_text("utf-8")))]
CHAPTERS = [page for page in PAGES if not page.is_bibliography]
BIBLIOGRAPHIES = [page for page in PAGES if page.is_bibliography]
NOTEBOOKS = [page for page in CHAPTERS if page.is_notebook]


def by_name(pages: list[SourcePage]) -> dict[str, Any]:
    return {"argvalues": pages, "ids": [page.name for page in pages]}


# --- Serving the site and rendering pages ----------------------------------------------------


def unavailable(reason: str, fix: str) -> None:
    """Skip (a developer without the browser set-up), or fail under VICOURSE_REQUIRE_BROWSER=1."""
    message = f"{reason}. {fix}."
    if REQUIRE_BROWSER:
        pytest.fail(f"VICOURSE_REQUIRE_BROWSER=1 but {message}", pytrace=False)
    pytest.skip(f"{message} (or deselect with -m 'not browser')")


def chromium_path() -> str | None:
    candidate = os.environ.get("VICOURSE_CHROMIUM", "/usr/bin/chromium")
    if Path(candidate).is_file():
        return candidate
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def site() -> Iterator[str]:
    """The built website served on http://127.0.0.1:<free port>; yields the base URL."""
    if not (HTML / "index.html").exists():
        unavailable(
            f"no built website at {HTML}",
            "Build it with `jupyter-book build .` (or set VICOURSE_HTML to a build's html folder)",
        )
    with serve(HTML) as url:
        yield url


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless Chromium (the system's; Playwright never downloads one here)."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        unavailable("the playwright Python package is missing", "Run `pip install playwright`")
    executable = chromium_path()
    if executable is None:
        unavailable(
            "no Chromium found (looked at VICOURSE_CHROMIUM, /usr/bin/chromium, PATH)",
            "Install it with `apt-get install chromium` or set VICOURSE_CHROMIUM",
        )
    if not (MATHJAX / "es5" / "tex-mml-chtml.js").exists():
        unavailable(
            f"MathJax 3 is not in {MATHJAX}",
            "Run `npm install` at the repository root (package.json pins mathjax 3)",
        )
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@dataclass
class Rendered:
    """What the browser showed for one page: DOM facts plus the network and script log."""

    facts: dict[str, Any]
    aborted: list[str]
    missing_mathjax: list[str]
    page_errors: list[str]
    console_errors: list[str]
    screenshot: Path
    newer_sources: list[str]

    def context(self) -> str:
        """Extra lines for a failure message."""
        lines = [f"screenshot: {self.screenshot}"]
        if self.newer_sources:
            lines.append(
                f"NOTE: {self.newer_sources} changed after this page was built: rebuild the book"
            )
        if self.aborted:
            lines.append(f"aborted non-local requests: {self.aborted[:10]}")
        if self.missing_mathjax:
            lines.append(f"MathJax files not in node_modules: {self.missing_mathjax}")
        if self.page_errors:
            lines.append(f"script errors on the page: {self.page_errors[:5]}")
        if self.console_errors:
            lines.append(f"errors in the console: {self.console_errors[:5]}")
        return "\n".join(lines)


# Runs in the page after MathJax is done; `article` is the page's content, without navigation.
FACTS_JS = r"""
() => {
  const article = document.querySelector('article.bd-article') || document.querySelector('main')
    || document.body;
  const all = (selector, root = article) => [...root.querySelectorAll(selector)];
  const text = (el) => (el.textContent || '').trim().replace(/\s+/g, ' ').slice(0, 200);
  const mathElements = all('.math');
  // MathJax's own parse trees: error nodes, and the red \name that its noundefined package
  // shows for an unknown macro (that one is no mjx-merror in the page).
  const texProblems = () => {
    const problems = [];
    const walk = (item, node) => {
      if (node.isKind('merror')) problems.push(`error in ${item.math}`);
      const red = node.isKind('mtext') && node.attributes.get('mathcolor') === 'red';
      if (red && node.getText().startsWith('\\')) {
        problems.push(`undefined macro ${node.getText()} in ${item.math}`);
      }
      if (!node.isToken) node.childNodes.forEach((child) => child && walk(item, child));
    };
    for (const item of window.MathJax?.startup?.document?.math || []) {
      if (item.root) walk(item, item.root);
    }
    return problems.slice(0, 10);
  };
  // Prose text (no code, outputs or math): dollar signs next to math or before TeX are math
  // that MyST did not parse; \( or \[ is TeX that MathJax never saw.
  const skip = 'pre, code, .highlight, .cell_output, mjx-container, .math, script, style';
  const walker = document.createTreeWalker(article, NodeFilter.SHOW_TEXT);
  const strayDollars = [];
  const rawTex = [];
  const isMath = (sibling) => Boolean(sibling?.classList?.contains('math'));
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    const value = node.nodeValue;
    if (!/[$\\]/.test(value) || node.parentElement.closest(skip)) continue;
    const touchesMath = (value.trimEnd().endsWith('$') && isMath(node.nextSibling))
      || (value.trimStart().startsWith('$') && isMath(node.previousSibling));
    if (touchesMath || /\$[^$]*\\[A-Za-z]+/.test(value)) {
      strayDollars.push(value.trim().slice(0, 120));
    }
    if (/\\\(|\\\[/.test(value)) rawTex.push(value.trim().slice(0, 120));
  }
  // Text the reader sees as TeX: a $...$ pair or a \command outside math, code and code
  // output (Markdown outputs, tables and bibliography entries included).
  const texText = [];
  const notProse = 'pre, code, .highlight, mjx-container, .math, script, style';
  const texWalker = document.createTreeWalker(article, NodeFilter.SHOW_TEXT);
  for (let node = texWalker.nextNode(); node; node = texWalker.nextNode()) {
    if (node.parentElement.closest(notProse)) continue;
    const value = node.nodeValue;
    if (/\$[^$\n]+\$/.test(value) || /\\[A-Za-z]{2,}/.test(value)) {
      texText.push(value.trim().slice(0, 120));
    }
  }
  // Display equations wider than the room they are given (clipped, or only seen by scrolling).
  const column = article.getBoundingClientRect().width;
  const displayOverflow = all('mjx-container[display="true"]').map((el) => {
    const inner = el.querySelector('mjx-math') || el;
    return {tex: text(el.closest('.math') || el).slice(0, 80),
      width: Math.round(inner.getBoundingClientRect().width),
      room: Math.round(Math.min(el.getBoundingClientRect().width, column))};
  }).filter((eq) => eq.width > eq.room + 1);
  return {
    url: location.href,
    rawTexText: texText.slice(0, 5),
    displayOverflow,
    widgetScripts: document.querySelectorAll(
      'script[type^="application/vnd.jupyter.widget"]').length,
    progressLines: all('.cell_output pre').map(text).filter((s) => /\d+%\|.{10}\|/.test(s)),
    solutionMarkers: all('.cell_input').map(text)
      .filter((s) => /### (BEGIN|END) (SOLUTION|HIDDEN TESTS)/.test(s)).map((s) => s.slice(0, 80)),
    bibLabels: all('.citation > .label').map(text),
    mathjaxVersion: window.MathJax && MathJax.version,
    mathElements: mathElements.length,
    untypeset: mathElements.filter((el) => !el.querySelector('mjx-container')).map(text),
    containers: all('mjx-container').length,
    mathErrors: all('mjx-merror, [data-mjx-error]').map(
      (el) => el.getAttribute('data-mjx-error') || text(el)).concat(texProblems()),
    strayDollars,
    rawTex: rawTex.slice(0, 5),
    proofs: all('div.proof').map((el) => ({
      classes: [...el.classList], id: el.id,
      title: text(el.querySelector(':scope > .admonition-title') || document.createElement('p')),
    })),
    exercises: all('div.exercise').length,
    solutions: all('div.solution').map((el) => ({
      classes: [...el.classList], id: el.id,
      folded: el.classList.contains('toggle-hidden'),
    })),
    outputImages: all('.cell_output img').map((el) => ({src: el.getAttribute('src'),
      width: el.naturalWidth, complete: el.complete})),
    brokenImages: all('img').filter((el) => !(el.complete && el.naturalWidth > 0))
      .map((el) => el.getAttribute('src')),
    tracebacks: all('.output.traceback, .output.error').map(text),
    stderr: all('.output.stderr').map(text),
    tracebackText: (article.textContent || '').includes('Traceback (most recent call last)'),
    pastedText: all('.pasted-text').length,
    gluePlaceholders: (article.textContent.match(/\{glue(:\w+)?\}[^\s]{0,40}/g) || []).slice(0, 5),
    colabLinks: [...document.querySelectorAll('a[href*="colab.research.google.com"]')]
      .map((a) => a.href),
    citationLinks: all('a[href*="bibliography.html#"]').map((a) => a.href),
    bibliographyEntries: all('.citation').map((el) => el.id),
  };
}
"""

# Opens every folded solution the way a reader does, then reports which stay hidden.
UNFOLDED_JS = r"""
() => [...document.querySelectorAll('div.solution')]
  .filter((el) => el.classList.contains('toggle-hidden')
    || ![...el.children].slice(1).some((child) => child.checkVisibility()))
  .map((el) => el.id)
"""


def route_offline(route: Any, base: str, aborted: list[str], missing: list[str]) -> None:
    """Local pages pass, MathJax comes from node_modules, every other request is aborted."""
    url = route.request.url
    if url.startswith(base + "/"):
        route.continue_()
        return
    match = MATHJAX_CDN.match(url)
    if match is None:
        aborted.append(url)
        route.abort()
        return
    path = (MATHJAX / match.group(1)).resolve()
    if MATHJAX.resolve() not in path.parents or not path.is_file():
        missing.append(match.group(1))
        route.fulfill(status=404, body="not in the mathjax npm package")
        return
    route.fulfill(path=str(path))


def record_console_error(message: Any, errors: list[str]) -> None:
    """Keep the console's errors; a failed request names its address (an aborted non-local
    request shows as 'Failed to load resource: net::ERR_FAILED')."""
    if message.type != "error":
        return
    where = (message.location or {}).get("url", "")
    errors.append(f"{message.text} ({where})" if where else message.text)


def render(browser: Any, base: str, page: SourcePage) -> Rendered:
    """Load one page, wait for MathJax, save a screenshot, collect the DOM facts."""
    if not page.html.exists():
        pytest.fail(
            f"{page.html} is missing although {TOC_PATH.name} lists {page.file}: "
            "the website is older than the table of contents; rebuild it",
            pytrace=False,
        )
    aborted: list[str] = []
    missing: list[str] = []
    errors: list[str] = []
    console: list[str] = []
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.route("**/*", lambda route: route_offline(route, base, aborted, missing))
    tab = context.new_page()
    tab.on("pageerror", lambda error: errors.append(str(error)))
    tab.on("console", lambda message: record_console_error(message, console))
    screenshot = SCREENSHOTS / f"{page.name}.png"
    try:
        tab.goto(f"{base}/{page.file}.html", wait_until="load", timeout=PAGE_TIMEOUT_MS)
        try:  # pages without math (the bibliography) do not load MathJax at all
            if tab.query_selector('script[src*="mathjax"]') is not None:
                tab.wait_for_function(
                    "() => window.MathJax && MathJax.startup && MathJax.startup.promise",
                    timeout=PAGE_TIMEOUT_MS,
                )
                tab.evaluate("() => MathJax.startup.promise.then(() => true)")
            tab.evaluate("() => document.fonts.ready.then(() => true)")
        except Exception as exc:  # Playwright's TimeoutError, or MathJax's own rejection
            errors.append(f"MathJax did not start or finish: {exc}".splitlines()[0])
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        tab.screenshot(path=str(screenshot), full_page=True)
        facts = tab.evaluate(FACTS_JS)
        for button in tab.query_selector_all("div.solution.toggle-hidden .toggle-button"):
            button.click()
        tab.wait_for_timeout(300)  # togglebutton animates the unfolding
        facts["stillFolded"] = tab.evaluate(UNFOLDED_JS)
    finally:
        context.close()
    return Rendered(facts, aborted, missing, errors, console, screenshot, newer_sources(page))


def newer_sources(page: SourcePage) -> list[str]:
    """Files that feed a page and changed after its HTML was written (a stale website)."""
    sources = [page.source, ROOT / "_config.yml"]  # the Colab .ipynb is written after the build
    sources += [find_file(bib) for bib in CONFIG["bibtex_bibfiles"]]
    built = page.html.stat().st_mtime
    return [path.name for path in sources if path.exists() and path.stat().st_mtime > built]


@pytest.fixture(scope="module")
def rendered(site: str, browser: Any) -> Any:
    """rendered(page) -> Rendered, each page loaded once per session."""
    return functools.cache(lambda page: render(browser, site, page))


# --- The checks ------------------------------------------------------------------------------


@pytest.mark.parametrize("page", **by_name(CHAPTERS))
def test_math_is_typeset_by_mathjax(rendered: Any, page: SourcePage):
    shown = rendered(page)
    facts, expected, log = shown.facts, math_count(page.markdown), shown.context()
    assert not facts["mathErrors"], (
        f"MathJax errors on {page.file} (bad TeX?): {facts['mathErrors']}\n{log}"
    )
    assert not facts["untypeset"], (
        f"math left as raw TeX on {page.file}: {facts['untypeset']}\n{log}"
    )
    assert facts["containers"] >= expected, (
        f"{page.source.name} has {expected} pieces of math, but only {facts['containers']} "
        f"were typeset on {page.file} (MathJax {facts['mathjaxVersion']})\n{log}"
    )
    assert not facts["strayDollars"], (
        f"dollar signs shown as text next to math on {page.file}: {facts['strayDollars']}; "
        f"display math $$...$$ must stand in its own paragraph\n{log}"
    )
    assert not facts["rawTex"], f"unrendered \\( or \\[ on {page.file}: {facts['rawTex']}\n{log}"


@pytest.mark.parametrize("page", **by_name(CHAPTERS))
def test_proof_blocks_render(rendered: Any, page: SourcePage):
    expected = prf_counts(page.markdown)
    blocks = rendered(page).facts["proofs"]
    shown: Counter = Counter()
    for block in blocks:
        kinds = [c for c in block["classes"] if c in PRF_KINDS]
        block["kind"] = kinds[0] if kinds else "proof"
        shown[block["kind"]] += 1
    assert shown == expected, (
        f"{page.source.name} has the {{prf:...}} directives {dict(expected)}, the page shows "
        f"{dict(shown)}\n{rendered(page).context()}"
    )
    untitled = [
        b for b in blocks if b["id"] != "proof" and not b["title"].lower().startswith(b["kind"])
    ]
    assert not untitled, (
        f"sphinx-proof blocks without their 'Kind N' title on {page.file}: {untitled}"
    )


@pytest.mark.parametrize("page", **by_name(CHAPTERS))
def test_figures_are_shown_and_loaded(rendered: Any, page: SourcePage):
    shown = rendered(page)
    images = shown.facts["outputImages"]
    expected = figure_cell_count(page)
    assert len(images) >= expected, (
        f"{page.source.name} has {expected} shown cells that call plt.show(), "
        f"the page has {len(images)} output images\n{shown.context()}"
    )
    assert not shown.facts["brokenImages"], (
        f"images that did not load on {page.file}: {shown.facts['brokenImages']}\n{shown.context()}"
    )


@pytest.mark.parametrize("page", **by_name(CHAPTERS))
def test_exercises_and_folded_solutions(rendered: Any, page: SourcePage):
    facts = rendered(page).facts
    exercises = directive_count(page.markdown, "exercise")
    exercises += directive_count(page.markdown, "exercise-start")
    solutions = directive_count(page.markdown, "solution")
    solutions += directive_count(page.markdown, "solution-start")
    dropdowns = dropdown_solution_count(page.markdown)
    assert facts["exercises"] == exercises, (
        f"{page.source.name} has {exercises} exercises, the page shows {facts['exercises']}"
    )
    assert len(facts["solutions"]) == solutions, (
        f"{page.source.name} has {solutions} solutions, the page shows {len(facts['solutions'])}"
    )
    folded = sum(s["folded"] for s in facts["solutions"])
    assert folded == dropdowns, (
        f"{page.source.name} has {dropdowns} solutions with `:class: dropdown`, but {folded} "
        f"are folded on the page (togglebutton not working?): {facts['solutions']}"
    )
    assert not facts["stillFolded"], (
        f"solutions on {page.file} that stay hidden after clicking them open: "
        f"{facts['stillFolded']}"
    )


@pytest.mark.parametrize("page", **by_name(CHAPTERS))
def test_no_cell_output_shows_an_error(rendered: Any, page: SourcePage):
    facts = rendered(page).facts
    assert not facts["tracebacks"], f"error outputs on {page.file}: {facts['tracebacks']}"
    assert not facts["tracebackText"], f"a 'Traceback (most recent call last)' on {page.file}"
    bad = [s for s in facts["stderr"] if re.search(r"Error|Warning\b|Traceback", s)]
    assert not bad, (
        f"stderr output with errors or warnings on {page.file}: {bad}; fix the cause "
        "(or silence a harmless warning in the cell)"
    )


@pytest.mark.parametrize("page", **by_name(CHAPTERS))
def test_glued_numbers_are_pasted(rendered: Any, page: SourcePage):
    facts = rendered(page).facts
    expected = len(re.findall(r"\{glue:text\}`", page.markdown))
    assert not facts["gluePlaceholders"], (
        f"unresolved glue roles shown as text on {page.file}: {facts['gluePlaceholders']}"
    )
    assert facts["pastedText"] >= expected, (
        f"{page.source.name} uses {{glue:text}} {expected} times, the page shows "
        f"{facts['pastedText']} pasted values"
    )


@pytest.mark.parametrize("page", **by_name(NOTEBOOKS))
def test_colab_launch_button(rendered: Any, page: SourcePage):
    shown = rendered(page)
    links = shown.facts["colabLinks"]
    if page.file in NO_COLAB:  # no Colab notebook, so no button (vicourse.course.colab)
        assert not links, f"{page.file} has no Colab notebook but a Colab button: {links}"
        return
    assert colab_url(page) in links, (
        f"no Colab launch link {colab_url(page)} on {page.file}; found {links} "
        "(check launch_buttons and repository in _config.yml; the button opens the .md "
        f"instead when the Colab .ipynb is missing from book/)\n{shown.context()}"
    )


@pytest.mark.parametrize("page", **by_name(BIBLIOGRAPHIES))
def test_bibliography_lists_the_cited_works(rendered: Any, page: SourcePage):
    entries = rendered(page).facts["bibliographyEntries"]
    expected = bib_entry_count() if ":all:" in page.markdown else 1
    assert len(entries) >= expected, (
        f"{page.file} lists {len(entries)} works, expected {expected} "
        f"(the entries of {CONFIG['bibtex_bibfiles']}; a website built before entries were "
        f"added? rebuild it)\n{rendered(page).context()}"
    )
    cited = {
        link.split("#", 1)[1]
        for chapter in CHAPTERS
        for link in rendered(chapter).facts["citationLinks"]
        if f"/{page.file}.html#" in link
    }
    dangling = sorted(cited - set(entries))
    assert not dangling, f"citations link to entries missing from {page.file}: {dangling}"


# --- What a reader meets on every page: no script errors, no TeX as text, whole equations ----


@pytest.mark.parametrize("page", **by_name(PAGES))
def test_no_script_or_console_errors(rendered: Any, page: SourcePage):
    shown = rendered(page)
    assert not shown.page_errors and not shown.console_errors, (
        f"errors while {page.file} loads: {shown.page_errors + shown.console_errors}\n"
        f"{shown.context()}"
    )


@pytest.mark.parametrize("page", **by_name(PAGES))
def test_no_tex_shown_as_text(rendered: Any, page: SourcePage):
    shown = rendered(page)
    assert not shown.facts["rawTexText"], (
        f"TeX shown as text on {page.file} (outside math; a {{ref}} title, a table cell "
        f"written by a cell, a .bib title?): {shown.facts['rawTexText']}\n{shown.context()}"
    )


@pytest.mark.parametrize("page", **by_name(CHAPTERS))
def test_display_equations_fit_the_column(rendered: Any, page: SourcePage):
    """At desktop width every display equation is seen whole; split long ones with aligned."""
    shown = rendered(page)
    assert not shown.facts["displayOverflow"], (
        f"display equations on {page.file} wider than the text column (px): "
        f"{shown.facts['displayOverflow']}; break them over lines (aligned, multline)\n"
        f"{shown.context()}"
    )


@pytest.mark.parametrize("page", **by_name(CHAPTERS))
def test_solutions_show_no_nbgrader_markers(rendered: Any, page: SourcePage):
    markers = rendered(page).facts["solutionMarkers"]
    assert not markers, (
        f"nbgrader's marker lines shown in code cells on {page.file}: {markers} "
        "(vicourse.course.website strips them; is it in _config.yml's extra_extensions?)"
    )


@pytest.mark.parametrize("page", **by_name(NOTEBOOKS))
def test_progress_bars_are_text(rendered: Any, page: SourcePage):
    facts = rendered(page).facts
    assert facts["widgetScripts"] == 0, (
        f"{page.file} still carries {facts['widgetScripts']} ipywidgets scripts (a widget that "
        "needs a widget manager from a CDN); progress bars should be shown as text"
    )
    uses_tqdm = any("tqdm(" in src and not (tags & NOT_SHOWN) for src, tags in page.code_cells)
    if uses_tqdm:
        assert facts["progressLines"], f"{page.file} runs tqdm but shows no progress line"


@pytest.mark.parametrize("page", **by_name(BIBLIOGRAPHIES))
def test_bibliography_labels_are_author_year(rendered: Any, page: SourcePage):
    labels = rendered(page).facts["bibLabels"]
    assert labels, f"no labelled entries on {page.file}"
    numeric = [label for label in labels if not re.fullmatch(r"\[.+, \d{4}[a-z]?\]", label)]
    assert not numeric, (
        f"bibliography labels that are not 'Author, year' (the citations are): {numeric[:5]}"
    )


# --- Navigation on a phone and a desktop ------------------------------------------------------

NAV_PAGE = next((p for p in CHAPTERS if p.file.endswith("/elbo")), CHAPTERS[0])

# Whether a link of the chapter menu / of the page contents is on screen and not covered.
NAV_JS = r"""
() => {
  const reachable = (selector) => [...document.querySelectorAll(selector)].some((a) => {
    const r = a.getBoundingClientRect();
    if (r.width < 1 || r.height < 1 || r.left >= innerWidth || r.right <= 0) return false;
    if (r.top < 0 || r.bottom > innerHeight) return false;
    const hit = document.elementFromPoint(r.left + Math.min(8, r.width / 2), r.top + r.height / 2);
    return Boolean(hit) && (hit === a || a.contains(hit) || hit.contains(a));
  });
  const main = document.querySelector('.bd-article-container') || document.querySelector('main');
  return {
    menu: reachable('.bd-sidebar-primary a.reference'),
    contents: reachable('.bd-sidebar-secondary a.reference, .bd-toc-nav a'),
    articleLeft: Math.round(main.getBoundingClientRect().left),
  };
}
"""

# At phone width a long equation may not fit; then it must scroll sideways, never be cut off.
CLIPPED_MATH_JS = r"""
() => [...document.querySelectorAll('mjx-container[display="true"]')].filter((el) => {
  const inner = (el.querySelector('mjx-math') || el).getBoundingClientRect().width;
  if (inner <= el.getBoundingClientRect().width + 1) return false;
  for (let node = el; node && node !== document.body; node = node.parentElement) {
    const style = getComputedStyle(node);
    if (['auto', 'scroll'].includes(style.overflowX) && node.scrollWidth > node.clientWidth) {
      return false;
    }
  }
  return true;
}).map((el) => (el.closest('.math') || el).textContent.trim().slice(0, 80))
"""


def open_tab(browser: Any, site: str, width: int, height: int, phone: bool) -> tuple[Any, Any]:
    context = browser.new_context(
        viewport={"width": width, "height": height}, is_mobile=phone, has_touch=phone
    )
    aborted: list[str] = []
    missing: list[str] = []
    context.route("**/*", lambda route: route_offline(route, site, aborted, missing))
    tab = context.new_page()
    tab.goto(f"{site}/{NAV_PAGE.file}.html", wait_until="load", timeout=PAGE_TIMEOUT_MS)
    tab.wait_for_timeout(300)
    return context, tab


def visible_button(tab: Any, kind: str) -> Any:
    """The on-screen ☰ (kind 'primary') or page-contents (kind 'secondary') button."""
    buttons = [b for b in tab.query_selector_all(f".{kind}-toggle") if b.is_visible()]
    assert buttons, f"no visible .{kind}-toggle button on {NAV_PAGE.file}"
    return buttons[0]


def test_phone_menu_and_contents_open(browser: Any, site: str):
    for kind, opens in (("primary", "menu"), ("secondary", "contents")):
        context, tab = open_tab(browser, site, 390, 844, phone=True)
        try:
            before = tab.evaluate(NAV_JS)
            assert not before[opens], f"at 390 px the {opens} is on screen before any tap"
            visible_button(tab, kind).tap()
            tab.wait_for_timeout(600)  # the sidebar slides in
            after = tab.evaluate(NAV_JS)
            assert after[opens], (
                f"at 390 px, tapping the {kind} button of {NAV_PAGE.file} did not open the "
                f"{opens} (theme versions? see requirements.txt): {before} -> {after}"
            )
        finally:
            context.close()


def test_phone_long_equations_scroll_instead_of_being_cut(browser: Any, site: str):
    context, tab = open_tab(browser, site, 390, 844, phone=True)
    try:
        tab.wait_for_function(
            "() => window.MathJax && MathJax.startup && MathJax.startup.promise",
            timeout=PAGE_TIMEOUT_MS,
        )
        tab.evaluate("() => MathJax.startup.promise.then(() => true)")
        clipped = tab.evaluate(CLIPPED_MATH_JS)
    finally:
        context.close()
    assert not clipped, f"equations cut off at 390 px on {NAV_PAGE.file}: {clipped}"


def test_desktop_menu_button_collapses_the_sidebar(browser: Any, site: str):
    context, tab = open_tab(browser, site, 1280, 900, phone=False)
    try:
        shown = tab.evaluate(NAV_JS)
        assert shown["menu"], f"at 1280 px the chapter menu of {NAV_PAGE.file} is not shown"
        visible_button(tab, "primary").click()
        tab.wait_for_timeout(600)
        collapsed = tab.evaluate(NAV_JS)
        assert not collapsed["menu"] and collapsed["articleLeft"] < shown["articleLeft"], (
            f"at 1280 px the ☰ button did not collapse the sidebar: {shown} -> {collapsed}"
        )
        visible_button(tab, "primary").click()
        tab.wait_for_timeout(600)
        assert tab.evaluate(NAV_JS)["menu"], "a second click on ☰ did not bring the menu back"
    finally:
        context.close()


# --- Search -----------------------------------------------------------------------------------

SEARCH_TERM = "bound"  # appears next to inline math in many chapters

SEARCH_JS = r"""
() => {
  const snippets = [...document.querySelectorAll('#search-results p.context')];
  const raw = [];
  for (const snippet of snippets) {
    const copy = snippet.cloneNode(true);
    copy.querySelectorAll('mjx-container').forEach((el) => el.remove());
    const value = copy.textContent;
    if (/\\\(|\\\)|\\[A-Za-z]{2,}|\$[^$]+\$/.test(value)) raw.push(value.slice(0, 160));
  }
  return {snippets: snippets.length, typeset: document.querySelectorAll(
    '#search-results p.context mjx-container').length, raw};
}
"""


def test_search_snippets_show_typeset_math(browser: Any, site: str):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    aborted: list[str] = []
    missing: list[str] = []
    context.route("**/*", lambda route: route_offline(route, site, aborted, missing))
    tab = context.new_page()
    try:
        tab.goto(f"{site}/search.html?q={SEARCH_TERM}", wait_until="load")
        tab.wait_for_function(
            "() => document.querySelectorAll('#search-results li').length > 0 && "
            "[...document.querySelectorAll('#search-results li')]"
            ".every((li) => li.querySelector('p.context'))",
            timeout=PAGE_TIMEOUT_MS,
        )
        tab.wait_for_function("() => window.MathJax && MathJax.startup", timeout=PAGE_TIMEOUT_MS)
        tab.evaluate("() => MathJax.startup.promise.then(() => true)")
        tab.wait_for_timeout(1000)  # snippets are typeset as they arrive
        found = tab.evaluate(SEARCH_JS)
    finally:
        context.close()
    assert found["snippets"] > 0, f"searching {SEARCH_TERM!r} gave no snippets"
    assert not found["raw"], f"search snippets with TeX shown as text: {found['raw']}"
    assert found["typeset"] > 0, f"no snippet for {SEARCH_TERM!r} shows typeset math"
