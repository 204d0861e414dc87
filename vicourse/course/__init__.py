"""Course tooling, apart from the taught library: nothing in the library imports it.

- :mod:`~vicourse.course.show`: shows a vicourse function's source in a chapter (website and
  Colab alike).
- :mod:`~vicourse.course.colab`: writes the Colab notebooks from the MyST chapters.
- :mod:`~vicourse.course.exercises`: reads the exercises of a chapter and checks the
  convention.
- :mod:`~vicourse.course.checks`: the checks that exercise cells run, with helpful messages.
- :mod:`~vicourse.course.instructor`: student versions and grading (``python -m
  vicourse.course.instructor``).
"""
