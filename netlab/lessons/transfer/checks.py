"""The exercise checks of notebook 05: each says what is right or what to look at again.

Every public function marked `@exercise_check` is a check a notebook calls as `netlab.checks.NAME`
(`netlab.checks` finds it here); what a check shares with the others (`Feedback`, "not answered
yet", grading) is in `netlab.core.checking`. A check never reveals the answer.
"""

from __future__ import annotations

from typing import Any

from netlab.core.checking import Feedback, exercise_check, number, unanswered, whole
from netlab.core.conversation import CLIENT_TO_SERVER, SERVER_TO_CLIENT, Conversation


@exercise_check
def segments_for_write(size: int, answer: Any, mss: int = 1460) -> Feedback:
    """Exercise: how many segments a write of `size` bytes becomes with an MSS of `mss` bytes."""
    if (fb := unanswered(answer)) is not None:
        return fb
    if not isinstance(answer, int) or isinstance(answer, bool):
        return Feedback(False, f"Give a whole number of segments, an int, not {type(answer).__name__}.")
    full, rest = divmod(size, mss)
    expected = full + (1 if rest else 0)
    if answer == expected:
        return Feedback(True, f"{expected} segments: {full} of {mss} bytes" + (f" and one of {rest}." if rest else "."))
    if answer == full:
        return Feedback(False, "Close: that counts the full segments. The bytes left over travel too.")
    return Feedback(False, f"Divide the write by the MSS ({mss} bytes on this link) and think about what is left over.")


def _karn_samples(conv: Conversation) -> list[float]:
    """RTT samples (seconds) of a transfer, by Karn's rule: from each data segment sent once to the first ACK covering it."""
    data = [s for s in conv.segments if s.direction == CLIENT_TO_SERVER and s.length]
    first_sent: dict[int, float] = {}
    for s in data:
        first_sent.setdefault(s.seq + s.length, s.time)
    resent = {s.seq + s.length for s in data if s.retransmission}
    samples, used = [], set()
    for a in conv.segments:
        if a.direction == SERVER_TO_CLIENT and a.ack in first_sent and a.ack not in resent and a.ack not in used:
            used.add(a.ack)
            samples.append(a.time - first_sent[a.ack])
    return samples


@exercise_check
def own_first_rto(exp: Any, answer: Any, granularity: float = 0.001) -> Feedback:
    """Exercise: RFC 6298's RTO (seconds, before any minimum) after the first RTT sample of the student's own capture."""
    if (fb := unanswered(answer)) is not None:
        return fb
    if not number(answer):
        return Feedback(False, f"Give the RTO in seconds, a number, not {type(answer).__name__}.")
    samples = _karn_samples(exp.conversation)
    if not samples:
        return Feedback(False, "This capture has no RTT sample; run the cell of section 7 again.")
    first = samples[0]
    expected = first + max(granularity, 4 * first / 2)
    if abs(answer - expected) <= 0.0005:
        return Feedback(True, f"{expected * 1000:.1f} ms = 3 × your first sample ({first * 1000:.1f} ms): SRTT = R, "
                              "RTTVAR = R/2, RTO = SRTT + 4·RTTVAR. " + ("Your capture's own value." if exp.live
                                                                          else "(From the recording.)"))
    if abs(answer / 1000 - expected) <= 0.0005:
        return Feedback(False, "That looks like milliseconds; give seconds.")
    if abs(answer - 1.0) < 1e-6:
        return Feedback(False, "That is RFC 6298's minimum, applied afterwards; give the value before it.")
    if abs(answer - 0.3) < 1e-6:
        return Feedback(False, "That starts from the peer's nominal 100 ms; start from your capture's first sample.")
    if any(abs(answer - (s + max(granularity, 2 * s))) <= 0.0005 for s in samples[1:]):
        return Feedback(False, "Right rule, wrong sample: the exercise asks for the RTO after the first one.")
    if abs(answer - (first + 0.2)) <= 0.0005 or abs(answer - (first + max(0.2, 2 * first))) <= 0.0005:
        return Feedback(False, "That is Linux's 200 ms floor; the exercise asks for RFC 6298's formula, before any minimum.")
    return Feedback(False, "Take your first sample R (`samples[0]`), then the first-sample rule: SRTT = R, RTTVAR = R/2, "
                           "RTO = SRTT + max(G, 4·RTTVAR).")


