"""The exercise checks of notebook 08: each says what is right or what to look at again.

Every public function marked `@exercise_check` is a check a notebook calls as `netlab.checks.NAME`
(`netlab.checks` finds it here); what a check shares with the others (`Feedback`, "not answered
yet", grading) is in `netlab.core.checking`. A check never reveals the answer.
"""

from __future__ import annotations

from typing import Any

from netlab.core.checking import Feedback, borrowed, exercise_check, unanswered, whole
from netlab.core.conversation import CLIENT_TO_SERVER, SERVER_TO_CLIENT


def _response_record(exchange: Any) -> Any:
    """The server's largest encrypted record: the one that carries the HTTP response (certificates are smaller)."""
    records = [r for r in exchange.records() if r.direction == SERVER_TO_CLIENT and r.encrypted]
    return max(records, key=lambda r: r.length) if records else None


@exercise_check
def tls_record_prediction(comparison: Any, size: Any, predicted: Any) -> Feedback:
    """Exercise: a body size of the student's choosing and the predicted length of the record carrying the response,
    checked on a fresh HTTPS request for /large?bytes=SIZE; `comparison` is the lesson's plain and HTTPS capture."""
    if (fb := unanswered(size)) is not None or (fb := unanswered(predicted)) is not None:
        return fb
    if not whole(size) or not whole(predicted):
        return Feedback(False, "Give `size` (body bytes) and `predicted` (the record's length field), two ints.")
    if not 1000 <= size <= 12000 or size == 3000:
        return Feedback(False, "Choose a body size from 1000 to 12000 bytes, other than the lesson's 3000.")
    from netlab.lessons.tls.experiments import TLS13_OVERHEAD, https_request

    plain = len(comparison.http.conversation.data(SERVER_TO_CLIENT))
    body = comparison.http.facts.get("body_length", 3000)
    model = plain - body - len(str(body)) + len(str(size)) + size + TLS13_OVERHEAD
    run = https_request(f"/large?bytes={size}")
    record = _response_record(run) if run.live else None
    expected = record.length if record is not None else model
    where = "the live run" if record is not None else "the model (running it needs the live lab)"
    if predicted == expected:
        return Feedback(True, f"{expected} bytes, as {where} says: the response (status line, headers and your "
                              f"{size}-byte body) plus TLS 1.3's {TLS13_OVERHEAD} bytes. Encryption hides what a "
                              "response says, not how long it is.")
    if predicted == expected - TLS13_OVERHEAD:
        return Feedback(False, "That is the HTTP response alone; what does TLS 1.3 add to every encrypted record?")
    if predicted == expected + 5:
        return Feedback(False, "The length field counts what follows the 5-byte record header, not the header.")
    if predicted == size + TLS13_OVERHEAD or predicted == size:
        return Feedback(False, "The record carries more than the body: the status line and headers travel in it too.")
    if abs(predicted - expected) <= 2:
        return Feedback(False, "Close: which header's length changes with the body's size?")
    return Feedback(False, "Start from the plain HTTP response of the lesson's capture: what changes when the body "
                           "changes, and what does TLS 1.3 add?")


def _client_records(exchange: Any) -> list[Any]:
    return [r for r in exchange.records() if r.direction == CLIENT_TO_SERVER]


@exercise_check
def request_record_seq(exchange: Any, answer: Any) -> Feedback:
    """Exercise: the raw TCP sequence number at which the record carrying the HTTP request starts, in the student's
    own HTTPS capture (the client's ISN + 1 + every record before it, 5-byte headers included)."""
    if (fb := unanswered(answer)) is not None:
        return fb
    if not whole(answer):
        return Feedback(False, f"Give the raw sequence number, an int, not {type(answer).__name__}.")
    mine = _client_records(exchange)
    encrypted = [r for r in mine if r.encrypted]
    if not encrypted:
        return Feedback(False, "This capture has no encrypted record from the client; run the capture cell again.")
    request = max(encrypted, key=lambda r: r.length)
    before = mine[:mine.index(request)]
    isn = exchange.conversation.isn["client"]
    offset = sum(5 + r.length for r in before)
    raw = (isn + 1 + offset) % 2**32
    if answer == raw:
        return Feedback(True, f"{raw} = the client's ISN {isn} + 1 (its SYN) + {offset} bytes of {len(before)} records "
                              "before it, each with its 5-byte header: records are laid end to end in TCP's byte "
                              "stream. " + ("Your capture's own number." if exchange.live else "(From the recording.)"))
    if answer == 1 + offset:
        return Feedback(False, "That is the relative number; the exercise asks for the raw one.")
    if answer == (raw - 1) % 2**32:
        return Feedback(False, "Off by one: what used up the client's first sequence number?")
    if answer == (isn + 1 + sum(r.length for r in before)) % 2**32:
        return Feedback(False, "That leaves out the records' headers: every record starts with 5 bytes of its own.")
    if abs(answer - exchange.conversation.isn["server"]) < 2**20:
        return Feedback(False, "That is in the server's numbering; the request is the client's.")
    return Feedback(False, "Find the client's records in the record table, which one carries the request, and count "
                           "the bytes before it in the client's stream, headers included, from the client's ISN.")


