"""Notebook 03: the TCP handshake and teardown, a refused connection, and two timers that shape
small exchanges (the delayed ACK, with Nagle's algorithm) and restarts (TIME-WAIT), captured in the lab."""

from __future__ import annotations

import socket
import statistics
import threading
import time
from collections.abc import Callable
from typing import Any

from netlab.core.arguments import check_bytes
from netlab.core.errors import LabError
from netlab.core.experiment import LIVE, Experiment, live_or_recorded, run
from netlab.core.lab import Lab
from netlab.core.sockets import connect_to_unused_port, hello

__all__ = ["handshake", "refused", "nagle", "restart_server", "RECORDINGS"]

_TIMEOUT = 5.0  # seconds: every wait in these experiments


def handshake(message: bytes = b"Hello, World!", close_delay: float = 0.0) -> Experiment:
    """Connect to an echo server in the lab, send `message`, read the echo, close: captured.

    `close_delay` (seconds) holds the server's close after the client's FIN, so the teardown
    can show four segments instead of three.
    """
    return run(lambda lab, address: hello(address, message, lab=lab),
               recorded="handshake" if close_delay == 0 else "handshake-slow-close", close_delay=close_delay)


def refused() -> Experiment:
    """Connect to a lab port where nothing listens: the SYN is answered by a reset."""
    return run(connect_to_unused_port, recorded="refused", server=False)


def nagle(nodelay: bool = False, requests: int = 10, head: bytes = b"GET /", body: bytes = b" HTTP\n") -> Experiment:
    """A client writes each request in two small sends (write, write) and then reads the answer: captured.

    With Nagle's algorithm (the default) the second send waits until the first is acknowledged,
    and the server's kernel delays that ACK (it expects to answer soon): each request stalls for
    a delayed-ACK timeout, about 40 ms on Linux. `nodelay=True` sets TCP_NODELAY on the client,
    and the second send leaves at once. `exp.result` holds each request's time in milliseconds.
    """
    if not isinstance(nodelay, bool):
        raise TypeError(f"nodelay is True or False, not {nodelay!r}")
    if not isinstance(requests, int) or isinstance(requests, bool) or not 1 <= requests <= 50:
        raise ValueError(f"requests must be 1..50, not {requests!r}")
    check_bytes("head", head, limit=512)
    check_bytes("body", body, limit=512)
    size = len(head) + len(body)

    def live(lab: Lab) -> Experiment:
        with lab.capture(timeout=_TIMEOUT) as cap:
            with lab.create_server() as listener, lab.create_connection(listener.getsockname(), _TIMEOUT) as sock:
                if nodelay:
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                listener.settimeout(_TIMEOUT)
                conn, _ = listener.accept()
                with conn:
                    conn.settimeout(_TIMEOUT)
                    server = threading.Thread(target=_answer_requests, args=(conn, size), daemon=True)
                    server.start()
                    times = []
                    for _ in range(requests):
                        start = time.perf_counter()
                        sock.sendall(head)  # write
                        sock.sendall(body)  # write
                        if sock.recv(16) != b"ok":  # read
                            raise LabError("the server's answer was not 'ok'")
                        times.append(round((time.perf_counter() - start) * 1000, 3))
                    sock.shutdown(socket.SHUT_WR)
                    server.join(_TIMEOUT)
            states = lab.wait_until(lambda socks: all(s.state in ("TIME-WAIT", "LISTEN") for s in socks), _TIMEOUT)
        return Experiment(cap.packets, "live", LIVE, kernel_states=[s for s in states if s.state != "LISTEN"],
                          result={"nodelay": nodelay, "ms per request": times,
                                  "median ms": round(statistics.median(times), 3)})

    return live_or_recorded(live, "handshake-nodelay" if nodelay else "handshake-nagle")


def _answer_requests(conn: socket.socket, size: int) -> None:
    """The server: read each request whole (`size` bytes), then answer b"ok"; stop when the client closes."""
    while True:
        data = b""
        while len(data) < size:
            chunk = conn.recv(size - len(data))
            if not chunk:
                return
            data += chunk
        conn.sendall(b"ok")


def restart_server(reuse_address: bool = False) -> Experiment:
    """Start a server, serve one client, close first (so its side waits in TIME-WAIT), then start it again on the same port.

    Without SO_REUSEADDR the second `bind` fails with "Address already in use" (EADDRINUSE) for
    as long as the old connection sits in TIME-WAIT (60 s on Linux). With SO_REUSEADDR on both
    the old and the new listening socket, it succeeds at once. `exp.result` says what each
    bind did; `exp.kernel_states` is `ss` at the moment of the second bind.
    """
    if not isinstance(reuse_address, bool):
        raise TypeError(f"reuse_address is True or False, not {reuse_address!r}")

    def listening(lab: Lab, address: tuple[str, int]) -> socket.socket:
        sock = lab.socket()
        if reuse_address:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(address)
            sock.listen()
        except BaseException:
            sock.close()
            raise
        return sock

    def live(lab: Lab) -> Experiment:
        result: dict[str, Any] = {"SO_REUSEADDR": reuse_address}
        with lab.capture(timeout=_TIMEOUT) as cap:
            with listening(lab, ("127.0.0.1", 0)) as first:
                address = first.getsockname()
                result["first bind"] = f"{address[0]}:{address[1]}"
                first.settimeout(_TIMEOUT)
                with lab.create_connection(address, _TIMEOUT) as client:
                    conn, _ = first.accept()
                    conn.close()  # the server closes first: its side of the connection will wait in TIME-WAIT
                    client.settimeout(_TIMEOUT)
                    client.recv(1)  # the server's FIN arrived
            states = lab.wait_until(lambda socks: any(s.state == "TIME-WAIT" for s in socks)
                                    and not any(s.state in ("FIN-WAIT-2", "LAST-ACK", "CLOSE-WAIT") for s in socks), _TIMEOUT)
            try:
                with listening(lab, address):
                    result["second bind"] = "bound: the server runs again"
            except OSError as err:
                result["second bind"] = repr(err)
        return Experiment(cap.packets, "live", LIVE, kernel_states=[s for s in states if s.state != "LISTEN"],
                          result=result)

    return live_or_recorded(live, "handshake-reuse" if reuse_address else "handshake-restart")


# The recordings shipped in netlab/data, re-recorded by `python -m netlab record`.
RECORDINGS: dict[str, Callable[[], Experiment]] = {
    "handshake": handshake,
    "handshake-slow-close": lambda: handshake(close_delay=0.2),
    "refused": refused,
    "handshake-nagle": nagle,
    "handshake-nodelay": lambda: nagle(nodelay=True),
    "handshake-restart": restart_server,
    "handshake-reuse": lambda: restart_server(reuse_address=True),
}
