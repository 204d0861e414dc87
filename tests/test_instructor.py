"""Student versions and autograding (vicourse.course.instructor), for every chapter with exercises.

For every chapter of ``_toc.yml`` with exercises (future chapters are picked up by themselves):

(a) the student version contains no solution: no line of an answer, of a solution dropdown or
    of a book-only solution check, no hidden test; the install cell and the checks stay;
(b) run unchanged, as a student would, every check fails with its report (expected, got, a
    hint) and no other cell breaks; the grade is 0;
(c) with the reference answers filled back in, every check passes and the grade is full;
(d) with each exercise's typical mistake (its ``mistake`` metadata), the exercise gets partial
    credit, and the failed check says what it expected without showing the answer.

(b)-(d) grade the three notebooks once per chapter with ``exercises_only=True``: the chapter's
``exercise-setup`` cells and its exercises, not the whole chapter, to keep CI fast. A toy
chapter tests the parts that real chapters do not exercise (tampered, deleted and fake checks,
hidden tests, convention errors).
"""

from __future__ import annotations

import copy
import csv
from pathlib import Path

import nbformat
import pytest
import yaml

from vicourse.course import exercises
from vicourse.course.exercises import is_answer_cell, is_check_cell, nbgrader, read_chapter
from vicourse.course.instructor import (
    answers,
    colab_url,
    fill_in,
    grade,
    grade_notebook,
    main,
    student_notebook,
)

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = exercises.book_chapters(ROOT)
AUTOGRADED = [path for path in CHAPTERS if any(e.checks for e in read_chapter(path).exercises)]


def text_of(notebook) -> str:
    return "\n".join(cell.source for cell in notebook.cells)


def solution_lines(chapter) -> tuple[set[str], str]:
    """Lines only a solution has, and the text of everything else in the chapter source."""
    hidden, shown = [], []
    in_solution = False
    for cell in chapter.notebook.cells:
        if cell.cell_type == "markdown":
            for block in exercises.markdown_blocks(cell.source):
                if block.name in ("solution-start", "solution-end"):
                    in_solution = block.name == "solution-start"
                elif block.name == "solution" or in_solution:
                    hidden += block.body
                else:
                    shown += block.lines
        elif is_answer_cell(cell):
            region = cell.source.split("### BEGIN SOLUTION")[1].split("### END SOLUTION")[0]
            hidden += region.splitlines()[1:]
            shown.append(cell.source.replace(region, ""))
        elif in_solution or exercises.SOLUTION_CHECK_TAG in exercises.tags(cell):
            hidden += cell.source.splitlines()
        else:
            shown.append(cell.source)
    public = "\n".join(shown)
    secret = {line.strip() for line in hidden if len(line.strip()) >= 12}
    return {line for line in secret if line not in public}, public


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_chapter_follows_the_exercise_convention(path: Path):
    errors = exercises.convention_errors(read_chapter(path))
    assert not errors, "\n".join(errors)


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_student_version_contains_no_solution(path: Path):  # (a)
    chapter = read_chapter(path)
    student = student_notebook(chapter)
    text = text_of(student)
    secret, _ = solution_lines(chapter)
    assert secret, "the oracle found no solution lines: is the chapter parsed?"
    leaked = sorted(line for line in secret if line in text)
    assert not leaked, f"solution lines in the student version of {path.name}: {leaked}"
    for marker in ("{solution", "BEGIN SOLUTION", "HIDDEN TESTS"):
        assert marker not in text, marker
    assert not [cell for cell in student.cells if "mistake" in cell.metadata]
    first_code = next(cell for cell in student.cells if cell.cell_type == "code")
    assert '"google.colab" in sys.modules' in first_code.source  # students install vicourse
    checks = [cell for cell in student.cells if is_check_cell(cell)]
    assert len(checks) == sum(len(e.checks) for e in chapter.exercises)
    assert all(c.source.startswith(f"# Autograded check {nbgrader(c)['grade_id']} (")
               for c in checks)
    answer_cells = [cell for cell in student.cells if is_answer_cell(cell)]
    assert all("raise NotImplementedError()" in cell.source for cell in answer_cells)
    assert student.metadata["vicourse"]["chapter"] == path.stem
    assert "jupytext" not in student.metadata  # no pairing in a student's copy
    nbformat.validate(student)


