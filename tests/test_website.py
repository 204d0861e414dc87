"""vicourse.course.website: the Sphinx extension behind the website's fixes, without a build.

The browser tests (tests/test_rendered_pages.py) check the built pages; these check each piece
on inputs made here, so that a failure names the piece.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from docutils import nodes
from hypothesis import given
from hypothesis import strategies as st

from vicourse.course import website

ROOT = Path(__file__).resolve().parents[1]


# --- nbgrader markers ------------------------------------------------------------------------


def test_markers_go_and_the_answer_stays():
    source = 'def f(x):\n    """Doc."""\n    ### BEGIN SOLUTION\n    return x\n    ### END SOLUTION'
    assert website.without_nbgrader_markers(source) == 'def f(x):\n    """Doc."""\n    return x'


def test_hidden_test_markers_go_and_lookalikes_stay():
    source = "### BEGIN HIDDEN TESTS\nassert g(2) == 4\n### END HIDDEN TESTS\n"
    assert website.without_nbgrader_markers(source) == "assert g(2) == 4\n"
    kept = 'print("### BEGIN SOLUTION")\n# ### END SOLUTION here\nx = 1  ### END SOLUTION'
    assert website.without_nbgrader_markers(kept) == kept


@given(st.lists(st.text(alphabet=st.characters(blacklist_characters="\n\r"), max_size=30)))
def test_lines_without_markers_are_untouched(lines):
    lines = [line for line in lines if not website.NBGRADER_MARKER.match(line)]
    source = "\n".join(lines)
    assert website.without_nbgrader_markers(source) == source


def code_cell(source: str, metadata: dict) -> nodes.container:
    block = nodes.literal_block(source, source)
    inner = nodes.container("", block, nb_element="cell_code_source")
    return nodes.container("", inner, nb_element="cell_code", cell_metadata=metadata)


def test_doctree_hook_strips_only_nbgrader_cells():
    answer = "def f(x):\n    ### BEGIN SOLUTION\n    return x\n    ### END SOLUTION"
    document = nodes.document(None, None)
    document += code_cell(answer, {"nbgrader": {"solution": True}})
    document += code_cell(answer, {"tags": ["hide-input"]})  # no nbgrader: shown as written
    website.strip_nbgrader_markers(None, document)
    blocks = [block.astext() for block in document.findall(nodes.literal_block)]
    assert blocks == ["def f(x):\n    return x", answer]


# --- progress bars ---------------------------------------------------------------------------


def tqdm_state(left: str, value: float, high: float, right: str) -> dict:
    """Widget state as tqdm.notebook leaves it: HBox(HTML, FloatProgress, HTML)."""
    return {
        "box": {
            "model_name": "HBoxModel",
            "state": {"children": ["IPY_MODEL_left", "IPY_MODEL_bar", "IPY_MODEL_right"]},
        },
        "left": {"model_name": "HTMLModel", "state": {"value": left}},
        "bar": {"model_name": "FloatProgressModel", "state": {"value": value, "max": high}},
        "right": {"model_name": "HTMLModel", "state": {"value": right}},
    }


def test_finished_bar_reads_like_tqdm_text():
    state = tqdm_state(
        "training\u2007the\u2007encoder:\u2007100%", 800, 800, "\u2007800/800\u2007[00:01&lt;00:00]"
    )
    assert website.progress_text(state, "box") == (
        "training the encoder: 100%|██████████| 800/800 [00:01<00:00]"
    )


@given(st.integers(0, 1000), st.integers(1, 1000))
def test_bar_length_follows_the_fraction(value, high):
    value = min(value, high)
    line = website.progress_text(tqdm_state("x", value, high, "y"), "box")
    bar = re.fullmatch(r"x\|(█*)( *)\|y", line)
    assert bar is not None and len(bar[1]) + len(bar[2]) == 10
    assert abs(len(bar[1]) - 10 * value / high) <= 0.5


def test_other_widgets_are_left_alone():
    state = tqdm_state("a", 1, 2, "b")
    state["right"]["model_name"] = "ButtonModel"
    assert website.progress_text(state, "box") is None
    assert website.progress_text(state, "missing") is None


# --- bibliography labels ---------------------------------------------------------------------


def test_bibliography_labels_are_author_year_and_unique():
    from pybtex.database import parse_file
    from pybtex.plugin import find_plugin

    style = find_plugin("pybtex.style.formatting", website.register_author_year_style())()
    bib = parse_file(str(ROOT / "book" / "references.bib"))
    labels = [entry.label for entry in style.format_bibliography(bib)]
    assert len(labels) == len(bib.entries) and len(set(labels)) == len(labels)
    for label in labels:
        assert re.fullmatch(r"[^\W\d][^\\{}$]*(?: et al\.)?, \d{4}[a-z]?", label), label
    kingma = bib.entries["kingma2014autoencoding"]
    assert style.label_style.format_label(kingma) == "Kingma and Welling, 2014"


def test_same_authors_and_year_get_letters():
    from pybtex.database import parse_string
    from pybtex.plugin import find_plugin

    style = find_plugin("pybtex.style.formatting", website.register_author_year_style())()
    bib = parse_string(
        "@misc{a, author={Doe, Jane}, title={One}, year={2020}}\n"
        "@misc{b, author={Doe, Jane}, title={Two}, year={2020}}\n"
        "@misc{c, author={Doe, Jane and Roe, Rick and Poe, Pat}, title={Three}, year={2021}}",
        "bibtex",
    )
    assert sorted(e.label for e in style.format_bibliography(bib)) == [
        "Doe et al., 2021",
        "Doe, 2020a",
        "Doe, 2020b",
    ]


def test_bib_titles_have_no_tex_math():
    """Titles are shown as text on the bibliography page: no $...$ (write R\u0302, not TeX)."""
    text = (ROOT / "book" / "references.bib").read_text(encoding="utf-8")
    assert "$" not in text


# --- page scripts ----------------------------------------------------------------------------


def test_each_script_is_loaded_once():
    from sphinx.builders.html._assets import _JavaScript

    body = 'const THEBE_JS_URL = "x"'
    scripts = [
        _JavaScript("a.js"),
        _JavaScript(None, body=body),
        _JavaScript("b.js", defer="defer"),
        _JavaScript("", body=body),  # what Sphinx 7 adds a second time
        _JavaScript("a.js"),
    ]
    context = {"script_files": scripts}
    website.one_script_each(None, "page", "page.html", context, None)
    assert [(s.filename, s.attributes) for s in context["script_files"]] == [
        ("a.js", {}),
        (None, {"body": body}),
        ("b.js", {"defer": "defer"}),
    ]
    assert context["script_files"] is scripts  # the page's own list, changed in place


@pytest.mark.parametrize("given_context", [{}, {"default_mode": "dark"}])
def test_theme_mode_is_valid_and_a_chosen_one_is_kept(given_context):
    class Config:
        html_context = dict(given_context)

    website.theme_defaults(None, Config)
    assert Config.html_context["default_mode"] == given_context.get("default_mode", "auto")
