"""Grade students' notebooks: run each one in a sandbox of its own, and decide its answers outside it.

Rules for this file:

1. Never trust a submission. Its stored outputs are cleared; its check cells are replaced by the
   instructor's (matched by nbgrader grade id); its folder is copied, links not followed, into a
   sandbox of its own (`sandbox`: bubblewrap, its own network with a live lab inside, PID
   namespace, limits) where a fresh kernel runs it, with a time limit per cell and per notebook.
   Where no sandbox can be made, grading refuses to run unless the instructor says
   `unsandboxed=True` (`--unsandboxed`), and every row then says so in its note.
2. The student's code never decides a verdict. Each check cell only hands its answer over as data
   (`ANSWER_MIME`); when the sandbox has ended, `verifier` decides every answer of the notebook in
   a new sandbox where no student kernel runs. What the cell showed besides (a ✔ of its own, a
   second answer, an answer to another check) gets no point and the note `tampered`.
3. The grades are the grader's: the CSV is written atomically (a temporary file, then a rename)
   once every sandbox has ended, and its `note` column says tampered, recorded, timeout,
   unsandboxed or copied:<whom>. A notebook that cannot be graded (not JSON, not a notebook, hangs,
   kills its kernel, a folder with a special file or a link leaving it) gets one row with exercise
   `*`, and grading goes on.
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
import csv
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from functools import cache
from pathlib import Path
from typing import Any

from netlab.classroom import copies, sandbox, verifier
from netlab.classroom.edition import exercises, read_notebook, series
from netlab.core import programs
from netlab.core.arguments import check_int, check_seconds
from netlab.core.checking import (  # the contract with the checks: an answer's data, a verdict's, "grading"
    ANSWER_MIME,
    CHECK_MIME,
    GRADING_ENV,
    VERIFIER,
    check_name,
    is_exercise_check,
)
from netlab.core.errors import NetlabError
from netlab.core.handover import HandoverError, captures, decode

CELL_SECONDS = 180.0  # one cell; the slowest lesson cells take about 20 s live
NOTEBOOK_SECONDS = 900.0  # one notebook, start of its kernel included
COLUMNS = ("student", "notebook", "exercise", "passed", "feedback", "note")
ON_HOST = " [graded on the host: this system refuses a private namespace for the kernel]"
UNSANDBOXED = "unsandboxed"

__all__ = ["COLUMNS", "GradingRefused", "Row", "grade", "grade_notebook", "isolation", "merge", "parse_shard",
           "read_csv", "shard", "students", "summary", "write_csv"]


class GradingRefused(NetlabError):
    """Grading cannot give its guarantees here (no sandbox) and was not told to go on without them."""


@dataclass(frozen=True)
class Row:
    """One line of grades.csv: one exercise of one student's notebook (exercise "*" for a notebook that could not run)."""

    student: str
    notebook: str
    exercise: str
    passed: bool
    feedback: str
    note: str = ""  # tampered, recorded, timeout, unsandboxed, copied:<whom> (several joined by ";"), or ""
    captures: tuple[str, ...] = field(default=(), compare=False, repr=False)  # ids of the captures handed over

    def csv(self) -> list[str]:
        return [self.student, self.notebook, self.exercise, "true" if self.passed else "false", self.feedback, self.note]


def students(folders: Iterable[Path]) -> dict[str, Path]:
    """Map each student (a submission folder's name) to the folder; refuse two folders with one name."""
    found: dict[str, list[Path]] = {}
    for folder in map(Path, folders):
        if not folder.is_dir():
            raise NotADirectoryError(f"{folder}: a submission is a folder (one per student), and this is none")
        found.setdefault(folder.resolve().name, []).append(folder)
    twice = {name: paths for name, paths in found.items() if len(paths) > 1}
    if twice:
        listed = "; ".join(f"{name}: {', '.join(map(str, paths))}" for name, paths in sorted(twice.items()))
        raise ValueError(f"two submission folders have the same name, so their grades would mix ({listed}); "
                         "rename one and grade again")
    return {name: paths[0] for name, paths in found.items()}


