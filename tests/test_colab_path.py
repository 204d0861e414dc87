"""The Colab path: what a student gets who presses a chapter's Colab button.

Colab installs the package from the repository with ``pip install`` (not editable, no
``requirements.txt``) and runs the chapter's notebook ``book/<chapter>.ipynb`` in a folder that
is not the repository. These tests do the same, offline and without downloading PyTorch again:

- the package is built as a wheel from the repository's files and installed with ``pip
  install --no-index`` into a fresh virtual environment that has no packages but the declared
  dependencies (``[project] dependencies`` of ``pyproject.toml``, the closure of their own
  requirements) and ipykernel, linked from this environment; pip itself checks that every
  declared dependency is there, and nothing else is (no jupytext, no nbgrader, no vicourse
  from the repository);
- a quick chapter's Colab notebook is copied to an empty folder and executed there, on a
  kernel of that environment, and reports where it imported vicourse from;
- for every chapter with a Colab button, a static check that every import of the notebook's
  code cells, and of the vicourse modules they import, is the standard library, vicourse, or a
  declared dependency.

Chapters in ``vicourse.course.colab.NO_COLAB`` have no Colab notebook and no Colab button (the
reason is given there and in the chapter).

Environment: ``VICOURSE_COLAB_RUN``: the chapters to execute, comma-separated, or ``all``
(default ``gaussian_kl``, about ten seconds). Chapters that read MNIST need ``VICOURSE_DATA``.
"""

from __future__ import annotations

import ast
import functools
import importlib.metadata as metadata
import json
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path, PurePosixPath

import jupytext
import nbformat
import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from vicourse.course import colab

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    tomllib = pytest.importorskip("tomli")

ROOT = Path(__file__).resolve().parents[1]
BOOK = colab.Book.read(ROOT)
BOOK_CONFIG = yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))
COLAB_PAGES = colab.chapters(BOOK)  # every chapter with a Colab notebook and button
RUN = os.environ.get("VICOURSE_COLAB_RUN", "gaussian_kl")
RUN_PAGES = COLAB_PAGES if RUN == "all" else [f"book/{name.strip()}" for name in RUN.split(",")]
KERNEL_PROVIDED = {"IPython"}  # the kernel that runs any notebook, Colab's included
BOOK_REPO = "/".join(BOOK_CONFIG["repository"]["url"].rstrip("/").split("/")[-2:])
PACKAGE_FILES = ["pyproject.toml", "README.md", "vicourse"]  # what `pip install .` reads


# --- what the package declares ------------------------------------------------------------


def declared() -> list[Requirement]:
    """The ``[project] dependencies`` of pyproject.toml that apply on this platform."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    requirements = [Requirement(line) for line in project["dependencies"]]
    return [r for r in requirements if r.marker is None or r.marker.evaluate({"extra": ""})]


def closure(requirements: list[Requirement]) -> dict[str, metadata.Distribution]:
    """The installed distributions that ``requirements`` need, their own requirements included."""
    found: dict[str, metadata.Distribution] = {}
    todo = list(requirements)
    while todo:
        requirement = todo.pop()
        name = canonicalize_name(requirement.name)
        if name in found:
            continue
        found[name] = metadata.distribution(requirement.name)
        extras = [{"extra": extra} for extra in (requirement.extras or {""})]
        for line in found[name].requires or []:
            needed = Requirement(line)
            if needed.marker is None or any(needed.marker.evaluate(e) for e in extras):
                todo.append(needed)
    return found


@functools.cache
def declared_import_names() -> dict[str, str]:
    """Import name -> distribution, for every declared dependency (``sklearn`` -> scikit-learn)."""
    names = {canonicalize_name(r.name): r.name for r in declared()}
    return {module: names[canonicalize_name(dist)]
            for module, dists in metadata.packages_distributions().items()
            for dist in dists if canonicalize_name(dist) in names}


# --- the static check -----------------------------------------------------------------------


def imports(source: str) -> set[str]:
    """The absolute module names that ``source`` imports (magics and shell lines dropped)."""
    code = "\n".join("" if line.lstrip().startswith(("%", "!")) else line
                     for line in source.split("\n"))
    found = set()
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return found - {"__future__"}


def vicourse_module(name: str) -> Path | None:
    """The source file of the vicourse module ``name``, or None (not a module: a function)."""
    path = ROOT.joinpath(*name.split("."))
    for candidate in (path.with_suffix(".py"), path / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def relative_imports(path: Path, name: str) -> set[str]:
    """The modules a vicourse module imports with ``from . import x`` / ``from .y import z``."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1])
            module = f"{base}.{node.module}" if node.module else base
            found |= {module} | {f"{module}.{alias.name}" for alias in node.names}
    return found


