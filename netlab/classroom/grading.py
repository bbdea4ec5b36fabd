"""Grade students' notebooks: execute each one afresh and read the checks' verdicts as data.

Rules for this file:

1. Never trust a submission. Its stored outputs are cleared; its check cells are replaced by the
   instructor's (matched by nbgrader grade id); it runs in a scratch copy of its folder, in a
   fresh kernel of its own, with a time limit per cell and per notebook. Where the system allows
   it the kernel runs in a user and network namespace of its own (`unshare -Urn`; nbclient
   reaches it over the `ipc` transport, unix sockets in the scratch folder): it reaches no
   network, and no other student's lab. Elsewhere it runs on the host, and its rows say so.
2. Verdicts are data, never scraped text: each check displays CHECK_MIME
   ({"grade_id", "passed", "feedback"}), and with NETLAB_GRADING=1 a failed check raises. A
   notebook that cannot be graded (not JSON, not a notebook, hangs, kills its kernel) gets one row
   with exercise `*`, and grading goes on.
"""

from __future__ import annotations

import asyncio
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
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from netlab.classroom.edition import exercises, read_notebook, series
from netlab.core import programs
from netlab.core.arguments import check_int, check_seconds
from netlab.core.checking import CHECK_MIME, GRADING_ENV  # the contract with the checks: a verdict's data, "grading"

CELL_SECONDS = 180.0  # one cell; the slowest lesson cells take about 20 s live
NOTEBOOK_SECONDS = 900.0  # one notebook, start of its kernel included
COLUMNS = ("student", "notebook", "exercise", "passed", "feedback")
ON_HOST = " [graded on the host: this system refuses a private namespace for the kernel]"

__all__ = ["Row", "grade", "grade_notebook", "isolation", "students", "write_csv", "summary", "COLUMNS"]


@dataclass(frozen=True)
class Row:
    """One line of grades.csv: one exercise of one student's notebook (exercise "*" for a notebook that could not run)."""

    student: str
    notebook: str
    exercise: str
    passed: bool
    feedback: str

    def csv(self) -> list[str]:
        return [self.student, self.notebook, self.exercise, "true" if self.passed else "false", self.feedback]


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


def _verdict(cell: Any, grade_id: str) -> tuple[bool, str]:
    """The check's verdict in a check cell's outputs: (passed, feedback)."""
    shown = [o["data"][CHECK_MIME] for o in cell.outputs
             if o.get("output_type") in ("display_data", "execute_result") and CHECK_MIME in o.get("data", {})]
    if shown:
        data = shown[-1]
        if isinstance(data, str):
            data = json.loads(data)
        if data.get("grade_id") not in (grade_id, None):
            return False, f"the verdict shown in this cell is exercise {data.get('grade_id')!r}'s, not this one's"
        return data.get("passed") is True, str(data.get("feedback", ""))
    errors = [o for o in cell.outputs if o.get("output_type") == "error"]
    if errors:
        return False, f"the check could not run: {errors[0].get('ename')}: {errors[0].get('evalue', '')}"[:300]
    return False, "the check showed no verdict: was the check cell changed?"


async def _execute(nb: Any, folder: Path, checks: dict[str, int], isolated: bool,
                   cell_seconds: float, notebook_seconds: float) -> None:
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import AsyncKernelManager
    from nbclient import NotebookClient

    kernels = folder / ".netlab-kernels"
    (kernels / "grade").mkdir(parents=True)
    (kernels / "grade" / "kernel.json").write_text(json.dumps(
        {"argv": _kernel_argv(isolated), "display_name": "netlab grading", "language": "python"}))
    km = AsyncKernelManager(kernel_name="grade", kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(kernels)]),
                            transport="ipc", connection_file=str(kernels / "kernel.json"))
    by_index = {index: grade_id for grade_id, index in checks.items()}

    class Client(NotebookClient):
        async def async_execute_cell(self, cell: Any, cell_index: int, *args: Any, **kwargs: Any) -> Any:
            grade_id = by_index.get(cell_index)
            if grade_id is None:
                return await super().async_execute_cell(cell, cell_index, *args, **kwargs)
            # The verdict carries the exercise's grade id: the grader names it just before the check runs.
            source = cell.source
            cell.source = f"__import__('netlab.checks').checks.set_grade_id({grade_id!r})\n{source}"
            try:
                return await super().async_execute_cell(cell, cell_index, *args, **kwargs)
            finally:
                cell.source = source

    client = Client(nb, km=km, timeout=int(cell_seconds), allow_errors=True, interrupt_on_timeout=False,
                    startup_timeout=60, resources={"metadata": {"path": str(folder)}})
    env = {**os.environ, GRADING_ENV: "1", "MPLBACKEND": "agg", "PYTHONUNBUFFERED": "1"}
    try:
        await asyncio.wait_for(client.async_execute(env=env), notebook_seconds)
    finally:
        # nbclient stops its kernel client's channels itself, but not when the notebook's time runs
        # out and its execution is cancelled: its heartbeat thread would go on, reconnecting.
        if client.kc is not None:
            client.kc.stop_channels()
        if km.has_kernel:
            await km.shutdown_kernel(now=True)


