"""Every notebook keeps the series' anatomy, and is stored executed, in order and error-free.

nbval (run by the same `pytest`) checks that each notebook still produces its stored outputs;
these tests check what nbval does not: the shape of a lesson, so it never drifts by hand.
"""

import json
import re
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).parent.parent / "notebooks").glob("[0-9][0-9]-*.ipynb"))


def _cells(path: Path) -> list[dict]:
    return json.loads(path.read_text(encoding="utf-8"))["cells"]


def _source(cell: dict) -> str:
    return "".join(cell["source"])


def test_the_series_has_notebooks():
    assert NOTEBOOKS, "no notebooks/NN-topic.ipynb found"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_opens_with_title_goals_and_how_to_run(path):
    first = _source(_cells(path)[0])
    number = path.name[:2]
    assert re.match(rf"# {number} · \S", first), f"first cell must start with '# {number} · Title'"
    assert "**Learning goals**" in first
    goals = re.findall(r"^- \S", first.split("**Learning goals**")[1].split("**How to run")[0], re.M)
    assert 3 <= len(goals) <= 5, f"{len(goals)} learning goals; the anatomy asks for 3 to 5"
    assert "**How to run.**" in first


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_first_code_cell_says_live_or_recorded(path):
    code = [c for c in _cells(path) if c["cell_type"] == "code"]
    assert "netlab.mode()" in _source(code[0])
    printed = "".join("".join(o.get("text", "")) for o in code[0]["outputs"])
    assert printed.startswith(("live:", "recorded", "NETLAB_RECORDED", "This system")), printed


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_ends_with_exercises_summary_and_next(path):
    cells = _cells(path)
    headings = [_source(c).splitlines()[0] for c in cells if c["cell_type"] == "markdown"]
    assert "## Exercises" in headings
    assert "## Summary" in headings
    assert headings.index("## Exercises") < headings.index("## Summary")
    last = _source(cells[-1])
    assert "**Next:**" in last or "end of the series" in last


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_each_exercise_is_checked_by_netlab_checks(path):
    cells = _cells(path)
    start = next(i for i, c in enumerate(cells) if _source(c).startswith("## Exercises"))
    end = next(i for i, c in enumerate(cells) if _source(c).startswith("## Summary"))
    checks = [c for c in cells[start:end] if c["cell_type"] == "code" and "netlab.checks." in _source(c)]
    assert len(checks) >= 3, "at least three exercises, each checked by netlab.checks"
    for cell in checks:
        shown = "".join("".join(o.get("data", {}).get("text/plain", "")) for o in cell["outputs"])
        assert shown.startswith("✔"), f"the stored solution fails its own check: {shown!r}"
    answers = [c for c in cells[start:end] if "solution" in c["metadata"].get("tags", [])]
    assert len(answers) >= len(checks), "answer cells are tagged 'solution' (for a student edition)"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_imports_only_netlab_of_ours_and_no_star(path):
    for cell in _cells(path):
        if cell["cell_type"] != "code":
            continue
        source = _source(cell)
        assert not re.search(r"^\s*from \S+ import \*", source, re.M), "no star imports"
        assert not re.search(r"^\s*(from|import) netlab\.", source, re.M), "notebooks use `import netlab` only"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_stored_run_top_to_bottom_without_errors(path):
    code = [c for c in _cells(path) if c["cell_type"] == "code" and _source(c).strip()]
    counts = [c["execution_count"] for c in code]
    assert counts == list(range(1, len(code) + 1)), "run all cells in order in a fresh kernel, then save"
    for cell in code:
        assert all(o["output_type"] != "error" for o in cell["outputs"]), _source(cell)[:60]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_ignored_outputs_say_why(path):
    for cell in _cells(path):
        source = _source(cell)
        if "NBVAL_IGNORE_OUTPUT" in source:
            # nbval sees the marker only alone on its line; the next comment line says why.
            assert re.search(r"^# NBVAL_IGNORE_OUTPUT\n# \(\w.+\)$", source, re.M), "say on the next line why the output varies"
