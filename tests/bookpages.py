"""Reading the book's table of contents and telling notebook chapters from plain pages.

Shared by ``tests/test_book.py``, ``tests/test_rendered_pages.py`` and
``tests/test_figure_scale.py``; ``serve`` puts the built website on a local port.
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path


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


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:  # no request log in the test output
        pass


@contextlib.contextmanager
def serve(folder: Path) -> Iterator[str]:
    """Serve ``folder`` on http://127.0.0.1:<free port>; yields the base URL."""
    handler = functools.partial(QuietHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
