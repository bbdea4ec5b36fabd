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


# A number a run can change is printed by a cell, not typed in prose (#29). What can be checked by
# machine: prose that names a field the way the outputs print it, `name=value` (`WScale=10`,
# `seq=9`, `len=11`), or the number of a row of a printed conversation table. Such a value must be
# one the stored outputs of the same notebook show for that name. `name=value` inside a code block,
# or in a code span that calls something (`handshake(close_delay=0.2)`), is an argument, not a claim.
_PAIR = re.compile(r"(?<![\w.])([A-Za-z][\w-]*)=(\d+(?:\.\d+)?)\b")
_TABLE_ROW = re.compile(r"^\s*(\d+)\s+[\d.]+\s+(?:C→S|S→C)\s+[A-Z-]+\s+(\d+)\s+(\d+)?\s+(\d+)\s+(\d+)", re.M)
_CODE = re.compile(r"```.*?```|`[^`\n]*\([^`\n]*`", re.S)


def _printed_values(cells: list[dict]) -> dict[str, set[float]]:
    """Every `name=value` the stored outputs print, and the seq, ack, len and window columns of their tables."""
    text = "\n".join("".join(o.get("text", "")) + "".join(o.get("data", {}).get("text/plain", ""))
                     for c in cells for o in c.get("outputs", []))
    values: dict[str, set[float]] = {}
    for name, value in _PAIR.findall(text):
        values.setdefault(name, set()).add(float(value))
    for row in _TABLE_ROW.findall(text):
        for name, value in zip(("segment", "seq", "ack", "len", "window"), row):
            if value:
                values.setdefault(name, set()).add(float(value))
    return values


def _contradictions(cells: list[dict]) -> list[str]:
    """One line per `name=value` typed in a markdown cell that the stored outputs print only with other values."""
    printed = _printed_values(cells)
    wrong = []
    for index, cell in enumerate(cells):
        if cell["cell_type"] != "markdown":
            continue
        for name, value in _PAIR.findall(_CODE.sub("", _source(cell))):
            if name in printed and float(value) not in printed[name]:
                wrong.append(f"cell {index}: {name}={value}, but the outputs print {name}= "
                             f"{', '.join(f'{v:g}' for v in sorted(printed[name])[:6])}")
    return wrong


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_numbers_typed_in_prose_are_ones_the_outputs_print(path):
    wrong = _contradictions(_cells(path))
    assert not wrong, "typed numbers that the stored outputs contradict (print them from a cell):\n" + "\n".join(wrong)


def test_the_typed_number_check_finds_a_contradiction():
    table_row = "  5     1.236  S→C  ACK            1      14      0   65536  data\n"
    cells = [{"cell_type": "code", "source": [], "outputs": [
                 {"output_type": "stream", "text": ["C→S  SYN  options: MSS=65495 WScale=7\n", table_row]}]},
             {"cell_type": "markdown", "source": ["It declared WScale=10 and acknowledged ack=14 (the table's column); "
                                                  "`handshake(close_delay=0.2)` is an argument, not a claim."]}]
    assert _contradictions(cells) == ["cell 1: WScale=10, but the outputs print WScale= 7"]
