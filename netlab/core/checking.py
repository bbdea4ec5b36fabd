"""What every exercise check shares: the answer as data, the verdict (`Feedback`), "not answered yet", grading.

Each lesson's `checks` module holds its notebook's checks, each a function marked with
`@exercise_check`; `netlab.checks` gathers them for the notebooks. What belongs here is what a
check needs whichever lesson it belongs to, and nothing that knows a lesson.

Theory of operation: a check is an answer and a verdict, apart.

1. The answer: what the check cell passes (`netlab.checks.NAME(exp, port)`) is turned into data by
   `hand_over`: the check's name (`module:function`) and its arguments encoded by
   `netlab.core.handover` (values, bytes, scapy packets, netlab's own results and captures, a
   function the student wrote as its source plus the modules and notebook functions it uses).
2. The verdict: `decide(check, answer)` (or `verify(answer)`, which finds the check by its name)
   decodes that data and runs the check on it. It is a function of the data alone, so it can run
   in another process: in a student's own run both happen at once, in the kernel, and the cell
   shows ✔ or ✘ as before; under `netlab grade` (NETLAB_GRADING=verifier) the cell only shows the
   answer (ANSWER_MIME) and `netlab.classroom.verifier` decides it in a sandbox of its own.
3. The wrapper every check goes through (`exercise_check`): an answer left as `...` (or a stub
   function) says "not answered yet"; an answer that makes the check raise or hang gives a ✘,
   never a traceback; where `must_raise()` (NETLAB_GRADING set, or a kernel that no interactive
   frontend drives: nbgrader's autograde, nbconvert) a failed check raises AssertionError with its
   hint, so a headless run fails closed (README, "Teaching with netlab").

For check authors (the verifier's interface):

- Write the check as an ordinary function of its arguments, decorated with `@exercise_check`, in
  the lesson's `checks.py`, returning `Feedback(ok, message)`. Everything it judges must come in
  through its arguments or be made again inside it from an oracle: scapy, the kernel (a fresh
  live run: `handshake(...)`), the standard library. Never a module-level variable the notebook
  set, never a hand-written model answer.
- Its arguments must be data `handover.encode` knows: int, float, str, bytes, list, tuple, dict,
  set, None, `...`, scapy packets, exceptions, netlab's dataclasses (an `Experiment` and its
  subclasses, `Conversation`, results such as `LoadPoint`), and functions. A new result type is a
  dataclass in netlab whose fields are such data; anything else (a socket, a lab, a look-alike)
  is refused with a ✘ that says which argument, in the student's own run already.
- A function the student wrote arrives rebuilt from its source: call it on your cases as usual.
  In the verifier it runs in a forked child with no student file and no network but its own lab.
- A capture ("from your own capture") arrives as the `Experiment` the student ran; the grader
  gives no point, with the note `recorded`, for one that is a shipped recording on a live grader.
  Say in the message what to look at again, never the answer.
- Literal arguments in the check cell (`segments_for_write(8760, answer)`) are compared by the
  grader with what the kernel handed over: keep the problem's constants literal in the call.
"""

from __future__ import annotations

import contextlib
import dis
import functools
import importlib
import os
import signal
import sys
import threading
import types
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import PurePath
from typing import Any

from netlab.core.handover import HandoverError, decode, encode

__all__ = ["ANSWER_MIME", "CHECK_MIME", "CHECK_SECONDS", "GRADING_ENV", "NOT_ANSWERED", "VERIFIER", "Answer", "Feedback",
           "borrowed", "check_name", "decide", "exercise_check", "find_check", "grading", "hand_over", "handing_over",
           "interactive", "is_exercise_check", "must_raise", "names_used", "number", "set_grade_id", "unanswered",
           "verify", "whole"]


