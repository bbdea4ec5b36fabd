"""Notebook 13's experiments: the student's own reliable transport on the lab's lossy path, and TCP beside it.

    run = netlab.transport.run(sender, receiver, case="20% of segments lost each way")
    run.lines(); run.ladder()                   # every segment, what the line did to it
    u = netlab.transport.utilisation(sender, receiver, windows=(1, 2, 4, 8))
    tcp = netlab.transport.tcp_beside(case="20% of segments lost each way")

Everything here runs the student's code through the harness (`harness.run_cases`), live: the
lesson is the student's protocol on a real lossy path, so there are no recordings to fall back
on (RECORDINGS is empty). Where the lab is refused, each function says so in one sentence.
"""

from __future__ import annotations

import atexit
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from netlab.core.delayline import Direction
from netlab.core.errors import NetlabError
from netlab.core.experiment import Experiment
from netlab.core.lab import Lab
from netlab.lessons.transport.harness import Case, TransportRun, run_cases
from netlab.lessons.transport.path import RECEIVER, LossyPath
from netlab.lessons.transport.protocol import HEADER, PAYLOAD, PORT, Segment

__all__ = ["run", "utilisation", "tcp_beside", "retransmissions", "case", "Utilisation", "TcpRun", "Segment",
           "Direction", "Case", "kept_path", "CASES", "PIPELINE_CASES", "SINGLE_LOSS", "WINDOW", "PORT", "PAYLOAD", "RECORDINGS"]

RECORDINGS: dict[str, Any] = {}  # the student's protocol is run live, never recorded
WINDOW = 4  # segments: the window the pipelined exercises run with
DELAY = 0.01  # seconds each way: a path of 20 ms round trip
_FRAME = 14 + 20 + 8 + HEADER + PAYLOAD  # bytes on the wire of a full data segment


def _both(**impair: Any) -> tuple[Direction, Direction]:
    seeds = impair.pop("seeds", (1, 2))
    return (Direction(delay=DELAY, seed=seeds[0], **impair), Direction(delay=DELAY, seed=seeds[1], **impair))


def _case(name: str, size: int, seconds: float, *, forward: Direction | None = None,
          backward: Direction | None = None) -> Case:
    return Case(name, forward or Direction(delay=DELAY), backward or Direction(delay=DELAY), size, seconds)


def _named(size: int, seconds: float) -> list[Case]:
    """The impairments every protocol is run under; the first, all of them at once, is the one a student's run tries."""
    return [
        _case("everything at once: 10% lost, flipped, duplicated, reordered each way", size, seconds,
              **dict(zip(("forward", "backward"), _both(loss=0.1, corrupt=0.1, duplicate=0.1, reorder=0.1,
                                                        reorder_gap=0.03, seeds=(8, 9)), strict=True))),
        _case("20% of segments lost each way", size, seconds,
              **dict(zip(("forward", "backward"), _both(loss=0.2, seeds=(1, 2)), strict=True))),
        _case("a flipped bit in 20% of segments each way", size, seconds,
              **dict(zip(("forward", "backward"), _both(corrupt=0.2, seeds=(3, 4)), strict=True))),
        _case("30% duplicated and 30% reordered each way", size, seconds,
              **dict(zip(("forward", "backward"), _both(duplicate=0.3, reorder=0.3, reorder_gap=0.03, seeds=(5, 6)),
                         strict=True))),
        _case("40% of ACKs lost", size, seconds, backward=Direction(delay=DELAY, loss=0.4, seed=7)),
        _case("a long path: 100 ms each way", 3 * PAYLOAD, seconds + 1, forward=Direction(delay=0.1),
              backward=Direction(delay=0.1)),
    ]


# One data segment lost, the third frame the sender sends, and nothing else (seed 197 draws below 0.1
# only at its third draw of the first forty): how many segments go again tells the protocols apart.
SINGLE_LOSS = _case("one data segment lost (the third)", 16 * PAYLOAD, 2.0,
                    forward=Direction(delay=DELAY, loss=0.1, seed=197))
CASES = _named(8 * PAYLOAD, 3.0)  # stop-and-wait's
# Go-Back-N's and Selective Repeat's: the single loss first (it shows the window in flight too).
PIPELINE_CASES = [SINGLE_LOSS, *_named(16 * PAYLOAD, 3.0), _case("a clean path", 16 * PAYLOAD, 2.0)]


