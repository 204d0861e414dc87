"""vicourse.course.show: the source of package code, displayed the same way on web and Colab."""

from __future__ import annotations

import inspect
import textwrap

import pytest

from vicourse.course.show import METADATA_KEY, MIME, resolve, show
from vicourse.models.toy_model import ConjugateGaussian
from vicourse.objectives.gaussian_kl import kl_full_gaussians


def test_a_function_is_shown_as_its_source_headed_by_its_file():
    data, metadata = show("vicourse.objectives.gaussian_kl.kl_full_gaussians")._repr_mimebundle_()
    assert data[MIME] == (
        "```python\n# vicourse/objectives/gaussian_kl.py\n"
        + inspect.getsource(kl_full_gaussians).rstrip() + "\n```\n"
    )
    assert data["text/plain"].strip() == "# vicourse/objectives/gaussian_kl.py\n" + \
        inspect.getsource(kl_full_gaussians).strip()
    assert metadata == {METADATA_KEY: "vicourse.objectives.gaussian_kl.kl_full_gaussians"}


def test_a_method_is_dedented():
    markdown = show("vicourse.models.toy_model.ConjugateGaussian.elbo").markdown
    body = markdown.split("\n", 2)[2]
    assert body.startswith("def elbo(")
    assert body.rstrip("`\n") == textwrap.dedent(inspect.getsource(ConjugateGaussian.elbo)).rstrip()


@pytest.mark.parametrize("name, message", [
    ("numpy.sum", "a dotted name inside vicourse"),
    (kl_full_gaussians, "a dotted name inside vicourse"),
    ("vicourse.objectives.gaussian_kl.no_such_function", "has no 'no_such_function'"),
    ("vicourse.nowhere.f", "has no 'nowhere'"),
])
def test_a_bad_name_is_a_clear_error(name, message):
    with pytest.raises(ValueError, match=message):
        resolve(name)


def test_a_decorated_function_is_shown_with_its_decorator():
    markdown = show("vicourse.objectives.bounds.log_likelihood_estimate").markdown
    assert markdown.startswith("```python\n# vicourse/objectives/bounds.py\n@torch.no_grad()\n")
