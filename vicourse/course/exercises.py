"""The book's exercises: where they are in a chapter, what they are worth, and the convention.

A chapter (a MyST notebook read with jupytext) marks its exercises like this:

- an ``{exercise}`` directive with a ``:label: ex-...``, in a markdown cell whose metadata
  gives the expected working time, ``+++ {"minutes": 20}`` in MyST;
- written answers in a ``{solution}`` dropdown; code answers between ``{solution-start}`` and
  ``{solution-end}``, in a code cell with nbgrader metadata (``solution: true``) whose answer
  lies between ``### BEGIN SOLUTION`` and ``### END SOLUTION``, with a typical ``mistake``
  (a ``replace``/``with`` edit of the answer) in its metadata;
- after the solution, checks: code cells with nbgrader metadata (``grade: true``, ``points``,
  ``grade_id`` = the exercise label + ``-`` + a name), tagged ``remove-cell``, that call
  :mod:`vicourse.course.checks`, with any hidden tests between ``### BEGIN HIDDEN TESTS`` and
  ``### END HIDDEN TESTS``;
- hidden cells that check a written solution's claims, tagged ``solution-check``;
- the cells that the exercises need (imports, the model they use), tagged ``exercise-setup``.

:func:`convention_errors` checks all of this and says how to fix what is wrong.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import jupytext
import yaml
from nbformat import NotebookNode

SOLUTION_BEGIN, SOLUTION_END = "### BEGIN SOLUTION", "### END SOLUTION"
HIDDEN_BEGIN = "### BEGIN HIDDEN TESTS"
SETUP_TAG, SOLUTION_CHECK_TAG = "exercise-setup", "solution-check"
NBGRADER_KEYS = ("grade", "grade_id", "locked", "schema_version", "solution", "task")

_FENCE = re.compile(r"^(?P<fence>`{3,}|:{3,})\{(?P<name>[\w:-]+)\}[ \t]*(?P<argument>.*?)\s*$")
_CODE_FENCE = re.compile(r"^(?P<fence>`{3,}|~{3,})(?!`*\{)[^`]*$")
_OPTION = re.compile(r"^:(?P<key>[\w-]+):[ \t]*(?P<value>.*?)\s*$")


@dataclass
class Block:
    """A piece of a markdown cell: plain ``lines``, or a directive with its ``name``."""

    lines: list[str]
    name: str = ""
    argument: str = ""
    options: dict[str, str] = field(default_factory=dict)
    body: list[str] = field(default_factory=list)


def markdown_blocks(source: str) -> Iterator[Block]:
    """Split markdown into plain text and top-level fenced directives (``` or :::).

    A fenced code block without a directive (```python, ````md) is text, with its content.
    """
    lines = source.split("\n")
    text: list[str] = []
    i = 0
    while i < len(lines):
        opening = _FENCE.match(lines[i]) or _CODE_FENCE.match(lines[i])
        if not opening:
            text.append(lines[i])
            i += 1
            continue
        fence = opening["fence"]
        closing = re.compile(rf"^{re.escape(fence[0])}{{{len(fence)},}}\s*$")
        end = next((j for j in range(i + 1, len(lines)) if closing.match(lines[j])), len(lines))
        if "name" not in opening.groupdict():  # a code block: keep it as text
            text += lines[i : end + 1]
            i = end + 1
            continue
        if text:
            yield Block(text)
            text = []
        inner = lines[i + 1 : end]
        options = {}
        while inner and (option := _OPTION.match(inner[0])):
            options[option["key"]] = option["value"]
            inner = inner[1:]
        yield Block(lines[i : end + 1], opening["name"], opening["argument"], options, inner)
        i = end + 1
    if text:
        yield Block(text)


def nbgrader(cell: NotebookNode) -> dict:
    """The cell's nbgrader metadata ({} if none)."""
    return dict(cell.get("metadata", {}).get("nbgrader", {}))


def is_answer_cell(cell: NotebookNode) -> bool:
    """A code cell where the student writes an answer (nbgrader ``solution: true``)."""
    return cell.cell_type == "code" and bool(nbgrader(cell).get("solution"))


def is_check_cell(cell: NotebookNode) -> bool:
    """An autograded check (nbgrader ``grade: true``)."""
    return cell.cell_type == "code" and bool(nbgrader(cell).get("grade"))


def tags(cell: NotebookNode) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []))


@dataclass
class Exercise:
    """One exercise: its label, title, expected minutes, and its autograded checks."""

    label: str
    title: str
    minutes: int | None
    checks: dict[str, float] = field(default_factory=dict)  # grade id -> points
    answers: list[str] = field(default_factory=list)  # grade ids of the answer cells

    @property
    def points(self) -> float:
        return sum(self.checks.values())

    @property
    def kind(self) -> str:
        return "code, autograded" if self.checks else "written"


