"""The face's view of the exercise checks: `netlab.checks.NAME(...)`, as every check cell calls it.

The checks live in their lessons (`netlab/lessons/<name>/checks.py`, each marked `@exercise_check`)
and what they share in `netlab.core.checking`. This module finds the checks by walking the lessons,
never by a list, and offers them beside what check cells and graders use of the shared base. Nothing
else belongs here: a new check goes in its lesson's `checks.py`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from netlab.core.checking import (
    CHECK_MIME,
    CHECK_SECONDS,
    GRADING_ENV,
    NOT_ANSWERED,
    Feedback,
    grading,
    is_exercise_check,
    set_grade_id,
)
from netlab.lessons import lesson_parts

__all__ = ["CHECK_MIME", "CHECK_SECONDS", "GRADING_ENV", "NOT_ANSWERED", "Feedback", "all_checks", "grading",
           "set_grade_id"]


def all_checks() -> dict[str, Callable[..., Feedback]]:
    """Every lesson's exercise checks by name (importing each lesson's `checks`, not its experiments)."""
    found: dict[str, Callable[..., Feedback]] = {}
    for module in lesson_parts("checks"):
        for name, value in vars(module).items():
            if not is_exercise_check(value) or value.__module__ != module.__name__:  # not one it imported
                continue
            if name in found:
                raise ImportError(f"two lessons have a check named {name!r}: {found[name].__module__} and {module.__name__}")
            found[name] = value
    return found


def __getattr__(name: str) -> Any:
    if not name.startswith("__"):
        checks = all_checks()
        if name in checks:
            globals()[name] = checks[name]  # the next use is an ordinary attribute
            return checks[name]
    raise AttributeError(f"module 'netlab.checks' has no attribute {name!r} (no lesson has a check of that name)")


def __dir__() -> list[str]:
    return sorted({*globals(), *all_checks()})