# The MIME type of a check's result as data: {"grade_id", "passed", "feedback"}, read by netlab's grader.
CHECK_MIME = "application/vnd.netlab.check+json"
# Set (to anything but "" or "0") by a grader: a failed check then raises AssertionError; set to
# VERIFIER by `netlab grade`: a check cell then only hands its answer over (ANSWER_MIME).
GRADING_ENV = "NETLAB_GRADING"
VERIFIER = "verifier"
# The MIME type of an answer handed over: {"grade_id", "check", "args", "kwargs"} (see `hand_over`).
ANSWER_MIME = "application/vnd.netlab.answer+json"
# The programs that serve an interactive frontend to a kernel (the parent process's name).
_SERVERS = ("jupyter-lab", "jupyter-notebook", "jupyter-server", "jupyterhub-singleuser", "jupyter-nbclassic")
# A check that runs longer than this (seconds) is stopped: a student's function may hang.
CHECK_SECONDS = 90.0
NOT_ANSWERED = "Not answered yet: replace the `...` with your answer and run the cell again."


@dataclass(frozen=True)
class Feedback:
    """The verdict on one exercise answer: one line in a notebook (✔ or ✘ and the message), plus
    the same verdict as CHECK_MIME data for a grader; `grade_id` names the exercise when known."""

    ok: bool
    message: str
    grade_id: str | None = None

    def __bool__(self) -> bool:
        return self.ok

    def __repr__(self) -> str:
        return ("✔ " if self.ok else "✘ ") + self.message

    def data(self) -> dict[str, Any]:
        """The verdict as the grader reads it (CHECK_MIME); `feedback` is the message without its mark."""
        return {"grade_id": self.grade_id, "passed": self.ok, "feedback": self.message}

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        # Jupyter shows text/plain; the data travels beside it in the same output, for graders.
        return {"text/plain": repr(self), CHECK_MIME: self.data()}

    def _ipython_display_(self) -> None:
        # Shown as display data, not as the cell's result: nbgrader reads a test cell's result as
        # partial credit (a number) and warns that text there may become an error.
        from IPython.display import display

        display(self._repr_mimebundle_(), raw=True)


def unanswered(answer: Any) -> Feedback | None:
    """"Not answered yet" for an answer left as `...` (or None), else None: `if (fb := unanswered(x)) is not None: return fb`."""
    if answer is None or answer is ...:
        return Feedback(False, NOT_ANSWERED)
    return None


def whole(answer: Any) -> bool:
    """True for an int that is not a bool: a count, a length, a raw sequence number."""
    return isinstance(answer, int) and not isinstance(answer, bool)


def number(answer: Any) -> bool:
    """True for an int or a float that is not a bool: seconds, a rate."""
    return isinstance(answer, (int, float)) and not isinstance(answer, bool)


def names_used(func: Any) -> set[str]:
    """Every global, attribute and closure name a function's code (and the code nested in it) refers to."""
    names: set[str] = set()
    stack = [getattr(func, "__code__", None)]
    while stack:
        code = stack.pop()
        if code is None:
            continue
        names.update(code.co_names, code.co_freevars)
        stack.extend(c for c in code.co_consts if isinstance(c, types.CodeType))
    return names


def borrowed(func: Any, forbidden: set[str]) -> str | None:
    """The first of netlab's own solutions that `func` calls (the exercise asks for the student's own), or None."""
    used = sorted(names_used(func) & forbidden)
    return used[0] if used else None


# --- the wrapper of every check ---

_next_grade_id: str | None = None
_depth = threading.local()  # a check that calls another check grades only once, at the outside


def grading() -> bool:
    """True under a grader (NETLAB_GRADING set, not "0"): a failed check then raises AssertionError."""
    return os.environ.get(GRADING_ENV, "") not in ("", "0")


def set_grade_id(grade_id: str | None) -> None:
    """Name the exercise the next check's result belongs to (a grader calls this in each check cell)."""
    global _next_grade_id
    _next_grade_id = grade_id


def _does_nothing(func: types.FunctionType) -> bool:
    """True for a function whose body is only `...` (or `pass`, or a docstring): the student edition's stub."""
    steps = [(i.opname, i.argval) for i in dis.get_instructions(func) if i.opname not in ("RESUME", "NOP", "CACHE")]
    return steps in ([("LOAD_CONST", None), ("RETURN_VALUE", None)], [("RETURN_CONST", None)])


def _is_stub(value: Any) -> bool:
    return value is ... or (isinstance(value, types.FunctionType) and _does_nothing(value))


