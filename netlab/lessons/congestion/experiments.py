"""Notebook 09: congestion control, read from the sender's kernel while it sends through a bottleneck.

Every experiment opens a lab, builds a `Bottleneck` (netlab.core.bottleneck: a tbf queue, a
delay line, a real Linux receiver), sends for a second or two from one socket with the
congestion control it names, and samples that socket's TCP_INFO every 2 ms. What comes back is a
`CongestionExperiment`: the capture at the sender's side of the link, the samples, and what
the queue did. `rounds()` and `reductions()` read the samples the way a textbook draws them:
cwnd at the end of each round trip, and each cut with its cause.

A run is mostly waiting (round trips, a queue draining), so `at_once` runs several at the same
time, each in its own lab, and a notebook cell takes about as long as its longest run. The long
runs of congestion avoidance (`growth`, 15 s) keep the samples only, no capture, and ship as
recordings made from one live run.
"""

from __future__ import annotations

import contextlib
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from netlab.core.arguments import check_int, check_seconds
from netlab.core.bottleneck import (
    MSS,
    SINK_PORT,
    Bottleneck,
    available_algorithms,
    default_algorithm,
    send_sampled,
)
from netlab.core.conversation import CLIENT_TO_SERVER, Conversation
from netlab.core.experiment import Experiment, at_once, live_or_recorded, load_recorded
from netlab.core.lab import Lab
from netlab.core.sockets import TcpInfo

__all__ = [
    "CongestionExperiment", "Round", "Reduction", "run", "slow_start", "after_loss", "timeout", "window_limits",
    "bufferbloat", "rounds", "reductions", "capture_check", "kernel_facts", "available_algorithms",
    "default_algorithm", "window_estimate", "WindowEstimate", "RECORDINGS", "MSS", "at_once",
    "growth", "growth_recorded", "increments", "Stretch", "slow_start_end", "SlowStartEnd",
]

# The lesson's drawings (draw.py), offered here as `netlab.congestion.NAME` and loaded on first use:
# matplotlib takes 0.5 s to import, which an experiment run without a figure (`python -m netlab cwnd`)
# should not pay.
_DRAWINGS = ("cwnd_plot", "figure", "growth_figure", "rtt_plot")


def __getattr__(name: str) -> Any:
    if name in _DRAWINGS:
        from netlab.lessons.congestion import draw

        return getattr(draw, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_DRAWINGS})

WHY = ("live: sent just now through a bottleneck in a private network namespace that netlab created "
       "(tbf queue, a delay line for the round trip, a Linux receiver)")


@dataclass(frozen=True)
class Round:
    """One round trip: cwnd (segments) when the last byte sent before the round began was acknowledged."""

    number: int  # 1 = the first round trip after the handshake
    cwnd: int  # segments, at the end of the round
    time: float  # seconds after the first data left
    ratio: float | None  # cwnd / the previous round's cwnd

    def to_json(self) -> dict[str, int]:
        return {"round": self.number, "cwnd": self.cwnd}


@dataclass(frozen=True)
class Reduction:
    """One cut of the congestion window: from `before` to `after` segments, and why."""

    before: int
    after: int
    cause: str  # fast-retransmit, timeout or other
    time: float  # seconds after the first data left
    ssthresh: int | None

    @property
    def factor(self) -> float:
        return self.after / self.before if self.before else 0.0

    def to_json(self) -> dict[str, Any]:
        return {"before": self.before, "after": self.after, "cause": self.cause}

    def __str__(self) -> str:
        return f"{self.cause}: cwnd {self.before} → {self.after} segments (× {self.factor:.2f})"