@dataclass
class Chapter:
    """A chapter notebook and its exercises, in order."""

    path: Path
    notebook: NotebookNode
    exercises: list[Exercise]

    @property
    def name(self) -> str:
        return self.path.stem

    @property
    def label(self) -> str:
        """The chapter's MyST target, e.g. ``chap-gaussian-kl``."""
        return self._first_match(r"^\((chap-[\w-]+)\)=") or ""

    @property
    def title(self) -> str:
        return self._first_match(r"^# (.+?)\s*$") or self.name

    def _first_match(self, pattern: str) -> str | None:
        for cell in self.notebook.cells:
            if cell.cell_type == "markdown" and (found := re.search(pattern, cell.source, re.M)):
                return found[1]
        return None


def read_chapter(path: Path | str) -> Chapter:
    """Read a MyST chapter and collect its exercises and their checks."""
    path = Path(path)
    notebook = jupytext.read(path, fmt="md:myst")
    exercises: list[Exercise] = []
    for cell in notebook.cells:
        if cell.cell_type == "markdown":
            for block in markdown_blocks(cell.source):
                if block.name == "exercise":
                    minutes = cell.metadata.get("minutes")
                    exercises.append(Exercise(block.options.get("label", ""), block.argument,
                                              minutes))
        elif exercises and is_check_cell(cell):
            meta = nbgrader(cell)
            exercises[-1].checks[meta.get("grade_id", "")] = float(meta.get("points", 0))
        elif exercises and is_answer_cell(cell):
            exercises[-1].answers.append(nbgrader(cell).get("grade_id", ""))
    return Chapter(path, notebook, exercises)


def find_root(start: Path | None = None) -> Path:
    """The book's folder (with ``_toc.yml``): ``start`` or a parent, else this package's repo."""
    start = (start or Path.cwd()).resolve()
    for folder in (start, *start.parents, Path(__file__).resolve().parents[2]):
        if (folder / "_toc.yml").is_file():
            return folder
    raise FileNotFoundError(
        f"no _toc.yml in {start} or its parents: run the command inside the vicourse "
        "repository (or install vicourse editable from it), or pass --root"
    )


def _toc_entries(entry: dict) -> Iterator[str]:
    if "root" in entry:
        yield entry["root"]
    if "file" in entry:
        yield entry["file"]
    for key in ("parts", "chapters", "sections"):
        for child in entry.get(key, []):
            yield from _toc_entries(child)


def book_chapters(root: Path) -> list[Path]:
    """The pages of ``_toc.yml`` that contain exercises, in the book's order."""
    toc = yaml.safe_load((root / "_toc.yml").read_text(encoding="utf-8"))
    pages = [root / f"{entry}.md" for entry in _toc_entries(toc)]
    return [page for page in pages
            if page.exists() and "{exercise}" in page.read_text("utf-8")
            and read_chapter(page).exercises]


def _solution_regions(source: str) -> list[str]:
    """The text between each BEGIN SOLUTION and END SOLUTION line."""
    return re.findall(rf"{SOLUTION_BEGIN}[^\n]*\n(.*?)^[ \t]*{SOLUTION_END}", source, re.S | re.M)


