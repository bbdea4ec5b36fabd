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
import threading
import time
from collections.abc import Callable
from typing import Any

from netlab.core.arguments import check_bytes
from netlab.core.conversation import Segment
from netlab.core.errors import LabError, WaitTimeout
from netlab.core.experiment import LIVE, Experiment, live_or_recorded, load_recorded, run
from netlab.core.lab import Lab
from netlab.core.programs import ProgramMissing, program
from netlab.core.sockets import unacknowledged

__all__ = ["socket_walk", "walk_steps", "two_sends_one_recv", "one_send_many_recvs", "udp_exchange", "Datagrams",
           "short_read", "udp_loss", "two_clients", "run_server",
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


def short_read(pieces: tuple[bytes, ...] = (b"Hello", b", Wor", b"ld!"), pause: float = 0.1) -> Experiment:
    """A peer sends one message in pieces, `pause` seconds apart; the reader's first recv(1024) returns only part of it.

    The reader calls recv at once, as a real client does, instead of waiting for the whole
    message: recv returns as soon as *some* bytes have arrived. `exp.result` holds the message
    and what each recv returned, in order.
    """
    if not isinstance(pieces, (tuple, list)) or not pieces:
        raise ValueError(f"pieces must be a non-empty tuple of bytes, not {pieces!r}")
    for n, piece in enumerate(pieces):
        check_bytes(f"pieces[{n}]", piece, limit=1024)
    if not isinstance(pause, (int, float)) or isinstance(pause, bool) or not 0.02 <= pause <= 1.0:
        raise ValueError(f"pause is in seconds, 0.02 to 1.0, not {pause!r}")
    message = b"".join(pieces)

    def client(lab: Lab, _address: Any) -> dict[str, Any]:
        with lab.create_server() as listener, lab.create_connection(listener.getsockname()) as sock:
            listener.settimeout(_SETTLE_TIMEOUT)
            conn, _ = listener.accept()
            with conn:
                # Each piece leaves at once as a segment of its own (no waiting for an ACK).
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

                def sender() -> None:
                    for n, piece in enumerate(pieces):
                        if n:
                            time.sleep(pause)  # the sending program is slow: the message leaves in pieces
                        conn.sendall(piece)

                thread = threading.Thread(target=sender, daemon=True)
                thread.start()
                sock.settimeout(_SETTLE_TIMEOUT)
                recvs = []
                while sum(map(len, recvs)) < len(message):
                    chunk = sock.recv(1024)  # returns what has arrived so far, not "the message"
                    if not chunk:
                        break
                    recvs.append(chunk)
                thread.join(_SETTLE_TIMEOUT)
        return {"message": message.decode(), "recvs": [r.decode() for r in recvs]}

    return _live_or_recorded(client, "sockets-short-read")


def udp_loss(messages: tuple[bytes, ...] = (b"one", b"two", b"three"), drop: bytes = b"two") -> Datagrams:
    """Send `messages` as UDP datagrams in the lab while a firewall rule drops the one that says `drop`.

    The rule (nftables, on the receiving host's input) throws the datagram away after it has
    crossed the lab's loopback, as a congested router or a full socket buffer would: the
    capture shows it on the wire, the receiver never gets it, nobody resends it and neither
    program is told. `exp.result` holds what was sent, what arrived, and what each side noticed.
    """
    if not isinstance(messages, (tuple, list)) or not messages:
        raise ValueError(f"messages must be a non-empty tuple of bytes, not {messages!r}")
    for n, message in enumerate(messages):
        check_bytes(f"messages[{n}]", message, limit=1024)
    check_bytes("drop", drop, limit=64)
    if drop not in messages:
        raise ValueError(f"drop={drop!r} is none of the messages {messages!r}")

    def live(lab: Lab) -> Datagrams:
        try:
            program("nft", "to drop a datagram in the lab")
        except ProgramMissing as err:
            return load_recorded("udp-loss", kind=Datagrams, why=f"recorded: {err}")
        try:
            _drop_rule(lab, drop)
        except LabError as err:  # a kernel without nf_tables, say: the rest of the lab still works
            return load_recorded("udp-loss", kind=Datagrams, why=f"recorded: the lab could not drop a datagram ({err})")
        return _udp_loss(lab, messages, drop)

    return live_or_recorded(live, "udp-loss", kind=Datagrams)


def _drop_rule(lab: Lab, drop: bytes) -> None:
    """In the lab's firewall (nftables), drop arriving UDP datagrams whose payload starts with `drop`."""
    # The input hook runs after the capture point of lo, so the datagram is seen, then dropped.
    # @th,64,N is the N bits right after the 8-byte UDP header: the payload's first bytes.
    lab.run("nft", "add table inet netlab")
    lab.run("nft", "add chain inet netlab input { type filter hook input priority 0 ; }")
    lab.run("nft", f"add rule inet netlab input meta l4proto udp @th,64,{8 * len(drop)} 0x{drop.hex()} counter drop")


def _udp_loss(lab: Lab, messages: tuple[bytes, ...], drop: bytes) -> Datagrams:
    with lab.socket(socket.AF_INET, socket.SOCK_DGRAM) as server, \
            lab.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
        server.bind(("127.0.0.1", 0))
        server.settimeout(0.3)
        client.settimeout(0.3)
        with lab.capture() as cap:
            sent = [client.sendto(message, server.getsockname()) for message in messages]
            received = []
            while True:
                try:
                    received.append(server.recvfrom(1024)[0].decode())
                except TimeoutError:
                    break  # nothing more comes: no retransmission, no error
            try:
                client.recv(1024)
                told = "the sender received something"
            except TimeoutError:
                told = "nothing: no error, no message"
            except OSError as err:
                told = repr(err)
        counter = lab.run("nft", "list chain inet netlab input")
    dropped = int(counter.split("counter packets", 1)[1].split()[0]) if "counter packets" in counter else -1
    return Datagrams(cap.packets, "live", LIVE,
                     result={"sent": [m.decode() for m in messages], "sendto returned": sent,
                             "received": received, "dropped by the rule": dropped, "the sender was told": told})


def two_clients(messages: tuple[bytes, bytes] = (b"from A", b"from B")) -> Experiment:
    """Two clients connect to one server port; the kernel tells their segments apart by the 4-tuple.

    Both connections share the server's address and port; only the clients' ports differ.
    The server accepts two sockets and each reads only its own client's bytes. `exp.result`
    lists, per accepted socket, its 4-tuple and what it read; `exp.kernel_states` is `ss`
    while both connections were open.
    """
    if not isinstance(messages, (tuple, list)) or len(messages) != 2:
        raise ValueError(f"messages must be two byte strings, not {messages!r}")
    for n, message in enumerate(messages):
        check_bytes(f"messages[{n}]", message, limit=1024)

    def live(lab: Lab) -> Experiment:
        with lab.capture(timeout=_SETTLE_TIMEOUT) as cap:
            with lab.create_server() as listener:
                listener.settimeout(_SETTLE_TIMEOUT)
                address = listener.getsockname()
                with lab.create_connection(address) as a, lab.create_connection(address) as b:
                    accepted = [listener.accept()[0] for _ in range(2)]
                    with accepted[0], accepted[1]:
                        for sock, message in ((b, messages[1]), (a, messages[0])):
                            sock.sendall(message)
                        seen = []
                        for conn in accepted:
                            conn.settimeout(_SETTLE_TIMEOUT)
                            local, peer = conn.getsockname(), conn.getpeername()
                            data = conn.recv(1024)
                            seen.append({"server socket": f"{local[0]}:{local[1]}", "client": f"{peer[0]}:{peer[1]}",
                                         "read": data.decode()})
                        states = lab.socket_states()
            lab.wait_until(lambda socks: not any(s.state not in ("TIME-WAIT", "LISTEN") for s in socks), _SETTLE_TIMEOUT)
        return Experiment(cap.packets, "live", LIVE, kernel_states=[s for s in states if s.state != "LISTEN"],
                          result=seen)

    return live_or_recorded(live, "sockets-two-clients")


def run_server(server: Callable[[Lab], Any], message: bytes = b"Hello", *, timeout: float = 5.0,
               recorded: str | None = "sockets-my-server") -> Experiment:
    """Run *your* server, `server(lab)`, in the lab; once it listens, a netlab client connects and talks to it.

    Your function makes the calls itself: `lab.socket()`, `bind`, `listen`, `accept`, `recv`,
    `sendall`, `close`. netlab watches the lab's sockets (`ss`) until one listens, connects to
    it, sends `message`, then reads until your server closes the connection (`timeout` seconds
    at most). `exp.result` holds what the client sent and read back and what your function
    returned (or raised). Where the lab is refused, recording `recorded` (an upper-casing
    server) is shown instead.
    """
    if not callable(server):
        raise TypeError(f"server must be a function server(lab), not {server!r}")
    check_bytes("message", message, limit=1024)

    def live(lab: Lab) -> Experiment:
        outcome: dict[str, Any] = {}

        def serve() -> None:
            try:
                outcome["returned"] = server(lab)
            except Exception as err:  # your server's error is a result to look at, not a crash
                outcome["returned"] = err

        thread = threading.Thread(target=serve, daemon=True)
        with lab.capture(timeout=timeout) as cap:
            thread.start()
            states = lab.wait_until(lambda socks: any(s.state == "LISTEN" for s in socks) or not thread.is_alive(),
                                    timeout)
            listening = [s.local for s in states if s.state == "LISTEN"]
            if not listening:
                thread.join(0.1)
                why = outcome.get("returned", f"nothing listened within {timeout:g} s")
                raise LabError(f"your server never listened (did it call bind and listen?): {why!r}")
            read = b""
            try:
                with lab.create_connection(listening[0], timeout=timeout) as sock:
                    sock.sendall(message)
                    read = _recv_until_closed_within(sock, timeout)
                client = "read until your server closed"
            except TimeoutError:
                client = f"your server did not close within {timeout:g} s"
            except OSError as err:
                client = repr(err)
            thread.join(timeout)
            states = lab.wait_until(lambda socks: not any(s.state not in ("TIME-WAIT", "LISTEN") for s in socks), timeout)
        if thread.is_alive():
            outcome["returned"] = LabError(f"your server was still running after {timeout:g} s (a call without a timeout?)")
        return Experiment(cap.packets, "live", LIVE, kernel_states=[s for s in states if s.state != "LISTEN"],
                          result={"listening on": f"{listening[0][0]}:{listening[0][1]}", "client sent": message.decode(),
                                  "client read": read.decode(errors="replace"), "client": client,
                                  "your server returned": repr(outcome.get("returned"))})

    return live_or_recorded(live, recorded)


def _recv_until_closed_within(sock: socket.socket, timeout: float) -> bytes:
    """Read until the peer closes, `timeout` seconds at most in all (WaitTimeout, a TimeoutError, after that)."""
    deadline = time.monotonic() + timeout
    data = b""
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise WaitTimeout(f"the peer did not close within {timeout:g} s")
        sock.settimeout(left)
        chunk = sock.recv(65536)
        if not chunk:
            return data
        data += chunk


def _upper_server(lab: Lab) -> str:
    """The recording's server: bind, listen, accept one client, send back what it read in capitals, close."""
    with lab.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        listener.settimeout(5)
        conn, peer = listener.accept()
        with conn:
            conn.settimeout(5)
            data = conn.recv(1024)
            conn.sendall(data.upper())
        return f"served {peer[0]}:{peer[1]}"


# The recordings shipped in netlab/data, re-recorded by `python -m netlab record`.
RECORDINGS: dict[str, Callable[[], Experiment]] = {
    "sockets-walk": socket_walk,
    "sockets-two-sends": two_sends_one_recv,
    "sockets-one-send": one_send_many_recvs,
    "udp-exchange": udp_exchange,
    "sockets-short-read": short_read,
    "udp-loss": udp_loss,
    "sockets-two-clients": two_clients,
    "sockets-my-server": lambda: run_server(_upper_server),
}