@dataclass
class CongestionExperiment(Experiment):
    """An Experiment through a bottleneck: also the sender's TCP_INFO samples and what the path did."""

    algorithm: str = ""
    path: str = ""  # the bottleneck, in one line
    rtt: float = 0.0  # seconds: the path's round trip without a queue
    rate: float = 0.0  # bits/s: the bottleneck's rate
    sent: int = 0  # bytes the program handed to the socket
    samples: list[TcpInfo] = field(default_factory=list)
    probes: list[tuple[float, float]] = field(default_factory=list)  # (seconds, round trip s) of the small connection
    capture_drops: int = 0  # frames the capturing socket missed
    queue_drops: int = 0  # packets the bottleneck's queue dropped
    log: list[tuple[float, str]] = field(default_factory=list)
    kernel: str = ""  # the sender's kernel: "Linux 6.1.0-…" (uname)

    @cached_property
    def conversation(self) -> Conversation:
        """The bulk transfer's conversation (to the sink, port 9), not the small connection beside it."""
        found = [c for c in self.conversations if c.server[1] == SINK_PORT]
        return found[0] if found else super().conversation

    @property
    def start(self) -> float:
        """When the first data left (Unix seconds): time 0 of rounds, reductions and plots."""
        for s in self.samples:
            if s.bytes_sent:
                return s.time
        return self.samples[0].time if self.samples else 0.0

    @property
    def rounds(self) -> list[Round]:
        return rounds(self.samples)

    @property
    def reductions(self) -> list[Reduction]:
        return reductions(self.samples)

    @property
    def throughput(self) -> float:
        """Bytes/s delivered from the first data to the last ACK (the kernel's bytes_acked over that time)."""
        last = self.samples[-1] if self.samples else None
        if last is None or last.time <= self.start:
            return 0.0
        done = next((s for s in self.samples if s.bytes_acked >= last.bytes_acked), last)
        return (done.bytes_acked - 1) / max(1e-9, done.time - self.start)

    def recording_fields(self) -> dict[str, Any]:
        return {"algorithm": self.algorithm, "path": self.path, "rtt": self.rtt, "rate": self.rate, "sent": self.sent,
                "recorded_at": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(self.start)) if self.samples else "",
                "samples": _table(self.samples), "probes": self.probes,
                "capture_drops": self.capture_drops, "queue_drops": self.queue_drops, "log": self.log}

    @classmethod
    def from_recording(cls, meta: dict[str, Any]) -> dict[str, Any]:
        return {"algorithm": meta.get("algorithm", ""), "path": meta.get("path", ""), "rtt": meta.get("rtt", 0.0),
                "rate": meta.get("rate", 0.0), "sent": meta.get("sent", 0),
                "samples": _untable(meta.get("samples", {})),
                "probes": [tuple(p) for p in meta.get("probes", [])], "capture_drops": meta.get("capture_drops", 0),
                "queue_drops": meta.get("queue_drops", 0), "log": [tuple(e) for e in meta.get("log", [])],
                "kernel": meta.get("kernel", "")}


def _table(samples: list[TcpInfo]) -> dict[str, list]:
    """Samples as a table for a recording's .json: the field names once, then one row per sample."""
    names = list(TcpInfo.__dataclass_fields__)
    return {"fields": names, "rows": [[getattr(s, n) for n in names] for s in samples]}


def _untable(table: dict[str, list]) -> list[TcpInfo]:
    names = table.get("fields", [])
    return [TcpInfo(**dict(zip(names, row, strict=True))) for row in table.get("rows", [])]


# ---------------------------------------------------------------------------
# Reading the samples.


def rounds(samples: list[TcpInfo]) -> list[Round]:
    """cwnd at the end of each round trip: a round ends when every byte sent before it began is acknowledged.

    The end falls between two samples. In slow start (no ssthresh yet, state Open) cwnd grows by
    one segment per segment acknowledged, so its value at the end (and the bytes sent by then,
    where the next round begins) is read off the line between the two samples at the round's
    last byte: a sample that a busy machine delayed by tens of ms would otherwise give cwnd well
    into the next round (128 for 80). Elsewhere cwnd grows about one segment per round, and the
    first sample after the end is kept.
    """
    first = next((i for i, s in enumerate(samples) if s.bytes_sent), None)
    if first is None:
        return []
    start = samples[first].time
    mark = samples[first].bytes_sent - samples[first].bytes_retrans  # new bytes out when round 1 began
    found: list[Round] = []
    prev = samples[first]
    for s in samples[first + 1:]:
        acked = s.bytes_acked - 1  # bytes_acked counts the SYN's sequence number too
        if acked >= mark:
            cwnd, sent = s.cwnd, s.bytes_sent - s.bytes_retrans
            before = prev.bytes_acked - 1
            if prev.ssthresh is None and s.ssthresh is None and prev.ca_state == s.ca_state == "Open" and acked > before:
                share = (mark - before) / (acked - before)  # how far between the two samples the round ended
                cwnd = round(prev.cwnd + (s.cwnd - prev.cwnd) * share)
                sent_before = prev.bytes_sent - prev.bytes_retrans
                sent = round(sent_before + (sent - sent_before) * share)
            previous = found[-1].cwnd if found else None
            found.append(Round(len(found) + 1, cwnd, s.time - start, cwnd / previous if previous else None))
            mark = sent
            if mark <= acked:  # nothing new in flight: the transfer is over
                break
        prev = s
    return found


