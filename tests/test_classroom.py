"""The classroom edition (#10): marks nbgrader's way, the student edition, checks that grade, the grader.

The series' notebooks are marked by `python -m netlab mark-exercises`; a test fails when one is
not marked as the tool would mark it. The same behaviour is also tested on a small sample
notebook made here.
"""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

import netlab.checks as checks
from netlab.classroom import edition, grading, nbval_plugin

pytestmark = pytest.mark.grading

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
SERIES = edition.series(NOTEBOOKS)
# A few notebooks that run in seconds each: the grader's tests use them (bench/grade.py times the whole series).
QUICK = ["00-start-here", "01-layers-and-packets"]




def sample() -> dict:
    """A small instructor notebook: two exercises whose checks need no lab, marked by the tool."""
    nb = new_notebook(cells=[
        new_code_cell("import netlab"),
        new_markdown_cell("## Exercises\n\nHow many segments carry one write of 8760 bytes?"),
        new_code_cell("answer = 8760 // 1460", metadata={"tags": ["solution"]}),
        new_code_cell("netlab.checks.segments_for_write(8760, answer)"),
        new_markdown_cell("How many segments carry one write of 50,000 bytes?"),
        new_code_cell("import math\n\nanswer = math.ceil(50_000 / 1460)", metadata={"tags": ["solution"]}),
        new_code_cell("netlab.checks.segments_for_write(50_000, answer)"),
    ])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return edition.mark(json.loads(nbformat.writes(nb)), "98-sample")


def _cells(nb: dict) -> list[str]:
    return ["".join(c["source"]) for c in nb["cells"]]


# --- the contract between the checks and the grader ---


def test_checks_and_grader_agree_on_the_verdicts_mime_type_and_the_grading_switch():
    assert checks.CHECK_MIME == grading.CHECK_MIME == nbval_plugin.CHECK_MIME == "application/vnd.netlab.check+json"
    assert checks.GRADING_ENV == grading.GRADING_ENV == "NETLAB_GRADING"


def test_every_check_goes_through_the_grading_wrapper():
    found = checks.all_checks()
    assert len(found) >= 30
    assert all(hasattr(check, "__wrapped__") and getattr(checks, name) is check for name, check in found.items())


