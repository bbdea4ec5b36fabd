"""The exercise checks of notebook 09: each says what is right or what to look at again.

Every public function marked `@exercise_check` is a check a notebook calls as `netlab.checks.NAME`
(`netlab.checks` finds it here); what a check shares with the others (`Feedback`, "not answered
yet", grading) is in `netlab.core.checking`. A check never reveals the answer.
"""

from __future__ import annotations

import types
from typing import Any

from netlab.core.checking import Feedback, exercise_check, number, unanswered

# Exercise 1's initial window (segments): RFC 3390's 4380 bytes, 3 segments of this link's MSS of
# 1448 bytes, which Linux used before 2.6.39 (2011). Section 2 measured slow start from 10, never from 3.
_OLD_INITIAL_WINDOW = 3


def _doubling(first: float) -> list[float]:
    return [first * 2**k for k in range(4)]


def _near(answer: Any, expected: list[float], share: float) -> bool:
    return all(abs(a - e) <= max(1.0, share * e) for a, e in zip(answer, expected, strict=True))


@exercise_check
def slow_start_prediction(answer: Any) -> Feedback:
    """Exercise: cwnd (segments) at the end of rounds 1 to 4 of slow start from an initial window of
    _OLD_INITIAL_WINDOW segments, checked against a fresh live run with that window on the sender's route.

    The notebook measured slow start from 10 segments only. Without the lab no run can have
    another initial window (the recording starts from 10), so there only the rule is graded.
    """
    if (fb := unanswered(answer)) is not None:
        return fb
    if not isinstance(answer, (list, tuple)) or len(answer) != 4 or not all(number(a) for a in answer):
        return Feedback(False, "Give four numbers, a list: cwnd in segments at the end of rounds 1, 2, 3 and 4.")
    from netlab.core.errors import LabUnavailable
    from netlab.lessons.congestion.experiments import slow_start

    iw = _OLD_INITIAL_WINDOW
    model = _doubling(2 * iw)  # Linux adds one segment per segment acknowledged, however many an ACK covers
    try:
        exp = slow_start(initial_window=iw, capture=False)  # the rounds come from the kernel's samples
        measured = [r.cwnd for r in exp.rounds[:4]]
    except LabUnavailable:
        measured = None
    if measured is not None and len(measured) < 4:
        return Feedback(False, f"The live run had only {len(measured)} rounds; run the check again.")
    why = (f"Linux adds one segment to cwnd for every segment acknowledged (however many one ACK covers), so "
           f"every round trip doubles cwnd, and round 1 already ends with twice the initial {iw}.")
    if measured is not None and _near(answer, measured, 0.2):
        return Feedback(True, f"Within 20 % of every round of a run just now with an initial window of {iw} "
                              f"(measured {', '.join(map(str, measured))}): {why}")
    if all(abs(a - m) <= 0.5 for a, m in zip(answer, model, strict=True)):
        if measured is None:
            return Feedback(True, f"That is slow start from {iw} segments: {why} Running it with this initial window "
                                  "needs the live lab (the recording starts from 10); here only your reasoning is graded.")
        return Feedback(True, f"That is slow start from {iw} segments: {why} The run just now, on a busy machine, "
                              f"measured otherwise (measured {', '.join(map(str, measured))}).")
    if any(a >= 1000 for a in answer):
        return Feedback(False, "cwnd counts segments, not bytes (TCP_INFO's snd_cwnd): give segments.")
    if _near(answer, _doubling(20), 0.1):
        return Feedback(False, f"Those are section 2's rounds, which started from 10 segments; this run starts from {iw}.")
    if _near(answer, _doubling(iw), 0.1):
        return Feedback(False, "One round behind: round 1 ends when the initial window has been acknowledged, "
                               "and every one of its ACKs has already grown cwnd.")
    if answer[3] - answer[2] == answer[2] - answer[1] == answer[1] - answer[0]:
        return Feedback(False, "That grows by the same amount each round: slow start adds a segment per ACK, "
                               "not per round trip.")
    if all(b == 2 * a for a, b in zip(answer, answer[1:])):
        return Feedback(False, f"It doubles, as slow start does, but from the wrong start: begin with the initial "
                               f"window of {iw} and ask how many ACKs round 1 brings back.")
    return Feedback(False, f"Start from the initial window of {iw} segments and ask how many ACKs one round brings "
                           "back, and what each ACK does to cwnd.")