@cache
def isolation() -> bool:
    """True when a kernel can run in a user and network namespace of its own here (with `lo` up)."""
    unshare, ip = programs.find("unshare"), programs.find("ip")
    if unshare is None or ip is None:
        return False
    try:
        done = subprocess.run([unshare, "-Urn", "--", ip, "link", "set", "lo", "up"],
                              capture_output=True, timeout=10, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def _kernel_argv(isolated: bool) -> list[str]:
    kernel = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    if not isolated:
        return kernel
    # --kill-child: when the kernel manager kills `unshare`, the kernel inside dies with it.
    unshare, ip = programs.program("unshare"), programs.program("ip")
    return [unshare, "-Urn", "--kill-child", "--", "sh", "-c", f'{ip} link set lo up && exec "$0" "$@"', *kernel]


def _check_cells(nb: dict[str, Any], stem: str) -> dict[str, int]:
    """The check cells of `nb` by grade id: from nbgrader metadata, or (a notebook not yet marked) by position."""
    marked = {c["metadata"]["nbgrader"]["grade_id"]: i for i, c in enumerate(nb["cells"])
              if c.get("cell_type") == "code" and c.get("metadata", {}).get("nbgrader", {}).get("grade")}
    if marked:
        return marked
    try:
        return {e.grade_id: e.check for e in exercises(nb, stem)}
    except ValueError:
        return {}


def _validated(path: Path) -> dict[str, Any]:
    """The submission as a notebook; raises ValueError saying why it is none."""
    import nbformat

    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ValueError("not a notebook: the file is not text") from None
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"not valid JSON ({err.msg}, line {err.lineno}): was the file saved whole?") from None
    if not isinstance(raw, dict) or raw.get("nbformat") != 4 or not isinstance(raw.get("cells"), list):
        raise ValueError("not a Jupyter notebook (version 4): open it in JupyterLab and save it again")
    try:
        nb = nbformat.reads(text, as_version=4)
        nbformat.validate(nb)
    except Exception as err:  # nbformat's ValidationError and the schema's own errors
        raise ValueError(f"not a valid Jupyter notebook: {str(err).splitlines()[0][:200]}") from None
    return nb


def _prepare(nb: Any, reference: dict[str, Any], stem: str) -> dict[str, int]:
    """Clear every stored output and put the instructor's check cells in place; return the check cells by grade id."""
    mine = _check_cells(nb, stem)
    wanted = _check_cells(reference, stem)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    for grade_id, index in mine.items():
        if grade_id in wanted:
            nb.cells[index].source = "".join(reference["cells"][wanted[grade_id]]["source"])
    return {g: i for g, i in mine.items() if g in wanted}


@dataclass(frozen=True)
class _Expected:
    """What the instructor's check cell calls: the check (by `checking.check_name`), and its literal arguments."""

    check: str | None
    literals: dict[int | str, Any]  # position or keyword -> value, for arguments written as literals (8760)


def _expected_check(reference: dict[str, Any], index: int) -> _Expected:
    from netlab.lessons import lesson_parts

    source = "".join(reference["cells"][index]["source"])
    calls = []
    with contextlib.suppress(SyntaxError):
        calls = [n for n in ast.walk(ast.parse(source)) if isinstance(n, ast.Call)
                 and isinstance(n.func, ast.Attribute) and ast.unparse(n.func.value) == "netlab.checks"]
    if not calls:
        return _Expected(None, {})
    call = calls[-1]
    literals: dict[int | str, Any] = {}
    for key, node in [*enumerate(call.args), *((k.arg, k.value) for k in call.keywords if k.arg)]:
        with contextlib.suppress(ValueError, TypeError, SyntaxError):
            literals[key] = ast.literal_eval(node)
    for module in lesson_parts("checks"):
        check = getattr(module, call.func.attr, None)
        if is_exercise_check(check) and check.__module__ == module.__name__:
            return _Expected(check_name(check), literals)
    return _Expected(None, literals)


