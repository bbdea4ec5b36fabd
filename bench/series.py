"""The whole series in a real JupyterLab: each notebook's time with Run All Cells, outputs cleared.

Opens every notebook of notebooks/ (or those named) in one JupyterLab in Debian's headless
Chromium (tests/labdriver.py, the same driver as tests/test_browser.py), on a copy, one
after the other with a fresh kernel each, and prints for each the seconds from Run All Cells to
its last cell done, its slowest cells (JupyterLab's recorded timing), and the totals against
issue 13's goals: no notebook over 15 s, 00-08 together at most 60 s.

Run from the repository's root (two to three minutes on 2 cores):

    .venv/bin/python bench/series.py
    .venv/bin/python bench/series.py 05-data-transfer.ipynb --cells 8
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
import labdriver  # noqa: E402  (tests/labdriver.py; not "jupyterlab", which would hide the real package)

NOTEBOOK_GOAL = 15.0  # seconds, each notebook
CORE_GOAL = 60.0  # seconds, 00-08 together
CORE = {f"{n:02d}" for n in range(9)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("notebooks", nargs="*", help="notebook file names in notebooks/ (default: all)")
    parser.add_argument("--cells", type=int, default=3, help="slowest cells to show per notebook (default 3)")
    args = parser.parse_args()
    why = labdriver.unavailable()
    if why:
        sys.exit(f"series bench: {why}")
    names = args.notebooks or sorted(p.name for p in (ROOT / "notebooks").glob("[0-9][0-9]-*.ipynb"))

    print(f"series bench: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} before the run "
          "(other work on the machine lengthens every figure below)")
    times: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="netlab-series-") as folder:
        labdriver.copy_notebooks(ROOT / "notebooks", Path(folder))
        started = time.perf_counter()
        with labdriver.JupyterLab(Path(folder)) as lab, labdriver.browser() as chromium:
            print(f"JupyterLab and Chromium started in {time.perf_counter() - started:.1f} s")
            page = chromium.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(60_000)
            for name in names:
                run = labdriver.run_all(page, lab, name)
                lab.shut_down_kernels()
                times[name] = run.seconds
                over = "  over 15 s" if run.seconds > NOTEBOOK_GOAL else ""
                problems = "".join(f"\n    ✘ {e}" for e in run.errors) + (
                    f"\n    ✘ cells not run: {run.unrun}" if run.unrun else "")
                print(f"{name:<40} {run.seconds:6.1f} s{over}{problems}")
                for seconds, line in run.cell_seconds()[:args.cells]:
                    print(f"    {seconds:5.1f} s  {line[:90]}")
    core = sum(s for n, s in times.items() if n[:2] in CORE)
    print(f"{'00-08':<40} {core:6.1f} s  (goal ≤ {CORE_GOAL:.0f} s{'' if core <= CORE_GOAL else ': over'})")
    print(f"{'all ' + str(len(times)) + ' notebooks':<40} {sum(times.values()):6.1f} s")
    print(f"load average after the run: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
