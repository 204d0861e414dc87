"""Reading the book's table of contents and telling notebook chapters from plain pages.

Shared by ``tests/test_book.py`` and ``tests/test_rendered_pages.py``.
"""

from __future__ import annotations


def toc_files(toc: dict) -> list[str]:
    """Every 'file' entry of a jb-book table of contents (parsed ``_toc.yml``), root first."""
    files = [toc["root"]]
    stack = list(toc.get("chapters", [])) + [c for p in toc.get("parts", []) for c in p["chapters"]]
    while stack:
        entry = stack.pop(0)
        if "file" in entry:
            files.append(entry["file"])
        stack[:0] = entry.get("sections", [])
    return files


def has_kernel(text: str) -> bool:
    """True for a MyST notebook: its front matter (the text of a .md file) names a kernel."""
    header = text.split("\n---", 1)[0]
    return header.startswith("---") and "kernelspec:" in header