def _first_recovery(samples: list[Any]) -> tuple[int, int] | None:
    """Indices of the first sample in Recovery and of the first Open sample after it (None if either is missing)."""
    begin = next((i for i, s in enumerate(samples) if s.ca_state == "Recovery"), None)
    if begin is None:
        return None
    end = next((j for j in range(begin + 1, len(samples)) if samples[j].ca_state == "Open"), None)
    return None if end is None else (begin, end)


@exercise_check
def recovery_duration(exp: Any, recovery_ms: Any, round_trips: Any) -> Feedback:
    """Exercise: how long the first fast recovery of the student's own run lasted, read from its TCP_INFO samples.

    `recovery_ms`: from the first sample whose ca_state is Recovery to the first Open sample after
    it, in ms; `round_trips`: that time over the srtt of that Open sample. Recomputed from `exp`'s samples.
    """
    for value in (recovery_ms, round_trips):
        if (fb := unanswered(value)) is not None:
            return fb
    if not number(recovery_ms) or not number(round_trips):
        return Feedback(False, "Give two numbers: `recovery_ms` in milliseconds and `round_trips`, a ratio.")
    samples = list(getattr(exp, "samples", []))
    found = _first_recovery(samples)
    if found is None:
        return Feedback(False, "This run has no fast recovery that ended; run the cell of section 2 again.")
    begin, end = found
    seconds = samples[end].time - samples[begin].time
    srtt = samples[end].srtt
    right_ms, right_rt = 1000 * seconds, seconds / srtt
    if abs(recovery_ms - right_ms) > 0.6:
        if abs(recovery_ms * 1000 - right_ms) <= 0.6:
            return Feedback(False, "`recovery_ms` looks like seconds: `.time` is in seconds, give milliseconds.")
        first_change = begin
        while first_change > 0 and samples[first_change - 1].ca_state not in ("Open", "Recovery"):
            first_change -= 1  # Disorder (duplicate ACKs or SACKs seen) before the fast retransmit
        if first_change != begin and abs(recovery_ms - 1000 * (samples[end].time - samples[first_change].time)) <= 0.6:
            return Feedback(False, "That starts where ca_state first left Open (Disorder: duplicate ACKs seen, nothing "
                                   "retransmitted yet); recovery begins at the first \"Recovery\" sample.")
        if abs(recovery_ms - 1000 * (samples[end - 1].time - samples[begin].time)) <= 0.6:
            return Feedback(False, "That ends at the last \"Recovery\" sample; the question ends at the first \"Open\" "
                                   "sample after it.")
        if recovery_ms <= 0:
            return Feedback(False, "A duration is positive: the end is the first \"Open\" sample after recovery began, "
                                   "not one before it.")
        return Feedback(False, "Find the first sample whose ca_state is \"Recovery\" and the first \"Open\" sample "
                               "after it; subtract their `.time` (seconds) and give milliseconds.")
    if abs(round_trips - right_rt) > 0.03:
        if abs(round_trips - right_ms / srtt) <= 0.03 * right_ms / srtt or abs(round_trips - seconds / (1000 * srtt)) <= 0.03:
            return Feedback(False, "`round_trips` mixes units: `.srtt` is in seconds, your duration in milliseconds.")
        if abs(round_trips - srtt / seconds) <= 0.03:
            return Feedback(False, "`round_trips` is upside down: the duration divided by the round-trip time.")
        rtt = getattr(exp, "rtt", 0.0) or 0.0
        base = [x for x in (rtt, samples[end].min_rtt) if x]
        if any(abs(round_trips - seconds / x) <= 0.03 * seconds / x for x in base):
            return Feedback(False, "That divides by the path's round trip without a queue. The retransmission waited in "
                                   "the bottleneck's queue like everything else: divide by `srtt`, the kernel's "
                                   "smoothed round trip, where recovery ends.")
        if samples[begin].srtt and abs(round_trips - seconds / samples[begin].srtt) <= 0.03:
            return Feedback(False, "That divides by `srtt` where recovery began; the question takes it where recovery "
                                   "ends.")
        return Feedback(False, "`recovery_ms` is right. For `round_trips`, divide the same duration by `.srtt` of the "
                               "first \"Open\" sample, in the same unit.")
    prr = f"; cwnd {samples[begin - 1].cwnd if begin else samples[begin].cwnd} → {samples[end].cwnd}"
    whose = "your run" if getattr(exp, "live", True) else "the recorded run (live, the values are your own)"
    return Feedback(True, f"Right for {whose} (measured {right_ms:.1f} ms = {right_rt:.2f} × srtt{prr}): recovery "
                          "ends when the cumulative ACK reaches the recovery point, the highest sequence number sent "
                          "when the loss was detected (RFC 6675 section 5, RFC 6582; `high_seq` in Linux). After a "
                          "single loss that is the ACK of the retransmission, about one round trip after it left, "
                          "a round trip that includes the queue's wait. Meanwhile PRR brought cwnd down step by step, "
                          "sending in proportion to what the ACKs said was delivered, instead of stopping the sender.")