@pytest.fixture(scope="module", params=AUTOGRADED, ids=lambda p: p.stem)
def graded(request, tmp_path_factory):
    """Grade three submissions of a chapter: unchanged, reference answers, typical mistakes."""
    chapter = read_chapter(request.param)
    student = student_notebook(chapter)
    folder = tmp_path_factory.mktemp(chapter.name)
    (folder / "in").mkdir()
    for name, notebook in {
        "unchanged": student,
        "reference": fill_in(student, answers(chapter)),
        "mistaken": fill_in(student, answers(chapter, mistaken=True)),
    }.items():
        nbformat.write(notebook, folder / "in" / f"{name}.ipynb")
    results = grade([folder / "in"], folder / "out", [chapter.path], exercises_only=True, jobs=2)
    by_student = {name: [r for r in results if r.student == name]
                  for name in ("unchanged", "reference", "mistaken")}
    executed = {name: nbformat.read(folder / "out" / "notebooks" / f"{name}.ipynb", 4)
                for name in by_student}
    return chapter, by_student, executed, folder / "out"


def errors_in(notebook) -> list[tuple[int, str]]:
    return [(i, output.ename) for i, cell in enumerate(notebook.cells) if cell.cell_type == "code"
            for output in cell.outputs if output.output_type == "error"]


def test_unchanged_notebook_fails_every_check_with_a_report(graded):  # (b)
    chapter, results, executed, _ = graded
    assert results["unchanged"] and all(r.points == 0 for r in results["unchanged"])
    for r in results["unchanged"]:
        assert r.feedback.startswith("✗ ") and "\n  expected: " in r.feedback, r.feedback
    notebook = executed["unchanged"]
    for index, ename in errors_in(notebook):
        cell = notebook.cells[index]
        assert is_check_cell(cell) and ename == "CheckFailed" or (
            is_answer_cell(cell) and ename == "NotImplementedError"
        ), f"cell {index} of the student version broke ({ename}):\n{cell.source}"


def test_reference_answers_get_full_marks(graded):  # (c)
    chapter, results, executed, _ = graded
    for r in results["reference"]:
        assert r.points == r.max_points, f"{r.check}: {r.feedback}"
    assert not errors_in(executed["reference"])


def test_typical_mistake_gets_partial_credit_and_a_helpful_report(graded):  # (d)
    chapter, results, _, _ = graded
    secret, _ = solution_lines(chapter)
    for exercise in chapter.exercises:
        if not exercise.checks:
            continue
        mine = [r for r in results["mistaken"] if r.exercise == exercise.label]
        points = sum(r.points for r in mine)
        assert 0 < points < exercise.points, (exercise.label, points, exercise.points)
        for r in mine:
            if r.points < r.max_points:
                assert "\n  expected: " in r.feedback and "\n  got: " in r.feedback, r.feedback
                assert "\n  hint: " in r.feedback, f"{r.check} gives no hint:\n{r.feedback}"
                assert not [line for line in secret if line in r.feedback], r.feedback


def test_score_table_has_one_row_per_submission(graded):
    chapter, results, _, out = graded
    with open(out / "scores.csv", encoding="utf-8") as file:
        rows = {row["student"]: row for row in csv.DictReader(file)}
    total = sum(e.points for e in chapter.exercises)
    assert set(rows) == {"unchanged", "reference", "mistaken"}
    assert float(rows["reference"]["max"]) == float(rows["reference"]["total"]) == total
    assert float(rows["unchanged"]["total"]) == 0
    assert 0 < float(rows["mistaken"]["total"]) < total
    with open(out / "feedback.csv", encoding="utf-8") as file:
        assert len(list(csv.DictReader(file))) == 3 * sum(len(e.checks) for e in chapter.exercises)


# --------------------------------------------------------------------------- a toy chapter

ANSWER_META = """---
mistake:
  replace: return 2 * x
  with: return 2 * x + 1
nbgrader:
  grade: false
  grade_id: ex-toy-double-answer
  locked: false
  schema_version: 3
  solution: true
  task: false
---"""


def check_meta(name: str, points: int) -> str:
    return f"""---
nbgrader:
  grade: true
  grade_id: ex-toy-double-{name}
  locked: true
  points: {points}
  schema_version: 3
  solution: false
  task: false
tags: [remove-cell]
---"""


