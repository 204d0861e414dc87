"""Student versions of the chapters, and autograding of the notebooks students hand in.

Two commands, run in the repository (or anywhere, when vicourse is installed editable)::

    python -m vicourse.course.instructor student [CHAPTER ...] --out DIR [--github FOLDER_URL]
    python -m vicourse.course.instructor grade SUBMISSION ... --out DIR [--exercises-only]
        [--jobs N]
    python -m vicourse.course.instructor nbgrader-course DIR [CHAPTER ...] [--exercises-only]

``student`` writes ``DIR/<chapter>.ipynb`` for the given chapters (default: every chapter of
``_toc.yml`` with exercises): answers replaced by ``raise NotImplementedError()`` (nbgrader's
``ClearSolutions``), hidden tests removed (``ClearHiddenTests``), solution dropdowns and
book-only solution checks removed, visible checks kept. ``grade`` puts the instructor's checks
(hidden tests included) back into each submitted notebook, executes it in a sandbox where
the check cells only record the answers, decides each check in a fresh process that never ran
student code (:mod:`vicourse.course.verdict`: a failed check is 0 points) and writes
``DIR/scores.csv``, ``DIR/feedback.csv`` and the executed notebooks. ``exercises`` prints the
table of exercises; ``nbgrader-course`` writes a course directory for the real nbgrader
(:mod:`vicourse.course.nbgrader_course`); ``check`` validates chapters against the exercise
convention.
"""

from __future__ import annotations

import argparse
import copy
import csv
import json
import multiprocessing
import os
import re
import signal
import subprocess
import sys
import tempfile
import urllib.parse
import uuid
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import nbformat
from nbformat import NotebookNode

from vicourse._checks import positive_count
from vicourse.course.exercises import (
    SETUP_TAG,
    SOLUTION_CHECK_TAG,
    Chapter,
    Exercise,
    book_chapters,
    convention_errors,
    find_root,
    is_answer_cell,
    is_check_cell,
    markdown_blocks,
    nbgrader,
    read_chapter,
    tags,
)
from vicourse.course.sandbox import (
    ANSWERS_FOLDER,
    JOB_FILE,
    PROGRESS_FILE,
    SUBMISSION_FILE,
    WORK_FOLDER,
    Limits,
    bwrap_works,
    sandbox_prefix,
)
from vicourse.course.verdict import collecting_source

PLACEHOLDER = "# YOUR CODE HERE (this part of the exercise is not autograded)\n"
ANSWER_TEXT = "YOUR ANSWER HERE"
# As nbgrader runs Python kernels: no history file; and no start-up warnings on the console.
KERNEL_ARGUMENTS = ["--HistoryManager.hist_file=:memory:", "--IPKernelApp.log_level=ERROR"]
_MARKER = re.compile(r"^# Autograded check (\S+) \(")


def _plural(points: float, unit: str = "point") -> str:
    return f"{points:g} {unit}" + ("" if points == 1 else "s")


def check_marker(grade_id: str, points: float) -> str:
    """The first line of a check cell in student and graded notebooks (it names the check)."""
    return f"# Autograded check {grade_id} ({_plural(points)}); the grader runs its own copy.\n"


def _exercise_heading(exercise: Exercise, body: list[str]) -> list[str]:
    facts = [f"`{exercise.label}`"]
    if exercise.minutes:
        facts.append(f"about {exercise.minutes} minutes")
    facts.append(f"autograded, {_plural(exercise.points)}" if exercise.checks else "written")
    return [f"### Exercise: {exercise.title}", "", f"*{' · '.join(facts)}*", "",
            "\n".join(body).strip()]


def _strip_solutions(chapter: Chapter) -> list[NotebookNode]:
    """The chapter's cells without solution dropdowns and book-only checks of solutions.

    Removed written solutions leave a markdown cell YOUR ANSWER HERE, removed code outside the
    answer cells a code cell YOUR CODE HERE; answer cells stay (ClearSolutions stubs them).
    """
    cells, in_solution = [], False
    exercises = iter(chapter.exercises)
    for cell in copy.deepcopy(chapter.notebook.cells):
        if cell.cell_type == "markdown":
            kept: list[str] = []
            removed_prose = False
            for block in markdown_blocks(cell.source):
                if block.name == "solution-start":
                    in_solution = True
                elif block.name == "solution-end":
                    in_solution = False
                elif block.name == "exercise":
                    kept += _exercise_heading(next(exercises), block.body)
                elif block.name == "solution" or in_solution:
                    removed_prose |= any(line.strip() for line in block.lines)
                else:
                    kept += block.lines
            cell.source = "\n".join(kept).strip()
            cell.metadata.pop("minutes", None)
            cells += [cell] if cell.source else []
            cells += [nbformat.v4.new_markdown_cell(ANSWER_TEXT)] if removed_prose else []
        elif in_solution and not is_answer_cell(cell):
            if "remove-cell" not in tags(cell):  # work the student does, ungraded
                cells.append(nbformat.v4.new_code_cell(PLACEHOLDER))
        elif SOLUTION_CHECK_TAG not in tags(cell):
            cell.metadata.pop("mistake", None)
            cell.metadata.pop("reference", None)
            cells.append(cell)
    return cells


