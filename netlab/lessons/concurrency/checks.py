"""The exercise checks of notebook 07: each says what is right or what to look at again.

Every public function marked `@exercise_check` is a check a notebook calls as `netlab.checks.NAME`
(`netlab.checks` finds it here); what a check shares with the others (`Feedback`, "not answered
yet", grading) is in `netlab.core.checking`. A check never reveals the answer.
"""

from __future__ import annotations

import os
import threading
from typing import Any

from netlab.core.checking import Feedback, exercise_check, number, unanswered


@exercise_check
def mean_round_trip(point: Any, answer: Any) -> Feedback:
    """Exercise: the mean echo round trip (ms) of the student's own load run, by Little's law: clients / echoes per second."""
    if (fb := unanswered(answer)) is not None:
        return fb
    if not number(answer):
        return Feedback(False, f"Give milliseconds, a number, not {type(answer).__name__}.")
    expected = point.clients / point.requests_per_second * 1000
    if abs(answer - expected) <= 0.01 * expected:
        return Feedback(True, f"{expected:.2f} ms: with one echo in flight per client, {point.clients} echoes are "
                              "always under way, and the rate times the time each takes must equal that number "
                              "(Little's law).")
    if abs(answer - expected / 1000) <= 0.01 * expected / 1000:
        return Feedback(False, "That looks like seconds; give milliseconds.")
    if abs(answer - 1000 / point.requests_per_second) <= 0.01 * expected / point.clients:
        return Feedback(False, "That is the time between two echoes of the whole server; each client waits for its "
                               "own, with the others in flight at the same time.")
    if abs(answer - point.p50_ms) <= 0.02 * max(point.p50_ms, 0.001):
        return Feedback(False, "That is the median the table printed; work the mean out from the rate.")
    return Feedback(False, "Each client always has exactly one echo in flight: how many are under way at any moment, "
                           "and how many finish per second?")


@exercise_check
def blocking_prediction(predictions: Any) -> Feedback:
    """Exercise: predicted echoes per second of "threads" and "selectors" when each echo blocks 5 ms, 10 clients, run live."""
    if (fb := unanswered(predictions)) is not None:
        return fb
    if not isinstance(predictions, dict) or set(predictions) != {"threads", "selectors"} \
            or not all(number(v) and v > 0 for v in predictions.values()):
        return Feedback(False, 'Give a dict {"threads": echoes per second, "selectors": echoes per second}, two '
                               "positive numbers.")
    from netlab.lessons.concurrency.experiments import blocking_work

    clients, work = 10, 0.005
    measured = blocking_work(clients=clients, messages=10, work=work)
    threads, selectors = predictions["threads"], predictions["selectors"]
    # Wide margins: on a busy machine every sleep overshoots while its thread waits for a core, so
    # both rates fall below the ideal ones (clients / work, 1 / work); a prediction of the ideal is right.
    sel_ok = 0.6 * measured["selectors"] <= selectors <= 1.5 * max(measured["selectors"], 1 / work)
    thr_ok = 0.5 * measured["threads"] <= threads <= max(4 * measured["threads"], 1.5 * clients / work)
    if sel_ok and thr_ok and threads >= 4 * selectors:
        return Feedback(True, f"Measured just now: threads {measured['threads']:.0f}/s, selectors "
                              f"{measured['selectors']:.0f}/s. A blocking call stops only its own thread, but it "
                              "stops an event loop, and every client with it: the sleeps add up one after another.")
    if not sel_ok and abs(selectors - threads) <= 0.25 * threads:
        return Feedback(False, "You predict about the same for both. While the event loop sleeps, can it serve "
                               "anyone else?")
    if not sel_ok:
        return Feedback(False, ("Too many" if selectors > measured["selectors"] else "Too few") + " for selectors: "
                               "one thread serves every client, and each echo holds it for 5 ms.")
    return Feedback(False, ("Too many" if threads > measured["threads"] else "Too few") + " for threads: each client "
                           "has a thread of its own, and ten of them can sleep at the same time.")


def _client(address: tuple[str, int], lab: Any, pieces: list[bytes], expect: int, timeout: float) -> tuple[bytes, bool]:
    """Send `pieces` 20 ms apart and read until `expect` bytes of reply are back (or `timeout` seconds pass), then
    shut down writing and wait as long for the server's end: (the reply received, whether the server then closed)."""
    import socket
    import time

    sock = lab.create_connection(address, timeout=timeout) if lab else socket.create_connection(address, timeout)
    with sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        got = bytearray()
        try:
            for piece in pieces:
                sock.sendall(piece)
                time.sleep(0.02)
            while len(got) < expect and (data := sock.recv(65536)):
                got += data
            sock.shutdown(socket.SHUT_WR)
            while data := sock.recv(65536):
                got += data
        except OSError:  # a timeout included
            return bytes(got), False
        return bytes(got), True


