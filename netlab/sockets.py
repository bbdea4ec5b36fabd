"""Small correct socket primitives: an echo server, a client that reads a whole reply, framing.

Every function here works the same on the host's loopback and inside a `netlab.Lab` (pass
`lab=`): a lab only changes where the socket is created, never how it is used.

The second half holds the experiments of notebook 02 (what each socket call puts on the wire,
TCP as a byte stream, UDP for contrast). Each runs live in a lab, or shows a capture recorded
in netlab/data when the lab is refused; the program-side facts a capture cannot show (how many
bytes each recv returned, which call sent which segment) travel in the recording's .json.
"""

from __future__ import annotations

import contextlib
import select
import socket
import struct
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    from netlab.conversation import Segment
    from netlab.experiments import Experiment
    from netlab.lab import Lab

__all__ = [
    "EchoServer", "echo_server", "recv_exactly", "recv_until_closed", "hello",
    "MessageTooLarge", "send_message", "recv_message", "MAX_MESSAGE",
    "socket_walk", "walk_steps", "two_sends_one_recv", "one_send_many_recvs", "udp_exchange", "Datagrams",
]


def _new_socket(lab: "Lab | None", type: int = socket.SOCK_STREAM) -> socket.socket:
    return lab.socket(socket.AF_INET, type) if lab is not None else socket.socket(socket.AF_INET, type)


class EchoServer:
    """A TCP echo server on a background thread: it sends every byte back, then closes when the client does.

    Serves one connection at a time, each with a read timeout, and stops within `timeout`
    seconds of `close()`. Bound to loopback on a port the kernel picks unless told otherwise.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, lab: "Lab | None" = None,
                 timeout: float = 5.0, close_delay: float = 0.0) -> None:
        self.timeout = timeout
        # close_delay (seconds) holds the server's close after the client's FIN: with a delay
        # longer than the delayed-ACK timer (40 ms on Linux) the teardown shows four segments.
        self.close_delay = close_delay
        self.connections = 0
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._listener = _new_socket(lab)
        try:
            self._listener.bind((host, port))
            self._listener.listen(8)
            # accept() wakes up regularly to notice close(): a blocked accept is never interrupted.
            self._listener.settimeout(0.05)
        except BaseException:
            self._listener.close()
            raise
        self.address: tuple[str, int] = self._listener.getsockname()
        self._thread = threading.Thread(target=self._serve, name=f"netlab-echo-{self.address[1]}", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except socket.timeout:
                continue
            except OSError:
                break  # the listener was closed
            self.connections += 1
            with conn:
                conn.settimeout(self.timeout)
                try:
                    while data := conn.recv(65536):
                        conn.sendall(data)
                    if self.close_delay:
                        self._stop.wait(self.close_delay)
                except OSError as err:  # a reset or a timeout ends this connection, not the server
                    self.error = err

    def close(self) -> None:
        """Stop serving and wait (up to `timeout` seconds) for the server thread to end."""
        self._stop.set()
        self._thread.join(self.timeout + 1)
        self._listener.close()
        if self._thread.is_alive():
            raise RuntimeError(f"echo server on port {self.address[1]} did not stop within {self.timeout + 1:g} s")

    def __enter__(self) -> "EchoServer":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def echo_server(lab: "Lab | None" = None, host: str = "127.0.0.1", port: int = 0, **kwargs) -> EchoServer:
    """Start an echo server (in `lab` if given) and return it; use it in a `with` block."""
    return EchoServer(host, port, lab=lab, **kwargs)


def recv_exactly(sock: socket.socket, length: int) -> bytes:
    """Read exactly `length` bytes: TCP is a byte stream and one recv may return fewer."""
    data = bytearray()
    while len(data) < length:
        chunk = sock.recv(length - len(data))
        if not chunk:
            raise EOFError(f"the peer closed the connection with {length - len(data)} of {length} bytes still missing")
        data += chunk
    return bytes(data)


def recv_until_closed(sock: socket.socket, limit: int = 16 * 1024 * 1024) -> bytes:
    """Read until the peer closes its side (recv returns b''); refuse more than `limit` bytes."""
    data = bytearray()
    while chunk := sock.recv(65536):
        data += chunk
        if len(data) > limit:
            raise ValueError(f"the peer sent more than {limit} bytes without closing")
    return bytes(data)


def hello(address: tuple[str, int], message: bytes = b"Hello, World!", *, lab: "Lab | None" = None,
          timeout: float = 5.0) -> bytes:
    """The seed's TCP client, done right: connect, send `message`, read the whole echo, close.

    An echo server sends back exactly what it received, so the client knows how many bytes to
    wait for; one `recv` is not a message. Meant for messages up to about a megabyte: the
    client sends everything before it reads, so a much larger message fills the buffers both
    ways and both sides wait for each other until `timeout` (a deadlock worth seeing once).
    """
    with _new_socket(lab) as sock:
        sock.settimeout(timeout)
        sock.connect(address)
        sock.sendall(message)
        return recv_exactly(sock, len(message))


# ---------------------------------------------------------------------------
# Framing: TCP carries a stream of bytes, not messages. A 4-byte length in front of each message
# (big-endian, "network byte order") lets the reader find where one message ends.

_LENGTH = struct.Struct("!I")
MAX_MESSAGE = 2**32 - 1  # the largest length 4 bytes can announce


class MessageTooLarge(ValueError):
    """A message is longer than the reader accepts (or than a 4-byte length can say)."""


def send_message(sock: socket.socket, data: bytes) -> None:
    """Send `data` as one message: its length as 4 bytes (big-endian), then the bytes themselves."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"send_message sends bytes, not {type(data).__name__}; encode text first, e.g. 'hi'.encode()")
    if len(data) > MAX_MESSAGE:
        raise MessageTooLarge(f"a message of {len(data)} bytes does not fit a 4-byte length (at most {MAX_MESSAGE} bytes)")
    # One sendall for prefix and body: two small writes could leave as two segments for no reason.
    sock.sendall(_LENGTH.pack(len(data)) + bytes(data))


