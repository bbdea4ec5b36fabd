"""The exercise checks of notebook 04: each says what is right or what to look at again.

Every public function marked `@exercise_check` is a check a notebook calls as `netlab.checks.NAME`
(`netlab.checks` finds it here); what a check shares with the others (`Feedback`, "not answered
yet", grading) is in `netlab.core.checking`. A check never reveals the answer.
"""

from __future__ import annotations

import os
from typing import Any

from netlab.core.checking import Feedback, borrowed, exercise_check, unanswered

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


# Every (version, Connection value) a request may combine; each check sends all six, each written anew with names,
# values and extra headers in a case and order drawn at random, so only a rule applied to the bytes gets them right.
_VARIANTS = (("1.1", None), ("1.1", "close"), ("1.1", "keep-alive"), ("1.0", None), ("1.0", "close"),
             ("1.0", "keep-alive"))
_EXTRA = ("Accept: */*", "User-Agent: netlab-check", "Accept-Encoding: identity", "X-Exercise: 04-ex2")


def _request(version: str, connection: str | None, rng: Any) -> bytes:
    """A GET request head for `version` with header `connection` (or none), cased and ordered at random."""
    def cased(text: str) -> str:
        return rng.choice([text, text.lower(), text.upper(), text.title()])

    headers = ["Host: lab", *rng.sample(_EXTRA, rng.randint(0, len(_EXTRA)))]
    if connection is not None:
        headers.insert(rng.randint(0, len(headers)), f"{cased('Connection')}: {cased(connection)}")
    return f"GET / HTTP/{version}\r\n{''.join(h + chr(13) + chr(10) for h in headers)}\r\n".encode()


def _stays_open(site: Any, request: bytes) -> bool:
    """Send `request` to `site`; True when the server keeps the connection open after its answer."""
    from netlab.lessons.http.experiments import read_response

    with site.connect() as sock:
        sock.sendall(request)
        read_response(sock)
        sock.settimeout(0.3)
        try:
            return sock.recv(1) != b""
        except TimeoutError:
            return True


@exercise_check
def keeps_connection_open(func: Any) -> Feedback:
    """Exercise: a function (request head, bytes) -> whether the lab's server keeps the connection open after its
    answer; the check writes six requests with names, values and header order drawn at random and sends each live."""
    import random

    if (fb := unanswered(func)) is not None:
        return fb
    if not callable(func):
        return Feedback(False, "Give a function stays_open(request) that returns True or False.")
    from netlab.lessons.http.experiments import site

    rng = random.Random()
    requests = [_request(version, connection, rng) for version, connection in _VARIANTS]
    rng.shuffle(requests)
    with site() as lab_site:
        for request in requests:
            said = func(request)
            if not isinstance(said, bool):
                return Feedback(False, f"Your function returned {type(said).__name__}; return True (the connection "
                                       "stays open) or False (the server closes it).")
            if said == _stays_open(lab_site, request):
                continue
            shown = request.decode().replace("\r\n", "\\r\\n")
            return Feedback(False, f"On the request `{shown}` the server did otherwise. Which version is it, does it "
                                   "carry a Connection header (names and values in any case), and what is that "
                                   "version's default?")
    return Feedback(True, f"Right on all {len(requests)} requests, written in cases and orders drawn just now and sent "
                          "to the lab's server: HTTP/1.1 keeps the connection unless a side says `Connection: close`; "
                          "HTTP/1.0 closes it unless the client asks for keep-alive.")


