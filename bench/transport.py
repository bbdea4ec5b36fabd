"""How long does notebook 13's harness take? One case, a check as a student runs it, every case as graded.

Goals (issue #30): one harness case in at most 2 s; each protocol's check, all its cases, in at
most 30 s under grading; the checks of a student's run few enough that the notebook takes about
15 s. The functions run are the instructor's, taken from the notebook's solution cells (the
package holds no solution).

Prints, for each protocol: the seconds of each case (opening its delay line, running the two
functions apart, reading the capture; the very first also imports what reading a capture needs),
the seconds of the check as a student's run makes it (on the notebook's kept lab and path, the
representative cases), and of the check under grading (every case).

Measured on the shared 2-core machine (load average 5), 2026-12-08: one case 0.7 to 1.9 s (the
first 2.6 s with its imports); a student's check 2.1 (stop-and-wait), 3.1 (Go-Back-N), 2.5 s
(Selective Repeat), each with a lab and path to open first; graded, every case: 8.2 (6 cases),
10.3 (8), 8.7 s (8).

Run from the repository's root:

    .venv/bin/python bench/transport.py
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import time
from pathlib import Path

import netlab
from netlab.lessons.transport import checks
from netlab.lessons.transport.experiments import CASES, PIPELINE_CASES, WINDOW, kept_path
from netlab.lessons.transport.harness import run_cases

NOTEBOOK = Path(__file__).resolve().parent.parent / "notebooks" / "13-build-a-transport.ipynb"


def solutions() -> dict:
    namespace: dict = {"netlab": netlab}
    for cell in json.loads(NOTEBOOK.read_text())["cells"]:
        source = "".join(cell["source"])
        if source.startswith("Segment = netlab.transport.Segment") or "solution" in cell["metadata"].get("tags", []):
            with contextlib.redirect_stdout(io.StringIO()):  # the header cell prints its lesson
                exec(compile(source, str(NOTEBOOK), "exec"), namespace)
    return namespace


def main() -> None:
    found = solutions()
    protocols = [("stop_and_wait", "sender", "receiver", CASES, None),
                 ("go_back_n", "gbn_sender", "gbn_receiver", PIPELINE_CASES, WINDOW),
                 ("selective_repeat", "sr_sender", "sr_receiver", PIPELINE_CASES, WINDOW)]
    print(f"load average before: {os.getloadavg()[0]:.1f}")
    for check, sender, receiver, cases, window in protocols:
        path = kept_path()
        print(f"\n{check}: each case (s)")
        for case in cases:
            start = time.monotonic()
            (run,) = run_cases(path, [case], found[sender], found[receiver], window=window)
            print(f"  {time.monotonic() - start:5.2f}  {'ok ' if run.correct else 'BAD'} {case.name}")
        os.environ.pop("NETLAB_GRADING", None)
        start = time.monotonic()
        feedback = getattr(checks, check)(found[sender], found[receiver])
        print(f"  a student's run of the check (the kept path):        {time.monotonic() - start:5.2f} s"
              f" {'✔' if feedback else '✘ ' + feedback.message}")
        os.environ["NETLAB_GRADING"] = "1"
        start = time.monotonic()
        try:
            feedback = getattr(checks, check)(found[sender], found[receiver])
            verdict = "✔"
        except AssertionError as err:
            verdict = f"✘ {err}"
        print(f"  graded, every case:                                  {time.monotonic() - start:5.2f} s {verdict}")
        os.environ.pop("NETLAB_GRADING", None)
    print(f"\nload average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
