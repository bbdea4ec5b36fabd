"""Small correct socket primitives: an echo server, a client that reads a whole reply, framing, retries.

Every function here works the same on the host's loopback and inside a `netlab.Lab` (pass
`lab=`): a lab only changes where the socket is created, never how it is used. Nothing here
captures or knows a lesson; notebook 02's experiments are in `netlab.lessons.sockets.experiments`.
"""

from __future__ import annotations

import fcntl
import socket
import struct
import termios
import threading
import time
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from netlab.core.errors import ProtocolError, WaitTimeout
from netlab.core.inlab.frames import SO_TIMESTAMPNS, kernel_time, recv_stamped  # the one reader of kernel time stamps

if TYPE_CHECKING:
    from netlab.core.lab import Lab

__all__ = [
    "EchoServer", "echo_server", "recv_exactly", "recv_until_closed", "hello", "new_socket",
    "MessageTooLarge", "PeerClosed", "send_message", "recv_message", "MAX_FRAME", "unacknowledged",
    "RetryError", "connect_with_retry", "listener", "connect_to_unused_port", "SO_TIMESTAMPNS", "recv_stamped", "kernel_time",
    "TcpInfo", "tcp_info", "CA_STATES", "TCP_CONGESTION",
]


def new_socket(lab: Lab | None, type: int = socket.SOCK_STREAM) -> socket.socket:
    """A new IPv4 socket: in `lab` when one is given, else on this host."""
    return lab.socket(socket.AF_INET, type) if lab is not None else socket.socket(socket.AF_INET, type)


class EchoServer:
    """A TCP echo server on a background thread: it sends every byte back, then closes when the client does.

    Serves one connection at a time, each with a read timeout, and stops within `timeout`
    seconds of `close()`. Bound to loopback on a port the kernel picks unless told otherwise.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, lab: Lab | None = None,
                 timeout: float = 5.0, close_delay: float = 0.0) -> None:
        self.timeout = timeout
        # close_delay (seconds) holds the server's close after the client's FIN: with a delay
        # longer than the delayed-ACK timer (40 ms on Linux) the teardown shows four segments.
        self.close_delay = close_delay
        self.connections = 0
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._listener = new_socket(lab)
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
            except TimeoutError:
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
            raise WaitTimeout(f"echo server on port {self.address[1]} did not stop within {self.timeout + 1:g} s")

    def __enter__(self) -> EchoServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def echo_server(lab: Lab | None = None, host: str = "127.0.0.1", port: int = 0, **kwargs) -> EchoServer:
    """Start an echo server (in `lab` if given) and return it; use it in a `with` block."""
    return EchoServer(host, port, lab=lab, **kwargs)


class PeerClosed(ProtocolError, EOFError):
    """The peer closed the connection before the bytes a reader waited for had all arrived.

    An `EOFError` too, as Python's own readers raise at an unexpected end, so `except EOFError` catches it.
    """


def recv_exactly(sock: socket.socket, length: int) -> bytes:
    """Read exactly `length` bytes: TCP is a byte stream and one recv may return fewer (PeerClosed if it ends first)."""
    data = bytearray()
    while len(data) < length:
        chunk = sock.recv(length - len(data))
        if not chunk:
            raise PeerClosed(f"the peer closed the connection with {length - len(data)} of {length} bytes still missing")
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


def hello(address: tuple[str, int], message: bytes = b"Hello, World!", *, lab: Lab | None = None,
          timeout: float = 5.0) -> bytes:
    """The seed's TCP client, done right: connect, send `message`, read the whole echo, close.

    An echo server sends back exactly what it received, so the client knows how many bytes to
    wait for; one `recv` is not a message. Meant for messages up to about a megabyte: the
    client sends everything before it reads, so a much larger message fills the buffers both
    ways and both sides wait for each other until `timeout` (a deadlock worth seeing once).
    """
    with new_socket(lab) as sock:
        sock.settimeout(timeout)
        sock.connect(address)
        sock.sendall(message)
        return recv_exactly(sock, len(message))


# ---------------------------------------------------------------------------
# Framing: TCP carries a stream of bytes, not messages. A 4-byte length in front of each message
# (big-endian, "network byte order") lets the reader find where one message ends.

_LENGTH = struct.Struct("!I")
MAX_FRAME = 2**32 - 1  # the largest length 4 bytes can announce


class MessageTooLarge(ProtocolError, ValueError):
    """A message is longer than the reader accepts (or than a 4-byte length can say)."""


def send_message(sock: socket.socket, data: bytes) -> None:
    """Send `data` as one message: its length as 4 bytes (big-endian), then the bytes themselves."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"send_message sends bytes, not {type(data).__name__}; encode text first, e.g. 'hi'.encode()")
    if len(data) > MAX_FRAME:
        raise MessageTooLarge(f"a message of {len(data)} bytes does not fit a 4-byte length (at most {MAX_FRAME} bytes)")
    # One sendall for prefix and body: two small writes could leave as two segments for no reason.
    sock.sendall(_LENGTH.pack(len(data)) + bytes(data))


