"""How long does `import netlab` take, and what does a first use of a lesson module add?

Goal (issue 26): discovering the lessons costs nothing at import: `import netlab` loads only the
face (netlab/__init__.py) and what it needs to answer `netlab.NAME` later, no lesson, no scapy,
no matplotlib. Each measure is a fresh interpreter, as a notebook kernel or `python -m netlab`
starts; the median of `--repeat` runs counts, and the minimum is shown beside it (a shared
machine's load moves the median more than the minimum).

- `import netlab`: the face, as `python -X importtime` counts it (its cumulative microseconds);
- the same with `-S`: no site, so nothing is preloaded (an editable install's finder loads
  importlib.abc and typing at start-up, which hides what the face itself imports);
- the wall time of `import netlab` inside the interpreter (time.perf_counter around it);
- the same for `import netlab; netlab.congestion`, a lesson's experiments module on first use
  (scapy and the core's lab modules come with it; matplotlib does not, see lessons/congestion/draw.py).

Run from the repository's root (or give another checkout's root with --root to compare):

    .venv/bin/python bench/import_time.py
    .venv/bin/python bench/import_time.py --root /tmp/old-checkout --repeat 21
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

WALL = "import time; t = time.perf_counter(); {code}; print(time.perf_counter() - t)"


def _run(code: str, root: Path, importtime: bool, flags: tuple[str, ...] = ()) -> float:
    """Seconds `code` took in a fresh interpreter with `root` first on the path."""
    # Run in `root`: `python -c` puts the current folder first on the path, before PYTHONPATH.
    env = {**os.environ, "PYTHONPATH": str(root)}
    if importtime:
        done = subprocess.run([sys.executable, *flags, "-X", "importtime", "-c", code], env=env, cwd=root,
                              capture_output=True, text=True, timeout=60, check=True)
        line = next(line for line in done.stderr.splitlines() if line.rstrip().endswith("| netlab"))
        return int(line.split("|")[1]) / 1e6
    done = subprocess.run([sys.executable, "-c", WALL.format(code=code)], env=env, cwd=root, capture_output=True,
                          text=True, timeout=60, check=True)
    return float(done.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=ROOT, help="the checkout whose netlab is imported (default: this one)")
    parser.add_argument("--repeat", type=int, default=11, help="fresh interpreters per measure (default 11)")
    args = parser.parse_args()
    measures = [
        ("import netlab (-X importtime, cumulative)", "import netlab", True, ()),
        ("import netlab (-S -X importtime, cumulative)", "import netlab", True, ("-S",)),
        ("import netlab (wall)", "import netlab", False, ()),
        ("import netlab; netlab.congestion (wall)", "import netlab; netlab.congestion", False, ()),
    ]
    print(f"netlab from {args.root}")
    print(f"{'measure':<45} {'median ms':>10} {'min ms':>8}")
    for name, code, importtime, flags in measures:
        times = [_run(code, args.root, importtime, flags) for _ in range(args.repeat)]
        print(f"{name:<45} {statistics.median(times) * 1000:>10.1f} {min(times) * 1000:>8.1f}")


if __name__ == "__main__":
    main()