class _CheckTimeout(BaseException):
    """Raised in a check that ran past CHECK_SECONDS; a BaseException so `except Exception` in student code lets it by."""


def _bounded(seconds: float):
    """Stop the code that runs in this context after `seconds`, where signals allow it (the main thread)."""
    @contextlib.contextmanager
    def alarm():
        usable = (threading.current_thread() is threading.main_thread() and hasattr(signal, "setitimer")
                  and signal.getitimer(signal.ITIMER_REAL)[0] == 0)
        if not usable:
            yield
            return

        def expire(signum: int, frame: Any) -> None:
            raise _CheckTimeout

        previous = signal.signal(signal.SIGALRM, expire)
        signal.setitimer(signal.ITIMER_REAL, seconds)
        try:
            yield
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)

    return alarm()


def _verdict(check: Any, args: tuple, kwargs: dict) -> Feedback:
    if any(_is_stub(a) for a in (*args, *kwargs.values())):
        return Feedback(False, NOT_ANSWERED)
    try:
        with _bounded(CHECK_SECONDS):
            result = check(*args, **kwargs)
    except NotImplementedError:  # nbgrader's stub, or a student function left unfinished
        return Feedback(False, NOT_ANSWERED)
    except _CheckTimeout:
        return Feedback(False, f"The check gave up after {CHECK_SECONDS:.0f} s: does your code (or your function) "
                               "wait for something that never comes?")
    except Exception as err:  # a wrong type or a student function that raises: a hint, never a traceback
        detail = f"{type(err).__name__}: {err}" if str(err) else type(err).__name__
        if len(detail) > 200:
            detail = detail[:197] + "..."
        return Feedback(False, f"Your answer could not be checked ({detail}). Look at its type and at what it does.")
    if not isinstance(result, Feedback):
        return Feedback(False, f"The check returned {type(result).__name__}, not a verdict.")
    return result


def _show(feedback: Any) -> None:
    try:
        from IPython.display import display
    except ImportError:
        print(repr(feedback))
        return
    display(feedback)


def check_name(check: Any) -> str:
    """The name a verifier finds a check by: `module:function` of the lesson's checks module."""
    check = getattr(check, "__wrapped__", check)
    return f"{check.__module__}:{check.__qualname__}"


def find_check(name: str) -> Callable[..., Feedback]:
    """The exercise check called `name` (see `check_name`); only a lesson's checks module is looked in."""
    module, _, function = str(name).partition(":")
    if not (module.startswith("netlab.lessons.") and module.endswith(".checks") and function.isidentifier()):
        raise HandoverError(f"{name!r} names no exercise check (netlab.lessons.LESSON.checks:NAME)")
    try:
        check = getattr(importlib.import_module(module), function)
    except (ImportError, AttributeError):
        raise HandoverError(f"no exercise check {name}") from None
    if not is_exercise_check(check):
        raise HandoverError(f"{name} is no exercise check")
    return check


def hand_over(check: Any, args: tuple, kwargs: dict) -> dict[str, Any]:
    """The answer to `check` as data a verifier reads (ANSWER_MIME): the check's name and its arguments, encoded."""
    return {"check": check_name(check), "args": encode(list(args)), "kwargs": encode(dict(kwargs))}


def verify(answer: dict[str, Any]) -> Feedback:
    """The verdict on handed-over `answer` (from `hand_over`): decode it, functions included, and run its check.

    This is the verdict a student sees in their own run and the one a grader's verifier computes in a
    process of its own: a function of the data alone. Bad data gives a ✘ that says so, never a traceback.
    """
    try:
        check = find_check(answer["check"])
    except (HandoverError, KeyError, TypeError) as err:
        return Feedback(False, f"The answer handed over cannot be read ({type(err).__name__}: {str(err)[:200]}).")
    return decide(check, answer)