def third_party_imports(notebook: nbformat.NotebookNode) -> dict[str, str]:
    """Top-level import name -> where it is imported (the notebook or a vicourse module), over
    the notebook's code cells and the vicourse modules they import, recursively."""
    found: dict[str, str] = {}
    pending = [(name, "the notebook") for cell in notebook.cells if cell.cell_type == "code"
               for name in imports(cell.source)]
    seen: set[str] = set()
    while pending:
        name, where = pending.pop()
        top = name.split(".")[0]
        if top != "vicourse":
            found.setdefault(top, where)
            continue
        parts = name.split(".")  # vicourse.a.b imports vicourse, vicourse.a, vicourse.a.b
        for depth in range(1, len(parts) + 1):
            module = ".".join(parts[:depth])
            path = vicourse_module(module)
            if path is None or module in seen:
                continue
            seen.add(module)
            source = path.read_text(encoding="utf-8")
            pending += [(n, module) for n in imports(source) | relative_imports(path, module)]
    return found


def is_stdlib(name: str) -> bool:
    return name in sys.stdlib_module_names


@pytest.mark.parametrize("page", COLAB_PAGES)
def test_every_import_of_a_colab_notebook_is_a_declared_dependency(page: str):
    notebook = nbformat.read(ROOT / f"{page}.ipynb", as_version=4)
    allowed = declared_import_names()
    undeclared = {name: where for name, where in third_party_imports(notebook).items()
                  if not is_stdlib(name) and name not in allowed and name not in KERNEL_PROVIDED}
    assert not undeclared, (
        f"{page}.ipynb imports what `pip install vicourse` does not install: "
        + "; ".join(f"{name} (in {where}; distribution "
                    f"{metadata.packages_distributions().get(name, ['none installed'])})"
                    for name, where in sorted(undeclared.items()))
        + ". Declare it in pyproject.toml [project] dependencies, or do not import it."
    )


def test_the_static_check_sees_what_the_instructors_chapter_needs():
    """The check can fail: the chapter without a Colab button imports undeclared tools."""
    found = third_party_imports(jupytext.read(ROOT / "book" / "instructors.md", fmt="md:myst"))
    assert "jupytext" in found and "jupytext" not in declared_import_names(), found


# --- the Colab path executed --------------------------------------------------------------


def run(*command: object, **kwargs) -> str:
    result = subprocess.run([str(c) for c in command], capture_output=True, text=True, **kwargs)
    assert result.returncode == 0, f"{command} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def link_distributions(distributions: dict[str, metadata.Distribution], site: Path) -> None:
    """Make ``distributions`` importable and pip-visible in ``site`` by linking their files'
    top-level entries (packages, modules, ``.dist-info``) from where they are installed."""
    for dist in distributions.values():
        base = Path(dist.locate_file(""))
        tops = {PurePosixPath(str(f)).parts[0] for f in dist.files or []}
        for top in tops - {"..", "__pycache__"}:
            if not (site / top).exists() and (base / top).exists():
                (site / top).symlink_to(base / top)


@pytest.fixture(scope="module")
def colab_python(tmp_path_factory) -> tuple[Path, Path]:
    """A Python whose packages are what ``pip install`` of the repository gives: the declared
    dependencies, ipykernel, and vicourse from a wheel. Returns (python, its site-packages)."""
    tmp = tmp_path_factory.mktemp("colab")
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard",
                             "--", *PACKAGE_FILES], cwd=ROOT, capture_output=True, text=True)
    files = listed.stdout.split() if listed.returncode == 0 else None
    source = tmp / "repository"  # the repository's files only, no build products or egg-info
    for name in files or PACKAGE_FILES:
        target = source / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, target, ignore=shutil.ignore_patterns("__pycache__"))
        elif (ROOT / name).exists():
            shutil.copy2(ROOT / name, target)
    run(sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
        "--no-index", "-w", tmp / "wheels", source)

    env_dir = tmp / "venv"
    venv.EnvBuilder(with_pip=False, symlinks=True).create(env_dir)
    python = env_dir / "bin" / "python"
    site = Path(run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])")
                .strip())
    link_distributions(closure([*declared(), Requirement("ipykernel")]), site)
    run(sys.executable, "-m", "pip", "--python", python, "install", "-q",
        "--disable-pip-version-check", "--no-index", "--find-links", tmp / "wheels", "vicourse")
    return python, site


