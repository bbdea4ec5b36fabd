"""Grading at class size: `netlab grade` on N copies of the instructor edition, timed.

Each copy is one "student" handing in every notebook of the series (or those named with
--notebooks) solved. It prints the time each notebook took (mean and slowest over the copies), the
time per submission and in all, how many notebooks ran at once (workers up to the cores, each
notebook in a kernel and lab of its own), whether every exercise got its point, and what a class
of 40 would take at the same pace (the goal of #28: 40 submissions in 30 minutes on 2 cores, each
notebook in a sandbox of its own and its answers decided by a verifier in another; --unsandboxed
measures the same without the sandbox, for comparison).

Run from the repository's root (the whole series: about as long as N × the series' own run / workers):

    .venv/bin/python bench/grade.py --copies 2
    .venv/bin/python bench/grade.py --copies 4 --notebooks 00-start-here,01-layers-and-packets
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

from netlab.classroom import edition, grading

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--copies", type=int, default=2, help="submissions to grade, N (default 2)")
    parser.add_argument("--notebooks", help="notebook stems, comma-separated (default: the whole series)")
    parser.add_argument("--workers", type=int, default=os.cpu_count(), help="notebooks at once (default: the cores)")
    parser.add_argument("--unsandboxed", action="store_true", help="grade without the sandbox (for comparison)")
    args = parser.parse_args()
    series = edition.series(NOTEBOOKS)
    if args.notebooks:
        wanted = set(args.notebooks.split(","))
        series = [p for p in series if p.stem in wanted]
        if missing := wanted - {p.stem for p in series}:
            sys.exit(f"no such notebooks: {', '.join(sorted(missing))}")

    # Time each notebook and count how many run at once, by wrapping the function grade() calls.
    lock, running, peak, took = threading.Lock(), 0, 0, {}
    grade_notebook = grading.grade_notebook

    def timed(student, path, reference, **kwargs):
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        began = time.perf_counter()
        try:
            return grade_notebook(student, path, reference, **kwargs)
        finally:
            with lock:
                running -= 1
                took[(student, path.stem)] = time.perf_counter() - began

    grading.grade_notebook = timed
    print(f"grade bench: {args.copies} submissions of {len(series)} notebooks, {args.workers} workers, "
          f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} before the run; "
          + ("kernels unsandboxed, " + ("each in a namespace of their own" if grading.isolation() else "on the host")
             if args.unsandboxed else "each notebook in a bubblewrap sandbox, its answers decided by a verifier in another"))
    with tempfile.TemporaryDirectory(prefix="netlab-grade-bench-") as scratch:
        folders = []
        for number in range(1, args.copies + 1):
            folder = Path(scratch) / f"student{number:02d}"
            folder.mkdir()
            for path in series:
                shutil.copy(path, folder / path.name)
            folders.append(folder)
        began = time.perf_counter()
        rows = grading.grade(folders, NOTEBOOKS, workers=args.workers, unsandboxed=args.unsandboxed,
                             progress=grading.progress_bar())
        wall = time.perf_counter() - began

    print(f"\n{'notebook':<36} {'mean s':>8} {'max s':>8}")
    for path in series:
        times = [t for (_, stem), t in took.items() if stem == path.stem]
        print(f"{path.stem:<36} {statistics.mean(times):8.1f} {max(times):8.1f}")
    per_submission = [sum(t for (s, _), t in took.items() if s == f.name) for f in folders]
    failed = [r for r in rows if not r.passed]
    noted = [r for r in rows if r.note]
    print(f"\nper submission: {statistics.mean(per_submission):.1f} s of notebook time, "
          f"{wall / args.copies:.1f} s of wall time at {peak} at once")
    print(f"in all: {wall:.1f} s for {args.copies} submissions; at most {peak} notebooks ran at once")
    print(f"exercises passed: {len(rows) - len(failed)} of {len(rows)}; rows with a note: {len(noted)}")
    for row in noted[:10]:
        print(f"  noted: {row.student} {row.notebook} {row.exercise}: {row.note}")
    for row in failed[:10]:
        print(f"  not passed: {row.student} {row.notebook} {row.exercise}: {row.feedback}")
    print(f"a class of 40 at this pace: {wall / args.copies * 40 / 60:.0f} min (goal: 30 min on 2 cores)")


if __name__ == "__main__":
    main()
