"""Student versions of the chapters, and autograding of the notebooks students hand in.

Two commands, run in the repository (or anywhere, when vicourse is installed editable)::

    python -m vicourse.course.instructor student [CHAPTER ...] --out DIR [--github FOLDER_URL]
    python -m vicourse.course.instructor grade SUBMISSION ... --out DIR [--exercises-only]
        [--jobs N]

``student`` writes ``DIR/<chapter>.ipynb`` for the given chapters (default: every chapter of
``_toc.yml`` with exercises): answers replaced by ``raise NotImplementedError()`` (nbgrader's
``ClearSolutions``), hidden tests removed (``ClearHiddenTests``), solution dropdowns and
book-only solution checks removed, visible checks kept. ``grade`` puts the instructor's checks
(hidden tests included) back into each submitted notebook, executes it (nbgrader's ``Execute``),
scores each check as nbgrader does (``determine_grade``: an error is 0 points) and writes
``DIR/scores.csv``, ``DIR/feedback.csv`` and the executed notebooks. ``exercises`` prints the
table of exercises; ``check`` validates chapters against the exercise convention.
"""

from __future__ import annotations

import argparse
import copy
import csv
import multiprocessing
import re
import sys
import tempfile
import uuid
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import nbformat
from nbformat import NotebookNode

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


def student_notebook(chapter: Chapter | Path | str) -> NotebookNode:
    """The student version of a chapter, as nbgrader's ``generate_assignment`` would make it."""
    from nbgrader.preprocessors import (
        CheckCellMetadata,
        ClearHiddenTests,
        ClearOutput,
        ClearSolutions,
        LockCells,
    )

    if not isinstance(chapter, Chapter):
        chapter = read_chapter(chapter)
    errors = convention_errors(chapter)
    if errors:
        raise ValueError(f"{chapter.path.name} breaks the exercise convention:\n"
                         + "\n".join(errors))
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
    name = notebook.metadata.get("vicourse", {}).get("chapter")
    ids = {_check_id(cell) for cell in notebook.cells} - {""}
    for chapter in chapters:
        if chapter.name == name or ids & {g for e in chapter.exercises for g in e.checks}:
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


def execute(notebook: NotebookNode, timeout: int = 600) -> NotebookNode:
    """Run every cell (errors do not stop the run), in a fresh folder, with nbgrader's Execute."""
    from nbgrader.preprocessors import Execute

    with tempfile.TemporaryDirectory(prefix="vicourse-grade-") as folder:
        runner = Execute(timeout=timeout, extra_arguments=KERNEL_ARGUMENTS)
        notebook, _ = runner.preprocess(notebook, {"metadata": {"path": folder}})
    return notebook


def _feedback(cell: NotebookNode) -> str:
    for output in cell.outputs:
        if output.output_type == "error":
            if output.ename == "CheckFailed":
                return output.evalue
            return f"{output.ename}: {output.evalue}"
        if output.output_type == "stream" and output.name == "stderr":
            return f"the cell wrote to stderr, which nbgrader scores as a failure: {output.text}"
    return "passed"


def score(executed: NotebookNode, chapter: Chapter, student: str) -> list[CheckResult]:
    """One result per check of the chapter, scored by nbgrader's ``determine_grade``."""
    from nbgrader.utils import determine_grade

    found = {nbgrader(cell)["grade_id"]: cell for cell in executed.cells if is_check_cell(cell)}
    results = []
    for exercise in chapter.exercises:
        for grade_id, max_points in exercise.checks.items():
            cell = found.get(grade_id)
            if cell is None:  # not run (e.g. --exercises-only lost it): no points
                points, feedback = 0.0, "the check did not run"
            else:
                points = determine_grade(cell)[0] or 0.0
                feedback = _feedback(cell)
            results.append(CheckResult(student, chapter.name, exercise.label, grade_id,
                                       float(points), max_points, feedback))
    return results


def grade_notebook(submission: NotebookNode, chapter: Chapter, student: str, *,
                   exercises_only: bool = False, timeout: int = 600
                   ) -> tuple[list[CheckResult], NotebookNode]:
    """Restore the checks, execute, score: the results and the executed notebook."""
    notebook = grading_notebook(submission, chapter)
    if exercises_only:
        notebook = exercise_part(notebook, chapter)
    executed = execute(notebook, timeout)
    return score(executed, chapter, student), executed