def recv_message(sock: socket.socket, limit: int = 16 * 1024 * 1024) -> bytes | None:
    """Receive one whole message sent by `send_message`; None when the peer has closed between messages.

    However the bytes were split into segments or recvs, the result is exactly one message.
    A peer that closes in the middle of a message raises EOFError naming the bytes missing; a
    length larger than `limit` (bytes) raises MessageTooLarge before anything is read into memory.
    """
    if limit < 0:
        raise ValueError(f"limit is a number of bytes and cannot be negative ({limit})")
    first = sock.recv(_LENGTH.size)
    if not first:
        return None  # a clean end: the peer closed after its last whole message
    try:
        header = first + recv_exactly(sock, _LENGTH.size - len(first))
    except EOFError:
        raise EOFError(f"the peer closed the connection inside a length prefix: {len(first)} of its "
                       f"{_LENGTH.size} bytes arrived") from None
    (length,) = _LENGTH.unpack(header)
    if length > limit:
        raise MessageTooLarge(f"the peer announced a message of {length} bytes, more than the limit of {limit} bytes")
    data = bytearray()
    while len(data) < length:
        chunk = sock.recv(min(length - len(data), 1 << 20))
        if not chunk:
            raise EOFError(f"the peer closed the connection in the middle of a {length}-byte message: "
                           f"{length - len(data)} bytes still missing")
        data += chunk
    return bytes(data)


# ---------------------------------------------------------------------------
# Experiments of notebook 02. Each waits until the network has settled after a call (the peer's
# ACK arrived, the kernel reached the next state) before the next call, so every call's segments
# are its own and the counts are the same on every run.

_SETTLE_TIMEOUT = 3.0  # seconds; the slowest settling is a delayed ACK (40 ms on Linux)


def _check_payload(name: str, value: Any, limit: int = 60_000) -> None:
    """Refuse what a lesson's experiment cannot send, naming the argument (bytes, 1..limit long)."""
    if not isinstance(value, (bytes, bytearray)):
        raise TypeError(f"{name} must be bytes (b\"...\", or text.encode()), not {type(value).__name__}")
    if not 0 < len(value) <= limit:
        raise ValueError(f"{name} must hold 1 to {limit} bytes, not {len(value)}")


def _ioctl_int(sock: socket.socket, request: int) -> int:
    import fcntl

    return struct.unpack("i", fcntl.ioctl(sock.fileno(), request, b"\0\0\0\0"))[0]


def _unacknowledged(sock: socket.socket) -> int:
    """Bytes this TCP socket has sent (or queued) that the peer has not acknowledged yet (SIOCOUTQ)."""
    import termios

    return _ioctl_int(sock, termios.TIOCOUTQ)


def _wait_for(done: Callable[[], bool], what: str, timeout: float = _SETTLE_TIMEOUT) -> None:
    from netlab.lab import LabError

    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            raise LabError(f"{what} did not happen within {timeout:g} s")
        time.sleep(0.001)


def _settled_states(lab: "Lab", done: Callable[[set[str]], bool], what: str) -> None:
    from netlab.lab import LabError

    states = lab.wait_until(lambda socks: done({s.state for s in socks}), _SETTLE_TIMEOUT)
    if not done({s.state for s in states}):
        raise LabError(f"{what} did not happen within {_SETTLE_TIMEOUT:g} s (the lab's sockets: "
                       f"{', '.join(sorted({s.state for s in states})) or 'none'})")