def _serve_pipelined(conn: Any, bodies: dict[str, bytes], count: int, rng: Any) -> None:
    """Serve one connection as a server that answers only once `count` requests have arrived (so a client that waits
    for each answer before its next request never gets one), then sends every response at once, in random pieces."""
    import time

    with conn:
        conn.settimeout(4.0)
        data = b""
        try:
            while data.count(b"\r\n\r\n") < count:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                data += chunk
        except OSError:
            return
        replies = b""
        for head in data.split(b"\r\n\r\n")[:count]:
            target = head.split(b"\r\n", 1)[0].split(b" ")[1:2]
            body = bodies.get(target[0].decode(errors="replace") if target else "")
            if body is None:
                replies += b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"
            else:
                name = rng.choice(["Content-Length", "content-length", "CONTENT-LENGTH"])
                replies += f"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n{name}: {len(body)}\r\n" \
                           f"X-Served: pipelined\r\n\r\n".encode() + body
        try:
            cuts = sorted(rng.sample(range(1, len(replies)), min(6, len(replies) - 1)))
            for a, b in zip([0, *cuts], [*cuts, len(replies)], strict=True):
                conn.sendall(replies[a:b])
                time.sleep(0.01)
        except OSError:
            return


@exercise_check
def pipelined_bodies(func: Any) -> Feedback:
    """Exercise: a function (sock, paths) -> the bodies, sending every request before reading any response
    (pipelining, RFC 9112 9.3.2), run in the lab against a server that answers only once all requests arrived,
    with paths and body sizes drawn at random (an empty body among them)."""
    import random
    import socket
    import threading

    if (fb := unanswered(func)) is not None:
        return fb
    if not callable(func):
        return Feedback(False, "Give a function pipelined(sock, paths) that returns a list of bodies (bytes).")
    from netlab.core.experiment import lab_or_host
    from netlab.core.sockets import listener

    rng = random.Random()
    sizes = [0, *(rng.randint(1, 40_000) for _ in range(rng.randint(2, 4)))]
    rng.shuffle(sizes)
    bodies = {f"/file/{rng.randrange(10**6)}-{n}": os.urandom(size) for n, size in enumerate(sizes)}
    paths = list(bodies)
    with lab_or_host() as (lab, _where, _why), listener(lab, backlog=4) as listen:
        server = threading.Thread(target=lambda: _serve_pipelined(listen.accept()[0], bodies, len(paths), rng),
                                  daemon=True)
        server.start()
        address = listen.getsockname()
        sock = lab.create_connection(address, timeout=3.0) if lab else socket.create_connection(address, 3.0)
        with sock:
            got: dict[str, Any] = {}

            def call() -> None:
                try:
                    got["returned"] = func(sock, list(paths))
                except BaseException as err:  # the student's exception is the result to judge
                    got["raised"] = err

            worker = threading.Thread(target=call, daemon=True)
            worker.start()
            worker.join(8.0)
        server.join(5.0)
    if worker.is_alive():
        return Feedback(False, "Your function was still busy after 8 s.")
    if isinstance(got.get("raised"), TimeoutError):
        return Feedback(False, f"Your function waited until the socket's 3 s timeout. This server answers once all "
                               f"{len(paths)} requests have arrived: did you send every request before reading?")
    if "raised" in got:
        err = got["raised"]
        return Feedback(False, f"Your function raised {type(err).__name__}: {err}"[:300])
    returned = got.get("returned")
    wanted = [bodies[p] for p in paths]
    if not isinstance(returned, list) or not all(isinstance(b, (bytes, bytearray)) for b in returned):
        return Feedback(False, f"Your function returned {type(returned).__name__}; return a list of bodies (bytes), "
                               "one per path, in order.")
    if len(returned) != len(wanted):
        return Feedback(False, f"{len(paths)} paths, {len(returned)} bodies: one response answers each request, in order.")
    for n, (mine, body) in enumerate(zip(returned, wanted, strict=True), 1):
        if bytes(mine) != body:
            return Feedback(False, f"Body {n} of {len(paths)} ({len(body)} bytes) is not right: the responses follow "
                                   "each other in one stream, cut anywhere; each ends after its Content-Length "
                                   "(the name in any case), and the next starts right after.")
    return Feedback(True, "Every body right, an empty one too: every request went out before the first "
                          "answer (pipelining), and the responses, one after the other in one byte stream cut at "
                          "random places, were told apart by their Content-Length.")