def _same_literals(answer: dict[str, Any], literals: dict[int | str, Any]) -> bool:
    """True when the answer carries the values the instructor's cell wrote as literals (not ones a kernel made up)."""
    try:
        args, kwargs = answer["args"], decode(answer["kwargs"])
        for key, value in literals.items():
            given = decode(args[key]) if isinstance(key, int) else kwargs[key]
            if given != value or type(given) is not type(value):
                return False
    except (HandoverError, KeyError, IndexError, TypeError):
        return False
    return True


def _answer(cell: Any, grade_id: str, expected: _Expected) -> tuple[dict[str, Any] | None, str, str]:
    """The one answer a check cell handed over: (answer or None, why none, note)."""
    outputs = [o for o in cell.outputs if o.get("output_type") in ("display_data", "execute_result")]
    handed = [o["data"][ANSWER_MIME] for o in outputs if ANSWER_MIME in o.get("data", {})]
    handed = [json.loads(a) if isinstance(a, str) else a for a in handed]
    verdicts = [o for o in outputs if CHECK_MIME in o.get("data", {})
                and (o["data"][CHECK_MIME] if isinstance(o["data"][CHECK_MIME], dict) else {}).get("passed")]
    if len(handed) == 1 and not verdicts and isinstance(handed[0], dict) \
            and handed[0].get("grade_id") in (grade_id, None) and handed[0].get("check") == expected.check \
            and _same_literals(handed[0], expected.literals):
        return handed[0], "", ""
    if handed or verdicts:
        return None, "the check cell showed something other than its one answer (a verdict of its own, another " \
                     "check's answer, or two answers): this cell gets no point", "tampered"
    errors = [o for o in cell.outputs if o.get("output_type") == "error"]
    if errors:
        return None, f"the check could not run: {errors[0].get('ename')}: {errors[0].get('evalue', '')}"[:300], ""
    return None, "the check handed no answer over: was the check cell changed?", ""


@cache
def _recordings() -> dict[str, str]:
    """The capture id of every recording shipped with netlab, by name (a live grader gives these no point)."""
    from netlab.core.handover import capture_id
    from netlab.core.pcapfiles import DATA, recorded_packets

    found = {}
    for pcap in sorted(DATA.glob("*.pcap")):
        try:
            found[capture_id(recorded_packets(pcap.stem))] = pcap.stem
        except Exception:  # a recording netlab cannot read is none a student could hand in either
            continue
    return found


_recorded_lock = threading.Lock()


def _recorded(answer: dict[str, Any]) -> str | None:
    """Why `answer` rests on a recording rather than a capture of its own run, or None."""
    if not any(c["packets"] for c in captures(answer)):
        return None
    with _recorded_lock:  # the workers' threads wait for one reading of the recordings
        recorded_ids = _recordings()
    for capture in captures(answer):
        if not capture["packets"]:
            continue  # samples only (09's long runs): no capture to be one's own
        if capture["id"] in recorded_ids:
            return f"its capture is netlab's recording {recorded_ids[capture['id']]!r}, not a run of its own"
        if capture["source"] != "live":
            return "its capture is marked recorded although this grader runs the lab live"
    return None


def _kernel_spec(folder: Path, argv: list[str]) -> Path:
    kernels = folder / "kernels"
    (kernels / "grade").mkdir(parents=True)
    (kernels / "grade" / "kernel.json").write_text(json.dumps(
        {"argv": argv, "display_name": "netlab grading", "language": "python"}))
    return kernels