def grade_notebook(student: str, path: Path, reference: Path, *, cell_seconds: float = CELL_SECONDS,
                   notebook_seconds: float = NOTEBOOK_SECONDS) -> list[Row]:
    """Grade one student's notebook against the instructor's `reference`: one Row per exercise, or one "*" row."""
    from nbclient.exceptions import CellTimeoutError, DeadKernelError

    stem = path.stem
    isolated = isolation()
    note = "" if isolated else ON_HOST

    def bad(reason: str) -> list[Row]:
        return [Row(student, stem, "*", False, reason + note)]

    try:
        nb = _validated(path)
    except ValueError as err:
        return bad(str(err))
    ref = read_notebook(reference)
    checks = _prepare(nb, ref, stem)
    with tempfile.TemporaryDirectory(prefix="netlab-grade-") as scratch:
        folder = Path(scratch) / "work"
        shutil.copytree(path.parent, folder, symlinks=True)
        try:
            asyncio.run(_execute(nb, folder, checks, isolated, cell_seconds, notebook_seconds))
        except CellTimeoutError:
            return bad(f"a cell ran longer than {cell_seconds:.0f} s: does it wait for something that never comes?")
        except TimeoutError:
            return bad(f"the notebook ran longer than {notebook_seconds:.0f} s in all")
        except DeadKernelError:
            return bad("the notebook's kernel died while it ran (a cell ended Python, or used up the memory)")
        except Exception as err:  # the kernel did not start, or nbclient gave up: still one row, and grading goes on
            return bad(f"the notebook could not be run: {type(err).__name__}: {str(err)[:200]}")
    rows = []
    for grade_id in _check_cells(ref, stem):
        if grade_id not in checks:
            rows.append(Row(student, stem, grade_id, False, "the check cell is missing from the notebook" + note))
            continue
        passed, feedback = _verdict(nb.cells[checks[grade_id]], grade_id)
        rows.append(Row(student, stem, grade_id, passed, feedback + note))
    return rows


def grade(folders: Iterable[Path], source: Path, *, workers: int | None = None, cell_seconds: float = CELL_SECONDS,
          notebook_seconds: float = NOTEBOOK_SECONDS,
          progress: Callable[[int, int, str], None] | None = None) -> list[Row]:
    """Grade every series notebook present in each submission folder; rows sorted by student, notebook, exercise.

    `source` is the instructor edition's folder (notebooks/). Up to `workers` notebooks run at
    once (default: the number of cores). Two folders with the same name are refused before
    anything runs (ValueError).
    """
    if workers is not None:
        check_int("workers", workers, 1, 64)
    check_seconds("cell_seconds (--cell-timeout)", cell_seconds)
    check_seconds("notebook_seconds (--notebook-timeout)", notebook_seconds)
    who = students(folders)
    references = {p.stem: p for p in series(source)}
    if not references:
        raise FileNotFoundError(f"no series notebooks (NN-name.ipynb) in {source}")
    jobs = [(student, folder / f"{stem}.ipynb", references[stem])
            for student, folder in sorted(who.items()) for stem in sorted(references)
            if (folder / f"{stem}.ipynb").exists()]
    workers = max(1, min(workers or os.cpu_count() or 1, len(jobs) or 1))
    done, lock, results = 0, threading.Lock(), {}

    def run(job: tuple[str, Path, Path]) -> None:
        nonlocal done
        rows = grade_notebook(*job, cell_seconds=cell_seconds, notebook_seconds=notebook_seconds)
        with lock:
            results[job[:2]] = rows
            done += 1
            if progress:
                progress(done, len(jobs), f"{job[0]}/{job[1].name}")

    if progress:
        progress(0, len(jobs), "")
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(run, jobs))
    return [row for job in jobs for row in results[job[:2]]]


def write_csv(rows: list[Row], out: Path) -> Path:
    """Write the rows as CSV with the header student,notebook,exercise,passed,feedback."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(COLUMNS)
        writer.writerows(row.csv() for row in rows)
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