@exercise_check
def retransmitted(exp: Any, func: Any) -> Feedback:
    """Exercise: a function [(raw seq, length), ...] -> the indexes of the segments that start below the highest
    sequence number already sent (retransmissions), in 32-bit arithmetic. Run on the client's data segments of the
    student's own capture, and on the same stream shifted so that its numbers wrap past 2**32 at drawn places; what
    is right comes from netlab's analysis of the real capture, which a shift does not change."""
    import random

    from scapy.layers.inet import TCP

    if (fb := unanswered(func)) is not None:
        return fb
    if not callable(func):
        return Feedback(False, "Give a function already_sent(segments) that returns a list of indexes.")
    conv = exp.conversation
    data = [s for s in conv.segments if s.direction == CLIENT_TO_SERVER and s.length]
    expected = [i for i, s in enumerate(data) if s.retransmission]
    if not expected:
        return Feedback(False, "This capture has no retransmission: run the cell of section 6 that makes `fast` again.")
    raw = [(int(s.packet[TCP].seq), s.length) for s in data]
    first, span = raw[0][0], sum(length for _, length in raw)
    rng = random.Random()
    shifts = [0, *((2**32 - first - rng.randrange(1, span)) % 2**32 for _ in range(3))]
    for wrapped, shift in enumerate(shifts):  # 0 first: the capture as it is
        segments = [((seq + shift) % 2**32, length) for seq, length in raw]
        got = func(list(segments))
        if not isinstance(got, list) or not all(isinstance(i, int) and not isinstance(i, bool) for i in got):
            return Feedback(False, f"Your function returned {type(got).__name__}; return a list of indexes (ints) "
                                   "into the list it was given.")
        if sorted(got) == expected:
            continue
        where = "On your own capture's numbers" if not wrapped else \
            "On the same segments with their numbers shifted so that they pass 2**32 − 1 and start again at 0"
        missed = sorted(set(expected) - set(got))
        extra = sorted(set(got) - set(expected))
        what = ("some retransmissions are missing" if missed and not extra else
                "some segments that carried new bytes are counted" if extra and not missed else
                "some are missing and some new ones are counted")
        hint = (" Sequence numbers count modulo 2**32: is 5 after 4294967290, or before it?" if wrapped else
                " A segment is sent again when it starts below the highest sequence number sent so far.")
        return Feedback(False, f"{where}, {what}.{hint}")
    return Feedback(True, "Right on your capture's data segments, and on the same "
                          "stream wrapping past 2**32 at three places drawn just now: sequence numbers are compared "
                          "modulo 2**32 (RFC 9293, section 3.4), so a stream can run for ever.")


_WINDOW_DATA = 30_000  # bytes sent in the window exercise
_WINDOW_DELAY = 0.1  # seconds the peer waits before each ACK


