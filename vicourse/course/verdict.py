"""The verdict on a check, reached in a process where no student code ever ran.

The grader runs each check cell twice:

1. **Collect**, in the student's (sandboxed) kernel: the check cell runs with each statement
   allowed to fail, and every :func:`~vicourse.course.checks.call_answer` records what the
   student's function returned (tensors, numbers, strings, tuples, lists, dicts; anything else
   by its type and ``repr`` only) in ``work/answers/<check>/<n>.pt``. Nothing decided here
   counts: the student's code may have patched the check helpers, the references or the
   records themselves, and that can only change the values it hands over.
2. **Decide**, in a fresh grader process (``python -m vicourse.course.verdict``): the chapter's
   ``exercise-setup`` cells and the instructor's check cells (hidden tests included) run from the
   chapter's source, and ``call_answer`` returns the recorded values instead of calling
   anything. The comparisons, the references and the check helpers are the grader's own. The
   records are read with ``torch.load(weights_only=True)``, which builds plain tensors and
   containers only, never objects of the student's classes.

A call that left no record (the kernel died, the check cell was skipped or rewritten, the
records were deleted) fails its check with a reason.
"""

from __future__ import annotations

import ast
import contextlib
import io
import json
import os
import re
import shutil
import stat
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from vicourse.course import checks
from vicourse.course.checks import CheckFailed

ANSWERS_ENV = "VICOURSE_ANSWERS"  # the kernel's folder for the records (set by the grader)
MAX_RECORDS = 1000  # calls recorded per check
MAX_RECORD_BYTES = 256 * 2**20  # bytes read per check
_GRADE_ID = re.compile(r"^[\w.-]+$")


# ---------------------------------------------------------------------- in the student's kernel


class Unreadable:
    """A value the grader does not rebuild (not a tensor, number, string or container)."""

    def __init__(self, description: str):
        self.description = description

    def __repr__(self) -> str:
        return self.description


def encode(value: Any, depth: int = 0) -> tuple:
    """``value`` as nested tuples of plain data that ``torch.load(weights_only=True)`` reads."""
    if depth > 20:
        return ("unreadable", "a value nested more than 20 levels deep")
    if isinstance(value, torch.Tensor):
        plain = value.detach().as_subclass(torch.Tensor).cpu().clone()
        return ("tensor", plain, bool(value.requires_grad))
    if value is None or isinstance(value, bool | int | float | complex):
        return ("plain", value)
    if isinstance(value, str):
        return ("plain", value[:10_000])
    if isinstance(value, tuple | list) and len(value) <= 10_000:
        return (type(value).__name__, [encode(v, depth + 1) for v in value])
    if isinstance(value, dict) and len(value) <= 10_000:
        return ("dict", [(encode(k, depth + 1), encode(v, depth + 1)) for k, v in value.items()])
    text = repr(value)
    return ("unreadable", f"{type(value).__name__} {text if len(text) < 60 else text[:57] + '...'}")


class _Recorder:
    def __init__(self, folder: Path):
        self.folder, self.count = folder, 0

    def __call__(self, call: Callable[[], Any], what: str) -> Any:
        try:
            value = call()
        except CheckFailed as error:
            self._save(("error", [error.what, error.expected, error.got, error.hint,
                                  error.details]))
            raise
        self._save(("value", encode(value)))
        return value

    def _save(self, record: tuple) -> None:
        torch.save(record, self.folder / f"{self.count}.pt")
        self.count += 1


def collect(grade_id: str) -> None:
    """Start recording the answers of check ``grade_id`` (the first line of the grader's copy
    of a check cell in the student's kernel); does nothing outside the grader."""
    folder = os.environ.get(ANSWERS_ENV)
    if not folder or not _GRADE_ID.match(grade_id):
        return
    target = Path(folder) / grade_id
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True, exist_ok=True)
    checks._answer_hook = _Recorder(target)


