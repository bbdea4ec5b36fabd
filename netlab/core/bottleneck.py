"""A bottleneck link in the lab: a real Linux receiver behind a rate-limited queue and a delay line.

Theory of operation
-------------------
Congestion control needs three things a lab's loopback lacks: a link slower than the sender
(so a queue forms and overflows), a round-trip time long enough to see rounds (tens of ms,
where loopback gives tens of µs), and a receiver whose window is a real kernel's. The kernels
here have no `netem`, so `Bottleneck(lab, ...)` builds the path from what they do have:

    sender (lab)                  delay line (a program in the lab)           receiver (own namespace)
    snd0 10.9.0.1  ⇄  dl0  ──▶ hold rtt/2 ──▶ dl1 [tbf: rate, queue]  ⇄  rcv0 10.9.0.2  (sink :9, echo :7)
                       ◀── hold rtt/2 ◀──────────────

 - the **receiver** is the Linux kernel in a second network namespace (the program makes it
   itself, unshare(CLONE_NEWNET), from inside the lab's user namespace): it acknowledges, delays
   ACKs and advertises its window as any Linux host does. It discards what arrives on port 9 and
   echoes port 7. Where the system refuses that namespace, it says "refused ERRNO" and ends, and
   the bottleneck raises LabUnavailable at once (the experiment shows its recording).
 - the **bottleneck** is a `tbf` queue on dl1, the delay line's way out towards the receiver:
   packets leave at `rate` bits/s and at most `queue` packets wait; more are dropped (drop-tail).
   It is not on the sender's own interface: a queue on the sender's host is watched by TCP Small
   Queues, which would stop the sender from filling it, and the lesson is a queue in the network.
 - the **delay** is a small program, not the kernel: it reads every frame on dl0 and dl1 (raw
   packet sockets), holds it for half the round-trip time and writes it on the other side.
   What this changes from netem: the hold is as exact as Python's timers (well under a ms
   at these rates); it adds the same delay to every frame, so it never reorders.
 - **loss** is ordered by number, like the scripted peer's `Script.drop(N)`: the delay line
   drops the N-th data segment to the sink (retransmissions counted too), or every one for a
   while (`outage`), which is what forces a retransmission timeout.

The delay line is also the capture. It sees every frame at the sender's side of the link (the
sender's segments as they leave it, the ACKs as they reach it), stamps each with the kernel's
receive time, and writes them as a pcap when it ends, with its socket's drop count
(PACKET_STATISTICS) so that a capture that missed frames says so.

`tcp_info(sock)` (in `netlab.core.sockets`, where sockets are read) reads the sender's state from
its kernel (getsockopt TCP_INFO): cwnd, ssthresh, smoothed RTT, segments in flight, delivery rate,
state of the congestion control.

Rules for this file:
1. Every wait has a bound: the delay line ends at its time bound, or at once when its stdin
   closes; `Bottleneck.close()` stops both programs and removes the links.
2. Nothing leaves the lab: the receiver's namespace is a child of the lab's, its only link is dl1.
"""

from __future__ import annotations

import heapq
import json
import os
import select
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from netlab.core.arguments import check_int, check_seconds
from netlab.core.errors import HelperError, LabUnavailable
from netlab.core.lab import Lab, inner_refusal_sentence, last_line, read_line
from netlab.core.pcapfiles import load_pcap, write_frames
from netlab.core.programs import command
from netlab.core.sockets import SO_TIMESTAMPNS, TCP_CONGESTION, TcpInfo, recv_stamped, tcp_info

__all__ = [
    "Bottleneck", "BottleneckError", "LinkReport", "send_sampled",
    "available_algorithms", "default_algorithm",
    "SENDER_ADDRESS", "RECEIVER_ADDRESS", "SINK_PORT", "ECHO_PORT", "MTU", "MSS",
]