def test_a_verdict_carries_its_data_beside_its_line():
    fb = checks.segments_for_write(8760, 8760 // 1460)
    bundle = fb._repr_mimebundle_()
    assert bundle["text/plain"].startswith("✔ ")
    assert bundle[checks.CHECK_MIME] == {"grade_id": None, "passed": True, "feedback": fb.message}
    checks.set_grade_id("05-ex4")
    assert checks.segments_for_write(8760, 1).data()["grade_id"] == "05-ex4"
    assert checks.segments_for_write(8760, 1).grade_id is None, "a grade id is for the next check only"


def test_an_answer_left_as_ellipsis_or_a_function_left_empty_is_not_answered_yet():
    def recv_exactly(sock, n):
        """Read exactly n bytes."""
        ...

    assert repr(checks.segments_for_write(8760, ...)).startswith("✘ Not answered yet")
    assert repr(checks.own_recv_message(recv_exactly)).startswith("✘ Not answered yet")


def test_a_wrong_type_or_a_raising_answer_gives_a_hint_not_a_traceback():
    class Raises:
        def __eq__(self, other):
            raise RuntimeError("boom")

    for answer in ("fast", [1], Raises()):
        fb = checks.segments_for_write(8760, answer)
        assert not fb and repr(fb).startswith("✘ ")


def test_a_check_that_hangs_gives_up_with_a_hint(monkeypatch):
    import time

    from netlab.core import checking

    monkeypatch.setattr(checking, "CHECK_SECONDS", 0.2)

    @checking.exercise_check
    def hangs(answer):
        time.sleep(30)

    started = time.monotonic()
    fb = hangs(1)
    assert time.monotonic() - started < 5
    assert not fb and "gave up" in fb.message


def test_under_grading_a_failed_check_raises_with_its_hint_and_a_passed_one_returns(monkeypatch):
    monkeypatch.setenv("NETLAB_GRADING", "1")
    with pytest.raises(AssertionError, match="Divide the write by the MSS"):
        checks.segments_for_write(8760, 8760 // 1000)
    assert checks.segments_for_write(8760, 8760 // 1460)


def test_a_wrong_answer_gets_a_cross_and_a_hint_that_does_not_give_the_answer():
    right = 8760 // 1460
    fb = checks.segments_for_write(8760, 8760 // 1000)
    assert repr(fb).startswith("✘ ")
    assert not re.search(rf"\b{right}\b", fb.message), fb.message


# --- marking ---


def test_marking_wraps_each_answer_and_gives_every_cell_nbgrader_metadata():
    nb = sample()
    meta = [c["metadata"]["nbgrader"] for c in nb["cells"]]
    assert meta[2] == {"grade": False, "grade_id": "98-ex1-answer", "locked": False, "schema_version": 3, "solution": True}
    assert meta[3] == {"grade": True, "grade_id": "98-ex1", "locked": True, "points": 1, "schema_version": 3,
                       "solution": False}
    assert meta[6]["grade_id"] == "98-ex2"
    assert all(m["locked"] and not m["solution"] and not m["grade"] for m in (meta[0], meta[1], meta[4]))
    assert len({m["grade_id"] for m in meta}) == len(meta), "nbgrader needs a unique grade id per cell"
    assert _cells(nb)[2] == "### BEGIN SOLUTION\nanswer = 8760 // 1460\n### END SOLUTION"
    assert _cells(nb)[5] == "import math\n### BEGIN SOLUTION\nanswer = math.ceil(50_000 / 1460)\n### END SOLUTION"


def test_marking_twice_changes_nothing():
    nb = sample()
    assert edition.mark(nb, "98-sample") == nb


def test_an_answer_cell_without_a_check_after_it_is_refused():
    nb = json.loads(nbformat.writes(new_notebook(cells=[new_code_cell("answer = 1", metadata={"tags": ["solution"]})])))
    with pytest.raises(ValueError, match="no check cell"):
        edition.mark(nb, "98-sample")


@pytest.mark.parametrize("path", SERIES, ids=lambda p: p.name)
def test_each_notebook_is_marked_as_mark_exercises_would_mark_it(path):
    nb = edition.read_notebook(path)
    assert edition.mark(nb, path.stem) == nb, f"run: python -m netlab mark-exercises {path.relative_to(ROOT)}"


def test_mark_exercises_marks_in_place_once(tmp_path):
    marked = sample()
    path = edition.write_notebook(marked, tmp_path / "98-sample.ipynb")
    nb = edition.read_notebook(path)
    for cell in nb["cells"]:  # as an author leaves it: a solution tag, no marks
        cell["metadata"].pop("nbgrader")
    nb["cells"][2]["source"] = ["answer = 8760 // 1460"]
    edition.write_notebook(nb, path)
    run = [sys.executable, "-m", "netlab", "mark-exercises", str(path)]
    first = subprocess.run(run, capture_output=True, text=True, timeout=60)
    assert first.returncode == 0 and "marked" in first.stdout, first.stderr
    assert edition.read_notebook(path) == marked
    second = subprocess.run(run, capture_output=True, text=True, timeout=60)
    assert "marked already" in second.stdout


# --- the student edition ---


@pytest.mark.parametrize("path", SERIES, ids=lambda p: p.name)
def test_student_edition_has_stubs_for_answers_and_keeps_the_lesson_outputs(path):
    source = edition.read_notebook(path)
    student = edition.student_notebook(source, path.stem)
    exercises = edition.exercises(source, path.stem)
    assert exercises
    exercise_cells = set()
    for ex in exercises:
        exercise_cells.update((*ex.answers, ex.check))
        for index in ex.answers:
            text = "".join(student["cells"][index]["source"])
            assert "SOLUTION" not in text
            assert all(line.endswith("= ...") or line == "..." or line.startswith(("import ", "from "))
                       for line in text.splitlines() if line.strip()), text
    for index, (mine, theirs) in enumerate(zip(student["cells"], source["cells"])):
        if index in exercise_cells:
            assert mine.get("outputs") == []
        else:
            assert mine == theirs


def test_a_function_answer_keeps_its_signature_and_loses_its_body():
    nb = sample()
    nb["cells"][5]["source"] = ("def segments(size):\n    \"\"\"How many segments.\"\"\"\n    ### BEGIN SOLUTION\n"
                                "    return -(-size // 1460)\n    ### END SOLUTION\n\nanswer = segments(50_000)")
    text = "".join(edition.student_notebook(nb, "98-sample")["cells"][5]["source"])
    assert text == 'def segments(size):\n    """How many segments."""\n    ...\n\nanswer = segments(50_000)'


def test_student_edition_command_writes_every_notebook(tmp_path):
    done = subprocess.run([sys.executable, "-m", "netlab", "student-edition", str(tmp_path / "out")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [p.name for p in SERIES]


def _execute(nb: dict, folder: Path, env: dict | None = None, allow_errors: bool = False) -> nbformat.NotebookNode:
    from nbclient import NotebookClient

    node = nbformat.reads(json.dumps(nb), as_version=4)  # sources joined, as nbclient wants them
    client = NotebookClient(node, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(folder)}},
                            allow_errors=allow_errors)
    old = {k: os.environ.get(k) for k in (env or {})}
    os.environ.update(env or {})
    try:
        client.execute()
    finally:
        for k, v in old.items():
            os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)
    return node


# The student edition of the series runs in the series' one execution, exercise by exercise, in the
# same kernel as the lesson (netlab.classroom.nbval_plugin; tests/test_notebook_runs.py shows it works).


# --- grading ---


def _submission(root: Path, student: str, notebooks: dict[str, dict | str | bytes]) -> Path:
    folder = root / student
    folder.mkdir(parents=True)
    for stem, content in notebooks.items():
        path = folder / f"{stem}.ipynb"
        if isinstance(content, bytes):
            path.write_bytes(content)
        elif isinstance(content, str):
            path.write_text(content)
        else:
            edition.write_notebook(content, path)
    return folder


def _instructor(stem: str) -> dict:
    return edition.read_notebook(NOTEBOOKS / f"{stem}.ipynb")


def test_instructor_edition_gets_full_marks(tmp_path):
    right = _submission(tmp_path, "alice", {stem: _instructor(stem) for stem in QUICK})
    rows = grading.grade([right], NOTEBOOKS, workers=2)
    assert {r.notebook for r in rows} == set(QUICK)
    assert all(r.passed for r in rows), [r for r in rows if not r.passed]
    assert len(rows) == sum(len(edition.exercises(_instructor(stem), stem)) for stem in QUICK)


def test_a_wrong_answer_loses_only_its_exercise_with_a_cross_and_a_hint_without_the_answer(tmp_path):
    reference = edition.write_notebook(sample(), tmp_path / "instructor" / "98-sample.ipynb")
    wrong = sample()
    wrong["cells"][2]["source"] = "### BEGIN SOLUTION\nanswer = 8760 // 1000\n### END SOLUTION"
    folder = _submission(tmp_path, "bob", {"98-sample": wrong})
    rows = {r.exercise: r for r in grading.grade([folder], reference.parent)}
    assert rows["98-ex2"].passed and not rows["98-ex1"].passed
    hint = rows["98-ex1"].feedback
    assert hint and "175,200" not in hint and "175200" not in hint, hint
    # Run headless without NETLAB_GRADING (as nbgrader's autograde may be), the same check shows a cross and
    # the same hint, and fails closed: the cell ends in AssertionError, so no test cell's point is given.
    ran = _execute(wrong, tmp_path, allow_errors=True)
    shown = "".join(o["data"]["text/plain"] for o in ran.cells[3].outputs if "text/plain" in o.get("data", {}))
    assert shown == f"✘ {hint}"
    assert [o["ename"] for o in ran.cells[3].outputs if o["output_type"] == "error"] == ["AssertionError"]


def test_grade_writes_the_csv_and_a_summary_from_the_command_line(tmp_path):
    reference = edition.write_notebook(sample(), tmp_path / "instructor" / "98-sample.ipynb")
    folder = _submission(tmp_path, "carol", {"98-sample": sample()})
    out = tmp_path / "grades.csv"
    # Folders named as an instructor types them, relative to where the command runs.
    done = subprocess.run([sys.executable, "-m", "netlab", "grade", folder.name, "--out", out.name,
                           "--source", reference.parent.name], capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "carol" in done.stdout and "2/2" in done.stdout
    assert "[##############################] 1/1 notebooks" in done.stderr
    with out.open(newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["student", "notebook", "exercise", "passed", "feedback", "note"]
    assert [r[:4] for r in rows[1:]] == [["carol", "98-sample", f"98-ex{k}", "true"] for k in (1, 2)]
    assert all(r[4] and not r[4].startswith(("✔", "✘")) and r[5] == "" for r in rows[1:])


def test_each_kind_of_bad_submission_gets_one_star_row_and_grading_goes_on(tmp_path):
    hangs = _instructor("02-sockets")
    hangs["cells"].insert(1, new_code_cell("import time\ntime.sleep(600)"))
    dies = _instructor("03-tcp-handshake-and-teardown")
    dies["cells"].insert(1, new_code_cell("import os\nos._exit(1)"))
    folder = _submission(tmp_path, "dave", {
        "00-start-here": b"\x89PNG\r\n\x1a\n\x00\x00 not a notebook",
        "01-layers-and-packets": '{"cells": [',
        "02-sockets": json.loads(nbformat.writes(nbformat.from_dict(hangs))),
        "03-tcp-handshake-and-teardown": json.loads(nbformat.writes(nbformat.from_dict(dies))),
        "04-http": "[1, 2, 3]",
    })
    rows = grading.grade([folder], NOTEBOOKS, workers=2, cell_seconds=10)
    by_notebook = {r.notebook: r for r in rows}
    assert len(rows) == len(by_notebook) == 5
    assert all(r.exercise == "*" and not r.passed for r in rows)
    assert "not" in by_notebook["00-start-here"].feedback
    assert "not valid JSON" in by_notebook["01-layers-and-packets"].feedback
    assert "longer than 10 s" in by_notebook["02-sockets"].feedback
    assert "died" in by_notebook["03-tcp-handshake-and-teardown"].feedback
    assert "not a Jupyter notebook" in by_notebook["04-http"].feedback


@pytest.mark.parametrize(("keywords", "named"), [({"workers": -3}, "workers"), ({"workers": 0}, "workers"),
                                                  ({"cell_seconds": -1}, "--cell-timeout"),
                                                  ({"notebook_seconds": 0}, "--notebook-timeout")])
def test_bad_grading_limits_are_refused_before_anything_runs(tmp_path, keywords, named):
    folder = _submission(tmp_path, "dana", {"98-sample": sample()})
    with pytest.raises(ValueError, match=named):
        grading.grade([folder], NOTEBOOKS, **keywords)


def test_two_submission_folders_with_one_name_are_refused_before_grading(tmp_path):
    one = _submission(tmp_path / "a", "erin", {"00-start-here": _instructor("00-start-here")})
    two = _submission(tmp_path / "b", "erin", {"00-start-here": _instructor("00-start-here")})
    with pytest.raises(ValueError, match="same name"):
        grading.grade([one, two], NOTEBOOKS)
    done = subprocess.run([sys.executable, "-m", "netlab", "grade", str(one), str(two), "--out", str(tmp_path / "g.csv")],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "same name" in done.stderr
    assert not (tmp_path / "g.csv").exists()


@pytest.mark.skipif(not grading.isolation(), reason="this system refuses user and network namespaces")
def test_a_graded_kernel_sees_only_its_own_loopback():
    argv = grading._kernel_argv(True)
    prefix = argv[: argv.index(sys.executable)]
    done = subprocess.run([*prefix, sys.executable, "-c", "import socket; print(socket.if_nameindex())"],
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[(1, 'lo')]"


# --- nbgrader's own tools ---


def _nbgrader(course: Path, *args: str) -> None:
    # nbgrader creates its database with the `alembic` program, found on PATH (DESIGN.md).
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
           "NETLAB_GRADING": "1"}
    done = subprocess.run([sys.executable, "-m", "nbgrader", *args], cwd=course, env=env,
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]


def _nbgrader_round(tmp_path: Path, notebooks: dict[str, dict], wrong: dict[str, dict]) -> dict[str, dict[str, float]]:
    """generate_assignment and autograde `notebooks` for two students: alice hands in the
    instructor edition, bob the same with `wrong` in place; return each one's scores by grade id."""
    pytest.importorskip("nbgrader")
    course = tmp_path / "course"
    for stem, nb in notebooks.items():
        edition.write_notebook(nb, course / "source" / "ps1" / f"{stem}.ipynb")
        edition.write_notebook(nb, course / "submitted" / "alice" / "ps1" / f"{stem}.ipynb")
        edition.write_notebook(wrong.get(stem, nb), course / "submitted" / "bob" / "ps1" / f"{stem}.ipynb")
    (course / "nbgrader_config.py").write_text('c = get_config()\nc.ClearSolutions.code_stub = {"python": "..."}\n')
    _nbgrader(course, "generate_assignment", "ps1")
    for stem in notebooks:
        released = edition.read_notebook(course / "release" / "ps1" / f"{stem}.ipynb")
        text = "\n".join(_cells(released))
        assert "BEGIN SOLUTION" not in text
    _nbgrader(course, "autograde", "ps1")
    from nbgrader.api import Gradebook

    scores: dict[str, dict[str, float]] = {}
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        for student in ("alice", "bob"):
            for stem in notebooks:
                nb = gb.find_submission_notebook(stem, "ps1", student)
                scores.setdefault(student, {}).update({g.name: g.score for g in nb.grades if g.max_score})
    return scores


def _wrong_first_answer(nb: dict, stem: str) -> tuple[dict, str]:
    """A copy of `nb` whose first exercise is answered wrong, and that exercise's grade id."""
    nb = json.loads(json.dumps(nb))
    first = edition.exercises(nb, stem)[0]
    nb["cells"][first.answers[0]]["source"] = "### BEGIN SOLUTION\nanswer = 'not the answer'\n### END SOLUTION"
    return nb, first.grade_id


def test_nbgrader_gives_full_marks_and_takes_exactly_the_wrong_exercises_point(tmp_path):
    nb = sample()
    wrong, grade_id = _wrong_first_answer(nb, "98-sample")
    assert grade_id == "98-ex1"
    scores = _nbgrader_round(tmp_path, {"98-sample": nb}, {"98-sample": wrong})
    assert scores["alice"] == {"98-ex1": 1.0, "98-ex2": 1.0}
    assert scores["bob"] == {"98-ex1": 0.0, "98-ex2": 1.0}


# nbgrader's own autograde runs on one notebook of the series, the handshake's (its checks run live
# experiments); the whole series once took 190 s here, and strict nbval runs every notebook already.
NBGRADER_NOTEBOOK = "03-tcp-handshake-and-teardown"


def test_nbgrader_grades_a_notebook_of_the_series(tmp_path):
    notebooks = {NBGRADER_NOTEBOOK: _instructor(NBGRADER_NOTEBOOK)}
    first = NBGRADER_NOTEBOOK
    wrong, grade_id = _wrong_first_answer(notebooks[first], first)
    scores = _nbgrader_round(tmp_path, notebooks, {first: wrong})
    assert all(score == 1.0 for score in scores["alice"].values()), scores["alice"]
    assert scores["bob"] == {**scores["alice"], grade_id: 0.0}
