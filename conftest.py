"""pytest's set-up for the whole checkout (tests/ and, through nbval, notebooks/).

A check's result in a notebook carries its verdict twice: the ✔/✘ line (text/plain), which
strict nbval compares after notebooks/sanitize.cfg has masked ports and timings, and the same
verdict as data for graders (netlab.checks.CHECK_MIME). nbval cannot sanitize data that is not
text, and a check's message may quote a port or a timing, so nbval leaves that data out of its
comparison; the text/plain line it still compares says the same.
"""

CHECK_MIME = "application/vnd.netlab.check+json"  # netlab.checks.CHECK_MIME (tests/test_classroom.py keeps them equal)


def pytest_collection_modifyitems(session, config, items):
    for item in items:
        notebook = item.parent
        skipped = getattr(notebook, "skip_compare", None)
        if skipped is not None and CHECK_MIME not in skipped:
            notebook.skip_compare = (*skipped, CHECK_MIME)
