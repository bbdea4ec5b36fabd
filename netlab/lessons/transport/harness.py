"""The harness: a sender and a receiver the student wrote, run on the lossy path, and what it observed.

Theory of operation
-------------------
A check of notebook 13 is a list of named cases (`Case`: an impairment in each direction, with
a seed, and how much data), like CS144's test harness. For each case `run_case`:

1. opens a delay line with the case's impairments on the lesson's path (`path.LossyPath`) and two
   fresh UDP sockets, the sender's in the lab and the receiver's in a namespace beyond the line;
2. runs the student's `receiver(sock)` and `sender(sock, data, peer)` (pipelined protocols get a
   `window` too) **apart** (`run_apart`): each in a process of its own, with a time bound, its
   prints kept; a function that raises, never returns or floods the path cannot stop, hang or
   crash the harness, and what it returns comes back as data;
3. closes the delay line and keeps its capture (both directions at the sender's end, the lost
   segments too) and its log of what it did to which frame.

What the harness observed is a `TransportRun`: data, nothing of the student's code. `problem`
decides from it alone whether the case passed: every byte delivered once, in order, nothing
extra; both functions returned in time; the sender did not flood the path. A failure names the
case, the segment where the delivered bytes first went wrong and what the line did to it; the
run's ladder (`TransportRun.ladder`) shows it.

Rules for this file:
1. Nothing here is a solution: the harness only runs, observes and compares.
2. Every wait has a bound (`Case.seconds`; the delay line's duration above it).
3. The student's code runs only through `run_apart`, the one place a grader's sandbox replaces.
"""

from __future__ import annotations

import io
import os
import pickle
import select
import signal
import socket
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from netlab.core.delayline import Direction
from netlab.core.experiment import Experiment
from netlab.lessons.transport.path import RECEIVER, SENDER, LossyPath
from netlab.lessons.transport.protocol import PAYLOAD, Segment

__all__ = ["Case", "Outcome", "TransportRun", "run_apart", "run_case", "run_cases", "problem", "FLOOD", "MAX_OUTPUT"]

FLOOD = 6  # a sender may send this many times the segments its data needs (plus 20) before it floods
MAX_OUTPUT = 2000  # characters of a function's prints kept
_GRACE = 0.5  # seconds a function may run past its bound while the harness collects it


@dataclass(frozen=True)
class Case:
    """One case: a name that says the impairment, what the line does each way, how much data, a time bound (s)."""

    name: str
    forward: Direction = field(default_factory=Direction)  # towards the receiver: the data
    backward: Direction = field(default_factory=Direction)  # towards the sender: the ACKs
    size: int = 8 * PAYLOAD  # bytes of data the sender is given
    seconds: float = 3.0  # how long the sender and the receiver may take
    seed: int = 13  # the data's random bytes are drawn from it: the same data on every run of the case

    def data(self) -> bytes:
        """The case's data: `size` bytes that differ from segment to segment (a swap is never invisible)."""
        import random

        return random.Random(self.seed).randbytes(self.size)


@dataclass
class Outcome:
    """What one function of the student's did when run apart: returned, raised, or still ran at its bound."""

    kind: str  # "returned", "raised" or "timeout"
    value: Any = None  # what it returned (bytes as bytes; anything else as its repr), or the exception as text
    output: str = ""  # what it printed (the last MAX_OUTPUT characters)
    seconds: float = 0.0  # how long it ran