def decide(check: Any, answer: dict[str, Any]) -> Feedback:
    """The verdict of exercise check `check` on handed-over `answer`: its arguments decoded (functions too), then judged."""
    try:
        args = decode(answer.get("args", []), functions=True)
        kwargs = decode(answer.get("kwargs", {"dict": []}), functions=True)
        if not isinstance(args, list) or not isinstance(kwargs, dict):
            raise HandoverError("the arguments are not a list and a dict")
    except (HandoverError, KeyError, TypeError, ValueError, SyntaxError) as err:
        return Feedback(False, f"The answer handed over cannot be read ({type(err).__name__}: {str(err)[:200]}).")
    except Exception as err:  # the student's function's source, run to define it, raised
        return Feedback(False, f"Your answer could not be rebuilt ({type(err).__name__}: {str(err)[:200]}).")
    depth = getattr(_depth, "value", 0)
    _depth.value = depth + 1  # a check that calls another check: the inner one only computes
    try:
        return _verdict(check.__wrapped__, tuple(args), kwargs)
    finally:
        _depth.value = depth


def handing_over() -> bool:
    """True under `netlab grade` (NETLAB_GRADING=verifier): a check cell hands its answer over and decides nothing."""
    return os.environ.get(GRADING_ENV, "") == VERIFIER


def interactive() -> bool:
    """False in a Jupyter kernel that no interactive frontend drives (nbgrader, nbconvert, nbclient, papermill).

    A kernel is interactive when the process that started it is a Jupyter server (JupyterLab, Notebook,
    JupyterHub's single-user server); outside any kernel (a script, a test, a terminal) it counts as
    interactive, since a caller reads the Feedback it gets. Read from the parent process, which code in
    a cell cannot change.
    """
    shell = sys.modules.get("IPython") and sys.modules["IPython"].get_ipython()
    if shell is None or not hasattr(shell, "kernel"):
        return True
    try:
        with open(f"/proc/{os.getppid()}/cmdline", "rb") as f:
            words = [PurePath(w.decode(errors="replace")).name for w in f.read().split(b"\0")]
    except OSError:
        return False
    return any(w in _SERVERS or any(w.startswith(s + "-") for s in _SERVERS) for w in words) or \
        any(w in ("jupyterlab", "notebook", "jupyter_server", "jupyterhub.singleuser", "nbclassic") for w in words)


def must_raise() -> bool:
    """True where a failed check raises AssertionError: under a grader, and, failing closed, in a headless kernel."""
    return grading() or not interactive()


def exercise_check(check: Callable[..., Feedback]) -> Callable[..., Feedback]:
    """Make a function an exercise check (a decorator): what the cell passes is handed over as data
    (`hand_over`) and the verdict is `verify` of that data; stubs say "not answered yet", errors and
    hangs become a ✘, the result carries the grade id set for it, and where `must_raise` a failed
    result is shown and raised as AssertionError. Under `netlab grade` the cell only hands over.
    `netlab.checks` offers every function of a lesson's checks so marked."""

    @functools.wraps(check)
    def graded(*args: Any, **kwargs: Any) -> Feedback:
        global _next_grade_id
        if getattr(_depth, "value", 0):
            return check(*args, **kwargs)
        grade_id, _next_grade_id = _next_grade_id, None
        try:
            answer = hand_over(graded, args, kwargs)
        except HandoverError as err:
            feedback = Feedback(False, f"Your answer cannot be checked: {err}.")
        else:
            if handing_over():  # the cell's result is the answer as data; a verifier decides, elsewhere
                return Answer(answer, grade_id)  # type: ignore[return-value]
            feedback = decide(graded, answer)
        if grade_id is not None:
            feedback = Feedback(feedback.ok, feedback.message, grade_id)
        if not feedback and must_raise():
            _show(feedback)  # the cell ends in an error, so its result would not be shown otherwise
            raise AssertionError(feedback.message)
        return feedback

    graded.exercise_check = True  # what `is_exercise_check` looks for
    return graded


@dataclass(frozen=True)
class Answer:
    """An answer handed over under `netlab grade`: shown as ANSWER_MIME data for the grader, one line for a person."""

    data: dict[str, Any]
    grade_id: str | None

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        return {"text/plain": "→ handed over to the grader", ANSWER_MIME: {"grade_id": self.grade_id, **self.data}}

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self._repr_mimebundle_(), raw=True)


def is_exercise_check(value: Any) -> bool:
    """True for a function made an exercise check by `exercise_check`."""
    return callable(value) and getattr(value, "exercise_check", False) is True
