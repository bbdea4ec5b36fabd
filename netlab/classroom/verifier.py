"""The verifier: decides handed-over answers in a sandbox of its own, where no student kernel runs.

Theory of operation (the model is INGInious: a grading container that runs student code in
another). Under `netlab grade` a check cell decides nothing: it shows its answer as data
(`netlab.core.checking.ANSWER_MIME`). When a notebook's sandbox has ended, the grader hands the
answers of that notebook to this program, run with `python -I -m netlab.classroom.verifier` in a
new sandbox (`netlab.classroom.sandbox`: no student file, its own network for the lab a check
re-runs). For each answer it forks a child that decodes it, functions included, runs the check
(`checking.verify`), and writes the verdict to a pipe of its own; the parent, which runs no
student code, collects the verdicts and prints them as one JSON list. So:

1. a student's function runs only in a child, against the check's cases; what it does there can
   touch that one verdict at most, never another exercise's or another student's (the child's
   stdin and stdout are /dev/null, and the parent is not dumpable, so the child cannot reach the
   parent's pipes through /proc);
2. a child that runs past its time is killed and its answer gets no point ("timeout").

For check authors (README, "Teaching with netlab"): a check is an ordinary function of its
arguments marked `@exercise_check`; whatever it needs must come through them or be made again
inside it (a fresh live run, scapy, the standard library), since it may run in another process
than the notebook's.
"""

from __future__ import annotations

import ctypes
import json
import os
import select
import signal
import subprocess
import sys
import threading
import time
from typing import Any

from netlab.classroom import sandbox
from netlab.core.checking import CHECK_SECONDS, find_check, verify

__all__ = ["verify_answers", "verify_here"]

ANSWER_SECONDS = CHECK_SECONDS + 30.0  # one answer: the check's own limit, and decoding
_PR_SET_DUMPABLE = 4


def _not_dumpable() -> None:
    """Make /proc/PID of this process (fds, memory) unreachable to the children it forks to run student code."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def _one(answer: dict[str, Any], seconds: float) -> dict[str, Any]:
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: student code may run here, and nothing of the parent's is in reach
        os.close(read)
        null = os.open(os.devnull, os.O_RDWR)
        os.dup2(null, 0)
        os.dup2(null, 1)
        try:
            fb = verify(answer)
            out = json.dumps({"passed": bool(fb.ok), "feedback": str(fb.message)})
        except BaseException as err:  # noqa: BLE001  (a student's function that ends the check in any way)
            out = json.dumps({"passed": False, "feedback": f"the check could not run ({type(err).__name__})"})
        os.write(write, out.encode()[:65536])
        os._exit(0)
    os.close(write)
    chunks, deadline = [], time.monotonic() + seconds
    with os.fdopen(read, "rb") as pipe:
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([pipe], [], [], left)[0]:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                return {"passed": False, "feedback": f"the check ran longer than {seconds:.0f} s", "note": "timeout"}
            chunk = os.read(pipe.fileno(), 65536)
            if not chunk:
                break
            chunks.append(chunk)
    os.waitpid(pid, 0)
    try:
        verdict = json.loads(b"".join(chunks))
        return {"passed": verdict["passed"] is True, "feedback": str(verdict["feedback"])[:500]}
    except (ValueError, KeyError, TypeError):
        return {"passed": False, "feedback": "the check gave no verdict (its process ended early)", "note": "tampered"}


def _warm(answers: list[dict[str, Any]]) -> None:
    """Import, once in the parent, what every child would import anew: scapy's layers and the checks' modules.

    Only netlab's own modules are imported here (`find_check` accepts nothing else), and no answer
    is decoded: the student's code runs in the children alone.
    """
    from netlab.core.handover import warm

    warm()
    for answer in answers:
        try:
            find_check(answer.get("check", ""))
        except Exception:  # a bad name: its child says so
            continue


def verify_here(answers: list[dict[str, Any]], seconds: float = ANSWER_SECONDS) -> list[dict[str, Any]]:
    """The verdicts on `answers`, each decided in a child of this process ({"passed", "feedback"[, "note"]})."""
    _not_dumpable()
    _warm(answers)
    return [_one(a, seconds) for a in answers]


def verify_answers(answers: list[dict[str, Any]], *, sandboxed: bool = True,
                   seconds: float = ANSWER_SECONDS) -> list[dict[str, Any]]:
    """Run this module in a new sandbox (or, `sandboxed=False`, a plain process) on `answers`; its verdicts."""
    if not answers:
        return []
    argv = [sys.executable, "-I", "-m", "netlab.classroom.verifier"]
    command = sandbox.command(argv) if sandboxed else argv
    env = None if sandboxed else {**os.environ, "PYTHONSAFEPATH": "1"}
    total = seconds * len(answers) + 60
    cgroup = f"netlab-verifier-{os.getpid()}-{threading.get_ident()}"
    try:
        done = subprocess.run(command, input=json.dumps({"answers": answers, "seconds": seconds}).encode(),
                              capture_output=True, timeout=total, env=env, cwd="/",
                              preexec_fn=(lambda: sandbox.confine(cgroup)) if sandboxed else None)
        verdicts = json.loads(done.stdout)
        if not isinstance(verdicts, list) or len(verdicts) != len(answers):
            raise ValueError("not one verdict per answer")
    except subprocess.TimeoutExpired:
        return [{"passed": False, "feedback": "the verifier ran out of time", "note": "timeout"}] * len(answers)
    except (ValueError, OSError) as err:
        said = (done.stderr.decode(errors="replace").strip().splitlines() or [""])[-1] if "done" in locals() else ""
        return [{"passed": False, "feedback": f"the verifier failed ({err}; {said[:200]})"}] * len(answers)
    finally:
        if sandboxed:
            sandbox.release(cgroup)
    return verdicts


def main() -> None:
    request = json.loads(sys.stdin.buffer.read())
    verdicts = verify_here(request["answers"], float(request.get("seconds", ANSWER_SECONDS)))
    sys.stdout.write(json.dumps(verdicts))


if __name__ == "__main__":
    main()