@dataclass
class TransportRun(Experiment):
    """One case run: the capture at the sender's end, what each function did, what the delay line did."""

    case: str = ""
    size: int = 0  # bytes the sender was given
    window: int | None = None
    sender: Outcome | None = None
    receiver: Outcome | None = None
    delivered: bytes | None = None  # what the receiver returned, when it returned bytes
    correct: bool = False  # delivered is exactly the data
    line_log: list = field(default_factory=list)  # (seconds, what the delay line did)
    forward_counts: dict = field(default_factory=dict)  # frames in, lost, duplicated, reordered, corrupted, sent
    backward_counts: dict = field(default_factory=dict)

    def segments(self) -> list[tuple[float, str, Any]]:
        """(seconds since the first frame, "→" or "←", the Segment) for each of the protocol's frames captured."""
        rows, start = [], None
        for pkt in self.packets:
            if Segment not in pkt:
                continue
            start = float(pkt.time) if start is None else start
            way = "→" if pkt["IP"].src == SENDER[0] else "←"
            rows.append((float(pkt.time) - start, way, pkt[Segment]))
        return rows

    def fates(self) -> dict[int, str]:
        """What the delay line did to each forward frame, by its number in the capture's forward frames (from 1)."""
        fates: dict[int, str] = {}
        for _, what in self.line_log:
            if what.startswith("forward: frame "):
                number, _, rest = what.removeprefix("forward: frame ").partition(" ")
                if number.isdigit():
                    fate = "reordered" if "(reordered)" in rest else rest.split(":")[0]
                    fates[int(number)] = f"{fates[int(number)]}, {fate}" if int(number) in fates else fate
        return fates

    def lines(self, *, times: bool = True) -> list[str]:
        """One line per segment captured: time (ms), direction, flags, seq/ack, payload bytes, what the line did.

        Without `times`, the lines hold only what the same seed gives again on every run.
        """
        fates, out, forward = self.fates(), [], 0
        for seconds, way, seg in self.segments():
            note = ""
            if way == "→":
                forward += 1
                note = fates.get(forward, "")
            flags = str(seg.flags) or "-"
            size = len(seg.payload) if seg.payload else 0
            intact = "" if seg.intact() else " checksum wrong"
            when = f"{seconds * 1000:8.1f} ms " if times else ""
            out.append(f"{when}{way} {flags:<9} seq={seg.seq:<4} ack={seg.ack:<4} {size:5} B"
                       + (f"  [{note}]" if note else "") + intact)
        return out

    def ladder(self, ax: Any = None, *, first: int = 0, count: int = 40) -> Any:
        """Draw the run as a ladder (sender left, receiver right): frames `first` to `first + count`; lost ones end halfway.

        Returns the figure (shown by a notebook as the cell's result).
        """
        from netlab.core.draw import NotebookFigure

        rows = self.segments()[first:first + count]
        fates, number = self.fates(), 0
        for _, way, _ in self.segments()[:first]:
            number += way == "→"
        if ax is None:
            ax = NotebookFigure(figsize=(6.5, 0.32 * max(len(rows), 4) + 1)).add_subplot()
        one_way = _one_way(self)
        for seconds, way, seg in rows:
            start = seconds * 1000
            if way == "→":
                number += 1
                fate = fates.get(number, "")
                end_x, end_y = (0.5, start + one_way / 2) if fate == "lost" else (1, start + one_way)
                colour = _COLOURS.get(fate.split(", ")[0], "tab:blue")
                ax.annotate("", (end_x, end_y), (0, start), arrowprops={"arrowstyle": "->", "color": colour})
                label = f"{seg.sprintf('%flags%')} {seg.seq}" + (f" ({fate})" if fate else "")
                ax.text(0.02, start, label, fontsize=7, va="bottom")
            else:
                ax.annotate("", (0, start), (1, start - one_way), arrowprops={"arrowstyle": "->", "color": "tab:green"})
                ax.text(0.98, start - one_way, f"{seg.sprintf('%flags%')} {seg.ack}", fontsize=7, ha="right",
                        va="bottom")
        ax.set_xlim(-0.05, 1.05)
        # Arrows and labels do not widen the axes' limits: set them to the frames drawn (ms, time downwards).
        times = [seconds * 1000 for seconds, _, _ in rows] or [0.0]
        ax.set_ylim(max(times) + one_way + 5, min(times) - one_way - 5)
        ax.set_xticks([0, 1], ["sender", "receiver"])
        ax.set_ylabel("ms (at the sender)")
        ax.set_title(f"{self.case}", fontsize=9)
        return ax.figure


_COLOURS = {"lost": "tab:red", "corrupted": "tab:orange", "duplicated": "tab:purple", "reordered": "tab:olive"}


def _one_way(run: TransportRun) -> float:
    """The one-way delay of the run's path in ms, for drawing: read from the line's order, 10 ms when unknown."""
    delay = run.forward_counts.get("delay")
    return float(delay) * 1000 if isinstance(delay, (int, float)) else 10.0


# --- running the student's code apart ---


def run_apart(calls: Sequence[tuple[Callable[..., Any], tuple]], seconds: float) -> list[Outcome]:
    """Run each (function, arguments) at once, each in a forked process of its own, for at most `seconds`.

    A function still running at the bound is killed (kind "timeout"); one that raises gives its
    exception as text; what it prints is kept, not shown. Under a grader, this is the step its
    sandbox takes over: only the outcomes, data, come back.
    """
    children = []
    started = time.monotonic()
    for func, args in calls:
        read, write = os.pipe()
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:  # the child: run the function, write its outcome, leave without any cleanup of the parent's
            code = 0
            try:
                os.close(read)
                signal.signal(signal.SIGINT, signal.SIG_DFL)
                _child(func, args, write, started)
            except BaseException:  # noqa: BLE001  (nothing may escape into the parent's code)
                code = 1
            finally:
                os._exit(code)
        os.close(write)
        children.append((pid, read, bytearray()))
    deadline = started + seconds
    outcomes: list[Outcome | None] = [None] * len(children)
    open_pipes = {read: i for i, (_, read, _) in enumerate(children)}
    try:
        while open_pipes and time.monotonic() < deadline + _GRACE:
            ready = select.select(list(open_pipes), [], [], max(0.0, deadline + _GRACE - time.monotonic()))[0]
            for read in ready:
                chunk = os.read(read, 1 << 16)
                index = open_pipes[read]
                if chunk:
                    children[index][2].extend(chunk)
                else:
                    del open_pipes[read]
    finally:
        for index, (pid, read, got) in enumerate(children):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            os.waitpid(pid, 0)
            os.close(read)
            if read in open_pipes or not got:
                outcomes[index] = Outcome("timeout", None, "", round(time.monotonic() - started, 3))
            else:
                try:
                    outcomes[index] = Outcome(*pickle.loads(bytes(got)))
                except Exception:  # noqa: BLE001  (a child killed half-way through writing)
                    outcomes[index] = Outcome("timeout", None, "", round(time.monotonic() - started, 3))
    return [o for o in outcomes if o is not None]


