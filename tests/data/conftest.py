"""tests/data holds what tests read, not tests: explorer.ipynb is run by tests/test_browser.py in
JupyterLab, not by nbval (it stores no outputs to compare)."""

collect_ignore = ["explorer.ipynb"]