async def _execute(nb: Any, kernels: Path, cwd: Path, checks: dict[str, int], cell_seconds: float,
                   notebook_seconds: float) -> None:
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import AsyncKernelManager
    from nbclient import NotebookClient

    # The connection file and the ipc sockets beside it are the one folder the sandbox shares with the grader.
    connection = kernels / "connection"
    connection.mkdir()
    km = AsyncKernelManager(kernel_name="grade", kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(kernels)]),
                            transport="ipc", connection_file=str(connection / "kernel.json"))
    by_index = {index: grade_id for grade_id, index in checks.items()}

    class Client(NotebookClient):
        async def async_execute_cell(self, cell: Any, cell_index: int, *args: Any, **kwargs: Any) -> Any:
            grade_id = by_index.get(cell_index)
            if grade_id is None:
                return await super().async_execute_cell(cell, cell_index, *args, **kwargs)
            # The answer carries the exercise's grade id: the grader names it just before the check runs.
            source = cell.source
            cell.source = f"__import__('netlab.checks').checks.set_grade_id({grade_id!r})\n{source}"
            try:
                return await super().async_execute_cell(cell, cell_index, *args, **kwargs)
            finally:
                cell.source = source

    client = Client(nb, km=km, timeout=int(cell_seconds), allow_errors=True, interrupt_on_timeout=False,
                    startup_timeout=60, resources={"metadata": {"path": str(cwd)}})
    env = {**os.environ, GRADING_ENV: VERIFIER, "MPLBACKEND": "agg", "PYTHONUNBUFFERED": "1", "PYTHONSAFEPATH": "1"}
    try:
        await asyncio.wait_for(client.async_execute(env=env), notebook_seconds)
    finally:
        # nbclient stops its kernel client's channels itself, but not when the notebook's time runs
        # out and its execution is cancelled: its heartbeat thread would go on, reconnecting.
        if client.kc is not None:
            client.kc.stop_channels()
        if km.has_kernel:
            await km.shutdown_kernel(now=True)


