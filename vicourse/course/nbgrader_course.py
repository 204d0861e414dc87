"""An nbgrader course directory written from the chapters, for the real ``nbgrader`` CLI.

``write_course(chapters, root)`` writes ``root/nbgrader_config.py`` and, for each chapter with
exercises, ``root/source/<chapter>/<chapter>.ipynb`` (one assignment per chapter) in
nbgrader's own markup: code answers are solution cells between ``### BEGIN SOLUTION`` and
``### END SOLUTION``, the instructor's checks are autograder test cells with points (hidden
tests between ``### BEGIN HIDDEN TESTS`` and ``### END HIDDEN TESTS``), and each written
answer is a manual-grade Markdown cell (solution + grade, with points) holding the reference
solution, which ``nbgrader generate_assignment`` replaces by YOUR ANSWER HERE. Solution
dropdowns, the reference code around the answer cells and the book-only checks of solutions
are not in the source at all, so no release can leak them. The written configuration makes
``nbgrader generate_feedback`` drop the hidden tests from the notebooks returned to students.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from pathlib import Path

import nbformat
from nbformat import NotebookNode

from vicourse.course.exercises import (
    SETUP_TAG,
    SOLUTION_CHECK_TAG,
    Chapter,
    is_answer_cell,
    is_check_cell,
    markdown_blocks,
    nbgrader,
    read_chapter,
    tags,
)
from vicourse.course.instructor import (
    PLACEHOLDER,
    _exercise_heading,
    check_marker,
    following_convention,
)

WRITTEN_POINTS = 2  # points of a written answer, unless its exercise cell's metadata says
KERNELSPEC = {"name": "python3", "display_name": "Python 3", "language": "python"}

CONFIG = '''"""nbgrader configuration of the vicourse course (vicourse.course.nbgrader_course)."""

from nbconvert.preprocessors import CSSHTMLHeaderPreprocessor
from nbgrader.preprocessors import ClearHiddenTests, GetGrades

c = get_config()  # noqa: F821 (nbgrader provides it)
c.CourseDirectory.course_id = "vicourse"
c.CourseDirectory.db_url = "sqlite:///gradebook.db"
c.ClearSolutions.code_stub = {{"python": "# YOUR CODE HERE\\nraise NotImplementedError()"}}
c.ClearSolutions.text_stub = "YOUR ANSWER HERE"
c.Execute.timeout = {timeout}  # seconds per cell while autograding
c.Execute.interrupt_on_timeout = True
# Returned notebooks keep the feedback and the scores, never the hidden tests (nbgrader's
# default feedback keeps them, as autograde restored them).
c.GenerateFeedback.preprocessors = [GetGrades, ClearHiddenTests, CSSHTMLHeaderPreprocessor]
'''


def _meta(cell: NotebookNode) -> None:
    for key in ("mistake", "reference", "minutes"):
        cell.metadata.pop(key, None)


def written_cell(label: str, body: list[str], points: float) -> NotebookNode:
    """A manual-grade Markdown answer cell holding the reference solution ``body``."""
    cell = nbformat.v4.new_markdown_cell("\n".join(body).strip() or "(no reference text)")
    cell.metadata["nbgrader"] = {"grade": True, "grade_id": f"{label}-written",
                                 "locked": False, "points": points, "schema_version": 3,
                                 "solution": True, "task": False}
    return cell


def course_notebook(chapter: Chapter | Path | str, *, exercises_only: bool = False
                    ) -> NotebookNode:
    """The chapter as an nbgrader source notebook (see the module's docstring).

    With ``exercises_only``: the ``exercise-setup`` cells, then the exercises section only.
    """
    chapter = following_convention(chapter)
    exercises = iter(chapter.exercises)
    points: dict[str, float] = {}
    cells: list[NotebookNode] = []
    in_solution, started = False, False
    for cell in copy.deepcopy(chapter.notebook.cells):
        if cell.cell_type == "markdown":
            kept: list[str] = []
            written: list[NotebookNode] = []
            for block in markdown_blocks(cell.source):
                if block.name == "solution-start":
                    in_solution = True
                elif block.name == "solution-end":
                    in_solution = False
                elif block.name == "exercise":
                    started = True
                    exercise = next(exercises)
                    kept += _exercise_heading(exercise, block.body)
                    points[exercise.label] = float(cell.metadata.get("points", WRITTEN_POINTS))
                elif block.name == "solution":
                    label = block.argument.strip()
                    written.append(written_cell(label, block.body,
                                                points.get(label, WRITTEN_POINTS)))
                elif not in_solution:
                    kept += block.lines
            _meta(cell)
            cell.source = "\n".join(kept).strip()
            if started or not exercises_only:
                cells += ([cell] if cell.source else []) + written
            continue
        _meta(cell)
        if is_check_cell(cell):
            meta = nbgrader(cell)
            cell.source = check_marker(meta["grade_id"], meta["points"]) + cell.source
            cells.append(cell)
        elif is_answer_cell(cell):
            cells.append(cell)
        elif in_solution:  # the reference's own code around the answer: the student's work
            if "remove-cell" not in tags(cell):
                cells.append(nbformat.v4.new_code_cell(PLACEHOLDER))
        elif SOLUTION_CHECK_TAG in tags(cell):
            continue
        elif not exercises_only or SETUP_TAG in tags(cell) or started:
            cell.metadata.pop("nbgrader", None)
            cells.append(cell)
    notebook = copy.deepcopy(chapter.notebook)
    notebook.cells = cells
    notebook.metadata.pop("jupytext", None)
    notebook.metadata["kernelspec"] = dict(KERNELSPEC)
    notebook.metadata["vicourse"] = {"chapter": chapter.name}
    notebook.nbformat, notebook.nbformat_minor = 4, 5
    for cell in notebook.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    nbformat.validator.normalize(notebook)
    nbformat.validate(notebook)
    return notebook


def write_course(chapters: Iterable[Path], root: Path, *, exercises_only: bool = False,
                 cell_seconds: int = 300) -> list[Path]:
    """Write ``root/nbgrader_config.py`` and ``root/source/<chapter>/<chapter>.ipynb``."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "nbgrader_config.py").write_text(CONFIG.format(timeout=int(cell_seconds)),
                                            encoding="utf-8")
    written = []
    for path in chapters:
        chapter = read_chapter(path)
        if not chapter.exercises:
            continue
        notebook = course_notebook(chapter, exercises_only=exercises_only)
        target = root / "source" / chapter.name / f"{chapter.name}.ipynb"
        target.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(notebook, target)
        written.append(target)
        manual = [nbgrader(c)["points"] for c in notebook.cells
                  if c.cell_type == "markdown" and nbgrader(c).get("grade")]
        auto = sum(e.points for e in chapter.exercises)
        print(f"wrote {target} (assignment {chapter.name}: {auto:g} autograded points, "
              f"{len(manual)} written answers worth {sum(manual):g} points)")
    return written
