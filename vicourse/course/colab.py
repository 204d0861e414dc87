"""The Colab notebooks: each MyST chapter written as a plain Jupyter notebook that reads like
its web page.

Colab opens ``.ipynb`` files and renders Markdown with math, but knows nothing of MyST. This
module turns a chapter (``book/<name>.md``) into ``book/<name>.ipynb``:

- ``{glue:text}`` numbers become the values of the book's own run (read from the build's
  executed notebooks), and the notebook says so at the top;
- ``show("vicourse....")`` cells keep their output, the source of the package code they show;
- theorems, proofs, definitions and admonitions become formatted Markdown, exercises stay,
  their solutions are collapsed (``<details>`` for written ones, a Colab form cell for code);
- ``{cite:t}``/``{cite:p}`` become author-year text with a reference list at the end, and
  ``{ref}``, ``{prf:ref}``, ``{eq}`` and ``{doc}`` become links to the website's pages;
- cells hidden on the website become collapsed Colab form cells: they still run.

``python -m vicourse.course.colab`` writes every chapter's notebook after a book build;
``python -m vicourse.course.colab --check`` fails when one is missing or stale.

A chapter that cannot run in Colab (``NO_COLAB``) gets no notebook. As a Sphinx extension
(``_config.yml``), this module also removes the Colab button of every page without a Colab
notebook: sphinx-book-theme would otherwise point it at the ``.md`` file, which Colab cannot
open.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import jupytext
import nbformat
import yaml
from nbformat import NotebookNode

from vicourse.course.exercises import Block, find_root, markdown_blocks
from vicourse.course.show import METADATA_KEY, MIME, source_markdown

# Chapters without a Colab notebook or button, and why. Colab installs the package from the
# repository (not editable, no requirements.txt) and runs the notebook in a folder without the
# book; tests/test_colab_path.py does the same with every other chapter.
NO_COLAB = {
    "book/instructors": "it runs the course commands (student versions, grading) on the book's "
                        "own chapter sources, book/*.md, and needs the instructor tools "
                        "(pip install '.[instructor]'): run it in a clone of the repository",
}
KERNEL = {"display_name": "Python 3", "language": "python", "name": "python3"}
PROOF_KINDS = {"theorem": "Theorem", "lemma": "Lemma", "proposition": "Proposition",
               "corollary": "Corollary", "definition": "Definition", "remark": "Remark",
               "example": "Example", "algorithm": "Algorithm"}
ROLE = re.compile(r"(?<!`)\{(?P<name>[\w:-]+)\}`(?P<content>[^`]*)`")  # not in `code`
SHOW_CELL = re.compile(r'^show\("(?P<dotted>vicourse(?:\.\w+)+)"\)\s*$')
LABEL_LINE = re.compile(r"^\((?P<label>[\w-]+)\)=\s*$")
EQ_LABEL = re.compile(r"^(?P<indent>\s*)\$\$\s*\((?P<label>[\w-]+)\)\s*$")  # also in a list item
HEADING = re.compile(r"^(?P<hashes>#{1,6})\s+(?P<title>.+?)\s*$")
# What must not survive the conversion: a role, a directive fence, a target line.
MYST_LEFTOVER = re.compile(r"(?<!`)\{[\w:-]+\}`|^(`{3,}|:{3,})\{|^\([\w-]+\)=\s*$", re.M)


class ColabError(ValueError):
    """A chapter cannot be converted: a glue value or a reference is missing."""


# --- what the whole book knows: targets, bibliography, website address -----------------


@dataclass(frozen=True)
class Target:
    """Where a label points: the page (``book/elbo``), the anchor, and the text of a link."""

    page: str
    anchor: str
    text: str


@dataclass
class Book:
    """The book's configuration, the targets of every page, and the bibliography."""

    root: Path
    website: str
    pages: list[str]
    titles: dict[str, str]
    targets: dict[str, Target]
    equations: dict[str, tuple[str, int]]
    bibliography: dict

    @classmethod
    def read(cls, root: Path) -> Book:
        config = yaml.safe_load((root / "_config.yml").read_text(encoding="utf-8"))
        website = config.get("html", {}).get("baseurl", "")
        if not website:
            raise ColabError("_config.yml has no html.baseurl: the Colab notebooks link to it")
        toc = yaml.safe_load((root / "_toc.yml").read_text(encoding="utf-8"))
        from vicourse.course.exercises import _toc_entries

        pages = list(_toc_entries(toc))
        book = cls(root, website.rstrip("/") + "/", pages, {}, {}, {}, {})
        for page in pages:
            book._collect_targets(page)
        from pybtex.database import parse_file

        for bibfile in config.get("bibtex_bibfiles", []):
            book.bibliography.update(parse_file(root / bibfile).entries)
        return book

    def _collect_targets(self, page: str) -> None:
        text = (self.root / f"{page}.md").read_text(encoding="utf-8")
        self._walk(page, re.sub(r"\A---\n.*?\n---\n", "", text, flags=re.S), {})

    def _walk(self, page: str, source: str, counts: dict[str, int]) -> None:
        """Record the targets of ``source``: labelled headings, equations and directives."""
        for block in markdown_blocks(source):
            if block.name == "code-cell":
                continue
            if block.name:
                name = block.name.removeprefix("prf:")
                counts[name] = counts.get(name, 0) + 1
                if label := block.options.get("label"):
                    kind = PROOF_KINDS.get(name, name.capitalize())
                    title = strip_roles(block.argument) or f"{kind} {counts[name]}"
                    self.targets[label] = Target(page, label, title)
                self._walk(page, "\n".join(block.body), counts)
                continue
            pending = None
            for line in prose_lines(block.lines):
                if label := LABEL_LINE.match(line):
                    pending = label["label"]
                elif heading := HEADING.match(line):
                    title = strip_roles(heading["title"])
                    if len(heading["hashes"]) == 1 and page not in self.titles:
                        self.titles[page] = title
                    if pending:
                        self.targets[pending] = Target(page, pending, title)
                    pending = None
                elif eq := EQ_LABEL.match(line):
                    counts["equation"] = counts.get("equation", 0) + 1
                    self.equations[eq["label"]] = (page, counts["equation"])

    def url(self, page: str, anchor: str = "") -> str:
        return f"{self.website}{page}.html" + (f"#{anchor}" if anchor else "")


