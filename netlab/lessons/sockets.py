"""Notebook 02: what each socket call puts on the wire, TCP as a byte stream, UDP for contrast.

Each experiment runs live in a lab, or shows a capture recorded in netlab/data when the lab is
refused; the program-side facts a capture cannot show (how many bytes each recv returned, which
call sent which segment) travel in the recording's .json. Each waits until the network has
settled after a call (the peer's ACK arrived, the kernel reached the next state) before the next
call, so every call's segments are its own and the counts are the same on every run.
"""

from __future__ import annotations

import contextlib
import select
import socket
import time
from collections.abc import Callable
from typing import Any

from netlab.core.arguments import check_bytes
from netlab.core.conversation import Segment
from netlab.core.errors import LabError
from netlab.core.experiment import LIVE, Experiment, live_or_recorded, run
from netlab.core.lab import Lab
from netlab.core.sockets import unacknowledged

__all__ = ["socket_walk", "walk_steps", "two_sends_one_recv", "one_send_many_recvs", "udp_exchange", "Datagrams",
           "RECORDINGS"]

_SETTLE_TIMEOUT = 3.0  # seconds; the slowest settling is a delayed ACK (40 ms on Linux)


def _wait_for(done: Callable[[], bool], what: str, timeout: float = _SETTLE_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            raise LabError(f"{what} did not happen within {timeout:g} s")
        time.sleep(0.001)


def _settled_states(lab: Lab, done: Callable[[set[str]], bool], what: str) -> None:
    states = lab.wait_until(lambda socks: done({s.state for s in socks}), _SETTLE_TIMEOUT)
    if not done({s.state for s in states}):
        raise LabError(f"{what} did not happen within {_SETTLE_TIMEOUT:g} s (the lab's sockets: "
                       f"{', '.join(sorted({s.state for s in states})) or 'none'})")


def _live_or_recorded(client: Callable[[Lab, Any], Any], recorded: str) -> Experiment:
    exp = run(client, recorded=recorded, server=False)
    if exp.live and isinstance(exp.result, BaseException):
        raise LabError(f"the experiment failed in the lab: {exp.result}")
    return exp


def socket_walk(message: bytes = b"Hello") -> Experiment:
    """Call the socket API one step at a time in the lab, capturing what each call puts on the wire.

    A server socket is created, bound and put to listen; a client connects, sends `message`,
    the server echoes it, both close. Each call runs inside a capture of its own, which ends
    only once the network has settled, so every segment belongs to exactly one call.
    `walk_steps(exp)` pairs each call with its segments.
    """
    check_bytes("message", message)
    return live_or_recorded(lambda lab: _walk(lab, message), "sockets-walk")


def _walk(lab: Lab, message: bytes) -> Experiment:
    packets: list = []
    steps: list[list[Any]] = []
    with contextlib.ExitStack() as stack:

        def step(call: str, action: Callable[[], Any], settled: Callable[[], None] | None = None) -> Any:
            # Kernel timestamps cannot split one capture between calls: a fresh lab's first
            # packets may be stamped late. A capture per call can.
            with lab.capture(timeout=_SETTLE_TIMEOUT) as cap:
                value = action()
                if settled is not None:
                    settled()
            tcp = [p for p in cap.packets if _is_tcp(p)]
            packets.extend(tcp)
            steps.append([call, len(tcp)])
            return value

        server = stack.enter_context(step("server = socket()", lab.socket))
        step('server.bind(("127.0.0.1", 0))', lambda: server.bind(("127.0.0.1", 0)))
        step("server.listen()", server.listen)
        client = stack.enter_context(step("client = socket()", lab.socket))
        client.settimeout(_SETTLE_TIMEOUT)
        server.settimeout(_SETTLE_TIMEOUT)
        # connect() returns when the SYN-ACK arrives; the handshake is over once the client's
        # ACK has put the connection in the listener's accept queue (it becomes readable).
        step("client.connect(address)", lambda: client.connect(server.getsockname()),
             lambda: _wait_for(lambda: bool(select.select([server], [], [], 0)[0]), "the handshake's last ACK"))
        conn, _peer = step("conn, peer = server.accept()", server.accept)
        stack.enter_context(conn)
        conn.settimeout(_SETTLE_TIMEOUT)
        acked = lambda sock: lambda: _wait_for(lambda: unacknowledged(sock) == 0, "the peer's ACK")  # noqa: E731
        step(f"client.sendall({message!r})", lambda: client.sendall(message), acked(client))
        data = step("data = conn.recv(1024)", lambda: conn.recv(1024))
        step("conn.sendall(data)", lambda: conn.sendall(data), acked(conn))
        step("client.recv(1024)", lambda: client.recv(1024))
        step("client.close()", client.close,
             lambda: _settled_states(lab, lambda s: "FIN-WAIT-2" in s, "the ACK of the client's FIN"))
        step("conn.close()", conn.close,
             lambda: _settled_states(lab, lambda s: not s & {"LAST-ACK", "CLOSE-WAIT", "FIN-WAIT-2"},
                                     "the ACK of the server's FIN"))
        step("server.close()", server.close)
        states = lab.socket_states()
    return Experiment(packets, "live", LIVE, kernel_states=[s for s in states if s.state != "LISTEN"], result=steps)


def _is_tcp(pkt: Any) -> bool:
    from scapy.layers.inet import TCP

    return TCP in pkt


def walk_steps(exp: Experiment) -> list[tuple[str, list[Segment]]]:
    """Pair each call of a `socket_walk()` with the segments it put on the wire (in capture order)."""
    segments = iter(exp.conversation.segments)
    return [(call, [next(segments) for _ in range(count)]) for call, count in exp.result]


def two_sends_one_recv(first: bytes = b"Hello, ", second: bytes = b"World!") -> Experiment:
    """Send two messages as two segments, then read once: one recv returns both (TCP keeps no boundaries).

    The receiver reads only after both segments have arrived and been acknowledged, so the
    outcome does not depend on timing: `exp.result` lists what was sent and what each recv returned.
    """
    check_bytes("first", first)
    check_bytes("second", second)

    def client(lab: Lab, _address: Any) -> dict[str, list[str]]:
        with lab.create_server() as listener, lab.create_connection(listener.getsockname()) as sock:
            listener.settimeout(_SETTLE_TIMEOUT)
            conn, _ = listener.accept()
            with conn:
                conn.settimeout(_SETTLE_TIMEOUT)
                for message in (first, second):
                    sock.sendall(message)
                    # Wait for the ACK: the next send then leaves as a segment of its own.
                    _wait_for(lambda: unacknowledged(sock) == 0, "the receiver's ACK")
                received = conn.recv(1024)
        return {"sent": [first.decode(), second.decode()], "received": [received.decode()]}

    return _live_or_recorded(client, "sockets-two-sends")


def one_send_many_recvs(size: int = 3000, bufsize: int = 1024) -> Experiment:
    """Send `size` bytes in one sendall; the receiver reads with recv(`bufsize`) until it has them all.

    The receiver starts reading once all bytes have arrived, so the split is the same on every
    run: a recv returns at most `bufsize` bytes. `exp.result` holds the size of each recv.
    """
    if not all(isinstance(n, int) and not isinstance(n, bool) for n in (size, bufsize)):
        raise TypeError(f"size and bufsize are numbers of bytes (ints), not {size!r} and {bufsize!r}")
    if not 0 < size <= 60_000 or bufsize <= 0:
        raise ValueError(f"size must be 1..60000 bytes (one loopback segment) and bufsize positive, not {size} and {bufsize}")

    def client(lab: Lab, _address: Any) -> dict[str, Any]:
        with lab.create_server() as listener, lab.create_connection(listener.getsockname()) as sock:
            listener.settimeout(_SETTLE_TIMEOUT)
            conn, _ = listener.accept()
            with conn:
                conn.settimeout(_SETTLE_TIMEOUT)
                sock.sendall(bytes(size))
                _wait_for(lambda: unacknowledged(sock) == 0, "the receiver's ACK")
                sizes = []
                while sum(sizes) < size:
                    sizes.append(len(conn.recv(bufsize)))
        return {"sent": size, "bufsize": bufsize, "recvs": sizes}

    return _live_or_recorded(client, "sockets-one-send")


class Datagrams(Experiment):
    """A UDP exchange captured in the lab: the datagrams on the wire and what each recvfrom returned."""

    @property
    def client(self) -> tuple[str, int]:
        """The address:port that sent the first datagram."""
        from scapy.layers.inet import IP, UDP

        first = self.packets[0]
        return str(first[IP].src), int(first[UDP].sport)

    def table(self) -> str:
        """One line per datagram: direction, flags (none: UDP has none), payload length and bytes."""
        from scapy.layers.inet import IP, UDP

        lines = [f"UDP, {self.source}: {len(self.packets)} datagrams",
                 f"{'#':>3}  {'dir':<4} {'len':>4}  payload"]
        for number, pkt in enumerate(self.packets, 1):
            sender = (str(pkt[IP].src), int(pkt[UDP].sport))
            payload = bytes(pkt[UDP].payload)[: int(pkt[UDP].len) - 8]
            lines.append(f"{number:>3}  {'C→S' if sender == self.client else 'S→C':<4} {len(payload):>4}  {payload!r}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()


def udp_exchange(messages: tuple[bytes, ...] = (b"one", b"two", b"three")) -> Datagrams:
    """Send `messages` as UDP datagrams in the lab and read each with one recvfrom(1024); capture it all.

    No connection is set up first, and each recvfrom returns exactly one datagram: UDP keeps
    message boundaries. The server answers the last datagram with b"got 3".
    """
    if not isinstance(messages, (tuple, list)) or not messages:
        raise ValueError(f"messages must be a non-empty tuple of bytes, not {messages!r}")
    for n, message in enumerate(messages):
        check_bytes(f"messages[{n}]", message, limit=1024)
    return live_or_recorded(lambda lab: _udp_exchange(lab, messages), "udp-exchange", kind=Datagrams)


def _udp_exchange(lab: Lab, messages: tuple[bytes, ...]) -> Datagrams:
    with lab.capture() as cap:
        with lab.socket(socket.AF_INET, socket.SOCK_DGRAM) as server, \
                lab.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
            server.bind(("127.0.0.1", 0))
            server.settimeout(_SETTLE_TIMEOUT)
            client.settimeout(_SETTLE_TIMEOUT)
            for message in messages:
                client.sendto(message, server.getsockname())
            received = []
            for _ in messages:
                data, peer = server.recvfrom(1024)
                received.append(data.decode())
            server.sendto(f"got {len(received)}".encode(), peer)
            reply = client.recv(1024).decode()
    return Datagrams(cap.packets, "live", LIVE,
                     result={"sent": [m.decode() for m in messages], "received": received, "reply": reply})


# The recordings shipped in netlab/data, re-recorded by `python -m netlab record`.
RECORDINGS: dict[str, Callable[[], Experiment]] = {
    "sockets-walk": socket_walk,
    "sockets-two-sends": two_sends_one_recv,
    "sockets-one-send": one_send_many_recvs,
    "udp-exchange": udp_exchange,
}

