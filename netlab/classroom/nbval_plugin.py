"""A pytest plugin for the notebooks' strict nbval run (pyproject.toml's addopts load it with -p).

Theory of operation
-------------------
The series is executed once per test run, by nbval, and that one execution serves three checks:

1. **Strict nbval**: each cell's output is compared with the stored one. A check's result carries
   its verdict twice: the ✔/✘ line (text/plain), which nbval compares after notebooks/sanitize.cfg
   has masked ports and timings, and the same verdict as data for graders (CHECK_MIME). nbval
   cannot sanitize data that is not text, and a check's message may quote a port or a timing, so
   nbval leaves that data out of its comparison; the text/plain line it still compares says the same.
2. **The student edition**: before each exercise's answer cells, an item of this plugin runs, in
   the same kernel, the student edition's stubs of those cells (`edition.student_notebook`) and
   then the exercise's check, which must say "Not answered yet"; nbval then runs the instructor's
   answer and the check again, whose ✔ it compares. The lesson's other cells are the same in both
   editions (the student edition is made from these cells), so they need no second run. What
   differs from running the student edition alone: a later exercise sees the earlier answers.
3. **As an ordinary user**: where root runs the tests (CI does), the kernel runs as uid 65534 with
   Debian's PATH for ordinary users and an empty HOME (`netlab.classroom.ordinary_user`), in a
   working folder of its own: a student's machine, not root's. NETLAB_NOTEBOOKS_AS_ROOT=1 keeps root's.

Every item this plugin or nbval makes from a notebook is marked `notebook` (tests in tiers: `./run
test --fast` leaves them out).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from pathlib import Path
from queue import Empty
from typing import Any

import pytest

from netlab.classroom import edition, ordinary_user
from netlab.classroom.grading import CHECK_MIME

KERNEL_NAME = "netlab-ordinary-user"
# How long the student edition's stubs and check may take together, in seconds (a stub check answers at once).
STUB_TIMEOUT = 60.0
_SCRATCH = "NETLAB_KERNEL_SCRATCH"  # the folder under which each kernel gets its own HOME and working folder


def _project() -> Path:
    return Path(__file__).resolve().parent.parent.parent


def pytest_configure(config: Any) -> None:
    config.stash[_note_key] = ""
    if not getattr(config.option, "nbval", False) or os.geteuid() != 0 or os.environ.get("NETLAB_NOTEBOOKS_AS_ROOT"):
        return
    why = ordinary_user.unavailable(_project())
    if why is not None:
        config.stash[_note_key] = f"notebooks: executed as root, not as an ordinary user ({why})"
        return
    scratch = tempfile.mkdtemp(prefix="netlab-kernels-")
    os.chmod(scratch, 0o755)
    spec = Path(scratch, "kernels", KERNEL_NAME)
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "netlab.classroom.nbval_plugin", "{connection_file}"],
        "display_name": f"Python as uid {ordinary_user.UID}", "language": "python",
        "env": {_SCRATCH: scratch}, "interrupt_mode": "signal",
    }))
    os.environ["JUPYTER_PATH"] = os.pathsep.join(filter(None, [scratch, os.environ.get("JUPYTER_PATH")]))
    config.option.nbval_current_env = False
    config.option.nbval_kernel_name = KERNEL_NAME
    config.add_cleanup(lambda: shutil.rmtree(scratch, ignore_errors=True))
    config.stash[_note_key] = (f"notebooks: executed as uid {ordinary_user.UID} with PATH={ordinary_user.DEBIAN_USER_PATH} "
                               "and an empty HOME (NETLAB_NOTEBOOKS_AS_ROOT=1 keeps root)")


_note_key = pytest.StashKey[str]()


def pytest_report_header(config: Any) -> str | None:
    return config.stash.get(_note_key, "") or None


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(session: Any, config: Any, items: list[Any]) -> None:
    student_items: dict[int, list[Any]] = {}  # position in `items` -> the student edition's items before it
    for position, item in enumerate(items):
        if not str(item.path).endswith(".ipynb"):
            continue
        notebook = item.parent
        skipped = getattr(notebook, "skip_compare", None)
        if skipped is not None and CHECK_MIME not in skipped:
            notebook.skip_compare = (*skipped, CHECK_MIME)
        first_answers = _first_answers(notebook)
        if getattr(item, "cell_num", None) in first_answers:
            exercise, student = first_answers[item.cell_num]
            student_items[position] = [StudentEdition.from_parent(notebook, name=f"student edition {exercise.grade_id}",
                                                                  exercise=exercise, student=student)]
    for position in sorted(student_items, reverse=True):
        items[position:position] = student_items[position]
    for item in items:
        if str(item.path).endswith(".ipynb"):
            item.add_marker("notebook")


def _first_answers(notebook: Any) -> dict[int, tuple[edition.Exercise, dict[str, Any]]]:
    """Map the code-cell number (nbval's cell_num) of each exercise's first answer cell to the exercise and
    the student edition. Cached on the notebook's collector."""
    cached = getattr(notebook, "_netlab_first_answers", None)
    if cached is not None:
        return cached
    found: dict[int, tuple[edition.Exercise, dict[str, Any]]] = {}
    nb = edition.read_notebook(Path(notebook.path))
    stem = Path(notebook.path).stem
    try:
        exercises = edition.exercises(nb, stem)
        student = edition.student_notebook(nb, stem)
    except ValueError:
        exercises, student = [], nb  # not a series notebook (or one tests/test_classroom.py refuses)
    code_number = {index: n for n, index in enumerate(i for i, c in enumerate(nb["cells"]) if c["cell_type"] == "code")}
    for exercise in exercises:
        found[code_number[exercise.answers[0]]] = (exercise, student)
    notebook._netlab_first_answers = found
    return found


class StudentEdition(pytest.Item):
    """The student edition of one exercise, run in the notebook's kernel: its stubs, then its check says "Not answered yet"."""

    def __init__(self, *, exercise: edition.Exercise, student: dict[str, Any], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.exercise, self.student = exercise, student

    def runtest(self) -> None:
        kernel = self.parent.kernel
        if kernel is None or not kernel.is_alive():
            raise StudentEditionError(f"{self.exercise.grade_id}: the notebook's kernel is not running")
        cells = self.student["cells"]
        for index in (*self.exercise.answers, self.exercise.check):
            outputs = _execute(kernel, "".join(cells[index]["source"]), STUB_TIMEOUT)
            errors = [o for o in outputs if o["msg_type"] == "error"]
            # Run headless, a check fails closed: "not answered yet" is shown, then raised (AssertionError).
            if index == self.exercise.check and [e["content"]["ename"] for e in errors] == ["AssertionError"] \
                    and errors[0]["content"]["evalue"].startswith("Not answered yet"):
                errors = []
            if errors:
                error = errors[0]["content"]
                raise StudentEditionError(f"{self.exercise.grade_id}: the student edition's cell {index} raised "
                                          f"{error['ename']}: {error['evalue']}")
        verdicts = [o["content"]["data"][CHECK_MIME] for o in outputs
                    if o["msg_type"] in ("display_data", "execute_result") and CHECK_MIME in o["content"].get("data", {})]
        if not verdicts:
            raise StudentEditionError(f"{self.exercise.grade_id}: the check showed no verdict for the student edition's stub")
        last = verdicts[-1]
        if last["passed"] or not last["feedback"].startswith("Not answered yet"):
            raise StudentEditionError(f"{self.exercise.grade_id}: on the student edition's stub the check said "
                                      f"{last['feedback']!r}, not 'Not answered yet'")

    def repr_failure(self, excinfo: Any, style: Any = None) -> str:
        if isinstance(excinfo.value, StudentEditionError):
            return str(excinfo.value)
        return super().repr_failure(excinfo)

    def reportinfo(self) -> tuple[Any, int, str]:
        return self.path, 0, f"{self.path.name}::{self.name}"


class StudentEditionError(AssertionError):
    """The student edition of an exercise does not run as a student gets it."""


def _execute(kernel: Any, source: str, timeout: float) -> list[dict[str, Any]]:
    """Run `source` in nbval's kernel (not stored in its history); return the iopub messages it caused."""
    msg_id = kernel.execute_cell_input(source, allow_stdin=False)
    try:
        kernel.await_reply(msg_id, timeout=timeout)
    except Empty:
        kernel.interrupt()
        raise StudentEditionError(f"the student edition's cell did not finish within {timeout:g} s") from None
    messages = []
    while True:
        try:
            msg = kernel.get_message("iopub", timeout=timeout)
        except Empty:
            raise StudentEditionError(f"the kernel sent no output within {timeout:g} s") from None
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
            return messages
        messages.append(msg)


# ---------------------------------------------------------------------------
# The kernel's launcher: `python -m netlab.classroom.nbval_plugin CONNECTION_FILE`, run by Jupyter as root.


def _launch(connection_file: str) -> None:
    """Give the kernel a HOME and a working folder of its own, then become uid UID and exec ipykernel there."""
    own = Path(tempfile.mkdtemp(prefix="kernel-", dir=os.environ[_SCRATCH]))
    own.chmod(0o755)
    home, work = own / "home", own / "work"
    for folder in (home, work):
        folder.mkdir()
        os.chown(folder, ordinary_user.UID, ordinary_user.UID)
    # Jupyter writes the connection file readable by root alone; the kernel gets its own copy.
    connection = own / "connection.json"
    shutil.copyfile(connection_file, connection)
    os.chown(connection, ordinary_user.UID, ordinary_user.UID)
    connection.chmod(0o600)
    python = ordinary_user.python()
    if python is None:
        raise SystemExit(f"uid {ordinary_user.UID} can run no Python here")
    os.chdir(work)  # what a notebook saves (captures/...) goes here, never into the checkout
    env = ordinary_user.environment(home, _project())
    # Jupyter's own (JPY_PARENT_PID): the kernel ends when the test run that started it does.
    env.update({k: v for k, v in os.environ.items() if k.startswith("JPY_")})
    argv = ordinary_user.as_uid([python, "-m", "ipykernel_launcher", "-f", str(connection)], env)
    os.execv(argv[0], argv)  # the same process: Jupyter's signals (interrupt, kill) reach the kernel


if __name__ == "__main__":
    _launch(sys.argv[1])