def convention_errors(chapter: Chapter) -> list[str]:
    """Every departure from the exercise convention, each with how to fix it (empty: fine)."""
    errors: list[str] = []
    seen_ids: set[str] = set()
    current: Exercise | None = None
    in_solution = False
    exercises = iter(chapter.exercises)
    for index, cell in enumerate(chapter.notebook.cells):
        where = f"{chapter.path.name}, cell {index}"
        if cell.cell_type == "markdown":
            blocks = list(markdown_blocks(cell.source))
            if sum(block.name == "exercise" for block in blocks) > 1:
                errors.append(f"{where}: one exercise per markdown cell; start each with "
                              '+++ {"minutes": N}')
            for block in blocks:
                if block.name == "exercise":
                    current = next(exercises)
                    if not current.label.startswith("ex-"):
                        errors.append(f"{where}: give the exercise '{block.argument}' a "
                                      ":label: ex-<chapter>-<name>")
                    if not isinstance(current.minutes, int) or current.minutes <= 0:
                        errors.append(f"{where}: exercise {current.label}: put "
                                      '+++ {"minutes": N} (the expected working time) on the '
                                      "line before the {exercise} directive")
                elif block.name == "solution-start":
                    in_solution = True
                elif block.name == "solution-end":
                    in_solution = False
            continue
        meta = nbgrader(cell)
        if SOLUTION_BEGIN in cell.source and not is_answer_cell(cell):
            errors.append(f"{where}: a ### BEGIN SOLUTION region needs nbgrader metadata with "
                          "solution: true on its cell")
        if HIDDEN_BEGIN in cell.source and not is_check_cell(cell):
            errors.append(f"{where}: hidden tests belong in a check cell (nbgrader grade: true)")
        if not meta:
            hidden = "remove-cell" in tags(cell) and SOLUTION_CHECK_TAG not in tags(cell)
            if current and hidden and not in_solution:
                errors.append(f"{where}: this hidden cell after an exercise would reach "
                              f"students; tag it {SOLUTION_CHECK_TAG} if it checks a solution "
                              "(the student version drops it), or make it a check cell")
            continue
        missing = [key for key in NBGRADER_KEYS if key not in meta]
        grade_id = meta.get("grade_id", "")
        if missing or meta.get("schema_version") != 3:
            errors.append(f"{where}: nbgrader metadata needs all of {', '.join(NBGRADER_KEYS)} "
                          f"with schema_version 3 (missing: {', '.join(missing) or 'none'})")
        if grade_id in seen_ids:
            errors.append(f"{where}: grade_id {grade_id} is used twice")
        seen_ids.add(grade_id)
        if current is None or not grade_id.startswith(current.label + "-"):
            label = current.label if current else "ex-..."
            errors.append(f"{where}: grade_id {grade_id!r} must start with the label of its "
                          f"exercise: {label}-<name>")
        if meta.get("grade") and meta.get("solution"):
            errors.append(f"{where}: a cell is either an answer (solution: true) or a check "
                          "(grade: true), not both")
        elif is_answer_cell(cell):
            errors += _answer_errors(cell, where, in_solution)
        elif is_check_cell(cell):
            if in_solution:
                errors.append(f"{where}: put check {grade_id} after the {{solution-end}}")
            if not float(meta.get("points", 0)) > 0:
                errors.append(f"{where}: check {grade_id} needs points > 0")
            if "remove-cell" not in tags(cell):
                errors.append(f"{where}: tag check {grade_id} remove-cell (the website hides "
                              "checks; student notebooks show them)")
    for exercise in chapter.exercises:
        if exercise.answers and not exercise.checks:
            errors.append(f"{chapter.path.name}: exercise {exercise.label} has an answer cell "
                          "but no check cell (nbgrader grade: true) after it")
    return errors


def _answer_errors(cell: NotebookNode, where: str, in_solution: bool) -> list[str]:
    errors = []
    if not in_solution:
        errors.append(f"{where}: an answer cell goes between {{solution-start}} and "
                      "{solution-end}, so that the website shows it in the dropdown")
    regions = _solution_regions(cell.source)
    if not regions:
        errors.append(f"{where}: mark the answer with ### BEGIN SOLUTION / ### END SOLUTION "
                      "inside the function body (the student version keeps the rest)")
    reference = cell.metadata.get("reference", [])
    if not (isinstance(reference, list) and all(isinstance(r, str) for r in reference)):
        errors.append(f"{where}: reference must be a list of dotted names, e.g. reference: "
                      "[vicourse.objectives.weights.log_mean_exp]")
    else:
        for name in reference:
            if not _resolves(name):
                errors.append(f"{where}: reference {name!r} names no function or method of "
                              "vicourse: give vicourse.<module>.<function> or "
                              "vicourse.<module>.<Class>.<method>")
    mistake = cell.metadata.get("mistake", {})
    if not (isinstance(mistake, dict) and mistake.get("replace") and "with" in mistake):
        errors.append(f"{where}: give the answer cell a typical mistake in its metadata, "
                      "mistake: {replace: <text of the answer>, with: <wrong text>}; the tests "
                      "check that it gets partial credit and a helpful message")
    elif sum(region.count(mistake["replace"]) for region in regions) != 1:
        errors.append(f"{where}: mistake.replace must occur exactly once in the answer "
                      f"(between the SOLUTION markers): {mistake['replace']!r}")
    return errors


def _resolves(dotted: str) -> bool:
    """True if ``dotted`` names a function or method defined in a vicourse module's source."""
    import importlib

    parts = dotted.split(".")
    if parts[0] != "vicourse" or len(parts) < 3:
        return False
    for cut in range(len(parts) - 1, 0, -1):
        try:
            target = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for name in parts[cut:]:
            target = getattr(target, name, None)
        return callable(target) and len(parts) - cut <= 2
    return False