TOY = f"""---
jupytext:
  formats: ipynb,md:myst
kernelspec:
  display_name: Python 3
  language: python
  name: python3
---

(chap-toy)=
# Toy

```{{code-cell}} ipython3
:tags: [remove-cell]

import sys  # the install cell: "google.colab" in sys.modules
```

```{{code-cell}} ipython3
:tags: [exercise-setup]

import math
```

## Exercises

+++ {{"minutes": 5}}

```{{exercise}} Double it
:label: ex-toy-double

Write `double(x)`.
```

````{{solution-start}} ex-toy-double
:class: dropdown
````

```{{code-cell}} ipython3
{ANSWER_META}
def double(x):
    \"\"\"Twice x.\"\"\"
    ### BEGIN SOLUTION
    return 2 * x
    ### END SOLUTION
```

```{{code-cell}} ipython3
print("exploring the secret answer", double(21))
```

Doubling adds a number to itself, the secret explanation says.

````{{solution-end}}
````

```{{code-cell}} ipython3
{check_meta("type", 1)}
from vicourse.course.checks import call_answer, check_that

_got = call_answer(double, 2, what="double(2)")
check_that(isinstance(_got, int), what="double(2)", expected="an int", got=repr(_got))
```

```{{code-cell}} ipython3
{check_meta("value", 2)}
_got = call_answer(double, 3, what="double(3)")
check_that(_got == 6, what="double(3)", expected="6", got=repr(_got), hint="twice")
### BEGIN HIDDEN TESTS
_got = call_answer(double, -5, what="double(-5)")
check_that(_got == -10, what="double(-5)", expected="-10", got=repr(_got), hint="twice")
### END HIDDEN TESTS
```

+++ {{"minutes": 10}}

```{{exercise}} Prove it
:label: ex-toy-proof

Show that 2 + 2 = 4.
```

```{{solution}} ex-toy-proof
:class: dropdown

Count on your fingers, the secret proof says.
```

```{{code-cell}} ipython3
:tags: [remove-cell, solution-check]

assert 2 + 2 == 4  # the secret check of the proof
```
"""


@pytest.fixture
def toy(tmp_path: Path) -> Path:
    (tmp_path / "book").mkdir()
    (tmp_path / "_toc.yml").write_text(yaml.safe_dump({"format": "jb-book", "root": "book/toy"}))
    path = tmp_path / "book" / "toy.md"
    path.write_text(TOY, encoding="utf-8")
    return path


def test_toy_student_version(toy: Path):
    chapter = read_chapter(toy)
    assert [(e.label, e.minutes, e.points) for e in chapter.exercises] == [
        ("ex-toy-double", 5, 3.0), ("ex-toy-proof", 10, 0.0)
    ]
    student = student_notebook(chapter)
    text = text_of(student)
    assert "secret" not in text and "return 2 * x" not in text and "double(-5)" not in text
    sources = [cell.source for cell in student.cells]
    assert "### Exercise: Double it\n\n*`ex-toy-double` · about 5 minutes · autograded, 3 points*" \
        "\n\nWrite `double(x)`." in sources
    assert "# YOUR CODE HERE (this part of the exercise is not autograded)\n" in sources
    assert sources.count("YOUR ANSWER HERE") == 2  # the explanation, and the proof
    answer = next(cell for cell in student.cells if is_answer_cell(cell))
    assert answer.source == ('def double(x):\n    """Twice x."""\n    # YOUR CODE HERE\n'
                             "    raise NotImplementedError()")
    assert "import math" in sources  # the exercise setup stays


def test_grading_restores_checks_runs_hidden_tests_and_ignores_fake_checks(toy: Path):
    chapter = read_chapter(toy)
    student = student_notebook(chapter)
    # An answer that hard-codes the visible check, in a notebook whose checks were tampered with.
    submission = fill_in(student, {"ex-toy-double-answer": "def double(x):\n    return 6"})
    checks = [i for i, cell in enumerate(submission.cells) if is_check_cell(cell)]
    value = submission.cells[checks[1]]
    value.metadata.pop("nbgrader")  # the metadata is lost, the first line still names it
    passing = "check_that(True, what='', expected='', got='')"
    value.source = value.source.splitlines()[0] + "\n" + passing
    fake = copy.deepcopy(value)
    fake.metadata["nbgrader"] = {**nbgrader(submission.cells[checks[0]]),
                                 "grade_id": "ex-toy-double-fake", "points": 10}
    fake.source = "print('free points')"
    del submission.cells[checks[0]]  # the type check is deleted
    submission.cells.append(fake)

    results, executed = grade_notebook(submission, chapter, "mallory")
    assert [(r.check, r.points, r.max_points) for r in results] == [
        ("ex-toy-double-type", 1.0, 1.0), ("ex-toy-double-value", 0.0, 2.0)
    ]
    assert "double(-5)" in results[1].feedback and "expected: -10" in results[1].feedback
    graded_ids = [nbgrader(cell)["grade_id"] for cell in executed.cells if is_check_cell(cell)]
    assert graded_ids == ["ex-toy-double-type", "ex-toy-double-value"]  # restored, in order
    assert "free points" in text_of(executed)  # the fake cell runs, ungraded
    nbformat.validate(executed)  # cell ids unique again, although the fake cell was a copy