async def _stop_serving(server: Any) -> None:
    """Close an asyncio server and cancel its handlers (a student's handler may wait forever)."""
    import asyncio

    server.close()
    tasks = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def _replies(data: bytes) -> bytes:
    """What the line-length server answers to `data` (the lines' lengths, one a line; no reply to a last piece
    without a newline). Computed here from the data, for cases drawn at random."""
    return b"".join(b"%d\n" % len(line) for line in data.split(b"\n")[:-1])


def _cut(data: bytes, parts: int, rng: Any) -> list[bytes]:
    """`data` cut at `parts - 1` random places (a line's newline may fall anywhere in a piece)."""
    cuts = sorted(rng.sample(range(1, len(data)), parts - 1))
    return [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]


def _lengths_verdict(sent: list[list[bytes]], replies: list[tuple[bytes, bool]], errors: list[BaseException]) -> Feedback | None:
    """What went wrong in asyncio_line_lengths' runs, or None."""
    if errors:
        limit = " (one line is 100 kB long: how long a line does your way of reading take?)" \
            if isinstance(errors[0], ValueError) else ""
        return Feedback(False, f"Your handler raised {type(errors[0]).__name__}: {str(errors[0])[:150]}{limit}")
    for index, (pieces, (got, ended)) in enumerate(zip(sent, replies, strict=True)):
        big = index == len(sent) - 1
        what = "The client that sent 20,000 lines, and one of 100 kB, at once" if big else "A client"
        wanted = _replies(b"".join(pieces))
        if got != wanted:
            if wanted.startswith(got):
                return Feedback(False, f"{what} got {len(got.splitlines())} of its {len(wanted.splitlines())} replies "
                                       "before it closed its side: answer each line as soon as its newline has come, "
                                       "whatever piece it came in" + (" (how long a line does `readline` take?)"
                                                                       if big else "") + ".")
            return Feedback(False, f"{what} got replies that are not its lines' lengths: count the bytes before each "
                                   "newline, across the pieces a line arrives in, and nothing after the last newline.")
        if not ended:
            return Feedback(False, "Every reply came back, but when a client closed its side, your handler did not "
                                   "close the connection: the client waits for the end forever.")
    return None


@exercise_check
def asyncio_line_lengths(func: Any) -> Feedback:
    """Exercise: an asyncio handler `async def lengths(reader, writer)` that answers each line with its length, run in
    the lab with an idle client connected, 20 clients whose lines arrive cut at random places, and one client that
    sends 20,000 short lines and one of 100 kB at once; each client closes and waits for the end."""
    import asyncio
    import inspect as _inspect
    import random

    if (fb := unanswered(func)) is not None:
        return fb
    if not _inspect.iscoroutinefunction(func):
        return Feedback(False, "Give a coroutine function: `async def lengths(reader, writer): ...`.")
    import contextlib
    import socket
    from concurrent.futures import ThreadPoolExecutor

    from netlab.core.experiment import lab_or_host
    from netlab.core.sockets import listener

    errors: list[BaseException] = []

    async def guarded(reader: Any, writer: Any) -> None:
        try:
            await func(reader, writer)
        except asyncio.CancelledError:  # the check is over (the idle client's handler still waits): end quietly
            writer.close()
        except Exception as err:
            errors.append(err)
            writer.close()

    rng = random.Random(os.urandom(8))

    def lines(count: int, longest: int) -> bytes:
        return b"".join(os.urandom(rng.randint(0, longest)).hex().encode()[:longest] + b"\n" for _ in range(count))

    sent = [_cut(lines(rng.randint(2, 5), 60) + b"a tail", rng.randint(3, 5), rng) for _ in range(20)]
    sent.append([lines(10_000, 8) + b"x" * 100_000 + b"\n" + lines(10_000, 8)])
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    verdict = server = None
    with lab_or_host() as (lab, _where, _why), listener(lab, backlog=64) as listen:
        try:
            server = asyncio.run_coroutine_threadsafe(asyncio.start_server(guarded, sock=listen), loop).result(5)
            address = listen.getsockname()
            idle = lab.create_connection(address, timeout=5) if lab else socket.create_connection(address, 5)
            with idle, ThreadPoolExecutor(len(sent)) as pool:
                runs = [pool.submit(_client, address, lab, pieces, len(_replies(b"".join(pieces))), 5.0)
                        for pieces in sent]
                verdict = _lengths_verdict(sent, [f.result() for f in runs], errors)
        finally:
            responsive = threading.Event()  # a handler that blocks the loop would leave _stop_serving never run
            loop.call_soon_threadsafe(responsive.set)
            if server is not None and responsive.wait(1.0):
                with contextlib.suppress(Exception):
                    asyncio.run_coroutine_threadsafe(_stop_serving(server), loop).result(2.0)
            loop.call_soon_threadsafe(loop.stop)
            thread.join(2.0)
            if not thread.is_alive():
                loop.close()
    if verdict is not None:
        return verdict
    return Feedback(True, "Right on all of it: each line's length as soon as its newline came, however the lines were "
                          "cut, 21 clients served at once by one thread while another sat idle, a 100 kB line counted "
                          "too, and each connection closed when its client did.")
