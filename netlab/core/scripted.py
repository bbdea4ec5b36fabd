"""Run a client function against a scripted TCP server: how a check runs a student's code on the real thing.

A script is a list of steps the server plays on one connection: bytes (sent as one segment of their
own), a float (a pause, seconds), READ (read what the client sent) and, last, KEEP_OPEN (stay open
and silent until the client is done). The client meets short reads and messages split across
segments, as on a real network. This file knows no lesson: the exercises of notebooks 02 and 04 use it.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from netlab.core.experiment import lab_or_host

__all__ = ["KEEP_OPEN", "READ", "ScriptedRun", "against_script"]


@dataclass(frozen=True)
class ScriptedRun:
    """What a function did against a scripted server: its return value or exception, its time (s), whether it hung."""

    returned: Any = None
    raised: BaseException | None = None
    seconds: float = 0.0
    hung: bool = False
    where: str = "lab"  # "lab", or "host" where the lab is refused


# Script steps besides bytes (sent as one segment) and floats (a pause, seconds): READ reads what the
# client sent; KEEP_OPEN, last, keeps the connection open and silent until the client is done.
READ = "read"
KEEP_OPEN = "keep open"


def against_script(client: Callable[[socket.socket], Any], scripts: Sequence[Sequence[bytes | float | str]], *,
                   timeout: float = 5.0) -> list[ScriptedRun]:
    """Run `client(sock)` once per script, each on a new TCP connection to a server that plays it; say what it did.

    For exercises that run the student's own code against the real thing: each bytes step leaves
    as a segment of its own (TCP_NODELAY, then a pause of the script's choosing), so the client
    meets short reads and messages split across segments. The server closes after its script,
    unless the script ends with KEEP_OPEN: then it stays silent until the client is done. The
    server runs in one fresh lab (this host's loopback, 127.0.0.1, where labs are refused);
    `client` runs on a thread of its own and counts as hung after `timeout` seconds, when its
    socket is shut down to free it. The scripts play at the same time, each on its own
    connection, so a check takes as long as its longest script, not their sum.
    """
    with lab_or_host() as (lab, where, _why), contextlib.ExitStack() as stack:
        listener = stack.enter_context(lab.create_server() if lab else socket.create_server(("127.0.0.1", 0)))
        listener.settimeout(timeout)
        address = listener.getsockname()
        plays = []
        for script in scripts:
            sock = stack.enter_context(
                lab.create_connection(address, timeout=timeout) if lab else socket.create_connection(address, timeout))
            conn = stack.enter_context(listener.accept()[0])  # connections are accepted in the order made
            steps = list(script)
            close = not (steps and steps[-1] == KEEP_OPEN)
            plays.append((client, sock, conn, steps if close else steps[:-1], close, timeout, where))
        with concurrent.futures.ThreadPoolExecutor(len(plays) or 1, thread_name_prefix="netlab script") as pool:
            futures = [pool.submit(_play, *play) for play in plays]
        return [future.result() for future in futures]


def _play(client: Callable[[socket.socket], Any], sock: socket.socket, conn: socket.socket,
          script: Sequence[bytes | float | str], close: bool, timeout: float, where: str) -> ScriptedRun:
    conn.settimeout(timeout)
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    outcome: dict[str, Any] = {}

    def run_client() -> None:
        start = time.monotonic()
        try:
            outcome["returned"] = client(sock)
        except BaseException as err:  # the student's exception is the result to judge
            outcome["raised"] = err
        outcome["seconds"] = time.monotonic() - start

    thread = threading.Thread(target=run_client, daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    with contextlib.suppress(OSError):
        for step in script:
            if isinstance(step, (bytes, bytearray)):
                conn.sendall(step)
            elif step == READ:
                conn.recv(65536)
            else:
                time.sleep(float(step))
        if close:
            conn.shutdown(socket.SHUT_WR)
        thread.join(max(0.0, deadline - time.monotonic()))
    if thread.is_alive():
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)  # a recv blocked in the student's code returns now
        thread.join(1.0)
        return ScriptedRun(seconds=timeout, hung=True, where=where)
    return ScriptedRun(outcome.get("returned"), outcome.get("raised"), outcome.get("seconds", 0.0), where=where)
