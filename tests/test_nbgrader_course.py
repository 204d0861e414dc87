"""The nbgrader course directory round trip with the real nbgrader CLI, offline.

``nbgrader-course`` writes the course; ``nbgrader generate_assignment`` releases it; two
students fill the released notebook (one with the reference answers, one with the typical
mistake); ``nbgrader autograde`` grades them; the scores are read from nbgrader's gradebook;
``nbgrader generate_feedback`` writes the returned notebooks.
"""

from __future__ import annotations

import re
import subprocess
import sys
import warnings
from pathlib import Path

import matplotlib
import nbformat
import pytest
import torch

from vicourse.course.exercises import (
    HIDDEN_BEGIN,
    SETUP_TAG,
    SOLUTION_BEGIN,
    SOLUTION_CHECK_TAG,
    SOLUTION_END,
    is_answer_cell,
    is_check_cell,
    markdown_blocks,
    nbgrader,
    read_chapter,
    tags,
)
from vicourse.course.instructor import answers, fill_in, main

pytest.importorskip("nbgrader")
from nbgrader.api import Gradebook  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CHAPTER = "gaussian_kl"


def nbgrader_cli(course: Path, *args: str) -> None:
    run = subprocess.run([sys.executable, "-m", "nbgrader", *args], cwd=course,
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, f"nbgrader {' '.join(args)} failed:\n{run.stdout}\n{run.stderr}"


def failing_checks(chapter, code: dict[str, str]) -> set[str]:
    """The check cells that raise after the setup cells and the given answers (an oracle that
    runs the chapter's own cells in this process, without nbgrader; the global state they
    change, torch's default dtype and random state, matplotlib's settings and the warning
    filters, is put back afterwards so that later tests do not inherit it)."""
    dtype, rng_state = torch.get_default_dtype(), torch.get_rng_state()
    try:
        with matplotlib.rc_context(), warnings.catch_warnings():
            return _failing_checks(chapter, code)
    finally:
        torch.set_default_dtype(dtype)
        torch.set_rng_state(rng_state)


def _failing_checks(chapter, code: dict[str, str]) -> set[str]:
    namespace: dict = {}
    failed = set()
    for cell in chapter.notebook.cells:
        if cell.cell_type != "code":
            continue
        if SETUP_TAG in tags(cell):
            exec(cell.source, namespace)
        elif is_answer_cell(cell):
            exec(code[nbgrader(cell)["grade_id"]], namespace)
        elif is_check_cell(cell):
            try:
                exec(cell.source, namespace)
            except Exception:
                failed.add(nbgrader(cell)["grade_id"])
    return failed


def solution_texts(chapter) -> list[str]:
    """Lines of every solution: code between the solution markers, written solution prose,
    book-only solution checks."""
    texts = []
    for cell in chapter.notebook.cells:
        if is_answer_cell(cell):
            body = cell.source.split(SOLUTION_BEGIN)[1].split(SOLUTION_END)[0]
            texts += [line.strip() for line in body.splitlines()]
        elif SOLUTION_CHECK_TAG in tags(cell):
            texts += [line.strip() for line in cell.source.splitlines()]
        elif cell.cell_type == "markdown":
            for block in markdown_blocks(cell.source):
                if block.name == "solution":
                    texts += [line.strip() for line in block.body]
    return [text for text in texts if len(text) > 12]


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    """The course, released, with alice (reference answers) and bob (the typical mistake)
    handed in, autograded and given feedback."""
    course = tmp_path_factory.mktemp("course")
    assert main(["nbgrader-course", str(course), CHAPTER, "--exercises-only"]) == 0
    nbgrader_cli(course, "generate_assignment", CHAPTER)
    release = course / "release" / CHAPTER / f"{CHAPTER}.ipynb"
    released = nbformat.read(release, as_version=4)
    chapter = read_chapter(ROOT / "book" / f"{CHAPTER}.md")
    for student, mistaken in (("alice", False), ("bob", True)):
        target = course / "submitted" / student / CHAPTER / f"{CHAPTER}.ipynb"
        target.parent.mkdir(parents=True)
        notebook = fill_in(released, answers(chapter, mistaken=mistaken))
        for cell in notebook.cells:  # alice writes her written answers, bob leaves them
            if cell.cell_type == "markdown" and nbgrader(cell) and not mistaken:
                cell.source = "My answer: expand both log-densities and take expectations."
        nbformat.write(notebook, target)
    nbgrader_cli(course, "autograde", CHAPTER)
    nbgrader_cli(course, "generate_feedback", CHAPTER)
    return course, chapter, released


def test_release_holds_no_solution_and_no_book_only_check(course):
    _, chapter, released = course
    text = "\n".join(cell.source for cell in released.cells)
    leaked = [line for line in solution_texts(chapter) if line in text]
    assert not leaked, f"the released notebook shows solution text: {leaked[:3]}"
    assert HIDDEN_BEGIN not in text
    assert "{solution" not in text and "solution-check" not in text
    written = [c for c in released.cells if c.cell_type == "markdown" and nbgrader(c)]
    assert written and all(c.source.strip() == "YOUR ANSWER HERE" for c in written)


def test_autograde_scores_correct_full_and_wrong_less_the_failing_checks(course):
    path, chapter, _ = course
    points = {grade_id: p for e in chapter.exercises for grade_id, p in e.checks.items()}
    wrong = failing_checks(chapter, answers(chapter, mistaken=True))
    assert wrong and not failing_checks(chapter, answers(chapter))
    with Gradebook(f"sqlite:///{path / 'gradebook.db'}") as gradebook:
        alice = gradebook.find_submission(CHAPTER, "alice")
        bob = gradebook.find_submission(CHAPTER, "bob")
        assert alice.max_code_score == pytest.approx(sum(points.values()))
        assert alice.code_score == pytest.approx(sum(points.values()))
        assert bob.code_score == pytest.approx(sum(points.values())
                                               - sum(points[g] for g in wrong))
        for grade_id in points:
            grade = gradebook.find_grade(grade_id, CHAPTER, CHAPTER, "bob")
            assert grade.score == pytest.approx(0 if grade_id in wrong else points[grade_id])


def test_written_answers_are_manual_grade_cells_with_points(course):
    """Written answers wait for the instructor in formgrader; unanswered ones score 0."""
    path, chapter, released = course
    written = {nbgrader(c)["grade_id"] for c in released.cells if c.cell_type == "markdown"
               and nbgrader(c)}
    labels = {e.label for e in chapter.exercises if not e.checks}
    assert written and {name.removesuffix("-written") for name in written} <= labels
    with Gradebook(f"sqlite:///{path / 'gradebook.db'}") as gradebook:
        alice = gradebook.find_submission(CHAPTER, "alice")
        bob = gradebook.find_submission(CHAPTER, "bob")
        assert alice.max_written_score > 0 and alice.needs_manual_grade
        for name in written:
            mine = gradebook.find_grade(name, CHAPTER, CHAPTER, "alice")
            assert mine.max_score > 0 and mine.needs_manual_grade and mine.manual_score is None
            theirs = gradebook.find_grade(name, CHAPTER, CHAPTER, "bob")
            assert not theirs.needs_manual_grade and theirs.score == 0
        assert bob.written_score == 0


def hidden_names(chapter) -> set[str]:
    """Names that only the hidden tests use (``_shapes``): highlighted code shows them as
    ``>_shapes<`` in nbconvert's HTML."""
    names = set()
    for cell in chapter.notebook.cells:
        if is_check_cell(cell) and HIDDEN_BEGIN in cell.source:
            visible, hidden = cell.source.split(HIDDEN_BEGIN)
            names |= set(re.findall(r"\b_\w+", hidden)) - set(re.findall(r"\b_\w+", visible))
    return names


def test_feedback_has_the_scores_and_no_hidden_test(course):
    """nbgrader's default feedback keeps the hidden tests autograde restored; the course's
    configuration removes them (ClearHiddenTests); their check messages stay as feedback."""
    path, chapter, _ = course
    names = hidden_names(chapter)
    assert names
    points = sum(e.points for e in chapter.exercises)
    for student in ("alice", "bob"):
        html = (path / "feedback" / student / CHAPTER / f"{CHAPTER}.html").read_text()
        assert re.search(r"Score: [\d.]+ / [\d.]+", html)
        assert "HIDDEN TESTS" not in html
        shown = [name for name in names if f">{name}<" in html]
        assert not shown, f"{student}'s feedback shows hidden-test code: {shown}"
    with Gradebook(f"sqlite:///{path / 'gradebook.db'}") as gradebook:
        alice = gradebook.find_submission(CHAPTER, "alice")
        html = (path / "feedback" / "alice" / CHAPTER / f"{CHAPTER}.html").read_text()
        assert f"Score: {alice.score:.1f} / {alice.max_score:.1f}" in html
        assert alice.code_score == pytest.approx(points)
