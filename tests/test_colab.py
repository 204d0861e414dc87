"""vicourse.course.colab: MyST chapters written as Colab notebooks, on a small book made here."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import nbformat
import pytest

from vicourse.course import colab
from vicourse.course.show import METADATA_KEY, source_markdown

HEADER = "---\nkernelspec:\n  display_name: Python 3\n  language: python\n  name: python3\n---\n"

FIRST = HEADER + textwrap.dedent('''\
    (chap-first)=
    # The first chapter

    ```{code-cell} ipython3
    :tags: [remove-cell]

    import sys  # google.colab install cell
    ```

    (sec-first-bound)=
    ## A bound

    The value is {glue:text}`ratio:.2f`, as {cite:t}`kingma2014auto` found and others
    too {cite:p}`kingma2014auto,burda2016importance`. Code spans stay: `` {glue:text}`x` ``.

    ```{prf:theorem} A bound
    :label: thm-first-bound

    For all $q$,

    $$
    a \\le b .
    $$ (eq-first-bound)
    ```

    ```{prf:proof}
    By {eq}`eq-first-bound`.
    ```

    ```{code-cell} ipython3
    :tags: [remove-input]

    show("vicourse.course.show.resolve")
    ```

    ```{code-cell} ipython3
    :tags: [remove-cell]

    glue("ratio", 2 / 3, display=False)
    assert 2 / 3 < 1
    ```

    +++ {"minutes": 10}

    ```{exercise} Write it
    :label: ex-first-write

    Write `f`.
    ```

    ````{solution-start} ex-first-write
    :class: dropdown
    ````

    ```{code-cell} ipython3
    ---
    nbgrader:
      grade: false
      grade_id: ex-first-write-answer
      locked: false
      schema_version: 3
      solution: true
      task: false
    ---
    def f():
        ### BEGIN SOLUTION
        return 1
        ### END SOLUTION
    ```

    ````{solution-end}
    ````

    ```{solution} ex-first-write
    :class: dropdown

    Because {prf:ref}`thm-first-bound`.
    ```

    ```{admonition} What goes wrong
    :class: warning

    Something, see {ref}`sec-second`.
    ```

    ````md
    ```{exercise} kept verbatim inside a code block
    ```
    ````
    ''')

SECOND = HEADER + textwrap.dedent('''\
    (chap-second)=
    # The second chapter

    ```{code-cell} ipython3
    x = 1
    ```

    (sec-second)=
    ## A section

    Back to {ref}`the bound <thm-first-bound>` of {ref}`chap-first`.
    ''')

BIB = textwrap.dedent('''\
    @inproceedings{kingma2014auto,
      author = {Kingma, Diederik P. and Welling, Max},
      title = {Auto-Encoding Variational {Bayes}},
      booktitle = {International Conference on Learning Representations},
      year = {2014},
    }
    @inproceedings{burda2016importance,
      author = {Burda, Yuri and Grosse, Roger and Salakhutdinov, Ruslan},
      title = {Importance Weighted Autoencoders},
      booktitle = {International Conference on Learning Representations},
      year = {2016},
    }
    ''')


@pytest.fixture
def book(tmp_path: Path) -> colab.Book:
    (tmp_path / "book").mkdir()
    (tmp_path / "book" / "first.md").write_text(FIRST, encoding="utf-8")
    (tmp_path / "book" / "second.md").write_text(SECOND, encoding="utf-8")
    (tmp_path / "book" / "references.bib").write_text(BIB, encoding="utf-8")
    (tmp_path / "_toc.yml").write_text(
        "format: jb-book\nroot: book/first\nchapters:\n  - file: book/second\n", encoding="utf-8")
    (tmp_path / "_config.yml").write_text(
        "html:\n  baseurl: https://example.org/course/\n"
        "bibtex_bibfiles:\n  - book/references.bib\n", encoding="utf-8")
    build = tmp_path / "_build" / "jupyter_execute" / "book"
    build.mkdir(parents=True)
    glue = {"ratio": {"data": {"text/plain": "0.6666666666666666"}, "metadata": {}}}
    (build / "first.glue.json").write_text(json.dumps(glue), encoding="utf-8")
    return colab.Book.read(tmp_path)


def markdown(notebook: nbformat.NotebookNode) -> str:
    return "\n\n".join(c.source for c in notebook.cells if c.cell_type == "markdown")


def first_notebook(book: colab.Book) -> nbformat.NotebookNode:
    return colab.colab_notebook(book, "book/first", {"ratio": "0.6666666666666666"})


def test_numbers_citations_and_references_become_plain_markdown(book):
    text = markdown(first_notebook(book))
    assert "The value is 0.67, as Kingma and Welling (2014) found" in text
    assert "(Kingma and Welling, 2014; Burda et al., 2016)" in text
    assert "`` {glue:text}`x` ``" in text  # code spans are left alone
    assert "## References" in text and "*Importance Weighted Autoencoders*" in text
    assert "[A section](https://example.org/course/book/second.html#sec-second)" in text
    assert "By (1)." in text and r"\tag{1}" in text
    second = markdown(colab.colab_notebook(book, "book/second", {}))
    assert "[the bound](https://example.org/course/book/first.html#thm-first-bound)" in second
    assert "[The first chapter](https://example.org/course/book/first.html)" in second


def test_theorems_exercises_and_solutions_are_formatted_and_solutions_hidden(book):
    notebook = first_notebook(book)
    text = markdown(notebook)
    assert "> **Theorem (A bound).** For all $q$," in text
    assert "*Proof.* By (1). $\\blacksquare$" in text
    assert "#### Exercise: Write it *(10 minutes)*" in text
    assert "<details>\n<summary><b>Solution</b> (click to show)</summary>" in text
    assert "> **What goes wrong**" in text
    assert "```{exercise} kept verbatim inside a code block" in text  # inside a code block
    answer = next(c for c in notebook.cells if "BEGIN SOLUTION" in c.source)
    assert answer.metadata["cellView"] == "form"
    assert answer.source.startswith("# @title Solution: Write it")
    assert not colab.myst_leftovers(json.loads(colab.dumps(notebook)))


def test_hidden_cells_are_collapsed_forms_and_show_cells_carry_the_source(book):
    cells = [c for c in first_notebook(book).cells if c.cell_type == "code"]
    install, shown, checks = cells[0], cells[1], cells[2]
    assert install.source.startswith("# @title Install vicourse in Colab")
    assert checks.source.startswith("# @title Checks of the text's claims")
    assert checks.metadata["cellView"] == "form"
    assert shown.source == 'show("vicourse.course.show.resolve")'
    output = shown.outputs[0]
    assert output.data["text/markdown"] == source_markdown("vicourse.course.show.resolve")
    assert output.metadata[METADATA_KEY] == "vicourse.course.show.resolve"


@pytest.mark.parametrize("bad, message", [
    ("{glue:text}`missing:.2f`", "no glued value 'missing'"),
    ("{cite:p}`nobody2020`", "'nobody2020' is not in the bibliography"),
    ("{ref}`sec-nowhere`", "unknown reference target 'sec-nowhere'"),
    ("{term}`ELBO`", "no Colab form for the role {term}"),
])
def test_what_cannot_be_converted_is_an_error_that_names_it(book, bad, message):
    path = book.root / "book" / "second.md"
    path.write_text(path.read_text(encoding="utf-8") + f"\nSee {bad}.\n", encoding="utf-8")
    with pytest.raises(colab.ColabError, match=message):
        colab.colab_notebook(book, "book/second", {})


def test_check_finds_missing_stale_and_tampered_notebooks(book, capsys):
    root = book.root
    assert colab.main(["--root", str(root), "--check"]) == 1
    assert "first.ipynb is missing" in capsys.readouterr().err
    assert colab.main(["--root", str(root)]) == 0
    assert colab.main(["--root", str(root), "--check"]) == 0
    first = root / "book" / "first.md"
    first.write_text(first.read_text(encoding="utf-8") + "\nOne more sentence.\n", "utf-8")
    assert any("first.md changed" in p for p in colab.problems(book, "book/first"))
    first.write_text(FIRST, encoding="utf-8")
    target = root / "book" / "second.ipynb"
    notebook = nbformat.read(target, as_version=4)
    notebook.cells[-1].source += "\n\nSee {ref}`chap-first`."
    target.write_text(colab.dumps(notebook), encoding="utf-8")
    found = colab.problems(book, "book/second")
    assert any("raw MyST" in p for p in found) and any("differs" in p for p in found)


def test_writing_needs_the_build_for_a_chapter_with_glue(book):
    (book.root / "_build" / "jupyter_execute" / "book" / "first.glue.json").unlink()
    with pytest.raises(colab.ColabError, match="build the book first"):
        colab.main(["--root", str(book.root), "first"])
    with pytest.raises(colab.ColabError, match="not chapters of the book: third"):
        colab.main(["--root", str(book.root), "third"])