def reductions(samples: list[TcpInfo]) -> list[Reduction]:
    """Each cut of cwnd: entering Recovery (fast retransmit), Loss (a timeout), or a cut while Open (other).

    `before` is cwnd just before the cut; `after` is cwnd when the state ends (Linux's PRR brings
    it down step by step during recovery, to ssthresh), or its lowest in the Loss state (1).

    A new ssthresh inside one state is a new cut: the kernel entered the state again between
    two samples. It can end a recovery and begin the next on the same ACK, and a busy machine
    can delay a sample by tens of ms, so that the Open state between them is never seen.
    Ending a recovery sets cwnd to ssthresh (Linux's tcp_end_cwnd_reduction): the first cut's
    `after` is its ssthresh, and the next cut's `before` is at least that.
    """
    found: list[Reduction] = []
    start = next((s.time for s in samples if s.bytes_sent), samples[0].time if samples else 0.0)
    i = 1
    while i < len(samples):
        prev, s = samples[i - 1], samples[i]
        again = _new_cut(prev, s)
        if s.ca_state in ("Recovery", "Loss") and (prev.ca_state not in ("Recovery", "Loss") or again):
            state = s.ca_state
            if state == "Loss":
                before = prev.cwnd
            else:
                before = max(prev.ssthresh if again else prev.cwnd, s.cwnd)
            j = i + 1
            lowest = s.cwnd
            while j < len(samples) and samples[j].ca_state == state and not _new_cut(samples[j - 1], samples[j]):
                lowest = min(lowest, samples[j].cwnd)
                j += 1
            if j < len(samples) and samples[j].ca_state == state:  # cut again: this cut ended between j - 1 and j
                end = samples[j - 1]
                after = lowest if state == "Loss" else end.ssthresh
                i = j
            else:
                end = samples[min(j, len(samples) - 1)]
                after = lowest if state == "Loss" else end.cwnd
                i = j + 1
            found.append(Reduction(before, after, "timeout" if state == "Loss" else "fast-retransmit",
                                   s.time - start, end.ssthresh))
            continue
        if s.ca_state in ("Open", "CWR") and prev.ca_state in ("Open", "CWR") and s.cwnd < 0.7 * prev.cwnd and prev.cwnd > 4:
            found.append(Reduction(prev.cwnd, s.cwnd, "other", s.time - start, s.ssthresh))
        i += 1
    return found


def _new_cut(prev: TcpInfo, s: TcpInfo) -> bool:
    """Whether the kernel set a new ssthresh between two samples in the same state."""
    return s.ca_state == prev.ca_state and None not in (prev.ssthresh, s.ssthresh) and s.ssthresh != prev.ssthresh


def capture_check(exp: CongestionExperiment) -> str:
    """One line: data segments the capture holds against the sender's own count (TCP_INFO data_segs_out)."""
    if not exp.samples:
        return "no samples from the kernel to compare the capture with"
    conv = exp.conversation
    seen = sum(1 for s in conv.segments if s.direction == CLIENT_TO_SERVER and s.length)
    kernel = exp.samples[-1].data_segs_out
    if seen == kernel and not exp.capture_drops:
        return f"the capture holds all {kernel} data segments the kernel says it sent: complete"
    return (f"the capture holds {seen} data segments, the kernel says it sent {kernel}; the capturing socket "
            f"reports {exp.capture_drops} frames missed: the capture is {'incomplete' if seen < kernel else 'larger'}, "
            "trust the kernel's counters")