def _tolerant(body: list[ast.stmt]) -> list[ast.stmt]:
    """Each statement (in nested blocks too, not in functions, which run as written: a helper
    called through call_answer must fail as it would) wrapped in ``try/except Exception``."""
    result: list[ast.stmt] = []
    for statement in body:
        if isinstance(statement, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            result.append(statement)
            continue
        for field in ("body", "orelse", "finalbody"):
            inner = getattr(statement, field, None)
            if isinstance(inner, list) and inner and isinstance(inner[0], ast.stmt):
                setattr(statement, field, _tolerant(inner))
        for handler in getattr(statement, "handlers", []):
            handler.body = _tolerant(handler.body)
        if isinstance(statement, ast.Pass | ast.Break | ast.Continue | ast.Global | ast.Nonlocal):
            result.append(statement)
            continue
        handler = ast.ExceptHandler(type=ast.Name("Exception", ast.Load()), name=None,
                                    body=[ast.Pass()])
        result.append(ast.Try(body=[statement], handlers=[handler], orelse=[], finalbody=[]))
    return result


def collecting_source(source: str, grade_id: str) -> str:
    """The check cell as the student's kernel runs it: records the answers, decides nothing.

    Every statement may fail without stopping the cell, so that each call of the student's
    functions is reached even when a comparison fails or a reference is not available.
    """
    tree = ast.parse(source)
    tree.body = _tolerant(tree.body)
    start = f"__import__('vicourse.course.verdict', fromlist=['collect']).collect({grade_id!r})"
    return start + "\n" + ast.unparse(ast.fix_missing_locations(tree)) + "\n"


# --------------------------------------------------------------------- in the grader's process


def _decode(item: Any, depth: int = 0) -> Any:
    bad = Unreadable("a value the grader could not read")
    if depth > 21 or not (isinstance(item, tuple) and item and isinstance(item[0], str)):
        return bad
    kind, rest = item[0], item[1:]
    if kind == "tensor" and len(rest) == 2 and type(rest[0]) is torch.Tensor:
        tensor = rest[0].clone()
        if rest[1] is True and (tensor.is_floating_point() or tensor.is_complex()):
            tensor.requires_grad_(True)
        return tensor
    if kind == "plain" and len(rest) == 1 and (
            rest[0] is None or type(rest[0]) in (bool, int, float, complex, str)):
        return rest[0]
    if kind in ("tuple", "list") and len(rest) == 1 and isinstance(rest[0], list):
        items = [_decode(v, depth + 1) for v in rest[0]]
        return tuple(items) if kind == "tuple" else items
    if kind == "dict" and len(rest) == 1 and isinstance(rest[0], list):
        pairs = [p for p in rest[0] if isinstance(p, tuple) and len(p) == 2]
        decoded = {}
        for key, value in pairs:
            key = _decode(key, depth + 1)
            if isinstance(key, Unreadable | list | torch.Tensor):
                return bad
            decoded[key] = _decode(value, depth + 1)
        return decoded
    if kind == "unreadable" and len(rest) == 1 and isinstance(rest[0], str):
        return Unreadable(rest[0][:200])
    return bad


def read_records(folder: Path) -> list[tuple[str, Any]]:
    """The records of one check, in call order, up to the first missing or unreadable one.

    Only regular files are read (no links, no pipes): the folder was written by the student's
    kernel.
    """
    records: list[tuple[str, Any]] = []
    try:
        if not stat.S_ISDIR(os.lstat(folder).st_mode):
            return records
    except OSError:
        return records
    budget = MAX_RECORD_BYTES
    for index in range(MAX_RECORDS):
        path = folder / f"{index}.pt"
        try:
            info = os.lstat(path)
        except OSError:
            break
        if not stat.S_ISREG(info.st_mode) or info.st_size > budget:
            records.append(("value", Unreadable("a value too large, or not a file")))
            break
        budget -= info.st_size
        try:
            with open(path, "rb", opener=lambda p, f: os.open(p, f | os.O_NOFOLLOW)) as file:
                record = torch.load(io.BytesIO(file.read()), weights_only=True)
        except Exception:
            records.append(("value", Unreadable("a value the grader could not read")))
            break
        if isinstance(record, tuple) and len(record) == 2 and record[0] == "error" \
                and isinstance(record[1], list) and len(record[1]) == 5 \
                and all(isinstance(s, str) for s in record[1]):
            records.append(("error", [s[:20_000] for s in record[1]]))
        elif isinstance(record, tuple) and len(record) == 2 and record[0] == "value":
            records.append(("value", _decode(record[1])))
        else:
            records.append(("value", Unreadable("a value the grader could not read")))
            break
    return records


class _Replayer:
    def __init__(self, records: list[tuple[str, Any]]):
        self.records, self.count = records, 0

    def __call__(self, call: Callable[[], Any], what: str) -> Any:
        if self.count >= len(self.records):
            raise CheckFailed(
                what, expected="a return value",
                got="nothing: the grader's copy of this check did not get this far in your "
                "notebook",
                hint="run the notebook from the top without errors; code that ends the kernel, "
                "or that changes, skips or deletes the grader's check cells, stops the check")
        kind, value = self.records[self.count]
        self.count += 1
        if kind == "error":
            raise CheckFailed(*value)
        return value


class _Withheld:
    """Stands for a student's function in the grader's process: never called there."""

    def __init__(self, name: str):
        self.__name__ = name

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError(f"the grader's check calls {self.__name__} outside call_answer: "
                           "write the check with call_answer")


def answer_names(sources: list[str]) -> set[str]:
    """The names the answer cells define (functions, classes, variables)."""
    names: set[str] = set()
    for source in sources:
        for node in ast.parse(source).body:
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                names.add(node.name)
            for target in getattr(node, "targets", []) + [getattr(node, "target", None)]:
                names |= {n.id for n in ast.walk(target) if isinstance(n, ast.Name)} \
                    if target is not None else set()
    return names


def _outcome(grade_id: str, source: str, namespace: dict, records: list) -> dict:
    checks._answer_hook = _Replayer(records)
    printed = io.StringIO()
    error = None
    try:
        with contextlib.redirect_stdout(printed), contextlib.redirect_stderr(printed):
            exec(compile(source, f"<check {grade_id}>", "exec"), namespace)  # noqa: S102
    except CheckFailed as failure:
        error = {"ename": "CheckFailed", "evalue": failure.report(),
                 "traceback": failure.report().splitlines()}
    except Exception as failure:
        lines = traceback.format_exception_only(type(failure), failure)
        error = {"ename": type(failure).__name__, "evalue": str(failure),
                 "traceback": [line.rstrip("\n") for line in lines]}
    finally:
        checks._answer_hook = None
    return {"passed": error is None, "printed": printed.getvalue()[:100_000], "error": error}


def decide(chapter_path: Path, answers: Path) -> dict[str, dict]:
    """Run the chapter's setup and check cells on the recorded answers: one outcome per check
    (``passed``, what it ``printed``, the ``error`` that failed it)."""
    from vicourse.course.exercises import (
        SETUP_TAG,
        is_answer_cell,
        is_check_cell,
        nbgrader,
        read_chapter,
        tags,
    )

    chapter = read_chapter(chapter_path)
    namespace: dict[str, Any] = {"__name__": "__main__"}
    quiet = io.StringIO()
    for cell in chapter.notebook.cells:
        if cell.cell_type == "code" and SETUP_TAG in tags(cell):
            with contextlib.redirect_stdout(quiet), contextlib.redirect_stderr(quiet):
                exec(compile(cell.source, "<exercise setup>", "exec"), namespace)  # noqa: S102
    names = answer_names([c.source for c in chapter.notebook.cells if is_answer_cell(c)])
    namespace.update({name: _Withheld(name) for name in names})
    outcomes = {}
    for cell in chapter.notebook.cells:
        if is_check_cell(cell):
            grade_id = nbgrader(cell)["grade_id"]
            records = read_records(answers / grade_id) if _GRADE_ID.match(grade_id) else []
            outcomes[grade_id] = _outcome(grade_id, cell.source, namespace, records)
    return outcomes


if __name__ == "__main__":
    _chapter, _answers, _out = (Path(argument) for argument in sys.argv[1:4])
    Path(_out).write_text(json.dumps(decide(_chapter, _answers)), encoding="utf-8")