def test_convention_errors_say_how_to_fix(toy: Path):
    broken = (TOY.replace('+++ {"minutes": 5}\n\n', "")
              .replace("tags: [remove-cell]\n---\nfrom vicourse", "---\nfrom vicourse")
              .replace("grade_id: ex-toy-double-value", "grade_id: value")
              .replace("  replace: return 2 * x\n", "  replace: return 3 * x\n")
              .replace("tags: [remove-cell, solution-check]", "tags: [remove-cell]"))
    toy.write_text(broken, encoding="utf-8")
    errors = "\n".join(exercises.convention_errors(read_chapter(toy)))
    assert '+++ {"minutes": N}' in errors
    assert "tag check ex-toy-double-type remove-cell" in errors
    assert "grade_id 'value' must start with the label of its exercise: ex-toy-double-" in errors
    assert "mistake.replace must occur exactly once" in errors
    assert "tag it solution-check" in errors
    with pytest.raises(ValueError, match="breaks the exercise convention"):
        student_notebook(toy)


def test_directives_are_found_with_any_fence():
    text = ("intro\n````{solution} ex-a\n:class: dropdown\n\n```python\ncode\n```\n````\n"
            ":::{exercise} Title\n:label: ex-b\nbody\n:::\n"
            "`````md\n````{solution} shown as code\n````\n`````\nend")
    blocks = list(exercises.markdown_blocks(text))
    assert [b.name for b in blocks] == ["", "solution", "exercise", ""]
    assert blocks[3].lines[1] == "````{solution} shown as code"  # inside a code block: text
    assert blocks[1].body == ["", "```python", "code", "```"]  # an inner fence does not close
    assert (blocks[2].argument, blocks[2].options, blocks[2].body) == (
        "Title", {"label": "ex-b"}, ["body"]
    )


def test_colab_links():
    prefix = "https://colab.research.google.com/github/me/course/blob"
    assert colab_url("https://github.com/me/course/tree/fall/week 1", "a.ipynb") == \
        f"{prefix}/fall/week 1/a.ipynb"
    assert colab_url("https://github.com/me/course", "a.ipynb") == f"{prefix}/main/a.ipynb"
    with pytest.raises(ValueError, match="OWNER/REPO"):
        colab_url("https://gitlab.com/me/course", "a.ipynb")


def test_command_line_grades_in_parallel(toy: Path, capsys):
    root = toy.parent.parent
    chapter = read_chapter(toy)
    student = student_notebook(chapter)
    (root / "in" / "ann").mkdir(parents=True)
    nbformat.write(fill_in(student, answers(chapter)), root / "in" / "ann" / "week1.ipynb")
    nbformat.write(fill_in(student, answers(chapter, mistaken=True)), root / "in" / "ben.ipynb")
    (root / "in" / "notes.ipynb").write_text("not a notebook", encoding="utf-8")
    assert main(["--root", str(root), "grade", str(root / "in"), "--out", str(root / "out"),
                 "--exercises-only", "--jobs", "2"]) == 0
    printed, complaints = capsys.readouterr()
    assert "skipped" in complaints and "notes.ipynb" in complaints
    assert "ann/week1        3/3" in printed
    assert "ben              1/3" in printed
    assert "ben · ex-toy-double-value · 0/2\n    ✗ double(3)\n      expected: 6" in printed
    assert "limits: 120 s per cell, 900 s per notebook" in printed
    assert (root / "out" / "notebooks" / "ann%2Fweek1.ipynb").exists()
    assert "1 of 3 points" in (root / "out" / "feedback" / "ben.md").read_text(encoding="utf-8")


def test_command_line_writes_student_versions_and_lists_exercises(toy: Path, capsys):
    root = toy.parent.parent
    assert main(["--root", str(root), "check"]) == 0
    main(["--root", str(root), "exercises"])
    assert "ex-toy-double" in capsys.readouterr().out
    out = root / "handout"
    main(["--root", str(root), "student", "--out", str(out),
          "--github", "https://github.com/me/course/tree/main/handout"])
    assert (out / "toy.ipynb").exists()
    readme = (out / "README.md").read_text(encoding="utf-8")
    assert "colab.research.google.com/github/me/course/blob/main/handout/toy.ipynb" in readme
