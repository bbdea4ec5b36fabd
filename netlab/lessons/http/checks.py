"""The exercise checks of notebook 04: each says what is right or what to look at again.

Every public function marked `@exercise_check` is a check a notebook calls as `netlab.checks.NAME`
(`netlab.checks` finds it here); what a check shares with the others (`Feedback`, "not answered
yet", grading) is in `netlab.core.checking`. A check never reveals the answer.
"""

from __future__ import annotations

import os
from typing import Any

from netlab.core.checking import Feedback, borrowed, exercise_check, unanswered, whole
from netlab.core.conversation import SERVER_TO_CLIENT

_HTTP_HELPERS = {"read_response", "parse_response", "parse_messages", "parse_response_with_stdlib", "HTTPResponse",
                 "getresponse", "http_connection", "urlopen"}


def _response(headers: list[str], body: bytes) -> bytes:
    return ("HTTP/1.1 200 OK\r\n" + "".join(f"{h}\r\n" for h in headers) + "\r\n").encode() + body


def _chunked(body: bytes, sizes: list[int]) -> bytes:
    out, pos = b"", 0
    for number, size in enumerate(sizes):
        piece = body[pos:pos + size]
        pos += size
        out += (f"{len(piece):x}" if number % 2 else f"{len(piece):X};part={number}").encode() + b"\r\n" + piece + b"\r\n"
    return out + b"0\r\n\r\n"


@exercise_check
def read_body(func: Any) -> Feedback:
    """Exercise: read_body(sock) -> the body of one HTTP response, run in the lab on responses split across segments."""
    if (fb := unanswered(func)) is not None:
        return fb
    if not callable(func):
        return Feedback(False, "Give a function read_body(sock) that returns the body, bytes.")
    if (name := borrowed(func, _HTTP_HELPERS)) is not None:
        return Feedback(False, f"Your function uses `{name}`: read the head and the body yourself, with sock.recv.")
    from netlab.core.scripted import KEEP_OPEN, against_script

    bodies = [os.urandom(700 + os.urandom(1)[0]).hex().encode() for _ in range(3)]
    by_length = _response(["Content-Type: text/plain", f"content-LENGTH: {len(bodies[0])}"], bodies[0])
    cut = by_length.index(b"LENGTH") + 3
    chunked = _response(["Transfer-Encoding: chunked"], b"")
    chunks = _chunked(bodies[1], [300, 700, len(bodies[1])])
    until_close = _response(["Content-Type: text/plain"], bodies[2])
    cases = {
        "a Content-Length response whose head is cut in the middle of a header, its body in pieces, the connection "
        "left open": ([by_length[:cut], 0.05, by_length[cut:cut + 500], 0.05, by_length[cut + 500:], KEEP_OPEN], bodies[0]),
        "a chunked body, a size line cut in two, the connection left open":
            ([chunked + chunks[:2], 0.05, chunks[2:400], 0.05, chunks[400:], KEEP_OPEN], bodies[1]),
        "a response with neither Content-Length nor chunks, ended by the server's close":
            ([until_close[:100], 0.05, until_close[100:]], bodies[2]),
    }
    runs = against_script(func, [script for script, _ in cases.values()], timeout=3.0)
    right = 0
    for (what, (_, body)), run in zip(cases.items(), runs, strict=True):
        if run.hung:
            return Feedback(False, f"On {what}: your function was still waiting after 3 s. Which header says where "
                                   "this body ends?")
        if run.raised is not None:
            return Feedback(False, f"On {what}: your function raised {type(run.raised).__name__}: {run.raised}"[:300])
        if run.returned != body:
            got = run.returned
            detail = (f"{len(got)} bytes, not the {len(body)} of the body" if isinstance(got, (bytes, bytearray))
                      else f"{type(got).__name__}, not bytes")
            hint = " Header names are case-insensitive." if "Content-Length" in what and isinstance(got, bytes) \
                and not got else ""
            return Feedback(False, f"On {what}: your function returned {detail}.{hint}")
        right += 1
    return Feedback(True, f"All {right} bodies right, each read across several segments: by Content-Length (any "
                          "case), chunk by chunk up to the chunk of size 0, and until the server's close.")


