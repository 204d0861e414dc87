"""Grading a class that tries everything: every submission is graded, whatever it does.

One run grades honest, crashing, looping, sleeping, flooding, memory-hungry and snooping
submissions of the toy chapter of tests/test_instructor.py, with short limits, and the score
of each is asserted; the instructor's files and the other submissions must come out unchanged.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import socket
import threading
from pathlib import Path

import nbformat
import pytest
import yaml
from test_instructor import TOY

from vicourse.course.exercises import is_answer_cell, read_chapter
from vicourse.course.instructor import (
    _progress,
    answers,
    fill_in,
    find_submissions,
    grade,
    main,
    student_id,
    student_notebook,
)
from vicourse.course.sandbox import Limits, bwrap_works

# A chapter whose exercise has a reference answer in vicourse (log_mean_exp), named in the
# answer cell's metadata: the grader withholds it from the student's kernel.
TOYREF = """---
jupytext:
  formats: ipynb,md:myst
kernelspec:
  display_name: Python 3
  language: python
  name: python3
---

(chap-toyref)=
# Toy with a reference

```{code-cell} ipython3
:tags: [exercise-setup]

import torch
```

## Exercises

+++ {"minutes": 5}

```{exercise} Log-mean-exp
:label: ex-toyref-lme

Write `my_log_mean_exp(log_w)`, the log of the mean of exp(log_w) over dimension 0.
```

````{solution-start} ex-toyref-lme
:class: dropdown
````

```{code-cell} ipython3
---
mistake:
  replace: " - math.log(log_w.shape[0])"
  with: ""
nbgrader:
  grade: false
  grade_id: ex-toyref-lme-answer
  locked: false
  schema_version: 3
  solution: true
  task: false
reference: [vicourse.objectives.weights.log_mean_exp]
---
import math


def my_log_mean_exp(log_w):
    \"\"\"log mean exp over dim 0: (K, B) -> (B,).\"\"\"
    ### BEGIN SOLUTION
    return torch.logsumexp(log_w, 0) - math.log(log_w.shape[0])
    ### END SOLUTION
```

````{solution-end}
````

```{code-cell} ipython3
---
nbgrader:
  grade: true
  grade_id: ex-toyref-lme-shape
  locked: true
  points: 1
  schema_version: 3
  solution: false
  task: false
tags: [remove-cell]
---
from vicourse.course.checks import call_answer, check_close, check_shape
from vicourse.objectives.weights import log_mean_exp

_log_w = 3 * torch.randn(50, 4, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
_what = "my_log_mean_exp on log weights of shape (50, 4)"
check_shape(call_answer(my_log_mean_exp, _log_w, what=_what), (4,), what=_what)
```

```{code-cell} ipython3
---
nbgrader:
  grade: true
  grade_id: ex-toyref-lme-values
  locked: true
  points: 2
  schema_version: 3
  solution: false
  task: false
tags: [remove-cell]
---
check_close(call_answer(my_log_mean_exp, _log_w, what=_what), log_mean_exp(_log_w, dim=0),
            what=_what, hint="the mean, not the sum")
### BEGIN HIDDEN TESTS
_log_w = torch.randn(7, 3, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
check_close(call_answer(my_log_mean_exp, _log_w, what="hidden"), log_mean_exp(_log_w, dim=0),
            what="my_log_mean_exp on log weights of shape (7, 3)")
### END HIDDEN TESTS
```
"""

LIMITS = Limits(cell_seconds=10, notebook_seconds=30, memory_mb=1024, output_kb=64)
CORRECT = "def double(x):\n    return 2 * x"
SANDBOXED = bwrap_works()


@pytest.fixture(scope="module")
def course(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("course")
    (root / "book").mkdir()
    (root / "_toc.yml").write_text(yaml.safe_dump({"format": "jb-book", "root": "book/toy"}))
    (root / "book" / "toy.md").write_text(TOY, encoding="utf-8")
    (root / "book" / "toyref.md").write_text(TOYREF, encoding="utf-8")
    return root


def submission(chapter, answer: str, extra_cells: tuple[str, ...] = (), **metadata):
    notebook = fill_in(student_notebook(chapter), {"ex-toy-double-answer": answer})
    at = next(i for i, c in enumerate(notebook.cells) if is_answer_cell(c)) + 1
    notebook.cells[at:at] = [nbformat.v4.new_code_cell(code) for code in extra_cells]
    notebook.metadata.update(metadata)
    return notebook


def fingerprint(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def graded(course: Path, tmp_path_factory):
    """Grade the class once; the tests below read the outcome."""
    chapter = read_chapter(course / "book" / "toy.md")
    inbox = tmp_path_factory.mktemp("submitted")
    out = tmp_path_factory.mktemp("grades")
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    accepted = []
    threading.Thread(target=lambda: accepted.append(listener.accept()), daemon=True).start()
    chapter_file = course / "book" / "toy.md"
    other = inbox / "zoe.ipynb"
    snoop = f"""
