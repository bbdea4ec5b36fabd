"""Lessons are found, never listed: a lesson package dropped beside the others joins the face, the
checks, the recordings and the command line with no other file changed."""

from __future__ import annotations

import importlib
import sys
import textwrap

import pytest

import netlab
import netlab.checks
import netlab.lessons
from netlab.__main__ import build_parser, main
from netlab.recordings import all_recordings

THROWAWAY = {
    "__init__.py": '''
        """Notebook 99: a lesson written by a test."""
        FACE_MODULE = "scratch"
        FACE_NAMES = ("scratch_experiment",)
    ''',
    "experiments.py": '''
        def scratch_experiment():
            return "ran"

        RECORDINGS = {"scratch-recording": scratch_experiment}
    ''',
    "checks.py": '''
        from netlab.core.checking import Feedback, exercise_check

        @exercise_check
        def scratch_answer(answer):
            return Feedback(answer == 42, "the answer")
    ''',
    "commands.py": '''
        def add_commands(commands):
            p = commands.add_parser("scratch", help="a subcommand of the throw-away lesson")
            p.set_defaults(func=lambda args: print("scratch ran") or 0)
    ''',
}


def add_lesson(folder, monkeypatch, files: dict[str, str]) -> str:
    """Write a lesson package `scratchlesson` in `folder` and put `folder` on netlab.lessons' path."""
    package = folder / "scratchlesson"
    package.mkdir()
    for name, text in files.items():
        (package / name).write_text(textwrap.dedent(text))
    monkeypatch.setattr(netlab.lessons, "__path__", [*netlab.lessons.__path__, str(folder)])
    return package.name


@pytest.fixture
def throwaway_lesson(tmp_path, monkeypatch):
    """A lesson package `scratchlesson` in a temporary folder put on netlab.lessons' path; gone afterwards."""
    yield add_lesson(tmp_path, monkeypatch, THROWAWAY)
    for name in [m for m in sys.modules if m.startswith("netlab.lessons.scratchlesson")]:
        del sys.modules[name]
    for name in ("scratch", "scratch_experiment"):
        vars(netlab).pop(name, None)
    vars(netlab.checks).pop("scratch_answer", None)


def test_a_new_lesson_package_is_found_by_the_face_the_checks_the_recordings_and_the_command_line(throwaway_lesson, capsys):
    assert throwaway_lesson in netlab.lessons.lesson_names()
    assert netlab.scratch_experiment() == "ran"
    assert netlab.scratch is importlib.import_module("netlab.lessons.scratchlesson.experiments")
    assert {"scratch", "scratch_experiment"} <= set(netlab.__all__)
    assert netlab.checks.scratch_answer(42) and not netlab.checks.scratch_answer(41)
    assert "Not answered yet" in netlab.checks.scratch_answer(...).message  # the shared wrapper, not the lesson's code
    assert "scratch-recording" in all_recordings()
    assert main(["scratch"]) == 0 and capsys.readouterr().out == "scratch ran\n"


def test_without_it_nothing_of_the_throwaway_lesson_is_offered():
    assert "scratchlesson" not in netlab.lessons.lesson_names()
    assert not hasattr(netlab, "scratch_experiment")
    assert "scratch_answer" not in netlab.checks.all_checks()
    (action,) = [a for a in build_parser()._actions if hasattr(a, "choices") and isinstance(a.choices, dict)]
    assert "scratch" not in action.choices


def test_the_face_offers_every_lesson_once_and_each_face_module_is_a_lesson_experiments_module():
    modules, names = netlab._lessons()
    assert modules["peer"] == "netlab.lessons.transfer.experiments"
    assert {"concurrency", "bulk"} <= set(modules)  # notebook 07 uses two lessons
    assert names["handshake"] == "netlab.lessons.handshake.experiments"
    for name in names:
        assert callable(getattr(netlab, name)) or isinstance(getattr(netlab, name), type), name


def test_every_check_a_notebook_calls_is_offered_and_no_check_is_left_unused():
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    called = {m for path in [*root.glob("notebooks/*.ipynb"), *root.glob("tests/data/*.ipynb")]
              for m in re.findall(r"netlab\.checks\.([a-z_]\w*)", path.read_text())}
    assert called == set(netlab.checks.all_checks())


def test_a_lesson_that_offers_a_name_another_part_offers_is_refused_naming_both(tmp_path, monkeypatch):
    add_lesson(tmp_path, monkeypatch, {"__init__.py": 'FACE_MODULE = None\nFACE_NAMES = ("handshake",)\n'})
    try:
        with pytest.raises(ImportError, match="netlab.handshake: the lesson 'scratchlesson' and 'handshake'"):
            netlab._lessons()
    finally:
        sys.modules.pop("netlab.lessons.scratchlesson", None)


def test_two_lessons_with_a_check_of_the_same_name_are_refused(tmp_path, monkeypatch):
    add_lesson(tmp_path, monkeypatch, {"__init__.py": "", "checks.py": """
        from netlab.core.checking import Feedback, exercise_check

        @exercise_check
        def frame_length(message, answer):
            return Feedback(True, "mine")
    """})
    try:
        with pytest.raises(ImportError, match="two lessons have a check named 'frame_length'"):
            netlab.checks.all_checks()
    finally:
        for name in ("netlab.lessons.scratchlesson", "netlab.lessons.scratchlesson.checks"):
            sys.modules.pop(name, None)


def test_lesson_parts_refuses_a_part_a_lesson_cannot_have():
    with pytest.raises(ValueError, match="experiments, checks, commands"):
        netlab.lessons.lesson_parts("drawings")