def kernel_facts() -> dict[str, Any]:
    """What this kernel offers, read now: algorithms available and the default (sysctl net.ipv4.*)."""
    return {"available": available_algorithms(), "default": default_algorithm()}


# ---------------------------------------------------------------------------
# The experiments.


def run(algorithm: str | None = None, *, rate: float = 10e6, queue: int = 50, rtt: float = 0.04,
        seconds: float = 1.5, size: int | None = None, drops: tuple[int, ...] = (),
        outage: tuple[int, float] | None = None, rcvbuf: int | None = None, initial_window: int | None = None,
        probe: float | None = None, every: float = 0.002, capture: bool = True,
        recorded: str | None = None) -> CongestionExperiment:
    """Send for `seconds` (or `size` bytes) with congestion control `algorithm` through a bottleneck.

    The path: `rate` bits/s, a queue of `queue` packets, `rtt` seconds round trip; `drops` are
    data segments the path loses (1 = the first), `outage` = (N, s) loses everything from
    segment N for s seconds, `rcvbuf` is the receiver's buffer in bytes, `initial_window` the
    sender's initial cwnd in segments (its route's initcwnd; Linux's own is 10). With `probe` (seconds),
    a second, small connection sends one byte that often and times its echo. TCP_INFO is read
    every `every` seconds; `capture=False` keeps the samples only, no packets (for long runs).
    `recorded` names the recording shown where this machine refuses the lab.
    """
    if algorithm is not None:
        if not isinstance(algorithm, str):
            raise TypeError(f"algorithm is a name such as 'cubic', not {algorithm!r}")
        offered = available_algorithms()
        if offered and algorithm not in offered:
            raise ValueError(f"this kernel has no congestion control {algorithm!r}; it offers {', '.join(offered)}")
    check_seconds("seconds", seconds, 20.0)
    check_int("queue", queue, 2, 2000)  # here as well as in Bottleneck: before a lab is made for nothing
    if size is not None:
        check_int("size", size, 1, 50_000_000)
    if probe is not None:
        check_seconds("probe", probe, 1.0)

    def live(lab: Lab) -> CongestionExperiment:
        with Bottleneck(lab, rate=rate, queue=queue, rtt=rtt, drops=drops, outage=outage, rcvbuf=rcvbuf,
                        initial_window=initial_window, duration=seconds + 10, capture=capture) as path:
            # The small connection whose round trip shows the queue (bufferbloat), when asked for.
            probing = path.probe(every=probe, bound=seconds + 5) if probe is not None else contextlib.nullcontext()
            with path.connect(algorithm) as sock, probing as prober:
                sent, samples = send_sampled(sock, seconds=seconds, size=size, every=every)
            pings = prober.samples if prober is not None else []
        first = next((s.time for s in samples if s.bytes_sent), samples[0].time)
        return CongestionExperiment(
            path.report.packets, "live", WHY, result=sent, algorithm=samples[0].algorithm, path=path.describe(),
            rtt=rtt, rate=rate, sent=sent, samples=samples, probes=[(t - first, r) for t, r in pings],
            capture_drops=path.report.capture_drops, queue_drops=path.report.queue_drops, log=path.report.log,
            kernel=f"{platform.system()} {platform.release()}")

    return live_or_recorded(live, recorded, kind=CongestionExperiment)