import os, socket
for label, attempt in [
    ("chapter", lambda: open({str(chapter_file)!r}).read()),
    ("write", lambda: open({str(course / 'pwned.txt')!r}, "w").write("x")),
    ("delete", lambda: os.remove({str(other)!r})),
    ("network", lambda: socket.create_connection(("127.0.0.1", {port}), timeout=2)),
]:
    try:
        attempt()
        print(label, "REACHED")
    except Exception as error:
        print(label, "blocked:", type(error).__name__)
print("secret" if "VICOURSE_GRADER_SECRET" in os.environ else "no grader variables")
"""
    wrong_chapter = submission(chapter, CORRECT)
    wrong_chapter.metadata["vicourse"] = {"chapter": "not_this_one"}
    as_markdown = submission(chapter, CORRECT)
    for cell in as_markdown.cells:
        if cell.metadata.get("nbgrader", {}).get("grade"):
            cell.cell_type = "markdown"
            cell.pop("outputs", None), cell.pop("execution_count", None)
    bad_kernel = submission(chapter, CORRECT, kernelspec={"name": "no-such-kernel",
                                                          "display_name": "x", "language": "x"})
    # Forged progress records (a "done" with a passing output for every cell), then the
    # kernel ends before the checks run: the worker's records are out of the kernel's reach.
    forge = """
import json, os
forged = {"event": "done", "outputs": [{"output_type": "stream", "name": "stdout",
                                        "text": "passed"}]}
for path in ["progress.jsonl", "../progress.jsonl", "../../progress.jsonl"]:
    try:
        with open(path, "a") as file:
            for cell in range(40):
                file.write(json.dumps({**forged, "cell": cell}) + "\\n")
            file.write("{not json\\n")
    except OSError:
        pass
os._exit(0)
"""
    peek = """
import glob
found = []
for pattern in ["*.ipynb", "../*.ipynb", "../../*.ipynb", "../submission.ipynb", "../job.json",
                "../**/*.ipynb", "/tmp/**/*.ipynb"]:
    for path in glob.glob(pattern, recursive=True):
        try:
            if "HIDDEN" in open(path).read() or "double(-5)" in open(path).read():
                found.append(path)
        except OSError:
            pass
print("hidden tests", "FOUND at " + repr(found) if found else "not found")
"""
    wrong = "def double(x):\n    return x + 1"  # double(2) is an int: 1 point of 3
    # The check helpers patched so that every comparison passes, in the kernel.
    patch_checks = """
import vicourse.course.checks as checks
passing = lambda *args, **kwargs: print("✓ patched")
checks.check_that = checks.check_close = checks.check_shape = passing
checks.CheckFailed = type("Harmless", (Exception,), {})
"""
    # IPython skips the checks: a transformer replaces each check cell by a passing print.
    skip_checks = """
ip = get_ipython()
def skip(lines):
    if lines and lines[0].startswith("# Autograded check"):
        return [lines[0], "print('✓ skipped')\\n"]
    return lines
ip.input_transformers_cleanup.append(skip)
ip.events.register("pre_run_cell", lambda info: None)
"""
    # The reference answer, imported (or read, or unpickled from its compiled copy).
    take_reference = """
import glob, importlib.util, marshal, math, types
import vicourse.objectives.weights as weights
routes = {}
def imported(log_w):
    return weights.log_mean_exp(log_w, 0)
def compiled(log_w):
    pyc = glob.glob(weights.__file__.replace("weights.py", "__pycache__/weights.*.pyc"))[0]
    module = types.ModuleType("w")
    exec(marshal.loads(open(pyc, "rb").read()[16:]), module.__dict__)
    return module.log_mean_exp(log_w, 0)
def source(log_w):
    module = types.ModuleType("w")
    exec(open(weights.__file__).read(), module.__dict__)
    return module.log_mean_exp(log_w, 0)
my_log_mean_exp = imported
for route in (imported, compiled, source):
    try:
        route(torch.zeros(2, 1))
        routes[route.__name__] = "REACHED"
        my_log_mean_exp = route
    except Exception as error:
        routes[route.__name__] = "blocked: " + type(error).__name__