def test_pip_install_gives_vicourse_from_the_wheel_and_nothing_undeclared(colab_python):
    python, site = colab_python
    probe = ("import importlib.util, json, vicourse, vicourse.course.show; print(json.dumps("
             "[vicourse.__file__, importlib.util.find_spec('jupytext') is None, "
             "importlib.util.find_spec('nbgrader') is None]))")
    where, no_jupytext, no_nbgrader = json.loads(run(python, "-c", probe, cwd=site.parent))
    assert Path(where).is_relative_to(site) and not Path(where).is_relative_to(ROOT), where
    assert (site / "vicourse").is_dir() and not (site / "vicourse").is_symlink()
    assert no_jupytext and no_nbgrader, "undeclared tools leaked into the simulated Colab"


@pytest.mark.parametrize("page", RUN_PAGES)
def test_colab_notebook_runs_after_pip_install_in_a_folder_without_the_book(
        page: str, colab_python, tmp_path):
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import KernelManager
    from nbclient import NotebookClient

    python, site = colab_python
    kernels = tmp_path / "kernels" / "colab-simulation"
    kernels.mkdir(parents=True)
    (kernels / "kernel.json").write_text(json.dumps({
        "argv": [str(python), "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Colab simulation", "language": "python",
        "env": {"PYTHONPATH": "", "PYTHONNOUSERSITE": "1"},
    }))
    student = tmp_path / "content"  # Colab's working folder: the notebook and nothing else
    student.mkdir()
    shutil.copy2(ROOT / f"{page}.ipynb", student)
    notebook = nbformat.read(student / f"{Path(page).name}.ipynb", as_version=4)
    notebook.cells.append(nbformat.v4.new_code_cell("import vicourse\nprint(vicourse.__file__)"))
    manager = KernelManager(kernel_name="colab-simulation", kernel_spec_manager=KernelSpecManager(
        kernel_dirs=[str(kernels.parent)]))
    NotebookClient(notebook, km=manager, timeout=600,
                   resources={"metadata": {"path": str(student)}}).execute()
    where = Path(notebook.cells[-1].outputs[0]["text"].strip())
    assert where.is_relative_to(site) and not where.is_relative_to(ROOT), where


# --- the website's Colab buttons ----------------------------------------------------------


def test_a_page_without_a_colab_notebook_loses_its_colab_button(tmp_path):
    (tmp_path / "a.md").write_text("")
    (tmp_path / "b.md").write_text("")
    (tmp_path / "b.ipynb").write_text("{}")
    app = type("App", (), {"srcdir": str(tmp_path)})()

    def context() -> dict:
        launch = {"label": "launch-buttons", "buttons": [{"text": "Colab", "url": "x"}]}
        return {"header_buttons": [{"label": "download-buttons"}, launch]}

    without, with_notebook = context(), context()
    colab.remove_colab_button(app, "a", "page.html", without, None)
    colab.remove_colab_button(app, "b", "page.html", with_notebook, None)
    assert [b["label"] for b in without["header_buttons"]] == ["download-buttons"]
    assert with_notebook == context()


def test_the_website_offers_colab_exactly_where_a_colab_notebook_is():
    html = ROOT / "_build" / "html"
    if not (html / "index.html").exists():
        pytest.skip("the website is not built (jupyter-book build .)")
    colab_url = "https://colab.research.google.com/github/"
    for page in BOOK.pages:
        text = (html / f"{page}.html").read_text(encoding="utf-8")
        button = f"{colab_url}{BOOK_REPO}/blob/" in text and f"/{page}.ipynb" in text
        if page in COLAB_PAGES:
            assert button, f"{page}: no Colab button on the website"
        else:
            # the page's own launch link (a cell output may show other Colab URLs as text)
            assert not button, (
                f"{page} has no Colab notebook but a Colab button (rebuild the website)")