def _child(func: Callable[..., Any], args: tuple, write: int, started: float) -> None:
    printed = io.StringIO()
    sys.stdout = sys.stderr = printed
    try:
        value: Any = func(*args)
        kind = "returned"
        if not isinstance(value, (bytes, bytearray, type(None))):
            value = repr(value)[:200]
        elif isinstance(value, bytearray):
            value = bytes(value)
    except BaseException as err:  # noqa: BLE001  (the student's exception, as text)
        kind, value = "raised", (f"{type(err).__name__}: {err}" if str(err) else type(err).__name__)[:300]
    data = pickle.dumps((kind, value, printed.getvalue()[-MAX_OUTPUT:], round(time.monotonic() - started, 3)))
    view = memoryview(data)
    while view:
        view = view[os.write(write, view):]
    os.close(write)


# --- one case ---


class _Bounded(socket.socket):
    """A UDP socket (a duplicate of `sock`) that sends at most `limit` datagrams; past it, each send waits 1 ms and
    sends nothing. The capture, not this count, says how many were sent."""

    def __init__(self, sock: socket.socket, limit: int) -> None:
        super().__init__(sock.family, sock.type, sock.proto, fileno=os.dup(sock.fileno()))
        self._left = limit

    def _spend(self) -> bool:
        self._left -= 1
        if self._left < 0:
            time.sleep(0.001)
        return self._left >= 0

    def sendto(self, data: Any, *args: Any) -> int:  # type: ignore[override]
        return super().sendto(data, *args) if self._spend() else len(data)

    def send(self, data: Any, *args: Any) -> int:  # type: ignore[override]
        return super().send(data, *args) if self._spend() else len(data)

    def sendall(self, data: Any, *args: Any) -> None:  # type: ignore[override]
        if self._spend():
            super().sendall(data, *args)


