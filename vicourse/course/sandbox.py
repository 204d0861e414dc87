"""Running one submitted notebook where it can harm nothing and stop nothing.

The grader (``vicourse.course.instructor``) runs each submission in its own worker process
(``python -m vicourse.course.sandbox JOB``), in a scratch folder that holds only that
submission's copy. The worker executes the notebook with the grader's own Python kernel
(never the notebook's kernelspec) and writes, after every cell, what the cell printed, so
that a kernel that dies or a worker that is killed at the notebook limit still leaves the
results of the cells that ran.

Containment, where the machine has bubblewrap (``bwrap``, Debian package ``bubblewrap``): the
kernel sees the Python installation and the vicourse library read-only, the MNIST folder
read-only, its own folder ``scratch/work`` read-write, and nothing else (no instructor files,
no other submission, not the grader's files in ``scratch``, no network, an empty environment
but for a few variables). Without bwrap the
kernel still runs in its own process, folder and environment, and the grader says loudly that
it is unsandboxed. Memory is capped with ``prlimit --data`` (the address-space limit would stop
CUDA builds of torch from loading).
"""

from __future__ import annotations

import ast
import importlib
import json
import math
import os
import shutil
import site
import subprocess
import sys
import sysconfig
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import nbformat

JOB_FILE, PROGRESS_FILE, EXECUTED_FILE = "job.json", "progress.jsonl", "executed.ipynb"
SUBMISSION_FILE = "submission.ipynb"
# The kernel's folder inside the grader's scratch folder: the only one it can write (and, in
# the sandbox, read) there. The grader's files (job, submission with its hidden tests, progress
# records, executed notebook) lie one level up, where the sandboxed kernel cannot see them.
WORK_FOLDER, ANSWERS_FOLDER = "work", "answers"


@dataclass(frozen=True)
class Limits:
    """What one submission may use: seconds per cell and per notebook, memory, output."""

    cell_seconds: float = 120.0
    notebook_seconds: float = 900.0
    memory_mb: int = 4096
    output_kb: int = 1024

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
            if not (ok and math.isfinite(value) and value > 0):
                option = "--" + name.replace("_", "-")
                raise ValueError(f"{option} must be a positive number, got {value!r}: a limit "
                                 "of 0 or less would disable it, and grading could never end")
        if self.notebook_seconds < self.cell_seconds:
            raise ValueError(f"--notebook-seconds ({self.notebook_seconds:g}) must be at least "
                             f"--cell-seconds ({self.cell_seconds:g})")

    def describe(self) -> str:
        return (f"limits: {self.cell_seconds:g} s per cell, {self.notebook_seconds:g} s per "
                f"notebook, {self.memory_mb} MB of memory, {self.output_kb} kB of output")


def bwrap_works() -> bool:
    """True when bubblewrap is installed and can make a sandbox on this machine."""
    bwrap = shutil.which("bwrap")
    if not bwrap:
        return False
    probe = subprocess.run([bwrap, "--ro-bind", "/", "/", "--unshare-net", "true"],
                           capture_output=True, check=False)
    return probe.returncode == 0


def _python_folders() -> list[str]:
    """The folders the kernel needs to read: the Python installation and its packages."""
    import vicourse

    folders = {sys.prefix, sys.base_prefix, sysconfig.get_paths()["stdlib"],
               *site.getsitepackages(), str(Path(vicourse.__file__).resolve().parent)}
    user = site.getusersitepackages()
    if Path(user).is_dir():
        folders.add(user)
    return sorted(folder for folder in folders if Path(folder).exists())


def _split_reference(dotted: str) -> tuple[Path, list[str]]:
    """The file of the module that defines ``dotted`` (``vicourse.x.y.func`` or
    ``vicourse.x.y.Class.method``), and the attribute path inside it."""
    parts = dotted.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        try:
            module = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        target: object = module
        for name in parts[cut:]:
            target = getattr(target, name)  # AttributeError: the name is wrong
        return Path(module.__file__).resolve(), parts[cut:]
    raise ImportError(f"no module in {dotted!r}")


def withheld_source(source: str, references: Sequence[tuple[str, list[str]]]) -> str:
    """A module's source with each reference's body replaced by a ``raise`` (no trace of it)."""
    tree = ast.parse(source)
    for dotted, path in references:
        scope = tree.body
        for depth, name in enumerate(path):
            node = next(n for n in scope if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef
                                                       | ast.ClassDef) and n.name == name)
            if depth == len(path) - 1:
                message = (f"{dotted} is the reference answer of an exercise: it is not "
                           "available while notebooks are graded")
                node.body = [ast.Raise(ast.Call(ast.Name("RuntimeError", ast.Load()),
                                                [ast.Constant(message)], []), None)]
            scope = node.body
    return ast.unparse(ast.fix_missing_locations(tree)) + "\n"


def withheld_binds(scratch: Path, references: Sequence[str]) -> list[str]:
    """bwrap arguments that lay, over each module holding an exercise's reference answer, a
    copy in which that reference only raises, and hide the module's compiled copies."""
    by_file: dict[Path, list[tuple[str, list[str]]]] = {}
    for dotted in references:
        path, attributes = _split_reference(dotted)
        by_file.setdefault(path, []).append((dotted, attributes))
    binds = []
    for number, (path, items) in enumerate(sorted(by_file.items())):
        stub = scratch / f"withheld-{number}.py"
        stub.write_text(withheld_source(path.read_text(encoding="utf-8"), items), encoding="utf-8")
        binds += ["--ro-bind", str(stub), str(path)]
        for compiled in sorted((path.parent / "__pycache__").glob(f"{path.stem}.*.pyc")):
            binds += ["--ro-bind", "/dev/null", str(compiled)]
    return binds