def slow_start(algorithm: str = "reno", *, initial_window: int | None = None, capture: bool = True,
               recorded: str | None = "congestion-slow-start") -> CongestionExperiment:
    """Slow start alone: a pipe wide enough (20 Mbit/s, 50 ms, a 200-packet queue) that 400 kB cross without a loss.

    400 kB is 277 segments: rounds 1 to 4 send 10 + 20 + 40 + 80 = 150 of them, and the fifth
    still has data to send, so cwnd is the limit (Linux grows cwnd only then) through round 4.
    `initial_window` (segments) starts from another window than Linux's 10, set on the sender's
    route; the recording was made with 10, so it cannot stand in for such a run: where the lab
    is refused, that raises LabUnavailable. `capture=False` keeps the kernel's samples only
    (enough for `rounds`).
    """
    if initial_window is not None:
        check_int("initial_window", initial_window, 1, 100)
        recorded = None
    return run(algorithm, rate=20e6, queue=200, rtt=0.05, seconds=2.0, size=400_000, initial_window=initial_window,
               capture=capture, recorded=recorded)


def after_loss(algorithm: str, loss: int = 150, queue: int = 100, *, capture: bool = True,
               recorded: str | None = "") -> CongestionExperiment:
    """One loss (data segment `loss`, 0 for none) on a 10 Mbit/s, 40 ms path with a `queue`-packet queue.

    How far `algorithm` cuts cwnd. 0.8 s of sending: segment 150 leaves in the fourth round trip
    (at about 0.2 s), recovery is over by about 0.5 s, and congestion avoidance follows; the
    samples go on until the last byte is acknowledged. With
    `capture=False` only the kernel's samples are kept (reading a capture costs about a second
    of CPU). Where the lab is refused, the recording `congestion-ALGORITHM` is shown (`recorded=""`).
    """
    check_int("loss", loss, 0, 100_000)
    if recorded == "":
        recorded = f"congestion-{algorithm}"
    return run(algorithm, rate=10e6, queue=queue, rtt=0.04, seconds=0.8, drops=(loss,) if loss else (),
               capture=capture, recorded=recorded)


def timeout(algorithm: str = "cubic", *, recorded: str | None = "congestion-timeout") -> CongestionExperiment:
    """An outage of 0.8 s from data segment 100: no duplicate ACKs come back, so the kernel's timer fires.

    The outage outlasts the first timeout, so its retransmission is lost too and the timer
    doubles (backoff): cwnd stays at 1 segment for about half a second, long enough for the
    samples to see it even on a loaded machine (a shorter outage let cwnd grow past 1 in
    a few ms, which a starved sampler could miss).
    """
    return run(algorithm, rate=10e6, queue=100, rtt=0.04, seconds=1.2, outage=(100, 0.8), recorded=recorded)


# The small receive buffer of window_limits("rwnd"), bytes. Linux doubles it and advertises about
# half of that as its window: about 4 kB, three segments. The initial cwnd is 10 segments
# (14.5 kB) and cwnd never falls below it without a loss, so the receiver's window is the
# smaller one however the CPU load delays the first round trips. (A 16 kB buffer advertised
# 18.8 kB, close enough to the initial window that a loaded machine made the run cwnd-limited.)
SMALL_RCVBUF = 4096


def window_limits(limit: str, *, recorded: str | None = "") -> CongestionExperiment:
    """The same 1 s transfer limited by the receiver's window (`limit="rwnd"`: a 4 kB buffer) or by the path ("cwnd")."""
    if limit not in ("rwnd", "cwnd"):
        raise ValueError(f"limit is 'rwnd' or 'cwnd', not {limit!r}")
    if recorded == "":
        recorded = f"congestion-{limit}"
    return run("reno", rate=10e6, queue=30, rtt=0.04, seconds=1.0, rcvbuf=SMALL_RCVBUF if limit == "rwnd" else None,
               recorded=recorded)


def bufferbloat(queue: int, *, recorded: str | None = "") -> CongestionExperiment:
    """A bulk transfer (CUBIC) fills a `queue`-packet queue while a small connection times its round trip every 20 ms.

    Only the kernel's samples and the small connection's round trips are kept, no capture:
    the lesson is in the round trips, and reading a capture would hold the notebook's CPU while
    the small connection is being timed.
    """
    check_int("queue", queue, 2, 1000)
    if recorded == "":
        recorded = "congestion-bloat-long" if queue > 50 else "congestion-bloat-short"
    return run("cubic", rate=5e6, queue=queue, rtt=0.03, seconds=1.5, probe=0.02, capture=False, recorded=recorded)