def prose_lines(lines: list[str]) -> Iterable[str]:
    """The lines of a directive-free piece of Markdown that are not inside code blocks."""
    fence = None
    for line in lines:
        opening = re.match(r"^\s*(`{3,}|~{3,})", line)
        if opening and fence is None:
            fence = opening[1]
        elif fence is not None and line.strip() and line.strip() == fence[0] * len(line.strip()) \
                and len(line.strip()) >= len(fence):
            fence = None
        elif fence is None:
            yield line


def strip_roles(text: str) -> str:
    """Inline text with roles reduced to their content (for titles in links and headings)."""
    return ROLE.sub(lambda m: m["content"].split("<")[0].strip(), text)


# --- citations ---------------------------------------------------------------------------


def _authors(entry) -> list[str]:
    people = entry.persons.get("author") or entry.persons.get("editor") or []
    return [" ".join(person.last_names).replace("{", "").replace("}", "") for person in people]


def author_year(entry) -> tuple[str, str]:
    """("Kingma and Welling", "2014") in the style of sphinxcontrib-bibtex's author_year."""
    names = _authors(entry) or [entry.fields.get("title", "Anonymous")]
    if len(names) == 1:
        who = names[0]
    elif len(names) == 2:
        who = f"{names[0]} and {names[1]}"
    else:
        who = f"{names[0]} et al."
    return who, entry.fields.get("year", "n.d.")


def reference_entry(entry) -> str:
    """One bibliography line in plain Markdown."""
    from pybtex.richtext import Text

    authors = ", ".join(" ".join(p.first_names + p.middle_names + p.prelast_names +
                                 p.last_names).replace("{", "").replace("}", "")
                        for p in entry.persons.get("author", []))
    fields = entry.fields
    title = Text(fields.get("title", "")).render_as("text").replace("{", "").replace("}", "")
    venue = fields.get("journal") or fields.get("booktitle") or fields.get("publisher") or ""
    venue = venue.replace("{", "").replace("}", "").replace("\\&", "&")
    parts = [authors, f"*{title}*", venue, fields.get("year", "")]
    line = ". ".join(part.strip().rstrip(".") for part in parts if part.strip()) + "."
    if "url" in fields:
        line += f" <{fields['url']}>"
    elif "doi" in fields:
        line += f" <https://doi.org/{fields['doi']}>"
    return line