def _rounds(window: int, mss: int = 1460, initial_cwnd: int = 10) -> int:
    """Round trips to send _WINDOW_DATA bytes when at most min(cwnd, rwnd) segments are in flight (slow start, no loss)."""
    segments, sent, cwnd, rounds = -(-_WINDOW_DATA // mss), 0, initial_cwnd, 0
    rwnd = window // mss
    while sent < segments:
        now = min(cwnd, rwnd, segments - sent)
        sent, rounds = sent + now, rounds + 1
        if now == cwnd:
            cwnd += now  # slow start: one segment more per segment acknowledged
    return rounds


def _round_trips_taken(conv: Conversation) -> int:
    """Round trips on the transfer's critical path, read from the order of the capture, not its clock.

    A data segment sent before any data was acknowledged is in round trip 1; one sent after the ACK
    of a segment of round trip k is in k + 1 (the newest round acknowledged so far). However late a
    busy machine delivers the ACKs, the count is the same.
    """
    round_of_end: dict[int, int] = {}  # relative end of each data segment -> its round trip
    acknowledged = taken = 0
    for s in conv.segments:
        if s.direction == CLIENT_TO_SERVER and s.length:
            round_of_end[s.seq + s.length] = acknowledged + 1
            taken = max(taken, acknowledged + 1)
        elif s.direction == SERVER_TO_CLIENT and s.ack is not None:
            acknowledged = max([acknowledged] + [r for end, r in round_of_end.items() if end <= s.ack])
    return taken


@exercise_check
def window_transfer_time(window: Any, predicted: Any) -> Feedback:
    """Exercise: the student's window (bytes) for the peer and the predicted seconds for 30 000 bytes with ACKs 100 ms late.

    The prediction must match the model (min(cwnd, rwnd) segments per round trip, within 10 %); the
    check then runs that transfer live and confirms it by counting the round trips in the capture.
    The time is measured and shown, not graded: on a busy machine the peer, a program, sends its
    ACKs later than 100 ms, and 40 students graded at once must not fail a right answer for that
    (a run beside two test runs and a busy loop took 0.956 s for 6 round trips). Without the lab
    only the model is graded.
    """
    if (fb := unanswered(window)) is not None or (fb := unanswered(predicted)) is not None:
        return fb
    if not whole(window) or not number(predicted):
        return Feedback(False, "Give `window` in bytes (an int) and `predicted` in seconds (a number).")
    if window % 1460 or not 2 * 1460 <= window <= 10 * 1460:
        return Feedback(False, "Choose a window of whole segments: 2 to 10 times 1460 bytes.")
    rounds = _rounds(window)
    fractional = _WINDOW_DATA / window * _WINDOW_DELAY
    hint = ("Count whole round trips: the last window, even a part-full one, waits for its ACKs too."
            if abs(predicted - fractional) <= 0.01 else
            "The sender keeps at most min(cwnd, rwnd) bytes in flight and waits a round trip for their ACKs: "
            "how many round trips do 30 000 bytes need?")
    model = rounds * _WINDOW_DELAY
    if abs(predicted - model) > 0.1 * model + 0.01:
        return Feedback(False, ("Too long. " if predicted > model else "Too short. ") + hint)
    from netlab.core.errors import LabUnavailable
    from netlab.core.peer import Script, transfer

    try:
        run = transfer(Script(port=80).accept(window=window).ack_late(_WINDOW_DELAY), data=_WINDOW_DATA)
    except LabUnavailable:
        run = None
    if run is None or not run.live:
        return Feedback(True, f"{rounds} round trips of {_WINDOW_DELAY:g} s. Running it needs the live lab; here only "
                              "your reasoning is graded.")
    conv = run.conversation
    done = [s.time for s in conv.segments if s.direction == SERVER_TO_CLIENT and s.ack is not None
            and s.ack >= _WINDOW_DATA + 1]
    first = next((s.time for s in conv.segments if s.direction == CLIENT_TO_SERVER and s.length), None)
    if first is None or not done:
        return Feedback(False, "The live transfer did not finish; run the check again.")
    if conv.retransmissions(CLIENT_TO_SERVER):
        return Feedback(False, "The peer answered so late that the kernel sent data again (a retransmission "
                               "timeout): the machine is very busy. Run the check again.")
    measured, taken = min(done) - first, _round_trips_taken(conv)
    if taken != rounds:
        return Feedback(False, f"The live run took {taken} round trips, not the {rounds} that min(cwnd, rwnd) "
                               "gives: run the check again.")
    return Feedback(True, f"Measured just now: {measured:.3f} s, {rounds} round trips of {measured / rounds * 1000:.0f} ms "
                          f"each with at most {window // 1460} segments in flight: the peer's window, smaller than "
                          f"cwnd, set the pace. The peer waits {_WINDOW_DELAY * 1000:.0f} ms before each ACK; the "
                          "rest of a round trip is this machine's time to pass the packets.")