SENDER_ADDRESS = "10.9.0.1"  # snd0, in the lab
RECEIVER_ADDRESS = "10.9.0.2"  # rcv0, in the receiver's namespace
_NETWORK = "10.9.0.0/24"  # the sender's route to the receiver (the kernel adds it with snd0's address)
SINK_PORT = 9  # the discard service (RFC 863): the receiver reads and throws away
ECHO_PORT = 7  # the echo service (RFC 862): a small connection whose round trip we time
MTU = 1500
MSS = MTU - 20 - 20 - 12  # bytes of payload: Linux adds a 12-byte timestamp option to every segment
_SND_MAC = "02:09:00:00:00:01"
_RCV_MAC = "02:09:00:00:00:02"
START_TIMEOUT = 15.0  # seconds for each program to start
STOP_TIMEOUT = 10.0  # seconds for each program to end once asked (the delay line writes its capture), before it is killed
MAX_DURATION = 30.0  # seconds: no delay line runs longer
_FRAMES_PER_PASS = 256
CLONE_NEWNET = 0x40000000  # <linux/sched.h>: the receiver's own network namespace



class BottleneckError(HelperError):
    """The bottleneck's programs could not start, or ended without their capture."""


def available_algorithms() -> list[str]:
    """The congestion-control algorithms this kernel offers (net.ipv4.tcp_available_congestion_control)."""
    text = _read_sysctl("tcp_available_congestion_control")
    return text.split() if text else []


def default_algorithm() -> str:
    """The algorithm a new socket gets unless it asks for another (net.ipv4.tcp_congestion_control)."""
    return _read_sysctl("tcp_congestion_control") or "unknown"


def _read_sysctl(name: str) -> str:
    try:
        return Path(f"/proc/sys/net/ipv4/{name}").read_text().strip()
    except OSError:
        return ""


# ---------------------------------------------------------------------------
# The notebook side.


@dataclass
class LinkReport:
    """What the delay line and the queue saw, read when the bottleneck closes."""

    packets: list = field(default_factory=list)  # every frame at the sender's side of the link
    log: list[tuple[float, str]] = field(default_factory=list)  # (seconds, what) the delay line did
    capture_drops: int = 0  # frames the delay line's socket missed (PACKET_STATISTICS)
    queue_drops: int = 0  # packets the tbf queue dropped (tc -s qdisc)
    queue_sent: int = 0  # packets the tbf queue sent on


