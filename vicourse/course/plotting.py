"""The book's figure style: figures drawn for the website's text column, text readable in it.

The website shows a figure at its natural size (one image pixel per CSS pixel, at ``DPI``
pixels per inch) up to the width of the text column, and shrinks a wider one to fit: a figure
14 inches wide is shown at half its size, its 10-point tick labels 7 pixels tall. Every
chapter's import cell calls :func:`use_book_style`, which sets the default figure to the
column's width and the font sizes; a chapter then draws at most two panels side by side in
``WIDTH`` inches (more panels go on further rows). ``tests/test_figure_scale.py`` measures
the scale at which the browser shows every figure of the built website.
"""

from __future__ import annotations

import matplotlib

COLUMN_PX = 688  # width of the text column at a 1280 px wide window (sphinx-book-theme)
DPI = 100  # image pixels per inch; the website shows one image pixel per CSS pixel
WIDTH = 6.8  # inches: the widest figure, COLUMN_PX / DPI less room for the tight bounding box

BOOK_STYLE = {
    "figure.figsize": (WIDTH, 3.6),
    "figure.dpi": DPI,
    "font.size": 10,
    "axes.titlesize": 10.5,
    "axes.labelsize": 10,
    "xtick.labelsize": 9,
    "ytick.labelsize": 9,
    "legend.fontsize": 9,
    "legend.title_fontsize": 9,
    "figure.titlesize": 11,
}
FONT_SIZES = ("font.size", "axes.titlesize", "axes.labelsize", "xtick.labelsize",
              "ytick.labelsize", "legend.fontsize", "legend.title_fontsize", "figure.titlesize")


def use_book_style() -> None:
    """Set matplotlib's defaults to the book's: figure width, resolution and font sizes."""
    matplotlib.rcParams.update(BOOK_STYLE)