# ---------------------------------------------------------------------------
# Congestion avoidance over many rounds: Reno's line against CUBIC's curve.

# The long runs' path: a pipe of 166 segments plus a 50-packet queue. CUBIC's cycle after a cut
# at W_max ≈ 216 lasts K = cbrt(W_max × 0.3 / 0.4) ≈ 5.5 s, and its curve stays above the
# Reno-friendly line of Linux's CUBIC, so the curve is CUBIC's own; Reno needs about 100 round
# trips to climb back from half of it.
GROWTH_PATH = {"rate": 20e6, "queue": 50, "rtt": 0.1}
GROWTH_SAMPLE = 0.02  # seconds between TCP_INFO samples: several per round trip of 100 ms or more


def _long_run(algorithm: str, seconds: float, *, recorded: str | None) -> CongestionExperiment:
    return run(algorithm, seconds=seconds, every=GROWTH_SAMPLE, capture=False, recorded=recorded, **GROWTH_PATH)


def growth(seconds: float = 15.0) -> tuple[CongestionExperiment, CongestionExperiment]:
    """Reno and CUBIC, each sending for `seconds` (at most 20) through 20 Mbit/s, 100 ms, a 50-packet queue.

    The two run at the same time, each in its own lab, so this takes about `seconds` + 3 s.
    Only the kernel's samples are kept (every 20 ms), no capture: 15 s at 20 Mbit/s would be a
    capture of 40 MB. Where the lab is refused, the recordings are shown (`growth_recorded`).
    """
    check_seconds("seconds", seconds, 20.0)
    reno, cubic = at_once(lambda: _long_run("reno", seconds, recorded="congestion-growth-reno"),
                          lambda: _long_run("cubic", seconds, recorded="congestion-growth-cubic"))
    return reno, cubic


def growth_recorded() -> tuple[CongestionExperiment, CongestionExperiment]:
    """The recordings of `growth(15)` shipped with netlab, each labelled with when and on which kernel it ran."""
    found = []
    for algorithm in ("reno", "cubic"):
        exp = load_recorded(f"congestion-growth-{algorithm}", kind=CongestionExperiment)
        when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(exp.start))
        seconds = exp.samples[-1].time - exp.start if exp.samples else 0.0
        exp.why = (f"recorded: a live run of {seconds:.0f} s on {when}, on {exp.kernel or 'a kernel it did not name'} "
                   f"(netlab/data/congestion-growth-{algorithm}.json); not run just now")
        found.append(exp)
    return found[0], found[1]


@dataclass(frozen=True)
class Stretch:
    """Congestion avoidance between two cuts: cwnd at the end of each round, from the end of one recovery."""

    w_max: int | None  # cwnd just before the cut that began this stretch (segments)
    cwnds: list[int]  # cwnd at the end of each round of the stretch

    @property
    def steps(self) -> list[int]:
        """cwnd's increment per round, in segments."""
        return [b - a for a, b in zip(self.cwnds, self.cwnds[1:])]


def increments(exp: CongestionExperiment) -> list[Stretch]:
    """The stretches of congestion avoidance between cuts: rounds after slow start ended, split where cwnd fell.

    `w_max` of a stretch is cwnd just before the cut that began it (the kernel's samples, see
    `reductions`). Stretches of fewer than 3 rounds are left out.
    """
    end = slow_start_end(exp)
    if end is None:
        return []
    cuts = exp.reductions
    stretches: list[Stretch] = []
    current: list[int] = []
    w_max: int | None = None
    for r in exp.rounds:
        if r.time < end.time:
            continue
        if current and r.cwnd < current[-1]:  # a cut: this round begins the next stretch
            stretches.append(Stretch(w_max, current))
            current = []
        if not current:
            done = [c for c in cuts if c.time <= r.time]
            w_max = done[-1].before if done else None
        current.append(r.cwnd)
    if current:
        stretches.append(Stretch(w_max, current))
    return [s for s in stretches if len(s.cwnds) >= 3]


