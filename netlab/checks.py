"""Checks for the notebooks' exercises: each says what is right or what to look at again.

A check never reveals the answer: when an answer is wrong it points at the part of the capture
(or the idea) to look at again. Each returns a `Feedback`, which shows as one line in a notebook
and is true when the answer is right, so tests can assert on it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from netlab.conversation import CLIENT_TO_SERVER, Conversation

__all__ = ["Feedback", "handshake_completer", "server_ack_after_hello", "time_wait_side", "four_segment_teardown"]


@dataclass(frozen=True)
class Feedback:
    """The verdict on one exercise answer."""

    ok: bool
    message: str

    def __bool__(self) -> bool:
        return self.ok

    def __repr__(self) -> str:
        return ("✔ " if self.ok else "✘ ") + self.message


def _unanswered(answer: Any) -> Feedback | None:
    if answer is None or answer is ...:
        return Feedback(False, "Not answered yet: replace the `...` with your answer and run the cell again.")
    return None


def handshake_completer(conv: Conversation, answer: Any) -> Feedback:
    """Exercise: the number of the segment that completes the three-way handshake."""
    if (fb := _unanswered(answer)) is not None:
        return fb
    if not isinstance(answer, int) or isinstance(answer, bool):
        return Feedback(False, f"Give the segment's number (the # column), an int, not {type(answer).__name__}.")
    third = conv.handshake_ack
    if third is None:
        return Feedback(False, "This capture has no complete handshake; run the capture cell again.")
    if answer == third.number:
        return Feedback(True, f"Segment {answer}: the client's ACK of the server's SYN. Both sides are now ESTABLISHED.")
    chosen = next((s for s in conv.segments if s.number == answer), None)
    if chosen is None:
        return Feedback(False, f"There is no segment {answer}; the table numbers them 1 to {len(conv.segments)}.")
    if chosen.flags == "SYN":
        return Feedback(False, f"Segment {answer} is the client's SYN: it opens the handshake, and the server "
                               "has not answered yet.")
    if chosen.has("SYN"):
        return Feedback(False, f"Segment {answer} still carries SYN: the handshake needs one more segment after it.")
    return Feedback(False, f"Segment {answer} is a {chosen.flags} in the {chosen.phase} phase; "
                           "the handshake was already complete before it. Look earlier.")


def server_ack_after_hello(conv: Conversation, answer: Any) -> Feedback:
    """Exercise: the relative ack the server sends once it has the client's first message."""
    if (fb := _unanswered(answer)) is not None:
        return fb
    first = next((s for s in conv.segments if s.direction == CLIENT_TO_SERVER and s.length), None)
    if first is None:
        return Feedback(False, "The client sent no data in this capture.")
    expected = first.seq + first.length
    if answer == expected:
        return Feedback(True, f"ack={expected}: the next byte the server expects. The SYN counted as one "
                              f"sequence number, and the {first.length} bytes of data as {first.length} more.")
    if answer == first.length:
        return Feedback(False, "Close: that is the number of data bytes. Remember that the SYN also used up one sequence number.")
    if answer == expected - 1:
        return Feedback(False, "That is the relative number of the last byte received; an ACK names the next byte expected.")
    return Feedback(False, "Start from the client's data segment: its seq, plus how many bytes it carried.")


def time_wait_side(exp: Any, answer: Any) -> Feedback:
    """Exercise: which side ('client' or 'server') ends up in TIME-WAIT, read from `ss`."""
    if (fb := _unanswered(answer)) is not None:
        return fb
    if answer not in ("client", "server"):
        return Feedback(False, "Answer 'client' or 'server'.")
    conv = exp.conversation
    waiting = [s for s in exp.kernel_states if s.state == "TIME-WAIT"]
    if not waiting:
        return Feedback(False, "The kernel listed no TIME-WAIT socket in this run; look at the `ss` output again.")
    side = "client" if waiting[0].local == conv.client else "server"
    if answer == side:
        return Feedback(True, f"The {side}: it sent the first FIN, so it waits (2×MSL) in case its last ACK was lost.")
    return Feedback(False, "Compare the local address:port of the TIME-WAIT socket in the `ss` output "
                           "with the client's and the server's address:port in the table.")


def four_segment_teardown(exp: Any) -> Feedback:
    """Exercise: make the teardown show FIN, ACK, FIN, ACK (four segments) by delaying the server."""
    teardown = exp.conversation.phase("teardown")
    flags = [s.flags for s in teardown]
    if len(teardown) == 4:
        return Feedback(True, f"Four segments: {', '.join(flags)}. The kernel ACKed the FIN before the program closed.")
    if len(teardown) == 3:
        return Feedback(False, f"Still three ({', '.join(flags)}): the server closed before the client's FIN "
                               "was acknowledged, so the ACK rode on the server's FIN. Make the server wait longer "
                               "than the delayed-ACK timer.")
    return Feedback(False, f"The teardown has {len(teardown)} segments ({', '.join(flags) or 'none'}); "
                           "check that the client closes the connection.")