def _run_sandboxed(nb: Any, plan: list[tuple[str, Path | None]], scratch: Path, checks: dict[str, int],
                   cell_seconds: float, notebook_seconds: float) -> None:
    spec = scratch / "plan.json"  # read by the launcher before the sandbox exists: out of the student's reach
    kernel = [sys.executable, "-I", "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    cgroup = f"netlab-{scratch.name}"
    spec.write_text(json.dumps({"files": [(rel, None if src is None else str(src)) for rel, src in plan],
                                "cgroup": cgroup,
                                "argv": kernel,
                                # JPY_PARENT_PID 1: ipykernel neither polls a parent (PID 1 stays) nor prints its
                                # connection details for a console.
                                "env": {GRADING_ENV: VERIFIER, "JPY_PARENT_PID": "1"}}))
    kernels = _kernel_spec(scratch, sandbox.kernel_argv(spec))
    try:
        asyncio.run(_execute(nb, kernels, scratch, checks, cell_seconds, notebook_seconds))
    finally:
        sandbox.release(cgroup)


def _run_unsandboxed(nb: Any, folder: Path, scratch: Path, checks: dict[str, int], cell_seconds: float,
                     notebook_seconds: float) -> None:
    work = scratch / "work"
    shutil.copytree(folder, work, symlinks=True)
    kernels = _kernel_spec(scratch, _kernel_argv(isolation()))
    asyncio.run(_execute(nb, kernels, work, checks, cell_seconds, notebook_seconds))


def grade_notebook(student: str, path: Path, reference: Path, *, cell_seconds: float = CELL_SECONDS,
                   notebook_seconds: float = NOTEBOOK_SECONDS, sandboxed: bool = True) -> list[Row]:
    """Grade one student's notebook against the instructor's `reference`: one Row per exercise, or one "*" row.

    With `sandboxed` (the default) the notebook runs in a sandbox of its own and a verifier in
    another decides its answers; without, both run as plain processes and every row's note says so.
    """
    from nbclient.exceptions import CellTimeoutError, DeadKernelError

    stem = path.stem
    base_note = "" if sandboxed else UNSANDBOXED

    def bad(reason: str, note: str = "") -> list[Row]:
        return [Row(student, stem, "*", False, reason, ";".join(n for n in (base_note, note) if n))]

    try:
        plan = sandbox.copy_plan(path.parent)
        if path.is_symlink():
            raise sandbox.SandboxRefused(f"{path.name} is a link, not the student's own file")
        nb = _validated(path)
    except sandbox.SandboxRefused as err:
        return bad(f"the submission folder cannot be graded: {err}")
    except ValueError as err:
        return bad(str(err))
    ref = read_notebook(reference)
    checks = _prepare(nb, ref, stem)
    with tempfile.TemporaryDirectory(prefix="netlab-grade-") as scratch:
        try:
            if sandboxed:
                _run_sandboxed(nb, plan, Path(scratch), checks, cell_seconds, notebook_seconds)
            else:
                _run_unsandboxed(nb, path.parent, Path(scratch), checks, cell_seconds, notebook_seconds)
        except CellTimeoutError:
            return bad(f"a cell ran longer than {cell_seconds:.0f} s: does it wait for something that never comes?",
                       "timeout")
        except TimeoutError:
            return bad(f"the notebook ran longer than {notebook_seconds:.0f} s in all", "timeout")
        except DeadKernelError:
            return bad("the notebook's kernel died while it ran (a cell ended Python, or used up its memory)")
        except Exception as err:  # the kernel did not start, or nbclient gave up: still one row, and grading goes on
            return bad(f"the notebook could not be run: {type(err).__name__}: {str(err)[:200]}")
    wanted = _check_cells(ref, stem)
    found: dict[str, tuple[dict[str, Any] | None, str, str]] = {}
    for grade_id, index in wanted.items():
        if grade_id in checks:
            found[grade_id] = _answer(nb.cells[checks[grade_id]], grade_id, _expected_check(ref, index))
    answers = [(g, a) for g, (a, _, _) in found.items() if a is not None]
    verdicts = dict(zip([g for g, _ in answers], verifier.verify_answers([a for _, a in answers], sandboxed=sandboxed)))
    live = sandboxed and sandbox.problem() is None or not sandboxed and isolation()
    rows = []
    for grade_id in wanted:
        notes = [base_note] if base_note else []
        if grade_id not in checks:
            rows.append(Row(student, stem, grade_id, False, "the check cell is missing from the notebook",
                            ";".join(notes)))
            continue
        answer, why, note = found[grade_id]
        if answer is None:
            rows.append(Row(student, stem, grade_id, False, why, ";".join([*notes, note] if note else notes)))
            continue
        verdict = verdicts[grade_id]
        passed, feedback = verdict["passed"] is True, str(verdict["feedback"])
        if verdict.get("note"):
            notes.append(verdict["note"])
        if live and (recorded := _recorded(answer)) is not None:
            passed, feedback = False, f"no point: {recorded} ({feedback})"
            notes.append("recorded")
        rows.append(Row(student, stem, grade_id, passed, feedback, ";".join(notes),
                        tuple(c["id"] for c in captures(answer) if c["packets"] and c["source"] == "live")))
    return rows


def grade(folders: Iterable[Path], source: Path, *, workers: int | None = None, cell_seconds: float = CELL_SECONDS,
          notebook_seconds: float = NOTEBOOK_SECONDS, unsandboxed: bool = False,
          progress: Callable[[int, int, str], None] | None = None) -> list[Row]:
    """Grade every series notebook present in each submission folder; rows sorted by student, notebook, exercise.

    `source` is the instructor edition's folder (notebooks/). Up to `workers` notebooks run at
    once (default: the number of cores). Two folders with the same name are refused before
    anything runs (ValueError); so is grading without a sandbox (GradingRefused) unless `unsandboxed`.
    """
    if workers is not None:
        check_int("workers", workers, 1, 64)
    check_seconds("cell_seconds (--cell-timeout)", cell_seconds)
    check_seconds("notebook_seconds (--notebook-timeout)", notebook_seconds)
    # Absolute from here on: the sandbox and its kernel run elsewhere, where a relative name means nothing.
    folders = [Path(folder).absolute() for folder in folders]
    source = Path(source).absolute()
    who = students(folders)
    references = {p.stem: p for p in series(source)}
    if not references:
        raise FileNotFoundError(f"no series notebooks (NN-name.ipynb) in {source}")
    if not unsandboxed and (why := sandbox.problem()) is not None:
        raise GradingRefused(f"grading runs each submission in a sandbox, and {why}; install bubblewrap, or pass "
                             "--unsandboxed to grade without one (every row then says so)")
    jobs = [(student, folder / f"{stem}.ipynb", references[stem])
            for student, folder in sorted(who.items()) for stem in sorted(references)
            if os.path.lexists(folder / f"{stem}.ipynb")]
    workers = max(1, min(workers or os.cpu_count() or 1, len(jobs) or 1))
    done, lock, results = 0, threading.Lock(), {}

    def run(job: tuple[str, Path, Path]) -> None:
        nonlocal done
        rows = grade_notebook(*job, cell_seconds=cell_seconds, notebook_seconds=notebook_seconds,
                              sandboxed=not unsandboxed)
        with lock:
            results[job[:2]] = rows
            done += 1
            if progress:
                progress(done, len(jobs), f"{job[0]}/{job[1].name}")

    if progress:
        progress(0, len(jobs), "")
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(run, jobs))
    rows = [row for job in jobs for row in results[job[:2]]]
    return _flag_copies(rows, {s: f for s, f in who.items()}, references)


