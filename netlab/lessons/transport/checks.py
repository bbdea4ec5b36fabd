"""Notebook 13's exercises: the harness is the check.

Each check runs the student's sender and receiver on the lab's lossy path under named cases
(`CASES`): in a student's run a representative few (`SHOWN`), under grading all of them. The
verdict comes from what the harness observed (`harness.problem`), never from the student's code
saying so; a failure names the case and the segment, with that run's first lines of ladder.
"""

from __future__ import annotations

import inspect
from typing import Any

from netlab.core.checking import Feedback, exercise_check, grading, unanswered
from netlab.core.errors import LabUnavailable
from netlab.lessons.transport.experiments import CASES, PIPELINE_CASES, WINDOW, kept_path, retransmissions
from netlab.lessons.transport.harness import Case, TransportRun, problem, run_cases
from netlab.lessons.transport.protocol import PAYLOAD

__all__ = ["stop_and_wait", "go_back_n", "selective_repeat"]

# Cases a student's own run tries (the first N of the protocol's); a grader runs every one.
SHOWN = {"stop_and_wait": 1, "pipelined": 2}


def _shape(func: Any, role: str, params: int, shape: str) -> Feedback | None:
    if (fb := unanswered(func)) is not None:
        return fb
    if not callable(func):
        return Feedback(False, f"Give your {role} as a function {shape}, not a {type(func).__name__}.")
    try:
        inspect.signature(func).bind(*range(params))
    except TypeError:
        return Feedback(False, f"Your {role} must take {params} argument{'s' if params > 1 else ''}: {shape}.")
    except ValueError:
        pass
    return None


def _run(sender: Any, receiver: Any, cases: list[Case], window: int | None) -> list[tuple[TransportRun, Case]] | Feedback:
    try:
        # The kernel's kept path in a student's run; under a grader, the verifier's own, made afresh.
        runs = run_cases(kept_path(), cases, sender, receiver, window=window)
    except LabUnavailable as err:
        return Feedback(False, f"This exercise runs your code on the live lab's lossy path, and here: {err}")
    return list(zip(runs, cases, strict=False))


def _failed(runs: list[tuple[TransportRun, Case]]) -> Feedback | None:
    for run, case in runs:
        if (said := problem(run, case)) is not None:
            lines = run.lines() or ["(nothing: no segment of the protocol was captured)"]
            shown = "\n".join(lines[:8]) + (f"\n… {len(lines) - 8} more" if len(lines) > 8 else "")
            return Feedback(False, f"{said}\nThe start of that run (→ your sender's segments, ← your receiver's, "
                                   f"[what the line did]):\n{shown}")
    return None


def _summary(runs: list[tuple[TransportRun, Case]]) -> str:
    names = "; ".join(case.name for _, case in runs)
    cases = f"in all {len(runs)} cases" if len(runs) > 1 else "in the case"
    return f"every byte arrived once and in order, and both functions ended, {cases} ({names})"


def _cases(all_cases: list[Case], kind: str) -> list[Case]:
    return list(all_cases) if grading() else list(all_cases[:SHOWN[kind]])


@exercise_check
def stop_and_wait(sender: Any, receiver: Any) -> Feedback:
    """Exercise: rdt 3.0, sender(sock, data, peer) and receiver(sock) -> bytes, under each impairment."""
    for func, role, n, shape in ((sender, "sender", 3, "sender(sock, data, peer)"),
                                 (receiver, "receiver", 1, "receiver(sock) -> bytes")):
        if (fb := _shape(func, role, n, shape)) is not None:
            return fb
    runs = _run(sender, receiver, _cases(CASES, "stop_and_wait"), None)
    if isinstance(runs, Feedback):
        return runs
    if (fb := _failed(runs)) is not None:
        return fb
    return Feedback(True, f"Reliable: {_summary(runs)}.")


def _pipelined(sender: Any, receiver: Any, kind: str) -> Feedback | list[tuple[TransportRun, Case]]:
    for func, role, n, shape in ((sender, "sender", 4, "sender(sock, data, peer, window)"),
                                 (receiver, "receiver", 2, "receiver(sock, window) -> bytes")):
        if (fb := _shape(func, role, n, shape)) is not None:
            return fb
    runs = _run(sender, receiver, _cases(PIPELINE_CASES, "pipelined"), WINDOW)
    if isinstance(runs, Feedback):
        return runs
    if (fb := _failed(runs)) is not None:
        return fb
    first, case = runs[0]  # the single loss: its first window reaches the capture whole
    before = 0
    for _, way, seg in first.segments():
        if way == "←":
            break
        before += "DATA" in seg.flags
    if before < WINDOW:
        return Feedback(False, f"Every byte arrived, but in the case \u201c{case.name}\u201d with window={WINDOW} your "
                               f"sender sent {before} data segment(s) before the first ACK came back: a {kind} sender "
                               "keeps `window` segments in flight.")
    return runs


@exercise_check
def go_back_n(sender: Any, receiver: Any) -> Feedback:
    """Exercise: Go-Back-N, sender(sock, data, peer, window) and receiver(sock, window) -> bytes, window 4."""
    runs = _pipelined(sender, receiver, "Go-Back-N")
    if isinstance(runs, Feedback):
        return runs
    run, _ = runs[0]
    return Feedback(True, f"Pipelined and reliable: {WINDOW} segments in flight, {retransmissions(run)} sent again "
                          f"after one loss, and {_summary(runs)}.")


@exercise_check
def selective_repeat(sender: Any, receiver: Any) -> Feedback:
    """Exercise: Selective Repeat: as Go-Back-N, and one lost segment is the only one sent again."""
    runs = _pipelined(sender, receiver, "Selective Repeat")
    if isinstance(runs, Feedback):
        return runs
    run, case = runs[0]  # SINGLE_LOSS
    again = retransmissions(run)
    needed = -(-case.size // PAYLOAD)
    if again >= WINDOW:
        return Feedback(False, f"In the case \u201c{case.name}\u201d, one data segment was lost and your sender sent "
                               f"{again} data segments again for {needed}: Selective Repeat resends only what was "
                               "not acknowledged. Does your receiver keep (and acknowledge) what arrives out of order?")
    return Feedback(True, f"Selective: one loss, {again} segment sent again; and {_summary(runs)}.")