def recv_message(sock: socket.socket, limit: int = 16 * 1024 * 1024) -> bytes | None:
    """Receive one whole message sent by `send_message`; None when the peer has closed between messages.

    However the bytes were split into segments or recvs, the result is exactly one message.
    A peer that closes in the middle of a message raises PeerClosed (an EOFError) naming the bytes missing; a
    length larger than `limit` (bytes) raises MessageTooLarge before anything is read into memory.
    """
    if limit < 0:
        raise ValueError(f"limit is a number of bytes and cannot be negative ({limit})")
    first = sock.recv(_LENGTH.size)
    if not first:
        return None  # a clean end: the peer closed after its last whole message
    try:
        header = first + recv_exactly(sock, _LENGTH.size - len(first))
    except PeerClosed:
        raise PeerClosed(f"the peer closed the connection inside a length prefix: {len(first)} of its "
                       f"{_LENGTH.size} bytes arrived") from None
    (length,) = _LENGTH.unpack(header)
    if length > limit:
        raise MessageTooLarge(f"the peer announced a message of {length} bytes, more than the limit of {limit} bytes")
    data = bytearray()
    while len(data) < length:
        chunk = sock.recv(min(length - len(data), 1 << 20))
        if not chunk:
            raise PeerClosed(f"the peer closed the connection in the middle of a {length}-byte message: "
                           f"{length - len(data)} bytes still missing")
        data += chunk
    return bytes(data)


# ---------------------------------------------------------------------------
# Retrying a connection (notebook 06).


class RetryError(ProtocolError, ConnectionError):
    """Every attempt to connect failed; `attempts`, `waits` (seconds) and `last` (the last error) say how."""

    def __init__(self, message: str, attempts: int | None = None, waits: list[float] | None = None,
                 last: BaseException | None = None) -> None:
        super().__init__(message)
        self.attempts = attempts
        self.waits = waits or []
        self.last = last


def connect_with_retry(address: tuple[str, int], *, attempts: int = 4, first_delay: float = 0.1,
                       factor: float = 2.0, jitter: float = 0.25, timeout: float = 2.0,
                       lab: Lab | None = None, rng: Any = None) -> socket.socket:
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
        sock = new_socket(lab)
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


def connect_to_unused_port(lab: Lab, _address: Any = None) -> str:
    """Connect to a lab port where nothing listens (the kernel answers the SYN with a RST): raises
    ConnectionRefusedError. Takes the arguments of an experiment's client, for `netlab.run`."""
    with lab.create_connection(lab.unused_port(), timeout=2.0):
        return "connected (unexpected)"


def unacknowledged(sock: socket.socket) -> int:
    """Bytes this TCP socket has sent (or queued) that the peer has not acknowledged yet (SIOCOUTQ)."""
    return struct.unpack("i", fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, b"\0\0\0\0"))[0]


def listener(lab: Lab | None, host: str = "127.0.0.1", port: int = 0, backlog: int = 128) -> socket.socket:
    """A TCP socket listening on `host`:`port` (port 0: the kernel picks), in `lab` when given."""
    sock = new_socket(lab)
    try:
        sock.bind((host, port))
        sock.listen(backlog)
    except BaseException:
        sock.close()
        raise
    return sock


# ---------------------------------------------------------------------------
# A TCP socket's state, from its kernel (getsockopt TCP_INFO): notebooks 09 and 10 read senders with it.

# The states of Linux's congestion control (tcpi_ca_state, include/net/tcp.h: enum tcp_ca_state).
CA_STATES = {0: "Open", 1: "Disorder", 2: "CWR", 3: "Recovery", 4: "Loss"}


