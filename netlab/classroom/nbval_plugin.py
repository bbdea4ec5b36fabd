"""A pytest plugin for the notebooks' strict nbval run (pyproject.toml's addopts load it with -p).

A check's result in a notebook carries its verdict twice: the ✔/✘ line (text/plain), which
strict nbval compares after notebooks/sanitize.cfg has masked ports and timings, and the same
verdict as data for graders (netlab.checks.CHECK_MIME). nbval cannot sanitize data that is not
text, and a check's message may quote a port or a timing, so nbval leaves that data out of its
comparison; the text/plain line it still compares says the same.
"""

from __future__ import annotations

from typing import Any

from netlab.classroom.grading import CHECK_MIME


def pytest_collection_modifyitems(session: Any, config: Any, items: list[Any]) -> None:
    for item in items:
        if str(item.path).endswith(".ipynb"):
            item.add_marker("notebook")  # tests/conftest.py's tiers: `./run test --fast` leaves these out
        notebook = item.parent
        skipped = getattr(notebook, "skip_compare", None)
        if skipped is not None and CHECK_MIME not in skipped:
            notebook.skip_compare = (*skipped, CHECK_MIME)