_TLS_PARSERS = {"TLS", "_records_of", "load_layer", "records", "record_table"}


def _records_by_scapy(stream: bytes) -> list[tuple[int, int]]:
    """(content type, length) of each complete record of a TLS byte stream, as scapy's TLS dissector reads them.

    The oracle, not a model answer: scapy reads each record's header. Without the session's keys it
    stops chaining at the first encrypted record (it hands the rest over as Raw), so the rest is
    dissected again from where that record ends.
    """
    from scapy.layers.tls.record import TLS

    out, left = [], bytes(stream)
    record = TLS(left) if len(left) >= 5 else None
    while isinstance(record, TLS) and record.len is not None and 5 + record.len <= len(left):
        out.append((int(record.type), int(record.len)))
        left = left[5 + record.len:]
        record = record.payload if isinstance(record.payload, TLS) else TLS(left) if len(left) >= 5 else None
    return out


@exercise_check
def tls_records(func: Any, exchange: Any) -> Feedback:
    """Exercise: tls_records(stream) -> [(content type, length)] for each complete record of a TLS byte stream, run on
    the student's own capture, a fresh HTTPS response of 40 000 bytes (three records) and streams cut short."""
    if (fb := unanswered(func)) is not None:
        return fb
    if not callable(func):
        return Feedback(False, "Give a function tls_records(stream) that returns a list of (type, length) pairs.")
    if (name := borrowed(func, _TLS_PARSERS)) is not None:
        return Feedback(False, f"Your function uses `{name}`: read the 5-byte headers yourself.")
    from netlab.lessons.tls.experiments import https_request

    conv = exchange.conversation
    server = conv.data(SERVER_TO_CLIENT)
    cases = [("your capture's client stream", conv.data(CLIENT_TO_SERVER)),
             ("your capture's server stream", server)]
    large = https_request("/large?bytes=40000")
    cases.append(("a fresh HTTPS response of 40 000 bytes" + ("" if large.live else " (recorded)"),
                  large.conversation.data(SERVER_TO_CLIENT)))
    cut = 5 + int.from_bytes(server[3:5], "big") + 3
    cases += [("a stream cut in the middle of a record's header", server[:cut]),
              ("a stream cut in the middle of a record", server[:len(server) - 10]),
              ("an empty stream", b"")]
    for what, stream in cases:
        expected = _records_by_scapy(stream)
        try:
            got = func(bytes(stream))
        except Exception as err:
            return Feedback(False, f"Your function raised {type(err).__name__} on {what}: {err}")
        try:
            got = [tuple(pair) for pair in got]
        except TypeError:
            return Feedback(False, f"On {what} your function returned {type(got).__name__}; return a list of pairs.")
        if got == expected:
            continue
        if len(got) == len(expected) + 1 and got[:-1] == expected:
            return Feedback(False, f"On {what} your list ends with a record that is not all there: leave it out.")
        if got and expected and got[0] != expected[0]:
            return Feedback(False, f"On {what} the first pair is wrong: byte 0 is the type, bytes 3 and 4 the length "
                                   "(big-endian).")
        return Feedback(False, f"On {what} your pairs differ from the records: after a record's 5-byte header come "
                               "exactly `length` bytes, then the next header.")
    return Feedback(True, "Right on all six: your own capture both ways, a 40 000-byte response in three records "
                          "(at most 16 384 bytes of content each), and streams that end in the middle of a record.")