def shard(folders: Iterable[Path], part: tuple[int, int]) -> list[Path]:
    """The `part` = (K, N) share of the submission folders: the K-th of N (from 1), by student name, so that
    N graders given the same folders grade each student exactly once."""
    k, n = part
    check_int("the shard's number of parts (N in K/N)", n, 1, 10_000)
    check_int("the shard (K in K/N)", k, 1, n)
    return [f for i, f in enumerate(sorted(map(Path, folders), key=lambda f: f.resolve().name)) if i % n == k - 1]


def parse_shard(text: str) -> tuple[int, int]:
    """"K/N" (the K-th of N parts, 1 ≤ K ≤ N) as (K, N); ValueError naming what is wrong."""
    k, slash, n = str(text).partition("/")
    if not slash or not k.strip().isdigit() or not n.strip().isdigit():
        raise ValueError(f"{text!r} is not a shard: write K/N, the K-th of N parts (1/4, 2/4, …)")
    part = int(k), int(n)
    if not 1 <= part[0] <= part[1]:
        raise ValueError(f"{text!r} is not a shard: K/N needs 1 ≤ K ≤ N")
    return part


def read_csv(path: Path) -> list[Row]:
    """The rows of a grades CSV that `write_csv` wrote; ValueError naming the file if it is not one."""
    with Path(path).open(newline="", encoding="utf-8") as f:
        lines = list(csv.reader(f))
    if not lines or tuple(lines[0]) != COLUMNS:
        raise ValueError(f"{path}: not a grades CSV of this netlab (its header is not {','.join(COLUMNS)})")
    rows = []
    for number, line in enumerate(lines[1:], start=2):
        if len(line) != len(COLUMNS) or line[3] not in ("true", "false"):
            raise ValueError(f"{path}, line {number}: not a row of {len(COLUMNS)} columns with passed true or false")
        rows.append(Row(line[0], line[1], line[2], line[3] == "true", line[4], line[5]))
    return rows


def merge(parts: Iterable[Path]) -> list[Row]:
    """The rows of several shards' CSVs as one class, sorted; ValueError if two parts graded the same notebook."""
    rows, seen = [], {}
    for part in parts:
        for row in read_csv(part):
            key = (row.student, row.notebook, row.exercise)
            if key in seen:
                raise ValueError(f"{row.student}/{row.notebook} ({row.exercise}) is in both {seen[key]} and {part}: "
                                 "were the shards made from the same folders with one N?")
            seen[key] = part
            rows.append(row)
    return sorted(rows, key=lambda r: (r.student, r.notebook, r.exercise != "*", r.exercise))