def _with_cwnd(sample: Any, factor: float) -> Any:
    """A copy of a TCP_INFO sample whose cwnd × mss is `factor` × the receiver's window, and whose kernel
    counter of time spent waiting for that window (rwnd_limited) agrees: all the busy time, or none."""
    import dataclasses

    changed = {"cwnd": max(1, round(factor * sample.snd_wnd / sample.mss)),
               "rwnd_limited": getattr(sample, "busy_time", 0.0) if factor > 1 else 0.0}
    if dataclasses.is_dataclass(sample):
        return dataclasses.replace(sample, **changed)
    return types.SimpleNamespace(**{**vars(sample), **changed})


@exercise_check
def window_limit(limited_by: Any, rwnd_run: Any, cwnd_run: Any) -> Feedback:
    """Exercise: a function samples -> "cwnd" or "rwnd", run on a receiver-limited and a path-limited transfer,
    then on the same samples with cwnd moved to the other side of the receiver's window."""
    if (fb := unanswered(limited_by)) is not None:
        return fb
    if not callable(limited_by):
        return Feedback(False, "Give a function that takes a run's samples and returns \"cwnd\" or \"rwnd\".")
    said = {}
    for name, run in (("rwnd", rwnd_run), ("cwnd", cwnd_run)):
        said[name] = limited_by(list(run.samples))
        if said[name] not in ("cwnd", "rwnd"):
            return Feedback(False, f"Your function returned {said[name]!r}; return \"cwnd\" or \"rwnd\".")
    if said == {"rwnd": "rwnd", "cwnd": "cwnd"}:
        # Section 5 says which run is which: the function must compare the windows, not recognise the
        # run (or its receiver's window alone). The same samples with cwnd moved to the other side of
        # the receiver's window: the path-limited run's big window now the smaller, the small one the larger.
        for run, factor, expected in ((cwnd_run, 2.0, "rwnd"), (rwnd_run, 0.5, "cwnd")):
            moved = [_with_cwnd(x, factor) for x in run.samples]
            if limited_by(moved) != expected:
                return Feedback(False, "Right on both runs, but not on the same samples with cwnd moved to the other "
                                       "side of snd_wnd (the check tries that too): decide by comparing the two "
                                       "windows, not from something else about the run.")
        return Feedback(True, "Both right: the sender keeps min(cwnd, rwnd) in flight, and the smaller one sets the pace.")
    if said["rwnd"] == said["cwnd"]:
        return Feedback(False, f"Your function says {said['rwnd']!r} for both runs: compare cwnd × mss with snd_wnd, "
                               "in the same unit.")
    return Feedback(False, "Exactly backwards: the limit is the smaller of the two windows, not the larger.")