@dataclass(frozen=True)
class SlowStartEnd:
    """Where slow start ended, from the kernel's samples: the first sample with a finite ssthresh."""

    time: float  # seconds after the first data left
    cwnd: int  # segments, at that sample
    ssthresh: int
    retransmitted: int  # segments retransmitted up to then (total_retrans)
    ca_state: str

    @property
    def without_loss(self) -> bool:
        """True when ssthresh became finite with nothing retransmitted: HyStart, not a loss, ended slow start."""
        return self.retransmitted == 0 and self.ca_state == "Open"


def slow_start_end(exp: CongestionExperiment) -> SlowStartEnd | None:
    """The first sample where ssthresh is finite (None if slow start never ended in this run)."""
    for s in exp.samples:
        if s.ssthresh is not None:
            return SlowStartEnd(s.time - exp.start, s.cwnd, s.ssthresh, s.total_retrans, s.ca_state)
    return None


# The recordings shipped in netlab/data, re-recorded by `python -m netlab record`.
RECORDINGS: dict[str, Callable[[], Experiment]] = {
    "congestion-slow-start": lambda: slow_start(recorded=None),
    "congestion-reno": lambda: after_loss("reno", recorded=None),
    "congestion-cubic": lambda: after_loss("cubic", recorded=None),
    "congestion-bbr": lambda: after_loss("bbr", recorded=None),
    "congestion-timeout": lambda: timeout(recorded=None),
    "congestion-rwnd": lambda: window_limits("rwnd", recorded=None),
    "congestion-cwnd": lambda: window_limits("cwnd", recorded=None),
    "congestion-bloat-long": lambda: bufferbloat(300, recorded=None),
    "congestion-bloat-short": lambda: bufferbloat(10, recorded=None),
    "congestion-growth-reno": lambda: _long_run("reno", 15.0, recorded=None),
    "congestion-growth-cubic": lambda: _long_run("cubic", 15.0, recorded=None),
}


@dataclass(frozen=True)
class WindowEstimate:
    """min(cwnd, rwnd) / RTT from the kernel's own samples, against the throughput measured."""

    cwnd_bytes: float  # cwnd × MSS, at the typical moment (see window_estimate)
    rwnd_bytes: float  # the receiver's advertised window (snd_wnd), at the same moment
    srtt: float  # seconds, at the same moment
    predicted: float  # bytes/s: min(cwnd, rwnd) / srtt, at the same moment
    measured: float  # bytes/s: acknowledged bytes over the transfer's time

    @property
    def limit(self) -> str:
        return "rwnd" if self.rwnd_bytes < self.cwnd_bytes else "cwnd"

    def __str__(self) -> str:
        return (f"cwnd {self.cwnd_bytes / 1000:.1f} kB, rwnd {self.rwnd_bytes / 1000:.1f} kB, srtt {self.srtt * 1000:.1f} ms: "
                f"min(cwnd, rwnd)/srtt = {self.predicted / 1000:.1f} kB/s, measured {self.measured / 1000:.1f} kB/s")


def window_estimate(exp: CongestionExperiment) -> WindowEstimate:
    """Throughput as min(cwnd, rwnd)/RTT predicts it, at a typical moment of the middle half of the sending.

    Each sample gives its own min(cwnd, rwnd)/srtt; the typical moment is the sample with the
    median of these. Its cwnd, rwnd and srtt belong together: while a queue fills, cwnd and the
    round trip grow at once, so medians taken of each apart (a large cwnd's time with a small
    cwnd's RTT) under-predicted by 20 % and more.
    """
    busy = [s for s in exp.samples if s.bytes_sent and s.in_flight]
    middle = busy[len(busy) // 4: 3 * len(busy) // 4] or busy
    if not middle:
        raise ValueError("this run has no samples with data in flight")

    def predicted(s: TcpInfo) -> float:
        return min(s.cwnd * s.mss, s.snd_wnd) / s.srtt

    typical = sorted(middle, key=predicted)[len(middle) // 2]
    return WindowEstimate(typical.cwnd * typical.mss, typical.snd_wnd, typical.srtt, predicted(typical), exp.throughput)