def case(name: str) -> Case:
    """The named case (any of CASES, PIPELINE_CASES, SINGLE_LOSS), for running it again with `run`."""
    for known in (*CASES, *PIPELINE_CASES):
        if known.name == name:
            return known
    names = sorted({c.name for c in (*CASES, *PIPELINE_CASES)})
    raise ValueError(f"no case named {name!r}; the cases are: {'; '.join(names)}")


def _check_window(window: Any) -> None:
    if window is not None and (not isinstance(window, int) or isinstance(window, bool) or not 1 <= window <= 64):
        raise ValueError(f"window must be a whole number of segments from 1 to 64, not {window!r}")


def _check_functions(sender: Any, receiver: Any) -> None:
    for role, func in (("sender", sender), ("receiver", receiver)):
        if not callable(func):
            raise TypeError(f"{role} must be a function you wrote, not {type(func).__name__}")


def run(sender: Callable[..., Any], receiver: Callable[..., Any], *, case: str | Case = CASES[0].name,
        window: int | None = None) -> TransportRun:
    """Run your `sender` and `receiver` once on the lossy path under `case` (a name or a Case); `window` for pipelining.

    Without `window` they are called as sender(sock, data, peer) and receiver(sock); with it, as
    sender(sock, data, peer, window) and receiver(sock, window).
    """
    _check_functions(sender, receiver)
    _check_window(window)
    chosen = globals()["case"](case) if isinstance(case, str) else case
    if not isinstance(chosen, Case):
        raise TypeError(f"case must be a case's name or a Case, not {type(case).__name__}")
    (result,) = run_cases(kept_path(), [chosen], sender, receiver, window=window)
    return result


# One lab and one path kept for a notebook's cells and checks (opening them costs about a second
# each time; each run still has a delay line and sockets of its own). Closed when the process
# ends. Under a grader the checks run in the verifier's process, which opens its own.
_kept: list[tuple[Lab, LossyPath]] = []


def kept_path() -> LossyPath:
    """The notebook's kept path, opened on first use and again if its lab has ended."""
    if _kept:
        lab, path = _kept[0]
        try:
            lab.run("ip", "-o", "link", "show", "tx0", timeout=5.0)
            return path
        except NetlabError:  # the lab ended (or its path went): open new ones
            _close_kept()
    lab = Lab()
    try:
        path = LossyPath(lab).__enter__()
    except BaseException:
        lab.close()
        raise
    if not _kept_closer:
        atexit.register(_close_kept)
        _kept_closer.append(True)
    _kept.append((lab, path))
    return path


_kept_closer: list[bool] = []


def _close_kept() -> None:
    while _kept:
        lab, path = _kept.pop()
        try:
            path.close()
        finally:
            lab.close()


def retransmissions(run: TransportRun) -> int:
    """Data segments the sender sent again (a sequence number it had sent before), in the run's capture."""
    seen: set[int] = set()
    again = 0
    for _, way, seg in run.segments():
        if way == "→" and "DATA" in seg.flags:
            again += seg.seq in seen
            seen.add(seg.seq)
    return again


# --- utilisation against the window ---


@dataclass
class Utilisation:
    """The sender's utilisation of a link of `rate` bits/s and round trip `rtt` s, for each window (segments)."""

    windows: list[int]
    measured: list[float]  # the fraction of the time the link was sending the sender's data
    rate: float  # bits/s of the link towards the receiver
    rtt: float  # seconds: the path's round-trip time, without the time to send a segment
    transmit: float  # seconds to send one full data segment at `rate`: L/R
    runs: list[TransportRun] = field(default_factory=list)

    def formula(self, window: float) -> float:
        """U = N·(L/R) / (RTT + L/R), at most 1: the link is busy N segments' time in each round trip."""
        return min(1.0, window * self.transmit / (self.rtt + self.transmit))

    def plot(self, ax: Any = None) -> Any:
        """The measured utilisation (points) and the formula (line) on the same axes; returns the figure."""
        from netlab.core.draw import NotebookFigure

        if ax is None:
            ax = NotebookFigure(figsize=(6, 3.5)).add_subplot()
        top = max(self.windows)
        xs = [1 + i * (top - 1) / 200 for i in range(201)]
        ax.plot(xs, [self.formula(x) for x in xs], color="tab:gray", label="U = N·(L/R) / (RTT + L/R)")
        ax.plot(self.windows, self.measured, "o", color="tab:blue", label="your sender, measured")
        ax.set_xlabel("window N (segments)")
        ax.set_ylabel("utilisation U")
        ax.set_ylim(0, 1.1)
        ax.legend(loc="lower right", fontsize=8)
        return ax.figure