def _live_or_recorded(client: Callable[["Lab", Any], Any], recorded: str) -> "Experiment":
    from netlab.experiments import run
    from netlab.lab import LabError

    exp = run(client, recorded=recorded, server=False)
    if exp.live and isinstance(exp.result, BaseException):
        raise LabError(f"the experiment failed in the lab: {exp.result}")
    return exp


def socket_walk(message: bytes = b"Hello") -> "Experiment":
    """Call the socket API one step at a time in the lab, capturing what each call puts on the wire.

    A server socket is created, bound and put to listen; a client connects, sends `message`,
    the server echoes it, both close. Each call runs inside a capture of its own, which ends
    only once the network has settled, so every segment belongs to exactly one call.
    `walk_steps(exp)` pairs each call with its segments.
    """
    _check_payload("message", message)
    from netlab.conversation import Conversation
    from netlab.experiments import Experiment, load_recorded
    from netlab.lab import Lab, LabUnavailable

    try:
        lab = Lab()
    except LabUnavailable as err:
        return load_recorded("sockets-walk", why=str(err))
    packets: list = []
    steps: list[list[Any]] = []
    with lab, contextlib.ExitStack() as stack:

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
        acked = lambda sock: lambda: _wait_for(lambda: _unacknowledged(sock) == 0, "the peer's ACK")  # noqa: E731
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
    return Experiment(
        conversation=Conversation.from_packets(packets, source="live"),
        source="live",
        why="live: captured just now in a private network namespace that netlab created",
        kernel_states=[s for s in states if s.state != "LISTEN"],
        result=steps,
    )


def _is_tcp(pkt: Any) -> bool:
    from scapy.layers.inet import TCP

    return TCP in pkt


def walk_steps(exp: "Experiment") -> list[tuple[str, list["Segment"]]]:
    """Pair each call of a `socket_walk()` with the segments it put on the wire (in capture order)."""
    segments = iter(exp.conversation.segments)
    return [(call, [next(segments) for _ in range(count)]) for call, count in exp.result]


def two_sends_one_recv(first: bytes = b"Hello, ", second: bytes = b"World!") -> "Experiment":
    """Send two messages as two segments, then read once: one recv returns both (TCP keeps no boundaries).

    The receiver reads only after both segments have arrived and been acknowledged, so the
    outcome does not depend on timing: `exp.result` lists what was sent and what each recv returned.
    """
    _check_payload("first", first)
    _check_payload("second", second)

    def client(lab: "Lab", _address: Any) -> dict[str, list[str]]:
        with lab.create_server() as listener, lab.create_connection(listener.getsockname()) as sock:
            listener.settimeout(_SETTLE_TIMEOUT)
            conn, _ = listener.accept()
            with conn:
                conn.settimeout(_SETTLE_TIMEOUT)
                for message in (first, second):
                    sock.sendall(message)
                    # Wait for the ACK: the next send then leaves as a segment of its own.
                    _wait_for(lambda: _unacknowledged(sock) == 0, "the receiver's ACK")
                received = conn.recv(1024)
        return {"sent": [first.decode(), second.decode()], "received": [received.decode()]}

    return _live_or_recorded(client, "sockets-two-sends")


def one_send_many_recvs(size: int = 3000, bufsize: int = 1024) -> "Experiment":
    """Send `size` bytes in one sendall; the receiver reads with recv(`bufsize`) until it has them all.

    The receiver starts reading once all bytes have arrived, so the split is the same on every
    run: a recv returns at most `bufsize` bytes. `exp.result` holds the size of each recv.
    """
    if not all(isinstance(n, int) and not isinstance(n, bool) for n in (size, bufsize)):
        raise TypeError(f"size and bufsize are numbers of bytes (ints), not {size!r} and {bufsize!r}")
    if not 0 < size <= 60_000 or bufsize <= 0:
        raise ValueError(f"size must be 1..60000 bytes (one loopback segment) and bufsize positive, not {size} and {bufsize}")

    def client(lab: "Lab", _address: Any) -> dict[str, Any]:
        with lab.create_server() as listener, lab.create_connection(listener.getsockname()) as sock:
            listener.settimeout(_SETTLE_TIMEOUT)
            conn, _ = listener.accept()
            with conn:
                conn.settimeout(_SETTLE_TIMEOUT)
                sock.sendall(bytes(size))
                _wait_for(lambda: _unacknowledged(sock) == 0, "the receiver's ACK")
                sizes = []
                while sum(sizes) < size:
                    sizes.append(len(conn.recv(bufsize)))
        return {"sent": size, "bufsize": bufsize, "recvs": sizes}

    return _live_or_recorded(client, "sockets-one-send")


