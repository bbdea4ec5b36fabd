"""The exercise checks of notebook 06: each says what is right or what to look at again.

Every public function marked `@exercise_check` is a check a notebook calls as `netlab.checks.NAME`
(`netlab.checks` finds it here); what a check shares with the others (`Feedback`, "not answered
yet", grading) is in `netlab.core.checking`. A check never reveals the answer.
"""

from __future__ import annotations

import threading
from typing import Any

from netlab.core.checking import Feedback, borrowed, exercise_check, number, unanswered


@exercise_check
def two_syns_timeout(timeout: Any) -> Feedback:
    """Exercise: a connect timeout (seconds, at most 1.8) after which exactly two SYNs left, with 0.2 s to spare, run live."""
    if (fb := unanswered(timeout)) is not None:
        return fb
    if not number(timeout):
        return Feedback(False, f"Give `timeout` in seconds, a number, not {type(timeout).__name__}.")
    if not 0 < timeout <= 1.8:
        return Feedback(False, "Choose a timeout above 0 and at most 1.8 s: the check runs it, and a short one will do.")
    from netlab.lessons.failures.experiments import connect_timeout

    exp = connect_timeout(timeout)
    syns = [s for s in exp.conversation.segments if s.flags == "SYN"]
    if len(syns) < 2:
        return Feedback(False, "Your whole timeout ran out before the kernel's first retransmission. When does it "
                               "resend a SYN? Read the times in the table of section 2.")
    again = syns[1].time - syns[0].time
    if not exp.live:  # the recording ran with a longer timeout: grade the timeout against its SYN times
        if again + 0.2 <= timeout and (len(syns) < 3 or timeout <= syns[2].time - syns[0].time - 0.2):
            return Feedback(True, f"{timeout} s: after the kernel's first retransmission ({again:.2f} s in the recording) "
                                  "and well before its second. Trying it needs the live lab; here only your reasoning "
                                  "is graded.")
        return Feedback(False, "Compare your timeout with the SYN times in the table of section 2: leave 0.2 s on each "
                               "side of the moment it gives up.")
    if len(syns) > 2:
        return Feedback(False, f"{len(syns)} SYNs left in the live run: the kernel retransmitted more than once. "
                               "Give up sooner.")
    if timeout - again < 0.2:
        return Feedback(False, "Two SYNs, but connect gave up less than 0.2 s after the retransmission: on a slower "
                               "run it would come too late. Leave more margin.")
    return Feedback(True, f"Two SYNs in the live run: the retransmission {again:.2f} s after the first, and connect "
                          f"gave up {timeout - again:.2f} s later, before the next one. The kernel's timer, not "
                          "yours, decides when a SYN is resent.")


