"""The lessons: one package per notebook, built on `netlab.core`; found by walking this package, never listed.

A lesson package `netlab/lessons/<name>/` holds everything of its notebook:

    __init__.py      what it is, and nothing else (no imports: finding the lessons stays cheap):
                     NOTEBOOKS, the numbers of the notebooks it serves (the lessons' order);
                     FACE_MODULE, the `netlab.NAME` that is its experiments module (or None), and
                     FACE_NAMES, the experiments a notebook calls as `netlab.NAME`
    experiments.py   its experiments, and RECORDINGS: each capture it ships in netlab/data → the
                     experiment that makes it live again
    checks.py        its exercises' checks, each marked `@exercise_check` (`netlab.core.checking`)
    commands.py      `add_commands(commands)`: its subcommands of `python -m netlab` (an argparse
                     subparsers object; each subcommand's function returns the exit status and
                     raises its errors, which `python -m netlab` prints in one line); one
                     that runs an experiment (its first line says live or recorded, and why) says
                     so with `set_defaults(experiment=True)`: the container test runs each of those
    (anything else)  what only this lesson uses: its drawings, its helpers

Only `__init__.py` is required. Rules (import-linter checks them): a lesson imports the core and its
own modules, never another lesson; nothing in the core imports a lesson. The face (`import netlab`,
`python -m netlab`), `netlab.checks` and `netlab.recordings` find the lessons with the functions
below, so a new notebook's lesson is a new folder here and no other file of the package changes.
"""

from __future__ import annotations

import importlib
import importlib.util
import pkgutil
from types import ModuleType

__all__ = ["lesson_names", "lesson", "lesson_parts", "PARTS"]

# The modules a lesson package may hold, each found by its name.
PARTS = ("experiments", "checks", "commands")


def lesson_names() -> list[str]:
    """The names of the lesson packages, in the series' order (by their first notebook, then by name)."""
    names = [info.name for info in pkgutil.iter_modules(__path__) if info.ispkg]
    return sorted(names, key=lambda name: (tuple(getattr(lesson(name), "NOTEBOOKS", ())) or ("~",), name))


def lesson(name: str) -> ModuleType:
    """The lesson package `name` (only its `__init__.py`: cheap)."""
    return importlib.import_module(f"{__name__}.{name}")


def lesson_parts(part: str) -> list[ModuleType]:
    """Every lesson's module `part` ("experiments", "checks" or "commands"), imported, for the lessons that have one."""
    if part not in PARTS:
        raise ValueError(f"a lesson's part is one of {', '.join(PARTS)}, not {part!r}")
    found = []
    for name in lesson_names():
        module = f"{__name__}.{name}.{part}"
        if importlib.util.find_spec(module) is not None:
            found.append(importlib.import_module(module))
    return found