def run_case(path: LossyPath, case: Case, sender: Callable[..., Any], receiver: Callable[..., Any], *,
             window: int | None = None, line: Any = None) -> TransportRun:
    """Run `sender` and `receiver` on `path` under `case` and return what the harness observed.

    `line` is the case's delay line if it was started already (`path.line(...)`, so that its
    program starts while the previous case runs).
    """
    data = case.data()
    line = line or path.line(case.forward, case.backward, duration=case.seconds + 3)
    with line:
        bare, rx = path.udp()
        # The sender's socket stops sending a little past what `problem` calls a flood: enough to
        # judge it, and a capture that stays small enough to read (a loop of tiny segments could
        # otherwise put tens of thousands of frames in it).
        tx = _Bounded(bare, (FLOOD + 1) * -(-len(data) // PAYLOAD) + 40)
        bare.close()
        with tx, rx:
            if window is None:
                calls = [(receiver, (rx,)), (sender, (tx, data, RECEIVER))]
            else:
                calls = [(receiver, (rx, window)), (sender, (tx, data, RECEIVER, window))]
            got_receiver, got_sender = run_apart(calls, case.seconds)
    delivered = got_receiver.value if got_receiver.kind == "returned" and isinstance(got_receiver.value, bytes) \
        else None
    report = line.report
    forward = {**report.forward, "delay": case.forward.delay}
    return TransportRun(packets=report.packets, source="live",
                        why="live: your sender and receiver ran just now on the lab's lossy path",
                        result=None, case=case.name, size=len(data), window=window, sender=got_sender,
                        receiver=got_receiver, delivered=delivered, correct=delivered == data,
                        line_log=[list(entry) for entry in report.log], forward_counts=forward,
                        backward_counts=dict(report.backward))


def run_cases(path: LossyPath, cases: Sequence[Case], sender: Callable[..., Any], receiver: Callable[..., Any], *,
              window: int | None | Sequence[int] = None, stop_at_first: bool = True) -> list[TransportRun]:
    """Run `cases` in order on `path` (each with its own delay line); stop after the first failure.

    `window` is one window for every case, or one per case.
    """
    windows = list(window) if isinstance(window, (list, tuple)) else [window] * len(cases)
    runs: list[TransportRun] = []
    upcoming = path.line(cases[0].forward, cases[0].backward, duration=cases[0].seconds + 3) if cases else None
    for i, case in enumerate(cases):
        line, upcoming = upcoming, None
        if i + 1 < len(cases):  # the next case's delay line starts while this one runs
            nxt = cases[i + 1]
            upcoming = path.line(nxt.forward, nxt.backward, duration=nxt.seconds + 3)
        try:
            run = run_case(path, case, sender, receiver, window=windows[i], line=line)
        except BaseException:
            if upcoming is not None:
                upcoming.close()
            raise
        runs.append(run)
        if stop_at_first and problem(run, case) is not None:
            if upcoming is not None:
                upcoming.close()
            break
    return runs


# --- the verdict, from what was observed ---


def problem(run: TransportRun, case: Case) -> str | None:
    """What went wrong in `run` (one or two sentences naming the case and the segment), or None when it passed."""
    where = f"In the case \u201c{case.name}\u201d"
    receiver, sender = run.receiver, run.sender
    if sender is not None and sender.kind == "raised":
        return f"{where}, your sender raised {sender.value}."
    if receiver is not None and receiver.kind == "raised":
        return f"{where}, your receiver raised {receiver.value}."
    needed = -(-run.size // PAYLOAD)
    sent = sum(1 for _, way, seg in run.segments() if way == "→")
    if sent == 0 and sender is not None and sender.kind == "timeout":
        return f"{where}, your sender sent nothing in {case.seconds:g} s (and had not returned)."
    if sent == 0:
        return f"{where}, your sender returned without sending anything: sock.sendto(bytes(segment), peer) sends one."
    if sent > FLOOD * needed + 20:
        return (f"{where}, your sender sent {sent} segments for {needed} segments of data: it floods the path. "
                "Does it wait for an ACK (or a timeout) before sending again?")
    if receiver is not None and receiver.kind == "timeout":
        return (f"{where}, your receiver had not returned after {case.seconds:g} s. Does it return once the "
                "sender's FIN arrives, and does the sender send one even when ACKs are lost?")
    if receiver is not None and run.delivered is None:
        return f"{where}, your receiver returned {receiver.value}, not bytes."
    if not run.correct:
        return f"{where}, {_first_wrong(run, case)}"
    if sender is not None and sender.kind == "timeout":
        return (f"{where}, every byte arrived but your sender had not returned after {case.seconds:g} s. "
                "When does it stop retransmitting its last segment (or its FIN)?")
    return None


def _first_wrong(run: TransportRun, case: Case) -> str:
    data, got = case.data(), run.delivered or b""
    at = next((i for i, (a, b) in enumerate(zip(data, got)) if a != b), min(len(data), len(got)))
    if at == len(data) and len(got) > len(data):
        extra = len(got) - len(data)
        return (f"the receiver returned {extra} bytes more than were sent, after all of them: a segment delivered "
                "twice? Look at the duplicated and retransmitted segments in the run's ladder.")
    number = at // PAYLOAD
    what = _fate_of_data(run, number)
    if at >= len(got):
        return (f"the receiver returned {len(got)} of {len(data)} bytes: data segment {number} (bytes from {at}) is "
                f"missing{what}. Look at it in the run's ladder.")
    if got[at:at + PAYLOAD] == data[at + PAYLOAD:at + 2 * PAYLOAD] or got[at - PAYLOAD:at] == got[at:at + PAYLOAD]:
        kind = "out of order or twice"
    else:
        kind = "with wrong bytes"
    return (f"the bytes from offset {at} (data segment {number}) were delivered {kind}{what}. Look at that segment "
            "in the run's ladder.")


def _fate_of_data(run: TransportRun, number: int) -> str:
    """', where the line corrupted one copy of it' and the like: what the delay line did to segments of that data."""
    fates, done, forward = run.fates(), [], 0
    for _, way, _seg in run.segments():
        if way != "→":
            continue
        forward += 1
        fate = fates.get(forward)
        if fate and _carries(_seg, number):
            done.extend(f for f in fate.split(", ") if f not in done)
    return f" (the line {' and '.join(done)} a copy of it)" if done else ""


def _carries(seg: Any, number: int) -> bool:
    """Whether a segment may carry data segment `number`: its seq says so in the usual numberings (segments or bytes)."""
    return "DATA" in seg.flags and seg.seq in (number, number * PAYLOAD)