def _answer_at_eof(conn: Any, greeting: bytes, size: int) -> None:
    """Serve one connection as a server that answers once it has read the whole request (until the client's FIN):
    `greeting` at once, then the request's SHA-256 and `size` bytes derived from it, in pieces; then close."""
    import hashlib
    import time

    with conn:
        conn.settimeout(5.0)
        try:
            conn.sendall(greeting)
            request = bytearray()
            while data := conn.recv(65536):
                request += data
            digest = hashlib.sha256(request).hexdigest().encode()
            body = (digest * (size // len(digest) + 1))[:size]
            reply = digest + b"\n" + body
            for start in range(0, len(reply), 40_000):
                conn.sendall(reply[start:start + 40_000])
                time.sleep(0.005)
        except OSError:  # the client's function gave up, or reset: its verdict says so
            pass


@exercise_check
def half_close_request(func: Any) -> Feedback:
    """Exercise: a function (sock, request) -> every byte the server sent, for a server that answers only after the
    request's end (the client's FIN, `shutdown(SHUT_WR)`); run in the lab with requests and answers of drawn sizes."""
    import hashlib
    import os
    import random
    import socket

    if (fb := unanswered(func)) is not None:
        return fb
    if not callable(func):
        return Feedback(False, "Give a function send_and_read(sock, request) that returns the bytes the server sent.")
    from netlab.core.experiment import lab_or_host
    from netlab.core.sockets import listener

    rng = random.Random()
    cases = [(b"", os.urandom(rng.randint(10, 200)), rng.randint(100, 1000), "a short request and a short answer"),
             (b"hello\n", os.urandom(rng.randint(300_000, 500_000)), rng.randint(300_000, 600_000),
              "a request of several hundred kB, and an answer as long, after a greeting sent at once")]
    with lab_or_host() as (lab, _where, _why), listener(lab, backlog=4) as listen:
        for greeting, request, size, what in cases:
            server = threading.Thread(target=lambda g=greeting, n=size: _answer_at_eof(listen.accept()[0], g, n),
                                      daemon=True)
            server.start()
            sock = lab.create_connection(listen.getsockname(), timeout=3.0) if lab else \
                socket.create_connection(listen.getsockname(), 3.0)
            with sock:
                out = _bounded_call(lambda s=sock, r=request: func(s, r), 8.0)
            server.join(6.0)
            digest = hashlib.sha256(request).hexdigest().encode()
            wanted = greeting + digest + b"\n" + (digest * (size // len(digest) + 1))[:size]
            if out["hung"]:
                return Feedback(False, f"With {what}, your function was still busy after 8 s.")
            if isinstance(out.get("raised"), TimeoutError):
                return Feedback(False, f"With {what}, your function waited until the socket's 3 s timeout: this "
                                       "server answers only once it has read the end of your request. How does it "
                                       "learn where your request ends, while your socket stays open to read?")
            if "raised" in out:
                err = out["raised"]
                return Feedback(False, f"With {what}, your function raised {type(err).__name__}: {err}"[:300])
            got = out.get("returned")
            if not isinstance(got, (bytes, bytearray)):
                return Feedback(False, f"With {what}, your function returned {type(got).__name__}; return bytes.")
            if bytes(got) != wanted:
                if wanted.startswith(bytes(got)):
                    return Feedback(False, f"With {what}, your function returned {len(got)} of the {len(wanted)} bytes "
                                           "the server sent: read until the server closes (recv returns b'').")
                return Feedback(False, f"With {what}, your function returned bytes that are not what the server sent: "
                                       "did the server get your whole request, and did you keep every byte it sent?")
    return Feedback(True, "Right on both: shutdown(SHUT_WR) told the server where your request ended (a FIN) while "
                          "your socket kept reading, and you read the answer until the server's own FIN.")


_RETRY_HELPERS = {"connect_with_retry", "retry_refused", "RetryError"}
# Attempts against the port where nothing listens: three show the doubling (0.05 s, then 0.1 s)
# and the give-up; a fourth would only add a 0.2 s wait to every check.
_NEVER_ATTEMPTS = 3


def _bounded_call(func: Any, timeout: float) -> dict[str, Any]:
    """Run `func()` on a thread of its own for at most `timeout` seconds: returned, raised, hung, seconds."""
    import time

    outcome: dict[str, Any] = {"hung": False}

    def target() -> None:
        start = time.monotonic()
        try:
            outcome["returned"] = func()
        except BaseException as err:  # the student's exception is the result to judge
            outcome["raised"] = err
        outcome["seconds"] = time.monotonic() - start

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(timeout)
    outcome["hung"] = thread.is_alive()
    return outcome


def _retry_cases(func: Any, lab: Any) -> dict[str, Any]:
    """Run the student's connect_retrying(connect, attempts, first_delay) on three cases, up to the first that hangs:
    each case's start, the times of its calls to connect, and the outcome."""
    import socket
    import time

    def new_socket() -> socket.socket:
        return lab.socket() if lab else socket.socket()

    def connector(address: tuple[str, int], calls: list[float], error: BaseException | None = None) -> Any:
        def connect() -> socket.socket:
            calls.append(time.monotonic())
            if error is not None:
                raise error
            return lab.create_connection(address, timeout=1.0) if lab else socket.create_connection(address, 1.0)
        return connect

    results: dict[str, Any] = {}
    with new_socket() as late, new_socket() as never:
        late.bind(("127.0.0.1", 0))  # bound, not listening: a SYN to it is refused, until listen()
        never.bind(("127.0.0.1", 0))
        calls: list[float] = []
        timer = threading.Timer(0.3, late.listen)
        timer.start()
        start = time.monotonic()
        out = _bounded_call(lambda: func(connector(late.getsockname(), calls), 6, 0.05), 4.0)
        timer.join()
        results["late"] = (start, calls, out)
        if out["hung"]:
            _close_returned(results)
            return results
        calls = []
        start = time.monotonic()
        out = _bounded_call(lambda: func(connector(never.getsockname(), calls), _NEVER_ATTEMPTS, 0.05), 4.0)
        results["never"] = (start, calls, out)
    if out["hung"]:
        _close_returned(results)
        return results
    calls = []
    start = time.monotonic()
    out = _bounded_call(lambda: func(connector(("127.0.0.1", 9), calls, ValueError("not an address")), 4, 0.05), 4.0)
    results["bug"] = (start, calls, out)
    _close_returned(results)
    return results


def _close_returned(results: dict[str, Any]) -> None:
    for _, _, out in results.values():
        sock = out.get("returned")
        if hasattr(sock, "close"):
            sock.close()


def _waits_double(calls: list[float], first_delay: float) -> bool:
    """True if the pauses between calls are first_delay, then twice the one before (each up to 50 % + 40 ms longer)."""
    waits = [b - a for a, b in zip(calls, calls[1:])]
    return all(first_delay * 2**n * 0.9 <= w <= first_delay * 2**n * 1.5 + 0.04 for n, w in enumerate(waits))


@exercise_check
def retrying_connect(func: Any) -> Feedback:
    """Exercise: connect_retrying(connect, attempts, first_delay), run in the lab against a server that starts late,
    one that never listens, and a connect that fails with a bug rather than a refusal."""
    if (fb := unanswered(func)) is not None:
        return fb
    if not callable(func):
        return Feedback(False, "Give a function connect_retrying(connect, attempts, first_delay) that returns a socket.")
    if (name := borrowed(func, _RETRY_HELPERS)) is not None:
        return Feedback(False, f"Your function uses netlab's `{name}`: write the loop yourself.")
    from netlab.core.experiment import lab_or_host

    with lab_or_host() as (lab, _where, _why):
        runs = _retry_cases(func, lab)
    start, calls, out = runs["late"]
    what = "a server that starts listening 0.3 s after your first attempt (attempts=6, first_delay=0.05)"
    if out["hung"]:
        return Feedback(False, f"Against {what}, your function was still busy after 4 s.")
    if "raised" in out:
        err = out["raised"]
        return Feedback(False, f"Against {what}, your function raised {type(err).__name__}: {err}. Did it wait and try again?")
    sock = out.get("returned")
    if not hasattr(sock, "getpeername"):
        return Feedback(False, f"Against {what}, your function returned {repr(sock)[:40]}; return the connected socket.")
    if len(calls) < 2:
        return Feedback(False, f"Against {what}, your function connected at once: how?")
    if not _waits_double(calls, 0.05):
        return Feedback(False, f"Against {what}, the pauses between your attempts were not first_delay, then double "
                               "the one before.")
    start, calls, out = runs["never"]
    what = f"a port where nothing ever listens (attempts={_NEVER_ATTEMPTS}, first_delay=0.05)"
    if out["hung"]:
        return Feedback(False, f"Against {what}, your function was still busy after 4 s: does it stop after `attempts`?")
    if len(calls) != _NEVER_ATTEMPTS:
        return Feedback(False, f"Against {what}, your function called connect {len(calls)} times, not `attempts` times.")
    if not _waits_double(calls, 0.05):
        return Feedback(False, f"Against {what}, the pauses between your attempts were not first_delay, then double "
                               "the one before.")
    if "raised" not in out:
        return Feedback(False, f"Against {what}, your function returned {repr(out.get('returned'))[:40]}: when every "
                               "attempt fails, raise, so the caller cannot mistake it for a socket.")
    err = out["raised"]
    chain = [err, err.__cause__, err.__context__]
    if not any(isinstance(e, ConnectionRefusedError) for e in chain):
        return Feedback(False, f"Against {what}, your function raised {type(err).__name__}, which hides why: raise the "
                               "last ConnectionRefusedError (or chain it with `from`).")
    if out["seconds"] - (calls[-1] - start) > 0.1:
        return Feedback(False, f"Against {what}, your function waited again after its last attempt: nothing comes of it.")
    start, calls, out = runs["bug"]
    what = "a connect that raises ValueError (a bug in the caller, not a refusal)"
    if out["hung"] or len(calls) != 1 or not isinstance(out.get("raised"), ValueError):
        return Feedback(False, f"Against {what}, your function tried {len(calls)} times" + (
            "" if isinstance(out.get("raised"), ValueError) else " and did not let the ValueError out")
            + ": retry only what a retry can mend, a refused connection.")
    return Feedback(True, "Right on all three: it waited first_delay, then twice as long each time, until the server "
                          "listened; gave up after `attempts` with the refusal itself; and let a bug out at once.")
