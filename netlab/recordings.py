"""Every recording shipped in netlab/data, and how to make them again (`python -m netlab record`).

Each lesson module names its own recordings in `RECORDINGS` (the file's name in netlab/data →
the experiment that makes it live). This module sits above the lessons and walks them all; the
core's `write_recording` writes each pcap with its .json.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path

from netlab.core.experiment import Experiment, write_recording
from netlab.core.pcapfiles import DATA

__all__ = ["LESSONS", "all_recordings", "record_all"]

# The lesson modules that ship recordings, in the series' order.
LESSONS = ("handshake", "sockets", "http", "transfer", "failures", "tls", "congestion", "below")


def all_recordings() -> dict[str, Callable[[], Experiment]]:
    """Every recording's name, mapped to the experiment that makes it live."""
    found: dict[str, Callable[[], Experiment]] = {}
    for lesson in LESSONS:
        found.update(importlib.import_module(f"netlab.lessons.{lesson}").RECORDINGS)
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
