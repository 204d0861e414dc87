"""Sphinx extension for the book's website: what a reader should see that the defaults get wrong.

Registered in ``_config.yml`` (``sphinx.extra_extensions``); it changes the rendered pages
only, never the chapter sources or the executed notebooks:

- code cells with nbgrader metadata lose the ``### BEGIN SOLUTION`` / ``### END SOLUTION``
  (and hidden-test) marker lines, which nbgrader needs in the sources, not the reader;
- a tqdm progress bar (an ipywidgets HBox) is shown as the text of its final state, read
  from the widget state the execution stored, instead of a widget that renders only with a
  widget manager loaded from a CDN (in Colab and Jupyter it stays a live widget);
- the bibliography labels entries by author and year, as the citations in the text do;
- every page loads each inline script once (Sphinx 7 adds body-only scripts twice,
  sphinx-doc/sphinx#13402: "Identifier 'THEBE_JS_URL' has already been declared") and starts
  the theme in a valid colour mode (pydata-sphinx-theme logs an error otherwise);
- the search page typesets the mathematics in its result snippets with MathJax.
"""

from __future__ import annotations

import json
import re
from html import unescape
from typing import Any

from docutils import nodes

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
NBGRADER_MARKER = re.compile(r"^[ \t]*### (?:BEGIN|END) (?:SOLUTION|HIDDEN TESTS)[ \t]*$")


# --- nbgrader markers ------------------------------------------------------------------------


def without_nbgrader_markers(source: str) -> str:
    """The code without nbgrader's marker lines (### BEGIN SOLUTION, ### END HIDDEN TESTS...)."""
    return "\n".join(line for line in source.split("\n") if not NBGRADER_MARKER.match(line))


def strip_nbgrader_markers(app: Any, doctree: nodes.document) -> None:
    """doctree-read: drop the marker lines from the source of every nbgrader code cell."""
    for cell in doctree.findall(nodes.container):
        if cell.get("nb_element") != "cell_code" or "nbgrader" not in cell.get("cell_metadata", {}):
            continue
        for source in cell.findall(nodes.container):
            if source.get("nb_element") != "cell_code_source":
                continue
            for block in source.findall(nodes.literal_block):
                text = without_nbgrader_markers(block.astext())
                if text != block.astext():
                    block.children = []
                    block += nodes.Text(text)
                    block.rawsource = text


# --- progress bars ---------------------------------------------------------------------------


def progress_text(state: dict[str, Any], model_id: str) -> str | None:
    """The final line of a tqdm notebook bar (HBox of HTML, progress, HTML) as tqdm prints it.

    ``state`` maps model ids to {"model_name", "state"} (the notebook's widget state). Returns
    None for any other widget.
    """
    box = state.get(model_id, {})
    children = box.get("state", {}).get("children", [])
    if box.get("model_name") != "HBoxModel" or len(children) != 3:
        return None
    left, bar, right = (state.get(child.removeprefix("IPY_MODEL_"), {}) for child in children)
    if left.get("model_name") != "HTMLModel" or right.get("model_name") != "HTMLModel":
        return None
    if bar.get("model_name") not in ("FloatProgressModel", "IntProgressModel"):
        return None

    def text(model: dict[str, Any]) -> str:  # tqdm writes figure spaces and escapes HTML
        plain = re.sub(r"<[^>]*>", "", unescape(str(model["state"].get("value", ""))))
        return plain.replace("\u2007", " ")

    low, high = bar["state"].get("min", 0), bar["state"].get("max", 100)
    value = bar["state"].get("value", low)
    filled = round(10 * (value - low) / (high - low)) if high > low else 0
    filled = min(max(filled, 0), 10)
    return f"{text(left)}|{'█' * filled}{' ' * (10 - filled)}|{text(right)}".strip()


def widgets_as_text(app: Any, doctree: nodes.document) -> None:
    """doctree-read: replace each progress-bar widget output by the text of its final state.

    myst-nb keeps every mime type of an output in a ``mime_bundle`` container and picks one
    per builder later; here the widget view is dropped and the text/plain one (tqdm's initial
    "0%" line) gets the final line, so HTML and LaTeX both show the finished bar. When no
    widget is left, the page no longer loads the widget state and the widget manager.
    """
    env = app.env
    js_files = getattr(env, "nb_metadata", {}).get(env.docname, {}).get("js_files", {})
    if "ipywidgets_state" not in js_files:
        return
    state = json.loads(js_files["ipywidgets_state"][1]["body"]).get("state", {})
    remaining = 0
    for bundle in list(doctree.findall(nodes.container)):
        if bundle.get("nb_element") != "mime_bundle":
            continue
        views = [child for child in bundle.children if child.get("mime_type") == WIDGET_VIEW]
        if not views:
            continue
        found = re.search(r'model_id\\?":\s*\\?"([0-9a-f]+)', views[0].astext())
        line = progress_text(state, found.group(1)) if found else None
        if line is None:
            remaining += 1
            continue
        bundle.children = []
        block = nodes.literal_block(line, line, language="none", classes=["output", "text_plain"])
        bundle += nodes.container("", block, mime_type="text/plain")
    if remaining == 0:
        for key in [k for k in js_files if k.startswith("ipywidgets")]:
            del js_files[key]


