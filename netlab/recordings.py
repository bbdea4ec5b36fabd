"""Every recording shipped in netlab/data, and how to make them again (`python -m netlab record`).

Each lesson's `experiments` names its own recordings in `RECORDINGS` (the file's name in
netlab/data → the experiment that makes it live). This module sits above the lessons and finds
them by walking `netlab.lessons`, never by a list; the core's `write_recording` writes each pcap
with its .json.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from netlab.core.experiment import Experiment, write_recording
from netlab.core.pcapfiles import DATA
from netlab.lessons import lesson_parts

__all__ = ["all_recordings", "record_all"]

def all_recordings() -> dict[str, Callable[[], Experiment]]:
    """Every recording's name, mapped to the experiment that makes it live (each lesson's RECORDINGS, if it has any)."""
    found: dict[str, Callable[[], Experiment]] = {}
    for experiments in lesson_parts("experiments"):
        for name, experiment in getattr(experiments, "RECORDINGS", {}).items():
            if name in found:
                raise ValueError(f"two lessons ship a recording named {name!r} (one is {experiments.__name__})")
            found[name] = experiment
    return found


def record_all(directory: Path = DATA) -> list[Path]:
    """Re-record the shipped captures from live runs (for maintainers); return the files written.

    Every experiment runs before any file is written, so a run that fails part-way (or a
    machine without the lab) leaves the shipped recordings as they were.
    """
    runs = {name: experiment() for name, experiment in all_recordings().items()}
    written: list[Path] = []
    for name, exp in runs.items():
        written += write_recording(exp, Path(directory), name)
    return written
