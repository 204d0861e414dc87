"""Showing the package's code in a chapter: one mechanism for the website and for Colab.

A chapter cell ``show("vicourse.objectives.gaussian_kl.kl_full_gaussians")`` (its input
hidden on the website) displays the object's source as a Python code block: myst-nb renders
the Markdown output on the website, and Colab renders the same output stored in the
notebook, so both show the code that the package runs.
"""

from __future__ import annotations

import importlib
import inspect
import textwrap
from pathlib import Path

import vicourse

MIME = "text/markdown"
METADATA_KEY = "vicourse_show"  # output metadata: the dotted name of the object shown


def resolve(dotted: str) -> object:
    """The object named ``dotted`` (``package.module.name`` or ``package.module.Class.method``)."""
    if not isinstance(dotted, str) or not dotted.startswith("vicourse."):
        raise ValueError(f"show() takes a dotted name inside vicourse, got {dotted!r}")
    parts = dotted.split(".")
    for split in range(len(parts) - 1, 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:split]))
        except ModuleNotFoundError:
            continue
        for attribute in parts[split:]:
            if not hasattr(obj, attribute):
                raise ValueError(f"{'.'.join(parts[:split])} has no {attribute!r} (in {dotted!r})")
            obj = getattr(obj, attribute)
        return obj
    raise ValueError(f"no module of vicourse in {dotted!r}")


def source_markdown(dotted: str) -> str:
    """The source of ``dotted`` as a fenced Python block, headed by the file it comes from."""
    obj = inspect.unwrap(resolve(dotted))  # a decorated function: its own source
    path = Path(inspect.getsourcefile(obj)).resolve()
    package = Path(vicourse.__file__).resolve().parent.parent
    where = path.relative_to(package) if path.is_relative_to(package) else Path(path.name)
    source = textwrap.dedent(inspect.getsource(obj))  # a method is indented in its class
    return f"```python\n# {where.as_posix()}\n{source.rstrip()}\n```\n"


class Source:
    """Displays as the source of a vicourse object (Markdown; plain text where that is all)."""

    def __init__(self, dotted: str):
        self.dotted = dotted
        self.markdown = source_markdown(dotted)

    def _repr_mimebundle_(self, include=None, exclude=None):
        plain = self.markdown.split("\n", 1)[1].rsplit("```", 1)[0]
        return {MIME: self.markdown, "text/plain": plain}, {METADATA_KEY: self.dotted}


def show(dotted: str) -> Source:
    """Show the source of the vicourse function or class named ``dotted`` in a notebook."""
    return Source(dotted)