# --- bibliography labels ---------------------------------------------------------------------


def register_author_year_style() -> str:
    """Register the pybtex formatting style "authoryear" (plain, labelled "Kingma and Welling,
    2014") and return its name."""
    from pybtex.plugin import register_plugin
    from pybtex.style.formatting.plain import Style as PlainStyle
    from pybtex.style.labels import BaseLabelStyle

    class AuthorYearLabels(BaseLabelStyle):
        def format_labels(self, sorted_entries):
            labels = [self.format_label(entry) for entry in sorted_entries]
            seen: dict[str, int] = {}
            for label in labels:  # two works of the same authors and year: 2014a, 2014b
                if labels.count(label) > 1:
                    seen[label] = seen.get(label, 0) + 1
                    yield label + "abcdefghijklmnopqrstuvwxyz"[seen[label] - 1]
                else:
                    yield label

        def format_label(self, entry):
            people = entry.persons.get("author") or entry.persons.get("editor") or []
            names = [  # rich names: LaTeX such as P{\'e}rez decoded
                " ".join(n.render_as("text") for n in p.rich_prelast_names + p.rich_last_names)
                for p in people
            ]
            if len(names) > 2:
                who = f"{names[0]} et al."
            else:
                who = " and ".join(names) or entry.key
            return f"{who}, {entry.fields.get('year', 'n.d.')}"

    class AuthorYearStyle(PlainStyle):
        default_label_style = "authoryear"

    register_plugin("pybtex.style.labels", "authoryear", AuthorYearLabels)
    register_plugin("pybtex.style.formatting", "authoryear", AuthorYearStyle)
    return "authoryear"


# --- page scripts ----------------------------------------------------------------------------


def one_script_each(app: Any, pagename: str, templatename: str, context: dict, doctree: Any):
    """html-page-context: every script once (body-only scripts are registered twice)."""
    scripts = context.get("script_files")
    if not scripts:
        return
    seen, unique = set(), []
    for script in scripts:
        filename = getattr(script, "filename", script) or ""
        attributes = getattr(script, "attributes", {})
        key = (str(filename), json.dumps(attributes, sort_keys=True, default=str))
        if key not in seen:
            seen.add(key)
            unique.append(script)
    scripts[:] = unique


# Runs on search.html: Sphinx cuts each snippet from the page's text, where inline math is TeX
# between \( and \); display equations are left out, math cut by the snippet's window is
# dropped, and MathJax typesets the rest.
SEARCH_JS = r"""
document.addEventListener("DOMContentLoaded", () => {
  if (typeof Search === "undefined") return;
  const pageText = Search.htmlToText;
  Search.htmlToText = (htmlString, anchor) => {
    const page = new DOMParser().parseFromString(htmlString, "text/html");
    page.querySelectorAll("div.math").forEach((el) => el.replaceWith(" … "));
    return pageText(page.documentElement.outerHTML, anchor);
  };
  const summary = Search.makeSearchSummary;
  Search.makeSearchSummary = (htmlText, keywords, anchor) => {
    const node = summary(htmlText, keywords, anchor);
    if (!node) return node;
    let text = node.textContent;
    const firstClose = text.indexOf("\\)");
    const firstOpen = text.indexOf("\\(");
    if (firstClose > -1 && (firstOpen === -1 || firstClose < firstOpen)) {
      text = "..." + text.slice(firstClose + 2);
    }
    const lastOpen = text.lastIndexOf("\\(");
    if (lastOpen > text.lastIndexOf("\\)")) text = text.slice(0, lastOpen) + "...";
    node.textContent = text;
    if (window.MathJax && MathJax.startup) {
      MathJax.startup.promise.then(() => MathJax.typesetPromise([node]));
    }
    return node;
  };
});
"""


def search_with_math(app: Any, pagename: str, templatename: str, context: dict, doctree: Any):
    """html-page-context: the search page loads MathJax and typesets its result snippets."""
    if pagename != "search" or app.builder.format != "html":
        return
    app.add_js_file(app.config.mathjax_path, loading_method="defer", priority=900)
    app.add_js_file(None, body=SEARCH_JS, priority=901)


def theme_defaults(app: Any, config: Any) -> None:
    """config-inited: a valid colour mode to start from (the reader's choice still wins).

    pydata-sphinx-theme reads it from ``html_context``; unset, a first visit logs "Got
    invalid theme mode".
    """
    context = dict(config.html_context or {})
    context.setdefault("default_mode", "auto")
    config.html_context = context


def setup(app: Any) -> dict[str, Any]:
    register_author_year_style()
    app.connect("config-inited", theme_defaults)
    app.connect("doctree-read", strip_nbgrader_markers)
    app.connect("doctree-read", widgets_as_text)
    app.connect("html-page-context", search_with_math)
    app.connect("html-page-context", one_script_each, priority=900)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