# struct tcp_info (include/uapi/linux/tcp.h), in the order the kernel lays it out. Older kernels
# return a shorter struct: the fields past its end are read as 0.
_TCP_INFO_FIELDS = [
    ("B", "state"), ("B", "ca_state"), ("B", "retransmits"), ("B", "probes"), ("B", "backoff"), ("B", "options"),
    ("B", "wscale"), ("B", "app_limited_flags"),
    ("I", "rto"), ("I", "ato"), ("I", "snd_mss"), ("I", "rcv_mss"),
    ("I", "unacked"), ("I", "sacked"), ("I", "lost"), ("I", "retrans"), ("I", "fackets"),
    ("I", "last_data_sent"), ("I", "last_ack_sent"), ("I", "last_data_recv"), ("I", "last_ack_recv"),
    ("I", "pmtu"), ("I", "rcv_ssthresh"), ("I", "rtt"), ("I", "rttvar"), ("I", "snd_ssthresh"), ("I", "snd_cwnd"),
    ("I", "advmss"), ("I", "reordering"), ("I", "rcv_rtt"), ("I", "rcv_space"), ("I", "total_retrans"),
    ("Q", "pacing_rate"), ("Q", "max_pacing_rate"), ("Q", "bytes_acked"), ("Q", "bytes_received"),
    ("I", "segs_out"), ("I", "segs_in"), ("I", "notsent_bytes"), ("I", "min_rtt"),
    ("I", "data_segs_in"), ("I", "data_segs_out"), ("Q", "delivery_rate"),
    ("Q", "busy_time"), ("Q", "rwnd_limited"), ("Q", "sndbuf_limited"),
    ("I", "delivered"), ("I", "delivered_ce"), ("Q", "bytes_sent"), ("Q", "bytes_retrans"),
    ("I", "dsack_dups"), ("I", "reord_seen"), ("I", "rcv_ooopack"), ("I", "snd_wnd"),
]
_TCP_INFO = struct.Struct("=" + "".join(kind for kind, _ in _TCP_INFO_FIELDS))
TCP_CONGESTION = getattr(socket, "TCP_CONGESTION", 13)  # the socket option that names its congestion control
_TCP_INFO_OPT = getattr(socket, "TCP_INFO", 11)


@dataclass(frozen=True)
class TcpInfo:
    """One sample of a TCP sender's state, as its kernel reports it (TCP_INFO), at `time` (Unix seconds).

    cwnd and ssthresh are in segments (Linux counts the window in segments, not bytes);
    `srtt` and `min_rtt` in seconds; `delivery_rate` and `pacing_rate` in bytes/s.
    """

    time: float
    algorithm: str
    ca_state: str  # Open, Disorder, CWR, Recovery, Loss
    cwnd: int  # segments
    ssthresh: int | None  # segments; None while slow start has not ended (Linux's "infinite")
    srtt: float  # seconds
    rttvar: float  # seconds
    min_rtt: float  # seconds
    rto: float  # seconds
    mss: int  # bytes
    unacked: int  # segments sent and not yet acknowledged
    in_flight: int  # segments the kernel counts in the network: unacked - sacked - lost + retransmitted
    delivery_rate: int  # bytes/s, the kernel's latest estimate
    pacing_rate: int  # bytes/s
    bytes_sent: int  # bytes, retransmissions included
    bytes_retrans: int
    bytes_acked: int
    segs_out: int  # segments sent, all of them (data, ACKs, SYN, retransmissions)
    data_segs_out: int  # segments with data, retransmissions included
    total_retrans: int  # segments retransmitted in the connection's life
    snd_wnd: int  # bytes: the receiver's last advertised window, scaled
    rwnd_limited: float  # seconds the sender spent waiting for the receiver's window
    busy_time: float  # seconds the sender had data in flight

    @property
    def in_flight_bytes(self) -> int:
        return self.in_flight * self.mss

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def tcp_info(sock: socket.socket, when: float | None = None) -> TcpInfo:
    """Read `sock`'s TCP_INFO from its kernel now (or stamp it `when`, Unix seconds)."""
    raw = sock.getsockopt(socket.IPPROTO_TCP, _TCP_INFO_OPT, _TCP_INFO.size)
    raw = raw + bytes(_TCP_INFO.size - len(raw))
    values = dict(zip((name for _, name in _TCP_INFO_FIELDS), _TCP_INFO.unpack(raw), strict=True))
    algorithm = sock.getsockopt(socket.IPPROTO_TCP, TCP_CONGESTION, 16).split(b"\0")[0].decode()
    ssthresh = values["snd_ssthresh"]
    return TcpInfo(
        time=time.time() if when is None else when,
        algorithm=algorithm,
        ca_state=CA_STATES.get(values["ca_state"], str(values["ca_state"])),
        cwnd=values["snd_cwnd"],
        ssthresh=None if ssthresh >= 0xFFFF else ssthresh,
        srtt=values["rtt"] / 1e6,
        rttvar=values["rttvar"] / 1e6,
        min_rtt=values["min_rtt"] / 1e6 if values["min_rtt"] != 0xFFFFFFFF else 0.0,
        rto=values["rto"] / 1e6,
        mss=values["snd_mss"],
        unacked=values["unacked"],
        in_flight=max(0, values["unacked"] - values["sacked"] - values["lost"] + values["retrans"]),
        delivery_rate=values["delivery_rate"],
        pacing_rate=values["pacing_rate"],
        bytes_sent=values["bytes_sent"],
        bytes_retrans=values["bytes_retrans"],
        bytes_acked=values["bytes_acked"],
        segs_out=values["segs_out"],
        data_segs_out=values["data_segs_out"],
        total_retrans=values["total_retrans"],
        snd_wnd=values["snd_wnd"],
        rwnd_limited=values["rwnd_limited"] / 1e6,
        busy_time=values["busy_time"] / 1e6,
    )