def _intro_cell(chapter: Chapter) -> NotebookNode:
    total = sum(exercise.points for exercise in chapter.exercises)
    return nbformat.v4.new_markdown_cell(
        f"**Student version.** The exercises are at the end ({len(chapter.exercises)} "
        f"exercises, {_plural(total)} autograded). Run the notebook from the top once (in "
        "Colab: Runtime → Run all), then write each answer where it says `YOUR CODE HERE`, run "
        "that cell, and run the *Autograded check* cells below it: they say what they expected "
        "and what your code returned. Leave the check cells as they are; the grader runs its "
        "own copies, with further tests. Written answers go where it says YOUR ANSWER HERE."
    )


def following_convention(chapter: Chapter | Path | str) -> Chapter:
    """The chapter (read if given as a path), after checking it follows the exercise
    convention: a chapter that breaks it could hand out its solutions."""
    if not isinstance(chapter, Chapter):
        chapter = read_chapter(chapter)
    errors = convention_errors(chapter)
    if errors:
        raise ValueError(f"{chapter.path.name} breaks the exercise convention:\n"
                         + "\n".join(errors))
    return chapter


def student_notebook(chapter: Chapter | Path | str) -> NotebookNode:
    """The student version of a chapter, as nbgrader's ``generate_assignment`` would make it."""
    from nbgrader.preprocessors import (
        CheckCellMetadata,
        ClearHiddenTests,
        ClearOutput,
        ClearSolutions,
        LockCells,
    )

    chapter = following_convention(chapter)
    notebook = copy.deepcopy(chapter.notebook)
    notebook.cells = _strip_solutions(chapter)
    title = next(i for i, cell in enumerate(notebook.cells) if cell.cell_type == "markdown")
    notebook.cells.insert(title + 1, _intro_cell(chapter))
    notebook.metadata.pop("jupytext", None)
    notebook.metadata["vicourse"] = {"chapter": chapter.name}
    resources: dict = {}
    for step in (ClearSolutions(), ClearHiddenTests(), LockCells(), ClearOutput(),
                 CheckCellMetadata()):
        notebook, resources = step.preprocess(notebook, resources)
    for cell in notebook.cells:
        if is_check_cell(cell):
            meta = nbgrader(cell)
            cell.source = check_marker(meta["grade_id"], meta["points"]) + cell.source
    return notebook