# --- one chapter -------------------------------------------------------------------------


class Converter:
    """Turns one chapter's MyST Markdown into Colab Markdown, collecting what it cites."""

    def __init__(self, book: Book, page: str, glue: dict[str, str]):
        self.book, self.page, self.glue = book, page, glue
        self.cited: list[str] = []

    # roles
    def role(self, match: re.Match) -> str:
        name, content = match["name"], match["content"]
        if name == "glue:text" or name == "glue":
            return self.glue_text(content)
        if name in ("cite:t", "cite:p", "cite"):
            return self.cite(name, content)
        if name in ("ref", "prf:ref", "numref", "doc"):
            return self.link(name, content)
        if name == "eq":
            page, number = self.equation(content)
            return f"({number})" if page == self.page else f"[({number})]({self.book.url(page)})"
        if name == "math":
            return f"${content}$"
        raise ColabError(f"{self.page}: no Colab form for the role {{{name}}}`{content}`")

    def glue_text(self, content: str) -> str:
        from myst_nb.core.variables import format_plain_text

        key, _, fmt = content.rpartition(":") if ":" in content else (content, "", "")
        if not key:
            key, fmt = content, ""
        if key not in self.glue:
            raise ColabError(f"{self.page}: no glued value {key!r} in the book's run (build the "
                             "book first: jupyter-book build .)")
        return format_plain_text(self.glue[key], fmt or "s")

    def cite(self, name: str, content: str) -> str:
        pieces = []
        for key in (k.strip() for k in content.split(",")):
            if key not in self.book.bibliography:
                raise ColabError(f"{self.page}: {key!r} is not in the bibliography")
            if key not in self.cited:
                self.cited.append(key)
            who, year = author_year(self.book.bibliography[key])
            pieces.append((who, year))
        if name == "cite:t":
            return "; ".join(f"{who} ({year})" for who, year in pieces)
        return "(" + "; ".join(f"{who}, {year}" for who, year in pieces) + ")"

    def link(self, name: str, content: str) -> str:
        explicit = re.match(r"^(?P<text>.+?)\s*<(?P<label>[^>]+)>$", content)
        label = explicit["label"] if explicit else content
        if name == "doc":
            page = str((Path(self.page).parent / label).as_posix())
            title = self.book.titles.get(page, label)
            return f"[{explicit['text'] if explicit else title}]({self.book.url(page)})"
        target = self.book.targets.get(label)
        if target is None:
            raise ColabError(f"{self.page}: unknown reference target {label!r}")
        text = explicit["text"] if explicit else target.text
        anchor = "" if target.anchor.startswith("chap-") else target.anchor
        return f"[{text}]({self.book.url(target.page, anchor)})"

    def equation(self, label: str) -> tuple[str, int]:
        if label not in self.book.equations:
            raise ColabError(f"{self.page}: unknown equation label {label!r}")
        return self.book.equations[label]

    # text and directives
    def inline(self, text: str) -> str:
        """Convert the roles of plain Markdown text, leaving code blocks and code spans alone."""
        out, in_code = [], None
        for line in text.split("\n"):
            fence = re.match(r"^\s*(`{3,}|~{3,})", line)
            if fence:
                if in_code is None:
                    in_code = fence[1]
                elif line.strip().startswith(in_code) and line.strip().strip(in_code[0]) == "":
                    in_code = None
                out.append(line)
                continue
            if in_code is not None:
                out.append(line)
                continue
            if LABEL_LINE.match(line) or line.startswith("% "):
                continue
            if eq := EQ_LABEL.match(line):
                _, number = self.equation(eq["label"])
                out[-1:] = [out[-1] + rf" \tag{{{number}}}"] if out else []
                out.append(eq["indent"] + "$$")
                continue
            out.append(self.convert_spans(line))
        return "\n".join(out)

    def convert_spans(self, line: str) -> str:
        """Roles outside inline code spans (``` `` {ref}`x` `` ``` stays as written)."""
        pieces = re.split(r"((?<!`)`{2,}(?!`).*?(?<!`)`{2,}(?!`))", line)  # double-backtick spans
        return "".join(piece if index % 2 else ROLE.sub(self.role, piece)
                       for index, piece in enumerate(pieces))

    def markdown(self, source: str, minutes: object = None) -> str:
        """Convert a Markdown cell; ``minutes`` (cell metadata) goes into an exercise heading."""
        parts = []
        for block in markdown_blocks(source):
            if block.name == "exercise" and minutes is not None:
                block.options["minutes"] = str(minutes)
            parts.append(self.inline("\n".join(block.lines)) if not block.name
                         else self.directive(block))
        return "\n".join(parts)

    def directive(self, block: Block) -> str:
        name, title = block.name, self.inline(block.argument).strip()
        body = self.markdown("\n".join(block.body)).strip()
        kind = name.removeprefix("prf:")
        if kind == "proof":
            return f"*Proof.* {body} $\\blacksquare$"
        if kind in PROOF_KINDS:
            heading = f"**{PROOF_KINDS[kind]}{f' ({title})' if title else ''}.**"
            return quote(f"{heading} {body}")
        if name == "exercise":
            minutes = f" *({block.options['minutes']} minutes)*" if "minutes" in block.options \
                else ""
            return f"#### Exercise: {title}{minutes}\n\n{body}"
        if name == "solution":
            return f"<details>\n<summary><b>Solution</b> (click to show)</summary>\n\n{body}" \
                   "\n\n</details>"
        if name == "solution-start":
            return ("**Solution.** The answer is in the next code cell, collapsed: double-click "
                    "it to show the code.")
        if name == "solution-end":
            return ""
        if name == "admonition" or name in ("note", "tip", "warning", "important", "caution",
                                             "hint", "seealso", "attention"):
            heading = title or name.capitalize()
            if "dropdown" in block.options.get("class", ""):
                return f"<details>\n<summary><b>{heading}</b></summary>\n\n{body}\n\n</details>"
            return quote(f"**{heading}**\n\n{body}")
        if name == "literalinclude":
            return self.literalinclude(block)
        raise ColabError(f"{self.page}: no Colab form for the directive {{{name}}}")

    def literalinclude(self, block: Block) -> str:
        path = (self.book.root / self.page).parent / block.argument
        text = path.read_text(encoding="utf-8")
        if start := block.options.get("start-at"):
            text = text[text.index(start):]
        if end := block.options.get("end-before"):
            text = text[:text.index(end)]
        fence = "`" * (max((len(m) for m in re.findall(r"`{3,}", text)), default=2) + 1)
        return f"{fence}{block.options.get('language', '')}\n{text.rstrip()}\n{fence}"

    def references(self) -> str:
        if not self.cited:
            return ""
        entries = sorted(self.cited, key=lambda k: author_year(self.book.bibliography[k]))
        lines = [f"- {reference_entry(self.book.bibliography[key])}" for key in entries]
        return "## References\n\n" + "\n".join(lines) + \
            f"\n\nThe book's full bibliography: <{self.book.url('book/bibliography')}>"