def sandbox_prefix(scratch: Path, limits: Limits, sandboxed: bool,
                   withheld: Sequence[str] = ()) -> list[str]:
    """The command that the kernel's command is appended to: memory cap, and bwrap if used
    (with the ``withheld`` reference answers replaced, see :func:`withheld_binds`)."""
    prefix = []
    if shutil.which("prlimit"):
        prefix = ["prlimit", f"--data={limits.memory_mb * 2**20}", "--"]
    if not sandboxed:
        return prefix
    binds = ["--ro-bind", "/usr", "/usr", "--ro-bind", "/etc", "/etc"]
    for link in ("/bin", "/lib", "/lib64", "/sbin"):
        if Path(link).exists():
            binds += ["--symlink", os.readlink(link), link] if Path(link).is_symlink() \
                else ["--ro-bind", link, link]
    for folder in _python_folders():
        binds += ["--ro-bind", folder, folder]
    data = os.environ.get("VICOURSE_DATA")
    if data and Path(data).is_dir():
        binds += ["--ro-bind", str(Path(data).resolve()), str(Path(data).resolve())]
    binds += withheld_binds(scratch, withheld)
    work = scratch / WORK_FOLDER  # not scratch: the grader's own files stay out of reach
    binds += ["--bind", str(work), str(work), "--chdir", str(work)]
    # In the new PID namespace the kernel's parent looks like init: without JPY_PARENT_PID,
    # ipykernel does not take that for its parent having exited.
    return [shutil.which("bwrap"), "--unshare-all", "--die-with-parent", "--unsetenv",
            "JPY_PARENT_PID", "--dev", "/dev",
            "--proc", "/proc", "--tmpfs", "/tmp", *binds, *prefix]


def kernel_environment(scratch: Path) -> dict[str, str]:
    """The kernel's whole environment: none of the grader's variables; its folder scratch/work."""
    work = scratch / WORK_FOLDER
    env = {"PATH": os.pathsep.join([str(Path(sys.executable).parent), "/usr/bin", "/bin"]),
           "HOME": str(work), "LANG": "C.UTF-8", "MPLBACKEND": "Agg",
           "MPLCONFIGDIR": str(work / ".matplotlib"), "PYTHONNOUSERSITE": "1",
           "OMP_NUM_THREADS": "1", "PYDEVD_DISABLE_FILE_VALIDATION": "1",
           "VICOURSE_ANSWERS": str(work / ANSWERS_FOLDER)}
    if os.environ.get("VICOURSE_DATA"):
        env["VICOURSE_DATA"] = str(Path(os.environ["VICOURSE_DATA"]).resolve())
    return env


# --- the worker ------------------------------------------------------------------------------


def _kernel_manager(scratch: Path, prefix: list[str]):
    from jupyter_client.manager import AsyncKernelManager

    class SandboxedKernelManager(AsyncKernelManager):
        def format_kernel_cmd(self, extra_arguments=None):
            return prefix + super().format_kernel_cmd(extra_arguments)

        @property
        def kernel_spec(self):
            spec = super().kernel_spec
            if spec is not None:  # a signal would reach bwrap, not the kernel: ask by message
                spec.interrupt_mode = "message"
            return spec

    # Unix sockets in the kernel's folder: they work across bwrap's network namespace.
    work = scratch / WORK_FOLDER
    return SandboxedKernelManager(kernel_name="python3", transport="ipc",
                                  ip=str(work / "kernel"),
                                  connection_file=str(work / "kernel.json"))


def run_job(scratch: Path) -> None:
    """Execute ``scratch/job.json``'s notebook, writing one progress line per cell."""
    from nbclient import NotebookClient
    from nbclient.exceptions import CellTimeoutError, DeadKernelError

    from vicourse.course.instructor import KERNEL_ARGUMENTS

    job = json.loads((scratch / JOB_FILE).read_text(encoding="utf-8"))
    limits = Limits(**job["limits"])
    notebook = nbformat.read(scratch / job["notebook"], as_version=4)
    (scratch / job["notebook"]).unlink()  # its hidden tests: gone before any student code runs
    (scratch / WORK_FOLDER).mkdir(exist_ok=True)
    progress = open(scratch / PROGRESS_FILE, "a", encoding="utf-8")  # noqa: SIM115

    def note(**record) -> None:
        progress.write(json.dumps(record) + "\n")
        progress.flush()

    class Client(NotebookClient):
        printed, flooded = 0, False

        def output(self, outs, msg, display_id, cell_index):
            self.printed += len(json.dumps(msg.get("content", {})))
            if self.printed > limits.output_kb * 1024:  # dropped: the grader's memory stays
                if not self.flooded:                     # bounded, whatever the cell prints
                    note(event="flood", cell=cell_index)
                    self.flooded = True
                return None
            return super().output(outs, msg, display_id, cell_index)

    client = Client(notebook, timeout=limits.cell_seconds, interrupt_on_timeout=True,
                    allow_errors=True, kernel_name="python3", record_timing=False,
                    km=_kernel_manager(scratch, job["prefix"]),
                    extra_arguments=KERNEL_ARGUMENTS,
                    resources={"metadata": {"path": str(scratch / WORK_FOLDER)}},
                    on_cell_start=lambda cell, cell_index: note(event="start", cell=cell_index),
                    on_cell_executed=lambda cell, cell_index, execute_reply: note(
                        event="done", cell=cell_index, outputs=cell.get("outputs", [])))
    try:
        client.execute(env=kernel_environment(scratch))
    except DeadKernelError:
        note(event="dead")
    except CellTimeoutError:
        note(event="timeout")
    finally:
        nbformat.write(notebook, scratch / EXECUTED_FILE)
        progress.close()


if __name__ == "__main__":
    run_job(Path(sys.argv[1]))
