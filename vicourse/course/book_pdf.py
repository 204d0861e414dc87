"""The PDF of the whole book, linked from every page of the website.

``jupyter-book build . --builder pdflatex`` writes ``_build/latex/vicourse.pdf`` (XeLaTeX,
``latex`` in ``_config.yml``); CI (``.ci/run``) copies it to ``_build/html/vicourse.pdf``. As a
Sphinx extension this module adds *The whole book (.pdf)* to the download menu of every page.
"""

from __future__ import annotations

PDF_NAME = "vicourse.pdf"  # in the website's root folder, beside index.html


def add_book_pdf_button(app, pagename: str, templatename: str, context: dict, doctree) -> None:
    """``html-page-context``, after sphinx-book-theme's buttons: the book's PDF in the download
    menu, as a link relative to the page."""
    for button in context.get("header_buttons", []):
        if button.get("label") == "download-buttons":
            button["buttons"].append({
                "type": "link", "url": context["pathto"](PDF_NAME, 1),
                "text": "The whole book (.pdf)", "tooltip": "Download the whole book as a PDF",
                "icon": "fas fa-book", "label": "download-book-pdf-button",
            })


def setup(app) -> dict:
    """Sphinx extension: a link to the book's PDF on every page."""
    app.connect("html-page-context", add_book_pdf_button, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