def quote(text: str) -> str:
    return "\n".join(f"> {line}" if line else ">" for line in text.split("\n"))


# --- code cells ----------------------------------------------------------------------------


def form_title(cell: NotebookNode, exercise: str) -> str | None:
    """The title of a collapsed Colab form for a cell hidden on the website, else None."""
    tags = cell.metadata.get("tags", [])
    meta = cell.metadata.get("nbgrader", {})
    if meta.get("solution"):
        return f"Solution: {exercise} (double-click to show the code)"
    if meta.get("grade"):
        return f"Checks of your answer: {exercise}"
    if "remove-cell" in tags or "remove-input" in tags or "hide-input" in tags:
        if "google.colab" in cell.source:
            return "Install vicourse in Colab"
        if "glue(" in cell.source or "assert" in cell.source:
            return "Checks of the text's claims, and the numbers it quotes"
        return "Hidden on the website"
    return None


def code_cell(cell: NotebookNode, exercise: str) -> NotebookNode:
    source = cell.source
    metadata = {key: value for key, value in cell.metadata.items() if key in ("tags", "nbgrader")}
    if show := SHOW_CELL.match(source):
        new = nbformat.v4.new_code_cell(source, metadata=metadata)
        new.outputs = [nbformat.v4.new_output(
            "display_data", data={MIME: source_markdown(show["dotted"])},
            metadata={METADATA_KEY: show["dotted"]})]
        return new
    title = form_title(cell, exercise)
    if title:
        source = f"# @title {title}\n{source}"
        metadata["cellView"] = "form"
    return nbformat.v4.new_code_cell(source, metadata=metadata)