class Bottleneck:
    """A path from the lab to a real Linux receiver: `rate` bits/s, a queue of `queue` packets, `rtt` s.

        with netlab.Lab() as lab, Bottleneck(lab, rate=10e6, queue=50, rtt=0.04) as path:
            sock = path.connect(algorithm="cubic")

    `drops` are data segments to the sink (port 9) the delay line loses, counted from 1,
    retransmissions included; `outage=(N, seconds)` loses everything to the sink for `seconds`
    from data segment N on. `rcvbuf` (bytes) sets the receiver's socket buffer, hence its window.
    `initial_window` (segments) replaces the sender's initial cwnd of 10 (RFC 6928) on the route
    to the receiver, as an administrator would (`ip route change ... initcwnd N`).
    After the block, `report` holds the capture and what the queue did. With `capture=False` the
    delay line keeps no frames (a run of many seconds would make a capture of tens of MB that
    takes scapy longer to read than the run took): `report.packets` is then empty.
    """

    def __init__(self, lab: Lab, *, rate: float = 10e6, queue: int = 50, rtt: float = 0.04,
                 drops: tuple[int, ...] = (), outage: tuple[int, float] | None = None,
                 rcvbuf: int | None = None, initial_window: int | None = None, duration: float = 15.0,
                 capture: bool = True) -> None:
        if not isinstance(rate, (int, float)) or isinstance(rate, bool) or not 100e3 <= rate <= 1e9:
            raise ValueError(f"rate must be in bits/s, from 100e3 to 1e9, not {rate!r}")
        check_int("queue", queue, 2, 2000)
        check_seconds("rtt", rtt, 1.0)
        for n in drops:
            check_int("a data segment's number", n, 1, 1_000_000)
        if outage is not None:
            check_int("outage's first segment", outage[0], 1, 1_000_000)
            check_seconds("outage's length", outage[1], 5.0)
        if rcvbuf is not None:
            check_int("rcvbuf", rcvbuf, 1024, 64 * 2**20)
        if initial_window is not None:
            check_int("initial_window", initial_window, 1, 100)
        check_seconds("duration", duration, MAX_DURATION)
        self.lab, self.rate, self.queue, self.rtt = lab, float(rate), queue, float(rtt)
        self.drops, self.outage, self.rcvbuf, self.duration = tuple(drops), outage, rcvbuf, float(duration)
        self.initial_window = initial_window
        self.capture = bool(capture)
        self.report = LinkReport()
        self._receiver: subprocess.Popen | None = None
        self._delay: subprocess.Popen | None = None
        self._dir: str | None = None
        self._delay_ready = False  # the delay line has its order: it will write a capture when it ends

    @property
    def sink(self) -> tuple[str, int]:
        """The receiver's discard service: send here."""
        return RECEIVER_ADDRESS, SINK_PORT

    @property
    def echo(self) -> tuple[str, int]:
        """The receiver's echo service: a small connection whose round trip shows the queue."""
        return RECEIVER_ADDRESS, ECHO_PORT

    @property
    def bdp(self) -> float:
        """The path's bandwidth-delay product, in full segments: how many fill the pipe without a queue."""
        return self.rate / 8 * self.rtt / (MSS + 52 + 14)

    def describe(self) -> str:
        """One line: the path's rate, queue, round-trip time and loss."""
        loss = ""
        if self.drops:
            loss += f", data segment{'s' if len(self.drops) > 1 else ''} {', '.join(map(str, self.drops))} lost"
        if self.outage:
            loss += f", an outage of {self.outage[1]:g} s from data segment {self.outage[0]}"
        start = f", initial window {self.initial_window} segments" if self.initial_window is not None else ""
        return (f"bottleneck {self.rate / 1e6:g} Mbit/s, queue {self.queue} packets, RTT {self.rtt * 1000:g} ms"
                f" (a pipe of {self.bdp:.0f} segments){start}{loss}")

    def connect(self, algorithm: str | None = None, *, address: tuple[str, int] | None = None,
                timeout: float = 5.0) -> socket.socket:
        """A TCP socket in the lab, with congestion control `algorithm` (TCP_CONGESTION), connected to the sink."""
        sock = self.lab.socket()
        try:
            if algorithm is not None:
                try:
                    sock.setsockopt(socket.IPPROTO_TCP, TCP_CONGESTION, algorithm.encode())
                except OSError:
                    raise ValueError(f"this kernel has no congestion control {algorithm!r}; it offers "
                                     f"{', '.join(available_algorithms()) or 'none it names'}") from None
            sock.settimeout(timeout)
            sock.connect(address or self.sink)
        except BaseException:
            sock.close()
            raise
        return sock

    def __enter__(self) -> Bottleneck:
        try:
            self._open()
        except BaseException:
            self.close()
            raise
        return self

    def _open(self) -> None:
        lab = self.lab
        if "snd0" in lab.run("ip", "-o", "link", "show"):
            raise BottleneckError("this lab has a bottleneck already; close it first")
        self._dir = tempfile.mkdtemp(prefix="netlab-bottleneck-")
        lab.add_veth("snd0", "dl0", address=f"{SENDER_ADDRESS}/24", neighbour=RECEIVER_ADDRESS,
                     neighbour_mac=_RCV_MAC, mtu=MTU, near_mac=_SND_MAC)
        if self.initial_window is not None:
            # The kernel reads a route's initcwnd when a connection starts: set before any connect.
            lab.run("ip", "route", "change", _NETWORK, "dev", "snd0", "proto", "kernel", "scope", "link",
                    "src", SENDER_ADDRESS, "initcwnd", str(self.initial_window))
        # The receiver: its own network namespace, a child of the lab's.
        self._receiver = lab.popen([sys.executable, "-m", "netlab.core.bottleneck", "receiver"],
                                   stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        # The delay line starts (Python and its imports, a few hundred ms) while the receiver
        # does; it opens its sockets only when its order comes, once dl1 exists.
        self._delay = lab.popen([sys.executable, "-m", "netlab.core.bottleneck", "delay"],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        pid = self._expect(self._receiver, "pid ", "receiver")
        for argv in (
            ["ip", "link", "add", "dl1", "mtu", str(MTU), "type", "veth", "peer", "name", "rcv0", "address", _RCV_MAC,
             "mtu", str(MTU), "netns", pid],
            ["ip", "link", "set", "dl1", "addrgenmode", "none"],
            ["ip", "link", "set", "dl1", "up"],
            # The bottleneck: tbf sends at `rate`, holds at most `queue` full frames, drops the rest.
            # Its bucket holds two frames, so it never lets a burst through faster than the rate.
            ["tc", "qdisc", "replace", "dev", "dl1", "root", "tbf", "rate", f"{int(self.rate)}bit",
             "burst", str(2 * (MTU + 14)), "limit", str(self.queue * (MTU + 14))],
        ):
            lab.run(*argv)
        self._order(self._receiver, {"rcvbuf": self.rcvbuf, "sender": SENDER_ADDRESS, "mac": _SND_MAC})
        self._expect(self._receiver, "ready", "receiver")
        self._order(self._delay, {"rtt": self.rtt, "drops": list(self.drops), "outage": self.outage,
                                  "duration": self.duration, "out": self._dir, "capture": self.capture})
        self._expect(self._delay, "ready", "delay line")
        self._delay_ready = True

    @staticmethod
    def _order(proc: subprocess.Popen, order: dict[str, Any]) -> None:
        proc.stdin.write(json.dumps(order).encode() + b"\n")
        proc.stdin.flush()

    @staticmethod
    def _expect(proc: subprocess.Popen, prefix: str, who: str) -> str:
        line = read_line(proc.stdout, START_TIMEOUT).decode(errors="replace")
        if not line.startswith(prefix):
            proc.kill()
            code = proc.wait(STOP_TIMEOUT)
            refused = line.removeprefix("refused ")
            if refused != line and refused.isdigit():  # the receiver's unshare(CLONE_NEWNET) failed with this errno
                raise LabUnavailable(inner_refusal_sentence("unshare(CLONE_NEWNET)", int(refused),
                                                            f"a network namespace for the bottleneck's {who}"))
            detail = last_line(proc.stderr.read().decode(errors="replace")) if proc.stderr else ""
            # Killed here: it was still silent at the time bound. Any other status: it ended by itself.
            when = f"within {START_TIMEOUT:g} s" if code < 0 else f"(it ended with status {code})"
            raise BottleneckError(f"the bottleneck's {who} did not start {when}: {detail or line or 'it said nothing'}")
        return line[len(prefix):]

    def queue_stats(self) -> tuple[int, int, int]:
        """The tbf queue now: (packets sent on, packets dropped, bytes waiting), from `tc -s qdisc`."""
        words = self.lab.run("tc", "-s", "qdisc", "show", "dev", "dl1").split()
        sent = int(words[words.index("Sent") + 3]) if "Sent" in words else 0
        dropped = int(words[words.index("(dropped") + 1].rstrip(",")) if "(dropped" in words else 0
        backlog = words[words.index("backlog") + 1] if "backlog" in words else "0b"
        return sent, dropped, _size(backlog)

    def close(self) -> None:
        """Stop the delay line (collecting its capture) and the receiver, and remove the links."""
        try:
            if self._delay is not None:
                try:
                    self.report.queue_sent, self.report.queue_drops, _ = self.queue_stats()
                except Exception:  # noqa: BLE001  (the lab may be gone; the capture matters more)
                    pass
                killed = _stop(self._delay)
                if self._receiver is not None:
                    _stop(self._receiver)  # before reading the capture, which may fail
                    self._receiver = None
                if self._delay_ready:
                    self._collect(killed)
            if self._receiver is not None:
                _stop(self._receiver)
        finally:
            self._delay = self._receiver = None
            if self._dir is not None:
                shutil.rmtree(self._dir, ignore_errors=True)
                self._dir = None
            for link in ("snd0", "dl1"):
                try:
                    self.lab.run("ip", "link", "del", link)
                except Exception:  # noqa: BLE001  (gone already, or the lab closed: nothing left behind)
                    pass

    def _collect(self, killed: bool) -> None:
        out = Path(self._dir or "")
        log = out / "log.json"
        if not log.is_file():
            raise BottleneckError("the delay line ended without writing its capture"
                                  + (f" (it did not stop within {STOP_TIMEOUT:g} s)" if killed else ""))
        data = json.loads(log.read_text())
        self.report.log = [tuple(e) for e in data["log"]]
        self.report.capture_drops = data["capture_drops"]
        self.report.packets = load_pcap(out / "link.pcap") if self.capture else []

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        try:
            self.close()
        except BottleneckError as err:
            if exc is None:
                raise
            exc.add_note(str(err))


def _stop(proc: subprocess.Popen) -> bool:
    """Close the program's stdin (its signal to end), kill it after STOP_TIMEOUT s; True if killed."""
    killed = False
    try:
        proc.stdin.close()
    except OSError:
        pass
    try:
        proc.wait(STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(STOP_TIMEOUT)
        killed = True
    for stream in (proc.stdout, proc.stderr):
        if stream:
            stream.close()
    return killed


def _size(text: str) -> int:
    """tc's sizes: 1514b, 30Kb, 1Mb (k = 1024)."""
    units = {"b": 1, "Kb": 1024, "Mb": 1024**2, "Gb": 1024**3}
    for unit in ("Kb", "Mb", "Gb", "b"):
        if text.endswith(unit):
            return int(float(text[: -len(unit)]) * units[unit])
    return int(text) if text.isdigit() else 0


def send_sampled(sock: socket.socket, *, seconds: float = 2.0, size: int | None = None, every: float = 0.002,
                 settle: float = 3.0) -> tuple[int, list[TcpInfo]]:
    """Send as fast as `sock` takes it for `seconds` (or until `size` bytes), reading TCP_INFO every `every` s.

    Then wait (up to `settle` s) until everything sent is acknowledged, still sampling, and send
    the FIN. Returns (bytes sent, samples). The samples are the kernel's own view of the sender,
    several per round trip at tens of ms, stamped in the capture's clock (Unix seconds).
    """
    check_seconds("seconds", seconds, MAX_DURATION)
    check_seconds("every", every, 1.0)
    chunk = b"netlab congestion. " * 3449  # 65531 bytes: the socket takes what fits
    samples = [tcp_info(sock)]
    sent, start = 0, time.monotonic()
    end = start + seconds
    next_sample = start + every
    sock.setblocking(False)
    try:
        while time.monotonic() < end and (size is None or sent < size):
            wait = max(0.0, min(next_sample, end) - time.monotonic())
            if select.select([], [sock], [], wait)[1]:
                piece = chunk if size is None else chunk[: size - sent]
                try:
                    sent += sock.send(piece)
                except BlockingIOError:
                    pass
            if time.monotonic() >= next_sample:
                samples.append(tcp_info(sock))
                next_sample += every
        done = time.monotonic() + settle
        while time.monotonic() < done:
            info = tcp_info(sock)
            samples.append(info)
            if info.bytes_acked >= sent:
                break
            time.sleep(every)
        sock.shutdown(socket.SHUT_WR)
    finally:
        sock.setblocking(True)
    return sent, samples


# ---------------------------------------------------------------------------
# The programs: `python -m netlab.core.bottleneck receiver|delay`, an order as one JSON line on stdin.


def _receiver() -> None:
    """The receiver: make its network namespace, configure rcv0, discard port 9, echo port 7, until stdin closes."""
    import ctypes
    import threading

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(CLONE_NEWNET) != 0:  # a namespace inside the lab's, which a container's profile may refuse
        print(f"refused {ctypes.get_errno()}", flush=True)
        return
    subprocess.run(command(["ip", "link", "set", "lo", "up"]), check=True, capture_output=True, timeout=5)
    print(f"pid {os.getpid()}", flush=True)
    order = json.loads(sys.stdin.buffer.readline())
    for argv in (
        ["ip", "link", "set", "rcv0", "addrgenmode", "none"],
        ["ip", "addr", "add", f"{RECEIVER_ADDRESS}/24", "dev", "rcv0"],
        ["ip", "link", "set", "rcv0", "up"],
        ["ip", "neigh", "replace", order["sender"], "lladdr", order["mac"], "dev", "rcv0", "nud", "permanent"],
    ):
        subprocess.run(command(argv), check=True, capture_output=True, timeout=5)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as any_socket:
        _no_checksum_offload(any_socket, "rcv0")  # its ACKs cross the delay line too

    def listen(port: int) -> socket.socket:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if order["rcvbuf"] and port == SINK_PORT:
            # Before listen(): the window scale is chosen from the buffer at the handshake.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, order["rcvbuf"])
        sock.bind((RECEIVER_ADDRESS, port))
        sock.listen(16)
        return sock

    def serve(conn: socket.socket, echo: bool) -> None:
        with conn:
            conn.settimeout(MAX_DURATION)
            try:
                while data := conn.recv(1 << 20):
                    if echo:
                        conn.sendall(data)
            except OSError:
                pass

    def accept(server: socket.socket, echo: bool) -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            if echo:
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            threading.Thread(target=serve, args=(conn, echo), daemon=True).start()

    servers = [listen(SINK_PORT), listen(ECHO_PORT)]
    for server, echo in zip(servers, (False, True), strict=True):
        threading.Thread(target=accept, args=(server, echo), daemon=True).start()
    print("ready", flush=True)
    select.select([sys.stdin], [], [], MAX_DURATION + 10)  # until told to stop (stdin closes)
    for server in servers:
        server.close()


_ETH_P_ALL = 0x0003
_PACKET_OUTGOING = 4
_PACKET_STATISTICS = 6
_SOL_PACKET = 263


def _data_to_sink(frame: bytes) -> bool:
    """True for an IPv4 TCP segment to the sink's port that carries data."""
    if len(frame) < 54 or frame[12:14] != b"\x08\x00" or frame[23] != 6:
        return False
    ihl = (frame[14] & 0x0F) * 4
    total = struct.unpack_from("!H", frame, 16)[0]
    tcp = 14 + ihl
    dport = struct.unpack_from("!H", frame, tcp + 2)[0]
    return dport == SINK_PORT and total - ihl - (frame[tcp + 12] >> 4) * 4 > 0


def _delay_line() -> None:
    """Hold every frame rtt/2 each way between dl0 and dl1; drop as ordered; record dl0; until told to stop."""
    line = sys.stdin.buffer.readline()
    if not line:  # closed before any order: the bottleneck did not open
        return
    order = json.loads(line)
    out = Path(order["out"])
    half = float(order["rtt"]) / 2
    drops = set(order["drops"])
    outage = order["outage"]
    keep = order.get("capture", True)
    socks = {}
    for name in ("dl0", "dl1"):
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(_ETH_P_ALL))
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 2**20)  # the kernel caps it at rmem_max
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 * 2**20)  # frames waiting in tbf count here
        sock.bind((name, 0))
        sock.setblocking(False)
        socks[name] = sock
    a, b = socks["dl0"], socks["dl1"]
    _no_checksum_offload(a, "snd0")
    other = {a: b, b: a}
    started = time.monotonic()
    deadline = started + min(float(order["duration"]), MAX_DURATION)
    log: list[tuple[float, str]] = []
    frames: list[tuple[bytes, float]] = []  # at the sender's side: what came in on dl0, what went out on dl0
    held: list[tuple[float, int, bytes, socket.socket]] = []  # (when to send, tie-break, frame, out socket)
    count, outage_until, number = 0, None, 0
    stdin = sys.stdin.buffer.fileno()
    print("ready", flush=True)

    def note(what: str) -> None:
        log.append((round(time.monotonic() - started, 6), what))

    while True:
        now = time.monotonic()
        while held and held[0][0] <= now:
            _, _, frame, out_sock = heapq.heappop(held)
            try:
                out_sock.send(frame)
            except OSError:
                pass  # the tbf queue is full (ENOBUFS): a drop at the bottleneck, counted by tc
            if out_sock is a and keep:
                frames.append((frame, time.time()))
        if now >= deadline:
            note("time bound reached")
            break
        wake = min(deadline, held[0][0]) if held else deadline
        ready = select.select([a, b, stdin], [], [], max(0.0, wake - now))[0]
        if stdin in ready and not os.read(stdin, 4096):
            break
        for sock in (s for s in (a, b) if s in ready):
            for _ in range(_FRAMES_PER_PASS):
                try:
                    frame, stamp, addr = recv_stamped(sock)
                except BlockingIOError:
                    break
                if addr[2] == _PACKET_OUTGOING:
                    continue
                if sock is a:
                    if keep:
                        frames.append((frame, stamp))
                    if _data_to_sink(frame):
                        count += 1
                        if outage and count == outage[0]:
                            outage_until = time.monotonic() + outage[1]
                            note(f"data segment {count}: outage begins, everything to the sink lost for {outage[1]:g} s")
                        if outage_until is not None and time.monotonic() < outage_until:
                            continue
                        if count in drops:
                            note(f"data segment {count}: dropped")
                            continue
                number += 1
                heapq.heappush(held, (time.monotonic() + half, number, frame, other[sock]))
    stats = a.getsockopt(_SOL_PACKET, _PACKET_STATISTICS, 8)
    missed = struct.unpack("II", stats)[1]
    for sock in (a, b):
        sock.close()
    if keep:
        frames.sort(key=lambda f: f[1])
        write_frames(out / "link.pcap.part", frames)
        os.replace(out / "link.pcap.part", out / "link.pcap")
    (out / "log.json.part").write_text(json.dumps({"log": log, "capture_drops": missed}))
    os.replace(out / "log.json.part", out / "log.json")


def _no_checksum_offload(sock: socket.socket, device: str) -> None:
    """Make `device`'s kernel fill in checksums itself (ethtool -K DEV tx off, via SIOCETHTOOL).

    A veth leaves a TCP checksum for "the hardware" to finish, and there is none: the delay
    line would pass on segments whose checksum the receiver's kernel rejects.
    """
    import ctypes
    import fcntl

    value = ctypes.create_string_buffer(struct.pack("II", 0x17, 0))  # ETHTOOL_STXCSUM, off
    request = struct.pack("16sP", device.encode(), ctypes.addressof(value)).ljust(40, b"\0")
    fcntl.ioctl(sock.fileno(), 0x8946, request)  # SIOCETHTOOL


if __name__ == "__main__":
    {"receiver": _receiver, "delay": _delay_line}[sys.argv[1]]()