def _busy_fraction(run: TransportRun, transmit: float) -> float:
    """Data segments × L/R over the time from the first data segment to the last ACK before the FIN."""
    rows = run.segments()
    data = [(t, seg) for t, way, seg in rows if way == "→" and "DATA" in seg.flags]
    fin = next((t for t, way, seg in rows if way == "→" and "FIN" in seg.flags), rows[-1][0] if rows else 0.0)
    acks = [t for t, way, _ in rows if way == "←" and t <= fin]
    if not data or not acks:
        return 0.0
    elapsed = max(acks) - data[0][0]
    distinct = len({seg.seq for _, seg in data})
    return min(1.0, distinct * transmit / elapsed) if elapsed > 0 else 0.0


def utilisation(sender: Callable[..., Any], receiver: Callable[..., Any], *, windows: Sequence[int] = (1, 2, 4, 8),
                rate: float = 2e6, segments: int = 16) -> Utilisation:
    """Run your pipelined sender and receiver on a clean link of `rate` bits/s (20 ms round trip) for each window.

    Each run sends `segments` full segments; the utilisation is how busy the link was sending them.
    """
    _check_functions(sender, receiver)
    if not isinstance(windows, (list, tuple)) or not windows:
        raise ValueError(f"windows must be a list of windows (segments), not {windows!r}")
    for window in windows:
        _check_window(window)
    if not isinstance(rate, (int, float)) or isinstance(rate, bool) or not 100e3 <= rate <= 100e6:
        raise ValueError(f"rate must be in bits/s, from 100e3 to 100e6, not {rate!r}")
    transmit = _FRAME * 8 / rate
    cases = [Case(f"a clean {rate / 1e6:g} Mbit/s link, window {w}", Direction(delay=DELAY, rate=rate, queue=200),
                  Direction(delay=DELAY), segments * PAYLOAD, 2.0 + segments * (2 * DELAY + transmit)) for w in windows]
    runs = run_cases(kept_path(), cases, sender, receiver, window=list(windows), stop_at_first=False)
    measured = [round(_busy_fraction(r, transmit), 3) for r in runs]
    return Utilisation(list(windows), measured, float(rate), 2 * DELAY, transmit, runs)


# --- the kernel's TCP on the same path ---


@dataclass
class TcpRun(Experiment):
    """The kernel's TCP sending the same data through the same delay line: the capture, time, retransmissions."""

    case: str = ""
    size: int = 0
    delivered: int = 0  # bytes the receiving socket read
    seconds: float = 0.0  # from connect() to the receiver reading the last byte
    retransmitted: int = 0  # data segments sent again (a sequence number seen before)
    segments: int = 0  # data segments sent in all


def tcp_beside(*, case: str | Case = CASES[0].name, timeout: float = 10.0) -> TcpRun:
    """Send the case's data over TCP through the same impaired path: the kernel's reliable transport, to compare."""
    chosen = globals()["case"](case) if isinstance(case, str) else case
    data = chosen.data()
    got = bytearray()
    path = kept_path()
    lab = path.lab
    line = path.line(chosen.forward, chosen.backward, duration=timeout + 3)
    with line:
        with path.receiver_socket(socket.SOCK_STREAM) as server:
            server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # the last run's may be in TIME-WAIT
            server.bind(RECEIVER)
            server.listen(1)
            server.settimeout(timeout)

            def read() -> None:
                try:
                    conn, _ = server.accept()
                    with conn:
                        conn.settimeout(timeout)
                        while chunk := conn.recv(65536):
                            got.extend(chunk)
                except OSError:
                    pass

            reader = threading.Thread(target=read, daemon=True)
            reader.start()
            start = time.monotonic()
            with lab.socket() as sock:
                sock.settimeout(timeout)
                sock.connect(RECEIVER)
                sock.sendall(data)
                sock.shutdown(socket.SHUT_WR)
                reader.join(timeout)
            seconds = time.monotonic() - start
    seen, again, sent = set(), 0, 0
    for pkt in line.report.packets:
        if "TCP" in pkt and pkt["IP"].dst == RECEIVER[0] and len(pkt["TCP"].payload):
            sent += 1
            again += pkt["TCP"].seq in seen
            seen.add(pkt["TCP"].seq)
    return TcpRun(packets=line.report.packets, source="live", why="live: the kernel's TCP just now on the lab's lossy path",
                  case=chosen.name, size=len(data), delivered=len(got) if bytes(got) == data else -1,
                  seconds=round(seconds, 3), retransmitted=again, segments=sent)
