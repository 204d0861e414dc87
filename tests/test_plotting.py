"""vicourse.course.plotting: the book's figure style, and that every chapter draws with it.

The browser measures the figures of the built website (tests/test_figure_scale.py); these
checks need no build: a figure of the style's width fits the column, its text is at least
9 points, and the chapters call the style and ask for no wider figure.
"""

from __future__ import annotations

import io
import re
from pathlib import Path

import jupytext
import matplotlib
import pytest
from PIL import Image

matplotlib.use("agg")
import matplotlib.pyplot as plt  # noqa: E402

from vicourse.course import plotting  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = sorted((ROOT / "book").glob("*.md"))
FIGSIZE = re.compile(r"figsize=\(\s*([0-9.]+)\s*,")


@pytest.fixture
def book_style():
    with matplotlib.rc_context():
        plotting.use_book_style()
        yield
    plt.close("all")


def natural_width(fig) -> int:
    """The width in pixels of the PNG that Jupyter's inline backend makes of the figure."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", bbox_inches="tight", dpi=fig.dpi)  # as the inline backend
    return Image.open(buffer).size[0]


def test_style_sets_the_defaults(book_style):
    for key, value in plotting.BOOK_STYLE.items():
        expected = list(value) if isinstance(value, tuple) else value
        assert matplotlib.rcParams[key] == expected, key
    assert plt.figure().dpi == plotting.DPI


def test_text_is_at_least_nine_points(book_style):
    for key in plotting.FONT_SIZES:  # sizes in points, or words like "large" relative to font.size
        points = matplotlib.font_manager.FontProperties(size=matplotlib.rcParams[key]).get_size()
        assert points >= 9, key


@pytest.mark.parametrize("layout", ["constrained", "tight"])
def test_a_full_width_two_panel_figure_fits_the_column(book_style, layout):
    fig, axes = plt.subplots(1, 2, figsize=(plotting.WIDTH, 3.4), layout=layout)
    for ax in axes:
        ax.plot([1, 10, 100], [0.5, 2.0, 1.0], label="a curve")
        ax.set_xlabel("a label on the x axis")
        ax.set_ylabel("a label on the y axis")
        ax.set_title("A title over the panel")
        ax.legend()
    width = natural_width(fig)
    # Shown at (nearly) its natural size, and filling most of the column.
    assert 0.85 * plotting.COLUMN_PX <= width <= plotting.COLUMN_PX / 0.95


def test_a_wider_figure_would_be_shrunk(book_style):
    """The check above can fail: the old 14-inch figures were twice the column's width."""
    fig, ax = plt.subplots(figsize=(14, 4))
    ax.plot([0, 1])
    assert natural_width(fig) > 1.4 * plotting.COLUMN_PX


@pytest.mark.parametrize("chapter", CHAPTERS, ids=[path.stem for path in CHAPTERS])
def test_chapters_draw_with_the_book_style(chapter):
    text = chapter.read_text(encoding="utf-8")
    if "import matplotlib" not in text:
        pytest.skip("no figures")
    cells = [cell.source for cell in jupytext.reads(text, fmt="md:myst").cells
             if cell.cell_type == "code"]
    setup = next(source for source in cells if "import matplotlib" in source)
    assert "use_book_style()" in setup, (
        f"{chapter.name}: the cell that imports matplotlib must call use_book_style() "
        "(from vicourse.course.plotting)"
    )
    wide = [float(w) for source in cells for w in FIGSIZE.findall(source)
            if float(w) > plotting.WIDTH]
    assert not wide, (
        f"{chapter.name} draws figures {wide} inches wide; the text column holds "
        f"{plotting.WIDTH}: put the panels on more rows"
    )