def _grade_file(path: Path, student: str, chapter_path: Path, out: Path, exercises_only: bool,
                timeout: int) -> list[CheckResult]:
    results, executed = grade_notebook(nbformat.read(path, as_version=4),
                                       read_chapter(chapter_path), student,
                                       exercises_only=exercises_only, timeout=timeout)
    target = out / "notebooks" / f"{student}.ipynb"
    target.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(executed, target)
    return results


def submissions_in(paths: Iterable[Path]) -> dict[str, Path]:
    """Student name -> notebook: files as given, folders searched (name = path in the folder)."""
    found = {}
    for path in paths:
        if path.is_dir():
            for notebook in sorted(path.rglob("*.ipynb")):
                if ".ipynb_checkpoints" not in notebook.parts:
                    found[notebook.relative_to(path).with_suffix("").as_posix()] = notebook
        else:
            found[path.stem] = path
    return found


def grade(paths: Iterable[Path], out: Path, chapters: list[Path], *, exercises_only: bool = False,
          timeout: int = 600, jobs: int = 1) -> list[CheckResult]:
    """Grade every submitted notebook; write scores.csv, feedback.csv and executed notebooks."""
    out.mkdir(parents=True, exist_ok=True)
    known = [read_chapter(path) for path in chapters]
    arguments = []
    for student, path in submissions_in(paths).items():
        try:
            chapter = _identify(nbformat.read(path, as_version=4), known)
        except Exception as error:  # not a notebook, or not one of the book's: say so, go on
            print(f"skipped {path}: {error}", file=sys.stderr)
            continue
        name = student.replace("/", "__")
        arguments.append((path, name, chapter.path, out, exercises_only, timeout))
    if jobs > 1:  # fresh processes ("spawn"): forking a process that runs torch can hang
        with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
            batches = list(pool.map(_grade_file, *zip(*arguments, strict=True)))
    else:
        batches = [_grade_file(*args) for args in arguments]
    results = [result for batch in batches for result in batch]
    write_scores(results, out)
    return results


def score_table(results: Sequence[CheckResult]) -> list[dict[str, object]]:
    """One row per submission: points per exercise, total and maximum."""
    rows: dict[tuple[str, str], dict[str, object]] = {}
    for r in results:
        row = rows.setdefault((r.student, r.chapter), {"student": r.student, "chapter": r.chapter})
        row[r.exercise] = float(row.get(r.exercise, 0.0)) + r.points
        row["total"] = float(row.get("total", 0.0)) + r.points
        row["max"] = float(row.get("max", 0.0)) + r.max_points
    return list(rows.values())


def write_scores(results: Sequence[CheckResult], out: Path) -> None:
    """``out/scores.csv`` (one row per submission) and ``out/feedback.csv`` (one per check)."""
    table = score_table(results)
    exercises = list(dict.fromkeys(r.exercise for r in results))
    with open(out / "scores.csv", "w", newline="", encoding="utf-8") as file:
        writer = csv.DictWriter(file, ["student", "chapter", *exercises, "total", "max"])
        writer.writeheader()
        writer.writerows(table)
    with open(out / "feedback.csv", "w", newline="", encoding="utf-8") as file:
        writer = csv.DictWriter(file, list(asdict(results[0])) if results else ["student"])
        writer.writeheader()
        writer.writerows(asdict(r) for r in results)


def print_results(results: Sequence[CheckResult]) -> None:
    """The score table, then every failed check with its feedback."""
    for row in score_table(results):
        per_exercise = "  ".join(f"{k} {v:g}" for k, v in row.items()
                                 if k not in ("student", "chapter", "total", "max"))
        print(f"{row['student']:<16} {row['chapter']:<14} {row['total']:g}/{row['max']:g}"
              f"   {per_exercise}")
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
    grader.add_argument("--timeout", type=int, default=600, help="seconds per cell (600)")
    grader.add_argument("--jobs", type=int, default=1, help="notebooks graded in parallel")
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
        results = grade(args.submissions, args.out, book_chapters(root),
                        exercises_only=args.exercises_only, timeout=args.timeout, jobs=args.jobs)
        print_results(results)
        print(f"\nwrote {args.out / 'scores.csv'}, {args.out / 'feedback.csv'} and the executed "
              f"notebooks in {args.out / 'notebooks'}")
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