def write_student_versions(chapters: Iterable[Path], out: Path, github: str = "") -> list[Path]:
    """Write ``out/<chapter>.ipynb`` for each chapter, and ``out/README.md`` listing them.

    A chapter that breaks the exercise convention is skipped with the list of its problems
    (its student version could show solutions).
    """
    out.mkdir(parents=True, exist_ok=True)
    rows, written = [], []
    for path in chapters:
        chapter = read_chapter(path)
        try:
            notebook = student_notebook(chapter)
        except ValueError as error:
            print(f"skipped {path}: {error}", file=sys.stderr)
            continue
        target = out / f"{chapter.name}.ipynb"
        nbformat.write(notebook, target)
        written.append(target)
        link = colab_url(github, target.name) if github else ""
        points = sum(exercise.points for exercise in chapter.exercises)
        rows.append((chapter, target.name, points, link))
        print(f"wrote {target} ({len(chapter.exercises)} exercises, {_plural(points)})"
              + (f"\n  Colab: {link}" if link else ""))
    lines = ["# Exercises: student notebooks", "",
             "| chapter | notebook | exercises | autograded points | open |",
             "| --- | --- | --- | --- | --- |"]
    for chapter, name, points, link in rows:
        opener = f"[Colab]({link})" if link else "upload to Colab or Jupyter"
        lines.append(f"| {chapter.title} | {name} | {len(chapter.exercises)} | {points:g} "
                     f"| {opener} |")
    (out / "README.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return written


def colab_url(github_folder: str, notebook: str) -> str:
    """The Colab address of ``notebook`` in a GitHub folder given by its web address.

    ``https://github.com/OWNER/REPO/tree/BRANCH/FOLDER`` (or just ``.../OWNER/REPO``, meaning
    the branch ``main``) becomes
    ``https://colab.research.google.com/github/OWNER/REPO/blob/BRANCH/FOLDER/<notebook>``.
    """
    found = re.fullmatch(r"https://github\.com/([^/]+)/([^/]+?)(?:/(?:tree|blob)/([^/]+)(/.*)?)?",
                         github_folder.rstrip("/"))
    if not found:
        raise ValueError(f"expected https://github.com/OWNER/REPO/tree/BRANCH/FOLDER, got "
                         f"{github_folder!r}")
    owner, repo, branch, folder = found.groups()
    path = f"{(folder or '').strip('/')}/{notebook}".lstrip("/")
    return f"https://colab.research.google.com/github/{owner}/{repo}/blob/{branch or 'main'}/{path}"


# ---------------------------------------------------------------------------- reference answers


def answers(chapter: Chapter, *, mistaken: bool = False) -> dict[str, str]:
    """Each answer cell's source (grade id -> code), with its typical mistake if ``mistaken``."""
    result = {}
    for cell in chapter.notebook.cells:
        if is_answer_cell(cell):
            source = cell.source
            if mistaken:
                mistake = cell.metadata["mistake"]
                source = source.replace(mistake["replace"], mistake["with"], 1)
            result[nbgrader(cell)["grade_id"]] = source
    return result


def fill_in(notebook: NotebookNode, code: dict[str, str]) -> NotebookNode:
    """A copy of a student notebook with the answer cells replaced (as a student would)."""
    notebook = copy.deepcopy(notebook)
    for cell in notebook.cells:
        if is_answer_cell(cell) and nbgrader(cell)["grade_id"] in code:
            cell.source = code[nbgrader(cell)["grade_id"]]
    return notebook


# ------------------------------------------------------------------------------------- grading


@dataclass
class CheckResult:
    """The outcome of one check in one submission."""

    student: str
    chapter: str
    exercise: str
    check: str
    points: float
    max_points: float
    feedback: str


def _check_id(cell: NotebookNode) -> str:
    if is_check_cell(cell):
        return nbgrader(cell)["grade_id"]
    found = _MARKER.match(cell.source) if cell.cell_type == "code" else None
    return found[1] if found else ""


def _identify(notebook: NotebookNode, chapters: Sequence[Chapter]) -> Chapter:
    """The chapter whose checks the notebook's cells carry; its metadata only if none do."""
    ids = {_check_id(cell) for cell in notebook.cells} - {""}
    by_cells = [c for c in chapters if ids & {g for e in c.exercises for g in e.checks}]
    if by_cells:
        return max(by_cells, key=lambda c: len(ids & {g for e in c.exercises for g in e.checks}))
    name = notebook.metadata.get("vicourse", {}).get("chapter")
    for chapter in chapters:
        if chapter.name == name:
            return chapter
    raise ValueError("cannot tell which chapter this notebook belongs to: it has no vicourse "
                     "metadata and no autograded check cells")


def grading_notebook(submission: NotebookNode, chapter: Chapter) -> NotebookNode:
    """The submission with the instructor's checks restored, as nbgrader's OverwriteCells does.

    Every check cell gets the chapter's source again (hidden tests included), found by its
    grade id (metadata, or the first line if the metadata was lost); deleted checks are put
    back after the previous answer or check; extra copies of a check are not graded.
    """
    originals = {nbgrader(c)["grade_id"]: c for c in chapter.notebook.cells if is_check_cell(c)}
    order = [nbgrader(c)["grade_id"] for c in chapter.notebook.cells if nbgrader(c)]
    cells, placed = [], {}
    for cell in copy.deepcopy(submission.cells):
        if cell.cell_type != "code":  # a check turned into Markdown is no check: restored below
            cell.metadata.pop("nbgrader", None)
        grade_id = _check_id(cell)
        if grade_id in originals and grade_id not in placed:
            cell = _restored(originals[grade_id])
        elif is_check_cell(cell) or grade_id:  # a copy or an unknown check: not graded
            cell.metadata.pop("nbgrader", None)
        if nbgrader(cell):
            placed[nbgrader(cell)["grade_id"]] = len(cells)
        cells.append(cell)
    for grade_id in order:
        if grade_id in originals and grade_id not in placed:
            before = [placed[g] for g in order[: order.index(grade_id)] if g in placed]
            position = max(before) + 1 if before else len(cells)
            cells.insert(position, _restored(originals[grade_id]))
            placed = {g: i + (i >= position) for g, i in placed.items()} | {grade_id: position}
    notebook = copy.deepcopy(submission)
    notebook.cells = cells
    seen: set[str] = set()
    for cell in notebook.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
        if cell.get("id") in seen:  # a copied cell: cell ids must be unique
            cell.id = uuid.uuid4().hex[:8]
        seen.add(cell.get("id"))
    return notebook


def _restored(original: NotebookNode) -> NotebookNode:
    cell = copy.deepcopy(original)
    cell.metadata.pop("mistake", None)
    cell.source = check_marker(nbgrader(cell)["grade_id"], nbgrader(cell)["points"]) + cell.source
    return cell


def exercise_part(notebook: NotebookNode, chapter: Chapter) -> NotebookNode:
    """The cells the exercises need: the chapter's ``exercise-setup`` cells, then the
    submission from its first answer or check cell to its last."""
    graded = [i for i, cell in enumerate(notebook.cells) if nbgrader(cell)]
    setup = [copy.deepcopy(c) for c in chapter.notebook.cells if SETUP_TAG in tags(c)]
    part = copy.deepcopy(notebook)
    part.cells = setup + (notebook.cells[graded[0] : graded[-1] + 1] if graded else [])
    return part


def _feedback(cell: NotebookNode, number: int, limits: Limits) -> str:
    for output in cell.outputs:
        if output.output_type == "error":
            if output.ename == "CheckFailed":
                return output.evalue
            if output.ename == "KeyboardInterrupt":
                return (f"cell {number} ran longer than {limits.cell_seconds:g} s and was "
                        "stopped: look for a loop that does not end, or work that is too slow")
            return f"{output.ename}: {output.evalue}"
        if output.output_type == "stream" and output.name == "stderr":
            return f"the cell wrote to stderr, which nbgrader scores as a failure: {output.text}"
    return "passed"


@dataclass
class Run:
    """What became of one submission's run: the executed cells, and why it ended early."""

    notebook: NotebookNode
    executed: dict[int, list]  # cell index -> outputs, for the cells that finished
    reason: str = ""  # why cells after the last finished one did not run ("" if all ran)
    verdicts: dict[str, dict] = field(default_factory=dict)  # grade id -> vicourse.verdict's


def references(chapter: Chapter) -> list[str]:
    """The reference answers the chapter's answer cells name (metadata ``reference``): they
    are withheld from the student's kernel while it is graded."""
    return [name for cell in chapter.notebook.cells if is_answer_cell(cell)
            for name in cell.metadata.get("reference", [])]


def collecting_notebook(notebook: NotebookNode) -> NotebookNode:
    """The notebook the student's kernel runs: each check cell only records the answers
    (:func:`vicourse.course.verdict.collecting_source`); the verdict comes later."""
    kernel = copy.deepcopy(notebook)
    for cell in kernel.cells:
        if is_check_cell(cell):
            grade_id = nbgrader(cell)["grade_id"]
            marker, _, body = cell.source.partition("\n")
            cell.source = marker + "\n" + collecting_source(body, grade_id)
    return kernel


def run_submission(notebook: NotebookNode, limits: Limits, sandboxed: bool,
                   chapter: Chapter | None = None) -> Run:
    """Execute ``notebook`` in its own worker process and scratch folder (vicourse.sandbox).

    With a ``chapter``, the check cells only collect the answers in the student's kernel, and a
    fresh grader process decides each check (:mod:`vicourse.course.verdict`).
    """
    with tempfile.TemporaryDirectory(prefix="vicourse-grade-") as folder:
        scratch = Path(folder).resolve()
        (scratch / WORK_FOLDER).mkdir()  # the kernel's; the rest of scratch is the grader's
        kernel = collecting_notebook(notebook) if chapter else notebook
        nbformat.write(kernel, scratch / SUBMISSION_FILE)
        job = {"notebook": SUBMISSION_FILE, "limits": asdict(limits),
               "prefix": sandbox_prefix(scratch, limits, sandboxed,
                                        references(chapter) if chapter else ())}
        (scratch / JOB_FILE).write_text(json.dumps(job), encoding="utf-8")
        log = open(scratch / "worker.log", "wb")  # noqa: SIM115 (closed below)
        worker = subprocess.Popen([sys.executable, "-m", "vicourse.course.sandbox", str(scratch)],
                                  cwd=scratch, stdout=log, stderr=log, start_new_session=True)
        try:
            worker.wait(timeout=limits.notebook_seconds)
            timed_out = False
        except subprocess.TimeoutExpired:
            os.killpg(worker.pid, signal.SIGKILL)  # the worker and its kernel
            worker.wait()
            timed_out = True
        log.close()
        run = _read_run(notebook, scratch, limits, timed_out, worker.returncode)
        if chapter:
            run.verdicts = _decide(chapter, scratch, limits)
        return run


def _decide(chapter: Chapter, scratch: Path, limits: Limits) -> dict[str, dict]:
    """The verdicts of a fresh process that runs the chapter's checks on the recorded answers."""
    answers = scratch / WORK_FOLDER / ANSWERS_FOLDER
    if answers.is_symlink() or not answers.is_dir():  # written by the kernel: trust no link
        answers = scratch / "no-answers"
    out, folder = scratch / "verdicts.json", scratch / "verdict"
    folder.mkdir()
    try:
        done = subprocess.run([sys.executable, "-m", "vicourse.course.verdict",
                               str(chapter.path.resolve()), str(answers), str(out)],
                              cwd=folder, capture_output=True, text=True, check=False,
                              timeout=limits.notebook_seconds + 600,  # instructor's code
                              env={**os.environ, "MPLBACKEND": "Agg"})
    except subprocess.TimeoutExpired:
        done = None
    if done is None or done.returncode != 0 or not out.exists():
        why = ("ran longer than the notebook limit + 600 s" if done is None
               else (done.stderr.strip().splitlines() or ["no output"])[-1][:500])
        print(f"the grader's checks of {chapter.name} failed: {why}", file=sys.stderr)
        return {}
    return json.loads(out.read_text(encoding="utf-8"))


def _progress(path: Path, cells: int) -> list[dict]:
    """The worker's progress records; a line that is not one (cut short when the worker was
    killed, or garbled) is skipped, so that it cannot stop the grading."""
    text = path.read_text(encoding="utf-8", errors="replace") if path.exists() else ""
    records = []
    for line in text.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if not (isinstance(record, dict) and record.get("event") in ("start", "done", "dead",
                                                                      "timeout", "flood")):
            continue
        cell = record.get("cell")
        if record["event"] in ("start", "done", "flood") and not (
                isinstance(cell, int) and 0 <= cell < cells):
            continue
        if record["event"] == "done" and not (
                isinstance(record.get("outputs"), list)
                and all(isinstance(o, dict) for o in record["outputs"])):
            continue
        records.append(record)
    return records


def _read_run(notebook: NotebookNode, scratch: Path, limits: Limits, timed_out: bool,
              returncode: int | None) -> Run:
    executed: dict[int, list] = {}
    started, events = None, set()
    for record in _progress(scratch / PROGRESS_FILE, len(notebook.cells)):
        events.add(record["event"])
        if record["event"] == "start":
            started = record["cell"]
        elif record["event"] == "done":
            executed[record["cell"]] = [nbformat.from_dict(o) for o in record["outputs"]]
    result = copy.deepcopy(notebook)
    for index, outputs in executed.items():
        result.cells[index].outputs = outputs
    where = f"in cell {started + 1}" if started is not None else "before the first cell"
    if timed_out:
        reason = (f"the notebook ran longer than {limits.notebook_seconds:g} s in all and was "
                  f"stopped {where}")
    elif "dead" in events or (started is not None and started not in executed):
        reason = (f"the kernel died {where} (the code ended the Python process, or used more "
                  f"than {limits.memory_mb} MB of memory)")
    elif returncode not in (0, None) and len(executed) < len(notebook.cells):
        log = (scratch / "worker.log").read_text(encoding="utf-8", errors="replace").strip()
        last = log.splitlines()[-1] if log else f"exit code {returncode}"
        reason = f"the grading of this notebook failed {where}: {last[:500]}"
    else:
        reason = ""
    if "flood" in events:
        reason = (reason + "; " if reason else "") + (
            f"the notebook printed more than {limits.output_kb} kB: output after that was dropped")
    return Run(result, executed, reason)


def _outputs(verdict: dict) -> list[NotebookNode]:
    """A check cell's outputs in the graded notebook: those of the grader's own run."""
    outputs = []
    if verdict["printed"]:
        outputs.append(nbformat.v4.new_output("stream", name="stdout", text=verdict["printed"]))
    if verdict["error"]:
        outputs.append(nbformat.v4.new_output("error", **verdict["error"]))
    return outputs


def score(run: Run, chapter: Chapter, student: str, limits: Limits) -> list[CheckResult]:
    """One result per check of the chapter: its points if the grader's own run of the check
    (:mod:`vicourse.course.verdict`) passed on the answers the student's kernel recorded."""
    found = {nbgrader(cell)["grade_id"]: (index, cell)
             for index, cell in enumerate(run.notebook.cells) if is_check_cell(cell)}
    results = []
    for exercise in chapter.exercises:
        for grade_id, max_points in exercise.checks.items():
            index, cell = found.get(grade_id, (None, None))
            if cell is None:  # not in the graded notebook (e.g. --exercises-only lost it)
                points, feedback = 0.0, "the check did not run"
            elif index not in run.executed:
                points, feedback = 0.0, f"the check did not run: {run.reason or 'not reached'}"
            elif grade_id not in run.verdicts:
                points, feedback = 0.0, "the grader could not decide this check (see its log)"
            else:
                verdict = run.verdicts[grade_id]
                in_kernel = _feedback(cell, index + 1, limits)  # says if the cell timed out
                cell.outputs = _outputs(verdict)
                points = max_points if verdict["passed"] else 0.0
                if verdict["passed"]:
                    feedback = "passed"
                elif "was stopped" in in_kernel:
                    feedback = in_kernel
                else:
                    feedback = _feedback(cell, index + 1, limits)
            results.append(CheckResult(student, chapter.name, exercise.label, grade_id,
                                       float(points), max_points, feedback))
    return results


def grade_notebook(submission: NotebookNode, chapter: Chapter, student: str, *,
                   exercises_only: bool = False, limits: Limits | None = None,
                   sandboxed: bool | None = None) -> tuple[list[CheckResult], NotebookNode]:
    """Restore the checks, execute in a worker, score: the results and the executed notebook."""
    limits = limits or Limits()
    notebook = grading_notebook(submission, chapter)
    if exercises_only:
        notebook = exercise_part(notebook, chapter)
    run = run_submission(notebook, limits, bwrap_works() if sandboxed is None else sandboxed,
                         chapter)
    if run.reason:
        run.notebook.cells.append(nbformat.v4.new_markdown_cell(f"**Grader:** {run.reason}."))
    return score(run, chapter, student, limits), run.notebook


def _grade_file(path: Path, student: str, chapter_path: Path, out: Path, exercises_only: bool,
                limits: Limits, sandboxed: bool) -> list[CheckResult]:
    chapter = read_chapter(chapter_path)
    try:
        submission = nbformat.read(path, as_version=4)
    except Exception as error:  # unreadable since it was listed: a zero with the reason
        return [CheckResult(student, chapter.name, e.label, g, 0.0, p,
                            f"the notebook could not be read: {error}")
                for e in chapter.exercises for g, p in e.checks.items()]
    results, executed = grade_notebook(submission, chapter, student,
                                       exercises_only=exercises_only, limits=limits,
                                       sandboxed=sandboxed)
    target = out / "notebooks" / f"{file_name(student)}.ipynb"
    target.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(executed, target)
    return results


def file_name(student: str) -> str:
    """A file name for a student id that no other id maps to (``/`` and ``%`` escaped)."""
    return urllib.parse.quote(student, safe="")


@dataclass(frozen=True)
class Submission:
    student: str
    chapter: Chapter
    path: Path


def student_id(relative: Path, folder_name: str, chapter_names: set[str]) -> str:
    """Who handed in the notebook at ``relative`` (a path inside a folder of submissions).

    nbgrader's ``<student>/<assignment>/<notebook>.ipynb`` gives the student folder; a notebook
    named after a chapter (``alice/gaussian_kl.ipynb``, an LMS export) its folder; any other
    notebook its path without the suffix (``alice.ipynb``: ``alice``, ``sec1/alice.ipynb``:
    ``sec1/alice``).
    """
    parts = relative.parts
    if len(parts) == 3:
        return parts[0]
    if relative.stem in chapter_names:
        return "/".join(parts[:-1]) or folder_name
    return relative.with_suffix("").as_posix()


def find_submissions(paths: Iterable[Path], chapters: Sequence[Chapter]) -> list[Submission]:
    """Every submitted notebook, with its student and chapter; two notebooks of one student
    for one chapter are an error that names both."""
    names = {chapter.name for chapter in chapters}
    found: dict[tuple[str, str], Submission] = {}
    for path in paths:
        if path.is_dir():
            notebooks = [(n, n.relative_to(path)) for n in sorted(path.rglob("*.ipynb"))
                         if ".ipynb_checkpoints" not in n.parts]
            folder_name = path.resolve().name
        elif path.exists():
            notebooks, folder_name = [(path, Path(path.name))], path.resolve().parent.name
        else:
            raise FileNotFoundError(f"no submission at {path}")
        for notebook, relative in notebooks:
            try:
                chapter = _identify(nbformat.read(notebook, as_version=4), chapters)
            except Exception as error:  # not a notebook, or not one of the book's: say so
                print(f"skipped {notebook}: {error}", file=sys.stderr)
                continue
            student = student_id(relative, folder_name, names)
            key = (student, chapter.name)
            if key in found:
                raise ValueError(
                    f"two submissions of {chapter.name} for the student {student!r}: "
                    f"{found[key].path} and {notebook}; keep one of them (the student id comes "
                    "from the path: nbgrader's <student>/<assignment>/<notebook>.ipynb, or "
                    "<student>.ipynb, or <student>/<chapter>.ipynb)")
            found[key] = Submission(student, chapter, notebook)
    return list(found.values())


def grade(paths: Iterable[Path], out: Path, chapters: list[Path], *, exercises_only: bool = False,
          limits: Limits | None = None, jobs: int = 1,
          sandboxed: bool | None = None) -> list[CheckResult]:
    """Grade every submitted notebook; write scores.csv, feedback files and executed notebooks.

    Each notebook runs in its own worker (:func:`run_submission`); ``sandboxed`` None uses
    bubblewrap when the machine has it.
    """
    limits = limits or Limits()
    jobs = positive_count(jobs, "--jobs")
    sandboxed = bwrap_works() if sandboxed is None else sandboxed
    if not sandboxed:
        print("WARNING: bubblewrap (bwrap) is not available: grading UNSANDBOXED. Each "
              "notebook still runs in its own process and folder, but student code can read "
              "and write your files and reach the network. Install the Debian package "
              "bubblewrap.", file=sys.stderr)
    submissions = find_submissions(paths, [read_chapter(path) for path in chapters])
    out.mkdir(parents=True, exist_ok=True)
    arguments = [(s.path, s.student, s.chapter.path, out, exercises_only, limits, sandboxed)
                 for s in submissions]
    if jobs > 1:  # fresh processes ("spawn"): forking a process that runs torch can hang
        with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
            batches = list(pool.map(_grade_file, *zip(*arguments, strict=True)))
    else:
        batches = [_grade_file(*args) for args in arguments]
    results = [result for batch in batches for result in batch]
    graded = {s.chapter.name: s.chapter for s in submissions}.values()
    write_scores(results, out, [e.label for c in graded for e in c.exercises if not e.checks])
    return results


def score_table(results: Sequence[CheckResult]) -> list[dict[str, object]]:
    """One row per student: points per exercise (over all chapters graded), total, maximum."""
    rows: dict[str, dict[str, object]] = {}
    for r in results:
        row = rows.setdefault(r.student, {"student": r.student})
        row[r.exercise] = float(row.get(r.exercise, 0.0)) + r.points
        row["total"] = float(row.get("total", 0.0)) + r.points
        row["max"] = float(row.get("max", 0.0)) + r.max_points
    return list(rows.values())


def write_scores(results: Sequence[CheckResult], out: Path,
                 written: Sequence[str] = ()) -> None:
    """``out/scores.csv`` (one row per student, a column per exercise; ``written`` exercises
    are graded by hand and left empty), ``out/feedback.csv`` (one row per check) and
    ``out/feedback/<student>.md`` (each student's score and failed checks)."""
    table = score_table(results)
    exercises = list(dict.fromkeys([*(r.exercise for r in results), *written]))
    with open(out / "scores.csv", "w", newline="", encoding="utf-8") as file:
        writer = csv.DictWriter(file, ["student", *exercises, "total", "max"], restval="")
        writer.writeheader()
        writer.writerows(table)
    with open(out / "feedback.csv", "w", newline="", encoding="utf-8") as file:
        writer = csv.DictWriter(file, list(asdict(results[0])) if results else ["student"])
        writer.writeheader()
        writer.writerows(asdict(r) for r in results)
    (out / "feedback").mkdir(exist_ok=True)
    for row in table:
        mine = [r for r in results if r.student == row["student"]]
        lines = [f"# Feedback for {row['student']}", "",
                 f"Autograded score: {row['total']:g} of {row['max']:g} points.", ""]
        for r in mine:
            mark = "passed" if r.points >= r.max_points else "not passed"
            lines.append(f"- **{r.chapter} · {r.check}**: {r.points:g}/{r.max_points:g}, {mark}")
            if r.points < r.max_points:
                lines += ["", *("    " + line for line in r.feedback.splitlines()), ""]
        target = out / "feedback" / f"{file_name(str(row['student']))}.md"
        target.write_text("\n".join(lines) + "\n", encoding="utf-8")


def print_results(results: Sequence[CheckResult]) -> None:
    """The score table, then every failed check with its feedback."""
    for row in score_table(results):
        per_exercise = "  ".join(f"{k} {v:g}" for k, v in row.items()
                                 if k not in ("student", "total", "max"))
        print(f"{row['student']:<16} {row['total']:g}/{row['max']:g}   {per_exercise}")
    failed = [r for r in results if r.points < r.max_points]
    if failed:
        print("\nFeedback on the checks that did not pass:")
    for r in failed:
        print(f"\n{r.student} · {r.check} · {r.points:g}/{r.max_points:g}")
        print("\n".join("    " + line for line in r.feedback.splitlines()))


# ---------------------------------------------------------------------------------- command line


def _chapter_paths(root: Path, names: Sequence[str]) -> list[Path]:
    if not names:
        return book_chapters(root)
    paths = []
    for name in names:
        path = Path(name) if Path(name).suffix == ".md" else root / "book" / f"{name}.md"
        if not path.is_file():
            path = root / "book" / Path(name).name
        if not path.is_file():
            raise SystemExit(f"no chapter {name!r}: give a name such as gaussian_kl or a path "
                             f"such as book/gaussian_kl.md (looked in {root / 'book'})")
        paths.append(path)
    return paths


def exercise_rows(chapter_paths: Iterable[Path]) -> list[dict[str, object]]:
    """The exercises of the given chapters: chapter, label, title, kind, points, minutes."""
    rows = []
    for path in chapter_paths:
        chapter = read_chapter(path)
        for e in chapter.exercises:
            rows.append({"chapter": chapter.name, "chapter_label": chapter.label,
                         "chapter_title": chapter.title, "label": e.label, "title": e.title,
                         "kind": e.kind, "points": e.points, "checks": len(e.checks),
                         "minutes": e.minutes})
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vicourse.course.instructor",
                                     description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, help="the book's folder (default: found from "
                        "the current folder, or from the editable vicourse install)")
    commands = parser.add_subparsers(dest="command", required=True)
    student = commands.add_parser("student", help="write student versions of chapters")
    student.add_argument("chapters", nargs="*", help="names or paths (default: all)")
    student.add_argument("--out", type=Path, required=True, help="folder for the notebooks")
    student.add_argument("--github", default="", help="web address of the GitHub folder the "
                         "notebooks will be pushed to; prints and lists their Colab links")
    grader = commands.add_parser("grade", help="grade submitted notebooks")
    grader.add_argument("submissions", nargs="+", type=Path, help="notebooks or folders")
    grader.add_argument("--out", type=Path, required=True, help="folder for scores and notebooks")
    grader.add_argument("--exercises-only", action="store_true", help="run only the exercise-"
                        "setup cells and the exercises (fast; the default runs everything)")
    defaults = Limits()
    grader.add_argument("--cell-seconds", type=float, default=defaults.cell_seconds,
                        help=f"seconds per cell ({defaults.cell_seconds:g})")
    grader.add_argument("--notebook-seconds", type=float, default=defaults.notebook_seconds,
                        help=f"seconds per notebook ({defaults.notebook_seconds:g})")
    grader.add_argument("--memory-mb", type=int, default=defaults.memory_mb,
                        help=f"memory per notebook in MB ({defaults.memory_mb})")
    grader.add_argument("--output-kb", type=int, default=defaults.output_kb,
                        help=f"output kept per notebook in kB ({defaults.output_kb})")
    grader.add_argument("--jobs", type=int, default=1, help="notebooks graded in parallel")
    course = commands.add_parser("nbgrader-course", help="write an nbgrader course directory "
                                 "(nbgrader_config.py, source/<chapter>/<chapter>.ipynb)")
    course.add_argument("out", type=Path, help="the course directory")
    course.add_argument("chapters", nargs="*", help="names or paths (default: all)")
    course.add_argument("--exercises-only", action="store_true", help="only the exercise-setup "
                        "cells and the exercises (fast to autograde)")
    course.add_argument("--cell-seconds", type=int, default=300,
                        help="seconds per cell when nbgrader autogrades (300)")
    listing = commands.add_parser("exercises", help="print the table of exercises")
    listing.add_argument("chapters", nargs="*")
    checker = commands.add_parser("check", help="check chapters against the exercise convention")
    checker.add_argument("chapters", nargs="*")
    args = parser.parse_args(argv)

    root = args.root or find_root()
    if args.command == "student":
        paths = _chapter_paths(root, args.chapters)
        written = write_student_versions(paths, args.out, args.github)
        return 0 if len(written) == len(paths) else 1
    elif args.command == "grade":
        try:
            limits = Limits(args.cell_seconds, args.notebook_seconds, args.memory_mb,
                            args.output_kb)
            results = grade(args.submissions, args.out, book_chapters(root),
                            exercises_only=args.exercises_only, limits=limits, jobs=args.jobs)
        except (ValueError, FileNotFoundError) as error:
            parser.error(str(error))
        print(limits.describe())
        print_results(results)
        print(f"\nwrote {args.out / 'scores.csv'}, {args.out / 'feedback.csv'}, one feedback file "
              f"per student in {args.out / 'feedback'} and the executed notebooks in "
              f"{args.out / 'notebooks'}")
    elif args.command == "nbgrader-course":
        from vicourse.course.nbgrader_course import write_course

        if args.cell_seconds <= 0:
            parser.error(f"--cell-seconds must be positive, got {args.cell_seconds}")
        write_course(_chapter_paths(root, args.chapters), args.out,
                     exercises_only=args.exercises_only, cell_seconds=args.cell_seconds)
        print(f"then, in {args.out}: nbgrader generate_assignment CHAPTER; put the notebooks "
              "handed in at submitted/STUDENT/CHAPTER/CHAPTER.ipynb; nbgrader autograde "
              "CHAPTER; nbgrader generate_feedback CHAPTER")
    elif args.command == "exercises":
        for row in exercise_rows(_chapter_paths(root, args.chapters)):
            print(f"{row['chapter']:<14} {row['label']:<22} {row['minutes'] or '?':>3} min  "
                  f"{row['kind']:<17} {row['points']:g} points  {row['title']}")
    else:
        problems = [error for path in _chapter_paths(root, args.chapters)
                    for error in convention_errors(read_chapter(path))]
        print("\n".join(problems) or "every exercise follows the convention")
        return 1 if problems else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