_VARIANTS = {"HTTP/1.1": ("1.1", None), "HTTP/1.1, Connection: close": ("1.1", "close"),
             "HTTP/1.0": ("1.0", None), "HTTP/1.0, Connection: keep-alive": ("1.0", "keep-alive")}


def _stays_open(site: Any, version: str, connection: str | None) -> bool:
    """Send one request to `site`; True when the server keeps the connection open after its answer."""
    from netlab.lessons.http.experiments import read_response

    headers = "Host: lab\r\n" + (f"Connection: {connection}\r\n" if connection else "")
    with site.connect() as sock:
        sock.sendall(f"GET / HTTP/{version}\r\n{headers}\r\n".encode())
        read_response(sock)
        sock.settimeout(0.3)
        try:
            return sock.recv(1) != b""
        except TimeoutError:
            return True


@exercise_check
def keeps_connection_open(predictions: Any) -> Feedback:
    """Exercise: predict, for four requests, whether the lab's server keeps the connection open; each is sent live."""
    if (fb := unanswered(predictions)) is not None:
        return fb
    if not isinstance(predictions, dict) or set(predictions) != set(_VARIANTS) \
            or not all(isinstance(v, bool) for v in predictions.values()):
        return Feedback(False, f"Give a dict with the four keys {', '.join(map(repr, _VARIANTS))}, each True (stays "
                               "open) or False (closed).")
    from netlab.lessons.http.experiments import site

    with site() as lab_site:
        seen = {name: _stays_open(lab_site, version, connection) for name, (version, connection) in _VARIANTS.items()}
    wrong = [name for name in _VARIANTS if predictions[name] != seen[name]]
    if not wrong:
        return Feedback(True, "All four as the server did just now: HTTP/1.1 keeps the connection unless a side "
                              "says `Connection: close`; HTTP/1.0 closes unless the client asks for keep-alive.")
    if all(name.startswith("HTTP/1.0") for name in wrong):
        return Feedback(False, f"{len(wrong)} of 4 wrong: your HTTP/1.1 predictions hold; HTTP/1.0's default is "
                               "another one (section 4).")
    return Feedback(False, f"{len(wrong)} of 4 wrong. Which version keeps its connections by default, and what does "
                           "the Connection header change?")


@exercise_check
def second_response_seq(exp: Any, answer: Any) -> Feedback:
    """Exercise: the raw sequence number at which the server's second response starts, in the student's kept-alive capture."""
    if (fb := unanswered(answer)) is not None:
        return fb
    if not whole(answer):
        return Feedback(False, f"Give the raw number, an int, not {type(answer).__name__}.")
    from scapy.layers.inet import TCP

    conv = exp.conversations[0]
    starts = [s for s in conv.segments if s.direction == SERVER_TO_CLIENT and s.payload.startswith(b"HTTP/")]
    if len(starts) < 2:
        return Feedback(False, "This capture has fewer than two responses on its first connection; capture `kept` again.")
    first, second = starts[:2]
    raw = int(second.packet[TCP].seq)
    if answer == raw:
        return Feedback(True, f"The raw seq {raw} = the server's ISN + 1 (its SYN) + the {second.seq - 1} bytes of its first "
                              "response: the responses follow each other in one byte stream.")
    if answer == second.seq:
        return Feedback(False, "That is the relative number; the exercise asks for the raw one.")
    if answer == int(first.packet[TCP].seq):
        return Feedback(False, "That is where the first response starts.")
    if answer in ((raw - 1) % 2**32, (raw + 1) % 2**32):
        return Feedback(False, "Off by one: what used up the server's first sequence number?")
    if abs(answer - conv.isn["client"]) < 2**20:
        return Feedback(False, "That is in the client's numbering; responses are numbered by the server.")
    return Feedback(False, "Start from the server's ISN, and count every sequence number it used before the second "
                           "response.")
