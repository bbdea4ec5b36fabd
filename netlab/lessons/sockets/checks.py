"""The exercise checks of notebook 02: each says what is right or what to look at again.

Every public function marked `@exercise_check` is a check a notebook calls as `netlab.checks.NAME`
(`netlab.checks` finds it here); what a check shares with the others (`Feedback`, "not answered
yet", grading) is in `netlab.core.checking`. A check never reveals the answer.
"""

from __future__ import annotations

import os
import struct
from typing import Any

from netlab.core.checking import NOT_ANSWERED, Feedback, borrowed, exercise_check, unanswered, whole


@exercise_check
def recv_sizes(size: Any, bufsize: Any, answer: Any) -> Feedback:
    """Exercise: predict each recv's length when `size` bytes sent in one sendall are read with recv(`bufsize`); run live."""
    if any(_is_unanswered(a) for a in (size, bufsize, answer)):
        return Feedback(False, NOT_ANSWERED)
    if not (whole(size) and whole(bufsize)) or not 0 < 2 * bufsize < size <= 60_000 or size % bufsize == 0:
        return Feedback(False, "Choose `size` (up to 60000 bytes) and `bufsize` yourself, ints, with at least three "
                               "recvs to read it and a size that is not a multiple of bufsize.")
    if (size, bufsize) == (3000, 1024):
        return Feedback(False, "Section 3 already ran 3000 and 1024: choose numbers of your own.")
    if not isinstance(answer, (list, tuple)) or not all(whole(a) for a in answer):
        return Feedback(False, "Give a list of ints: the number of bytes each recv returns, in order.")
    from netlab.lessons.sockets.experiments import one_send_many_recvs

    exp = one_send_many_recvs(size=size, bufsize=bufsize)
    if exp.live:
        measured, where = list(exp.result["recvs"]), "measured just now in the lab"
    else:  # the recording holds 3000/1024 only: grade by the rule it shows
        measured = [bufsize] * (size // bufsize) + [size % bufsize]
        where = "this needs the live lab to try your numbers; graded by the rule the recording shows"
    if list(answer) == measured:
        return Feedback(True, f"{len(measured)} recvs ({where}): each returns at most `bufsize` bytes, the last "
                              "what is left. One send, many recvs: TCP keeps no message boundaries.")
    if sum(answer) != size:
        return Feedback(False, f"Your recvs add up to {sum(answer)} bytes; the receiver reads until it has all {size}.")
    if any(a > bufsize for a in answer):
        return Feedback(False, "One of your recvs returns more than `bufsize` bytes: can a recv do that?")
    return Feedback(False, "The total is right, not the split: the data had all arrived before the first recv.")


def _is_unanswered(value: Any) -> bool:
    return value is None or value is ...


_FRAMING_HELPERS = {"recv_message", "recv_exactly", "recv_until_closed", "MSG_WAITALL"}


@exercise_check
def own_recv_message(func: Any) -> Feedback:
    """Exercise: the student's own recv_message(sock), run in the lab against a server that splits its frames."""
    if (fb := unanswered(func)) is not None:
        return fb
    if not callable(func):
        return Feedback(False, "Give a function recv_message(sock) that returns one message, or None at the end.")
    if (name := borrowed(func, _FRAMING_HELPERS)) is not None:
        return Feedback(False, f"Your function uses `{name}`: write the loop yourself, with sock.recv.")

    from netlab.core.scripted import against_script

    big = os.urandom(3000 + os.urandom(1)[0])
    frames = [b"alpha", b"", big]
    wire = b"".join(struct.pack("!I", len(m)) + m for m in frames)
    split = [wire[:2], 0.05, wire[2:6], 0.05, wire[6:11], 0.05, wire[11:900], 0.05, wire[900:2000], 0.05, wire[2000:]]

    def read_all(sock: Any) -> list[Any]:
        out = []
        for _ in range(len(frames) + 1):
            out.append(func(sock))
            if out[-1] is None:
                break
        return out

    whole, cut = against_script(read_all, [split, [struct.pack("!I", 10) + b"Hello"]], timeout=5.0)
    if whole.hung:
        return Feedback(False, "Your function was still waiting after 5 s: does it stop when recv returns b''?")
    if whole.raised is not None:
        err = whole.raised
        return Feedback(False, f"Your function raised {type(err).__name__} ({err}) on three whole messages sent "
                               "in pieces, 50 ms apart.")
    got = whole.returned
    if got == [*frames, None]:
        if cut.hung:
            return Feedback(False, "Three messages right; but a peer that closed in the middle of a message left "
                                   "your function waiting.")
        if isinstance(cut.raised, EOFError):
            return Feedback(True, "Right on all of it: a length split across two segments, an empty message, a "
                                  "long one in short reads, None at a clean end, EOFError for a message cut short.")
        did = f"returned {repr(cut.returned)[:40]}" if cut.raised is None else f"raised {type(cut.raised).__name__}"
        return Feedback(False, f"Three messages right; but when the peer closes in the middle of a message, raise "
                               f"EOFError (your function {did}).")
    if got and got[0] not in (b"alpha", None) and isinstance(got[0], (bytes, bytearray)) and b"alpha".startswith(got[0]):
        return Feedback(False, "The first message came back short: a recv may return less than you asked for.")
    if got[:1] == [b"alpha"] and got[1:2] == [None]:
        return Feedback(False, "After the first message your function returned None: a message of length 0 is "
                               "not the end of the stream.")
    if got[:2] == [b"alpha", b""] and len(got) > 2 and got[2] != big:
        return Feedback(False, "The long message came back wrong: it arrived in several segments.")
    return Feedback(False, "The messages did not come back as sent. The 4-byte length can be split across "
                           f"segments too. (Your function returned {repr(got)[:60]}.)")


@exercise_check
def ask_within(func: Any) -> Feedback:
    """Exercise: ask(sock, request, seconds) -> the reply line, or None when no whole line came within `seconds` in all."""
    if (fb := unanswered(func)) is not None:
        return fb
    if not callable(func):
        return Feedback(False, "Give a function ask(sock, request, seconds) that returns a line or None.")
    from netlab.core.scripted import KEEP_OPEN, READ, against_script

    seconds = 0.5
    word = os.urandom(4).hex().encode()
    scripts = {"a reply in two pieces": [READ, word[:3], 0.1, word[3:] + b"\n", KEEP_OPEN],
               "a server that never answers": [READ, KEEP_OPEN],
               "a server that sends a byte every 0.15 s and never a newline": [READ, *[b".", 0.15] * 8, KEEP_OPEN],
               "a server that closes without answering": [READ]}
    runs = dict(zip(scripts, against_script(lambda sock: func(sock, b"PING\n", seconds), list(scripts.values()),
                                            timeout=4.0), strict=True))
    for what, run in runs.items():
        if run.hung:
            return Feedback(False, f"Against {what}, your function was still busy after 4 s.")
        if isinstance(run.raised, TimeoutError):
            return Feedback(False, f"Against {what}, your function let TimeoutError out: catch it and return None.")
        if run.raised is not None:
            return Feedback(False, f"Against {what}, your function raised {type(run.raised).__name__}: {run.raised}")
    first = runs["a reply in two pieces"].returned
    if first != word + b"\n":
        short = isinstance(first, (bytes, bytearray)) and (word + b"\n").startswith(bytes(first))
        return Feedback(False, "Against a reply in two pieces, 0.1 s apart: " + (
            "your function returned its first piece only. Read until the line is complete." if short and first
            else f"expected the whole line with its b'\\n', got {repr(first)[:40]}."))
    for what in list(scripts)[1:]:
        run = runs[what]
        if run.returned is not None:
            return Feedback(False, f"Against {what}, your function returned {repr(run.returned)[:40]}, not None.")
        if run.seconds > seconds + 0.25:
            slow = (" settimeout bounds each call, not the whole wait: keep a deadline and give each recv the time "
                    "that is left." if what.startswith("a server that sends") else "")
            return Feedback(False, f"Against {what}, your function gave up after {run.seconds:.2f} s, not within "
                                   f"{seconds} s.{slow}")
    return Feedback(True, "Right on all four: a reply read whole across two segments, and None within the time "
                          "for silence, for a trickle that never ends its line, and for a server that closed.")