def _answer_texts(path: Path, stem: str) -> dict[str, str]:
    """The text of each exercise's answer cells in notebook `path`, by grade id ({} for no readable notebook)."""
    try:
        nb = _validated(path) if not path.is_symlink() else None
        found = exercises(nb, stem) if nb is not None else []
    except (ValueError, OSError):
        return {}
    return {e.grade_id: "\n".join(nb.cells[i].source for i in e.answers) for e in found}


def _flag_copies(rows: list[Row], folders: dict[str, Path], references: dict[str, Path]) -> list[Row]:
    """`rows` with `copied:<whom>` added to the note of each answer near-identical to another's (`copies`)."""
    flagged: dict[tuple[str, str, str], list[str]] = {}
    for stem, reference in references.items():
        graded = {(r.student, r.exercise) for r in rows if r.notebook == stem and r.exercise != "*"}
        if not graded:
            continue
        solutions = _answer_texts(reference, stem)
        texts = {student: _answer_texts(folder / f"{stem}.ipynb", stem) for student, folder in folders.items()
                 if any(s == student for s, _ in graded)}
        held = {(r.student, r.exercise): r.captures for r in rows if r.notebook == stem}
        for grade_id in solutions:
            answers = {student: mine[grade_id] for student, mine in texts.items() if grade_id in mine}
            ids = {student: held.get((student, grade_id), ()) for student in answers}
            for student, whom in copies.copied(answers, solutions[grade_id], ids).items():
                flagged[(student, stem, grade_id)] = whom
    out = []
    for row in rows:
        whom = flagged.get((row.student, row.notebook, row.exercise))
        if whom:
            row = replace(row, note=";".join(n for n in (row.note, f"copied:{','.join(whom)}") if n))
        out.append(row)
    return out


def write_csv(rows: list[Row], out: Path) -> Path:
    """Write the rows as CSV (header: COLUMNS) atomically: a temporary file beside `out`, then a rename."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(prefix=f".{out.name}.", dir=out.parent)
    try:
        with os.fdopen(fd, "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(COLUMNS)
            writer.writerows(row.csv() for row in rows)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(temporary, 0o644)
        os.replace(temporary, out)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    return out


def summary(rows: list[Row]) -> str:
    """A table for the terminal: per student, exercises passed out of graded in each notebook, and in all."""
    notebooks = sorted({r.notebook for r in rows})
    names = sorted({r.student for r in rows})
    width = max([7, *map(len, names)])
    head = f"{'student':<{width}}  " + "  ".join(f"{n[:2]:>5}" for n in notebooks) + "  total"
    lines = [head, "-" * len(head)]
    for name in names:
        cells, passed, total = [], 0, 0
        for notebook in notebooks:
            mine = [r for r in rows if r.student == name and r.notebook == notebook]
            if not mine:
                cells.append(f"{'':>5}")
            elif mine[0].exercise == "*":
                cells.append(f"{'!':>5}")
            else:
                ok = sum(r.passed for r in mine)
                cells.append(f"{ok:>2}/{len(mine):<2}")
            passed += sum(r.passed for r in mine)
            total += len(mine)
        lines.append(f"{name:<{width}}  " + "  ".join(cells) + f"  {passed}/{total}")
    lines.append("(! = the notebook could not be graded: see its row in the CSV; blank = not handed in)")
    return "\n".join(lines)


def progress_bar(stream: Any = None) -> Callable[[int, int, str], None]:
    """A progress callback drawing `[#####.....] 12/40` on the terminal (one line per step when not a terminal)."""
    stream = stream or sys.stderr
    started = time.monotonic()

    def show(done: int, total: int, label: str) -> None:
        filled = int(30 * done / total) if total else 30
        line = f"[{'#' * filled}{'.' * (30 - filled)}] {done}/{total} notebooks, {time.monotonic() - started:.0f} s"
        if label:
            line += f"  {label}"
        if stream.isatty():
            stream.write("\r" + line[:120].ljust(120) + ("\n" if done == total else ""))
        else:
            stream.write(line + "\n")
        stream.flush()

    return show