def chapter_hash(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def colab_notebook(book: Book, page: str, glue: dict[str, str]) -> NotebookNode:
    """The Colab notebook of ``page`` (``book/elbo``), with the glued values ``glue``."""
    path = book.root / f"{page}.md"
    chapter = jupytext.read(path, fmt="md:myst")
    converter = Converter(book, page, glue)
    cells: list[NotebookNode] = []
    exercise = ""
    for cell in chapter.cells:
        if cell.cell_type == "markdown":
            blocks = [b for b in markdown_blocks(cell.source) if b.name == "exercise"]
            if blocks:
                exercise = strip_roles(blocks[-1].argument)
            text = converter.markdown(cell.source, cell.metadata.get("minutes"))
            if text.strip():
                cells.append(nbformat.v4.new_markdown_cell(text.strip()))
        elif cell.cell_type == "code":
            cells.append(code_cell(cell, exercise))
    cells.insert(1 if cells and cells[0].cell_type == "markdown" else 0, header_cell(book, page))
    if references := converter.references():
        cells.append(nbformat.v4.new_markdown_cell(references))
    for number, cell in enumerate(cells):
        cell.id = f"cell-{number}"  # nbformat draws random ids; these keep the file stable
    notebook = nbformat.v4.new_notebook(cells=cells)
    notebook.metadata = {
        "kernelspec": KERNEL,
        "language_info": {"name": "python"},
        "colab": {"provenance": [], "toc_visible": True},
        "vicourse": {"chapter": f"{page}.md", "source_sha256": chapter_hash(path),
                     "glue": {key: glue[key] for key in sorted(glue)}},
    }
    return notebook


def header_cell(book: Book, page: str) -> NotebookNode:
    return nbformat.v4.new_markdown_cell(
        f"*This is the Colab notebook of the chapter [{book.titles.get(page, page)}]"
        f"({book.url(page)}) of the book {book.website}. Numbers in the text are those of "
        "the book's own run; yours may differ in the last digits. Cells hidden on the website "
        "(installation, the checks behind the text's claims, exercise checks and code "
        "solutions) are collapsed here: they run when you run the notebook, and a "
        "double-click shows their code.*")


# --- glue values from the build, writing and checking --------------------------------------


def glue_values(glue_file: Path) -> dict[str, str]:
    """The ``text/plain`` of every value a chapter glued, from the build (``<page>.glue.json``)."""
    data = json.loads(glue_file.read_text(encoding="utf-8"))
    return {key: output["data"].get("text/plain", "") for key, output in data.items()}


def chapters(book: Book, names: Sequence[str] = ()) -> list[str]:
    """The pages of the book that are notebooks (have a kernel) and run in Colab, or those
    named."""
    pages = [p for p in book.pages if p not in NO_COLAB
             and "kernelspec:" in (book.root / f"{p}.md").read_text("utf-8").split("\n---", 1)[0]]
    if names:
        unknown = [n for n in names if f"book/{Path(n).stem}" not in pages]
        if unknown:
            raise ColabError(f"not chapters of the book: {', '.join(unknown)}")
        pages = [p for p in pages if Path(p).name in {Path(n).stem for n in names}]
    return pages


def write(book: Book, pages: Iterable[str], executed_dir: Path) -> list[Path]:
    written = []
    for page in pages:
        glue_file = executed_dir / f"{page}.glue.json"
        glue = glue_values(glue_file) if glue_file.exists() else {}
        if not glue_file.exists() and "{glue" in (book.root / f"{page}.md").read_text("utf-8"):
            raise ColabError(f"{glue_file} does not exist: build the book first "
                             "(jupyter-book build .), then run this command")
        notebook = colab_notebook(book, page, glue)
        target = book.root / f"{page}.ipynb"
        target.write_text(dumps(notebook), encoding="utf-8")
        written.append(target)
    return written


def dumps(notebook: NotebookNode) -> str:
    return json.dumps(notebook, indent=1, ensure_ascii=False, sort_keys=True) + "\n"


def problems(book: Book, page: str) -> list[str]:
    """What is wrong with the committed Colab notebook of ``page`` (empty when current)."""
    target = book.root / f"{page}.ipynb"
    if page in NO_COLAB:
        return [f"{target.name} exists, but {page} has no Colab notebook: {NO_COLAB[page]}; "
                "delete it"] if target.exists() else []
    if not target.exists():
        return [f"{target.name} is missing"]
    committed = target.read_text(encoding="utf-8")
    stored = json.loads(committed).get("metadata", {}).get("vicourse", {})
    found = []
    if stored.get("source_sha256") != chapter_hash(book.root / f"{page}.md"):
        found.append(f"{target.name} is stale: {page}.md changed since it was written")
    try:
        again = dumps(colab_notebook(book, page, stored.get("glue", {})))
    except ColabError as error:
        return [*found, f"{target.name} is stale: {error}"]
    if again != committed:
        found.append(f"{target.name} is stale: written again from {page}.md and the package's "
                     "current code, it differs")
    leftovers = myst_leftovers(json.loads(committed))
    found += [f"{target.name}: raw MyST left in a Markdown cell: {text!r}" for text in leftovers]
    return found


def myst_leftovers(notebook: dict) -> list[str]:
    """Roles, directives and targets in the Markdown cells, outside code blocks."""
    found = []
    for cell in notebook["cells"]:
        if cell["cell_type"] != "markdown":
            continue
        text = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
        prose = re.sub(r"^(`{3,}|~{3,}).*?^\1\s*$", "", text, flags=re.M | re.S)
        prose = re.sub(r"(?<!`)``(?!`).*?(?<!`)``(?!`)", "", prose)  # ``code spans``
        found += [m.group(0) for m in MYST_LEFTOVER.finditer(prose)]
    return found


# --- the website: a Colab button only where a Colab notebook is -------------------------


def remove_colab_button(app, pagename: str, templatename: str, context: dict, doctree) -> None:
    """Drop the Colab launch button of a page that has no ``<page>.ipynb`` beside its source
    (``html-page-context``, after sphinx-book-theme has added its launch buttons)."""
    source = Path(app.srcdir) / pagename
    if source.with_suffix(".ipynb").exists() or not source.with_suffix(".md").exists():
        return
    kept = []
    for button in context.get("header_buttons", []):
        if button.get("label") == "launch-buttons":
            button = {**button, "buttons": [b for b in button.get("buttons", [])
                                            if b.get("text") != "Colab"]}
            if not button["buttons"]:
                continue
        kept.append(button)
    context["header_buttons"] = kept


def setup(app) -> dict:
    """Sphinx extension: no Colab button on pages without a Colab notebook."""
    app.connect("html-page-context", remove_colab_button, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vicourse.course.colab", description=__doc__
                                     .split("\n\n")[0])
    parser.add_argument("chapters", nargs="*", help="chapter names (default: every chapter)")
    parser.add_argument("--root", type=Path, default=None, help="the book's folder")
    parser.add_argument("--executed", type=Path, default=None,
                        help="the build's executed notebooks (default: _build/jupyter_execute)")
    parser.add_argument("--check", action="store_true",
                        help="check that the committed notebooks are present and current")
    args = parser.parse_args(argv)
    root = args.root or find_root()
    book = Book.read(root)
    pages = chapters(book, args.chapters)
    if args.check:
        stray = [page for page in NO_COLAB if page in book.pages and not args.chapters]
        found = [problem for page in pages + stray for problem in problems(book, page)]
        for problem in found:
            print(problem, file=sys.stderr)
        if found:
            print("Refresh them: jupyter-book build . && python -m vicourse.course.colab",
                  file=sys.stderr)
        return 1 if found else 0
    for path in write(book, pages, args.executed or root / "_build" / "jupyter_execute"):
        print(f"wrote {path.relative_to(root)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