@dataclass
class Datagrams:
    """A UDP exchange captured in the lab: the datagrams on the wire and what each recvfrom returned."""

    packets: list
    source: str  # "live" or "recorded"
    why: str
    result: Any = None
    kernel_states: list = field(default_factory=list)

    @property
    def live(self) -> bool:
        return self.source == "live"

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

    def save(self, path: str | Path) -> Path:
        """Write the datagrams as a pcap file that Wireshark opens."""
        from netlab.capture import save_pcap

        return save_pcap(self.packets, path)


def udp_exchange(messages: tuple[bytes, ...] = (b"one", b"two", b"three")) -> Datagrams:
    """Send `messages` as UDP datagrams in the lab and read each with one recvfrom(1024); capture it all.

    No connection is set up first, and each recvfrom returns exactly one datagram: UDP keeps
    message boundaries. The server answers the last datagram with b"got 3".
    """
    if not isinstance(messages, (tuple, list)) or not messages:
        raise ValueError(f"messages must be a non-empty tuple of bytes, not {messages!r}")
    for n, message in enumerate(messages):
        _check_payload(f"messages[{n}]", message, limit=1024)
    from netlab.capture import recorded
    from netlab.experiments import recorded_meta
    from netlab.lab import Lab, LabUnavailable

    try:
        lab = Lab()
    except LabUnavailable as err:
        return Datagrams(recorded("udp-exchange"), "recorded", str(err), recorded_meta("udp-exchange").get("result"))
    with lab, lab.capture() as cap:
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
    return Datagrams(cap.packets, "live", "live: captured just now in a private network namespace that netlab created",
                     {"sent": [m.decode() for m in messages], "received": received, "reply": reply})


# ---------------------------------------------------------------------------
# Retrying a connection (notebook 06).


class RetryError(ConnectionError):
    """Every attempt to connect failed; `attempts`, `waits` (seconds) and `last` (the last error) say how."""

    def __init__(self, message: str, attempts: int | None = None, waits: list[float] | None = None,
                 last: BaseException | None = None) -> None:
        super().__init__(message)
        self.attempts = attempts
        self.waits = waits or []
        self.last = last


def connect_with_retry(address: tuple[str, int], *, attempts: int = 4, first_delay: float = 0.1,
                       factor: float = 2.0, jitter: float = 0.25, timeout: float = 2.0,
                       lab: "Lab | None" = None, rng: Any = None) -> socket.socket:
    """Connect to `address`, trying again after a refused, reset or timed-out attempt, with
    exponential backoff; return the connected socket, or raise `RetryError` after `attempts`.

    After failed attempt k (0, 1, ...) it waits first_delay × factor**k seconds, stretched by a
    random part of up to `jitter` (0.25: up to 25 % longer), so that many clients refused at
    the same moment do not all come back at the same moment. `timeout` (seconds) bounds each
    attempt. Other errors (a bad address) are raised at once: trying again would not help.
    `rng` (a `random.Random`) makes the jitter repeatable in tests.
    """
    import random

    if not isinstance(attempts, int) or attempts < 1:
        raise ValueError(f"attempts must be a whole number of at least 1, not {attempts!r}")
    if first_delay < 0 or factor < 1 or not 0 <= jitter <= 1 or timeout <= 0:
        raise ValueError("first_delay must be ≥ 0 s, factor ≥ 1, jitter between 0 and 1 and timeout > 0 s "
                         f"(got {first_delay!r}, {factor!r}, {jitter!r}, {timeout!r})")
    rng = rng or random.Random()
    waits: list[float] = []
    started = time.monotonic()
    for attempt in range(attempts):
        sock = _new_socket(lab)
        try:
            sock.settimeout(timeout)
            sock.connect(address)
            return sock
        except (ConnectionError, TimeoutError) as err:  # the peer's answer (RST) or its silence
            sock.close()
            last = err
        except BaseException:
            sock.close()
            raise
        if attempt + 1 < attempts:
            wait = first_delay * factor ** attempt * (1 + jitter * rng.random())
            waits.append(wait)
            time.sleep(wait)  # the backoff itself: nothing else to wait on
    raise RetryError(
        f"gave up connecting to {address[0]}:{address[1]} after {attempts} attempts in "
        f"{time.monotonic() - started:.1f} s; the last one failed with {type(last).__name__}: {last}",
        attempts, waits, last) from last