print("reference routes", routes)
"""
    # A wrong answer, with the reference patched in the kernel to agree with it.
    patch_reference = """
import torch
import vicourse.objectives.weights as weights
def my_log_mean_exp(log_w):
    return torch.logsumexp(log_w, 0)
weights.log_mean_exp = lambda log_w, dim=0: torch.logsumexp(log_w, dim)
"""
    toyref = read_chapter(course / "book" / "toyref.md")
    toyref_student = student_notebook(toyref)
    loop = ("def double(x):\n    while True:\n        try:\n            pass\n"
            "        except BaseException:\n            pass")
    notebooks = {
        "alice": submission(chapter, CORRECT),
        "ben": fill_in(student_notebook(chapter), answers(chapter, mistaken=True)),
        "carl": submission(chapter, "import os\nos._exit(0)"),
        "dora": submission(chapter, CORRECT + "\nimport sys\nsys.exit(3)"),
        "eve": submission(chapter, "def double(x):\n    raise RuntimeError('no')"),
        "finn": submission(chapter, loop),
        "gus": submission(chapter, CORRECT, ("import time\ntime.sleep(4)",) * 9),
        "hal": submission(chapter, CORRECT + "\nfor i in range(200_000):\n    print('x' * 80)"),
        "ivy": submission(chapter, "big = bytearray(3 * 2**30)\n" + CORRECT),
        "jon": submission(chapter, CORRECT, (snoop,)),
        "kim": bad_kernel,
        "lea": as_markdown,
        "max": wrong_chapter,
        "nat": submission(chapter, "def double(x):\n    return 0", (forge,)),
        "olga": submission(chapter, CORRECT, (peek,)),
        "pat": submission(chapter, wrong, (patch_checks,)),
        "quin": submission(chapter, wrong, (skip_checks,)),
        "ria": fill_in(toyref_student, {"ex-toyref-lme-answer": take_reference}),
        "sam": fill_in(toyref_student, {"ex-toyref-lme-answer": patch_reference}),
        "tia": fill_in(toyref_student, answers(toyref)),
        "zoe": submission(chapter, CORRECT),
    }
    for name, notebook in notebooks.items():
        nbformat.write(notebook, inbox / f"{name}.ipynb")
    before_course, before_inbox = fingerprint(course), fingerprint(inbox)
    os.environ["VICOURSE_GRADER_SECRET"] = "do not leak"
    try:
        results = grade([inbox], out, [chapter_file, course / "book" / "toyref.md"],
                        exercises_only=True, limits=LIMITS, jobs=2)
    finally:
        del os.environ["VICOURSE_GRADER_SECRET"]
        listener.close()
    scores = {}
    with open(out / "scores.csv", encoding="utf-8") as file:
        for row in csv.DictReader(file):
            scores[row["student"]] = float(row["total"])
    return {"results": results, "scores": scores, "out": out, "accepted": accepted,
            "course_changed": fingerprint(course) != before_course,
            "inbox_changed": fingerprint(inbox) != before_inbox}


def feedback(graded, student: str) -> str:
    return "\n".join(r.feedback for r in graded["results"] if r.student == student)


def executed_text(graded, student: str) -> str:
    path = graded["out"] / "notebooks" / f"{student}.ipynb"
    return path.read_text(encoding="utf-8")


EXPECTED = {"alice": 3, "ben": 1, "carl": 0, "dora": 3, "eve": 0, "finn": 0, "gus": 0,
            "hal": 3, "ivy": 0, "jon": 3, "kim": 3, "lea": 3, "max": 3, "nat": 0, "olga": 3,
            "pat": 1, "quin": 0, "ria": 0 if SANDBOXED else 3, "sam": 1, "tia": 3, "zoe": 3}


def test_every_submission_is_graded_with_the_expected_score(graded):
    assert graded["scores"] == EXPECTED


def test_reasons_a_student_can_act_on(graded):
    assert "the kernel died in cell" in feedback(graded, "carl")
    assert "ran longer than 10 s" in feedback(graded, "finn") or \
        "ran longer than 30 s" in feedback(graded, "finn")
    assert "the notebook ran longer than 30 s in all" in feedback(graded, "gus")
    assert "RuntimeError: no" in feedback(graded, "eve")
    assert "MemoryError" in executed_text(graded, "ivy")  # the cap hit the answer cell


def test_output_floods_are_cut(graded):
    assert len(executed_text(graded, "hal")) < 400_000
    assert "printed more than 64 kB" in executed_text(graded, "hal")


@pytest.mark.skipif(not SANDBOXED, reason="bubblewrap is not available here")
def test_student_code_is_contained(graded):
    printed = executed_text(graded, "jon")
    for label in ("chapter", "write", "delete", "network"):
        assert f"{label} blocked" in printed, printed[-2000:]
    assert "no grader variables" in printed
    assert not graded["accepted"], "a sandboxed kernel reached a server on the host"
    assert not graded["course_changed"] and not graded["inbox_changed"]


def test_student_ids_come_from_the_path_and_never_merge(tmp_path: Path, course: Path):
    names = {"gaussian_kl", "toy"}
    assert student_id(Path("alice/toy/toy.ipynb"), "submitted", names) == "alice"  # nbgrader
    assert student_id(Path("alice/toy.ipynb"), "export", names) == "alice"  # LMS export
    assert student_id(Path("toy.ipynb"), "alice", names) == "alice"  # a folder per student
    assert student_id(Path("sec1/alice.ipynb"), "x", names) == "sec1/alice"
    assert student_id(Path("sec1__alice.ipynb"), "x", names) == "sec1__alice"
    chapter = read_chapter(course / "book" / "toy.md")
    for folder in ("a", "b", "c"):
        (tmp_path / folder).mkdir()
        nbformat.write(submission(chapter, CORRECT), tmp_path / folder / "toy.ipynb")
    found = find_submissions([tmp_path / "a", tmp_path / "b", tmp_path / "c"], [chapter])
    assert sorted(s.student for s in found) == ["a", "b", "c"]
    nbformat.write(submission(chapter, CORRECT), tmp_path / "a" / "copy.ipynb")
    (tmp_path / "d").mkdir()
    nbformat.write(submission(chapter, CORRECT), tmp_path / "d" / "a.ipynb")
    with pytest.raises(ValueError, match=r"two submissions of toy for the student 'a'"):
        find_submissions([tmp_path / "a", tmp_path / "d"], [chapter])


@pytest.mark.parametrize("option, value", [("--cell-seconds", "0"), ("--notebook-seconds", "-5"),
                                           ("--memory-mb", "0"), ("--jobs", "0")])
def test_limits_must_be_positive(course: Path, option: str, value: str, capsys):
    with pytest.raises(SystemExit):
        main(["--root", str(course), "grade", str(course), "--out", str(course / "o"),
              option, value])
    assert option in capsys.readouterr().err


def test_forged_progress_records_change_nothing(graded):
    assert "the kernel died in cell" in feedback(graded, "nat")
    assert all(r.points == 0 for r in graded["results"] if r.student == "nat")


@pytest.mark.skipif(not SANDBOXED, reason="bubblewrap is not available here")
def test_the_hidden_tests_are_out_of_the_kernels_reach(graded):
    assert "hidden tests not found" in executed_text(graded, "olga")


def test_progress_lines_that_are_not_records_are_skipped(tmp_path: Path):
    progress = tmp_path / "progress.jsonl"
    progress.write_text("\n".join([
        json.dumps({"event": "start", "cell": 0}),
        json.dumps({"event": "done", "cell": 0, "outputs": []}),
        "{not json", "[1, 2]", json.dumps({"event": "done", "cell": 99, "outputs": []}),
        json.dumps({"event": "done", "cell": 1, "outputs": "x"}), '{"event": "done", "cel',
    ]), encoding="utf-8")
    assert [r["event"] for r in _progress(progress, cells=2)] == ["start", "done"]


def test_patched_check_helpers_change_no_verdict(graded):
    assert "✗ double(3)" in feedback(graded, "pat")  # scored as the honest wrong answer
    assert "✓ patched" not in executed_text(graded, "pat").split("Autograded check")[-1]


def test_check_cells_skipped_by_ipython_score_zero(graded):
    assert "did not get this far in your notebook" in feedback(graded, "quin")


@pytest.mark.skipif(not SANDBOXED, reason="bubblewrap is not available here")
def test_the_reference_answer_is_withheld(graded):
    printed = executed_text(graded, "ria")
    for route in ("imported", "compiled", "source"):
        assert f"'{route}': 'blocked: " in printed, printed[-3000:]
    assert "is the reference answer of an exercise" in feedback(graded, "ria")


def test_a_patched_reference_changes_no_verdict(graded):
    assert "the mean, not the sum" in feedback(graded, "sam")
