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
                       (or, with a `discipline`: dl0 ──▶ [its queue: rate, discipline] ──▶ hold rtt/2 ──▶ dl1)

 - the **receiver** is the Linux kernel in a second network namespace (the program makes it
   itself, unshare(CLONE_NEWNET), from inside the lab's user namespace): it acknowledges, delays
   ACKs and advertises its window as any Linux host does. It discards what arrives on port 9 and
   echoes port 7. Where the system refuses that namespace, it says "refused ERRNO" and ends, and
   the bottleneck raises LabUnavailable at once (the experiment shows its recording).
 - the **bottleneck** is a `tbf` queue on dl1, the delay line's way out towards the receiver:
   packets leave at `rate` bits/s and at most `queue` packets wait; more are dropped (drop-tail).
   It is not on the sender's own interface: a queue on the sender's host is watched by TCP Small
   Queues, which would stop the sender from filling it, and the lesson is a queue in the network.
   With `discipline` ("droptail", or a lesson's "package.module:Class"), the queue is the delay
   line's own instead, in Python, where a discipline (RED, CoDel, ECN marking) can see it; the
   kernel's `tbf` paces more steadily under load, so it stays the default.
 - the **delay** is the lab's delay line (`netlab.core.delayline`, its program in
   `netlab.core.inlab.delayline`), not the kernel: it reads every frame on dl0 and dl1 (raw
   packet sockets), holds it for half the round-trip time and writes it on the other side.
   What this changes from netem: the hold is as exact as Python's timers (well under a ms
   at these rates); it adds the same delay to every frame, so it never reorders unless asked.
 - **loss** is ordered by number, like the scripted peer's `Script.drop(N)`: the delay line
   drops the N-th data segment to the sink (retransmissions counted too), or every one for a
   while (`outage`), which is what forces a retransmission timeout. `forward` and `backward`
   add the delay line's random impairments (loss, duplication, reordering, corruption, with a seed).

The delay line is also the capture. It sees every frame at dl0, the sender's side of the link
(the sender's segments as they leave it, the ACKs as they reach it), both directions on one
packet socket stamped by the kernel at that one point, so that every ACK is captured after
what it acknowledges; it writes them as a pcap when it ends, with its socket's drop count
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

import json
import select
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from netlab.core.arguments import check_int, check_seconds
from netlab.core.delayline import DelayLine, DelayLineError, Direction
from netlab.core.errors import HelperError, LabUnavailable
from netlab.core.lab import Lab, inner_refusal_sentence, last_line, read_line, stop_program
from netlab.core.sockets import TCP_CONGESTION, TcpInfo, tcp_info

__all__ = [
    "Bottleneck", "BottleneckError", "LinkReport", "RttProbe", "send_sampled",
    "available_algorithms", "default_algorithm", "Direction",
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
    queue_drops: int = 0  # packets the queue dropped (tc -s qdisc for tbf; the discipline's count otherwise)
    queue_sent: int = 0  # packets the queue sent on
    queue_marked: int = 0  # packets the delay line's discipline marked CE instead (0 with tbf)
    queue_log: list[tuple[float, str]] = field(default_factory=list)  # what the delay line's discipline did
    forward: dict[str, Any] = field(default_factory=dict)  # the delay line's counts towards the receiver
    backward: dict[str, Any] = field(default_factory=dict)  # and towards the sender


class Bottleneck:
    """A path from the lab to a real Linux receiver: `rate` bits/s, a queue of `queue` packets, `rtt` s.

        with netlab.Lab() as lab, Bottleneck(lab, rate=10e6, queue=50, rtt=0.04) as path:
            sock = path.connect(algorithm="cubic")

    `drops` are data segments to the sink (port 9) the delay line loses, counted from 1,
    retransmissions included; `outage=(N, seconds)` loses everything to the sink for `seconds`
    from data segment N on. `rcvbuf` (bytes) sets the receiver's socket buffer, hence its window.
    `initial_window` (segments) replaces the sender's initial cwnd of 10 (RFC 6928) on the route
    to the receiver, as an administrator would (`ip route change ... initcwnd N`).
    `discipline` puts the queue in the delay line instead of the kernel's tbf: "droptail" or a
    lesson's "package.module:Class" (a `netlab.core.inlab.delayline.Discipline`), with `options`
    as its keyword arguments. `forward` and `backward` (`Direction`s) add the delay line's random
    impairments towards the receiver and back (their delay is added to rtt/2; rate and queue
    come from this bottleneck).
    After the block, `report` holds the capture and what the queue did. With `capture=False` the
    delay line keeps no frames (a run of many seconds would make a capture of tens of MB that
    takes scapy longer to read than the run took): `report.packets` is then empty.
    """

    def __init__(self, lab: Lab, *, rate: float = 10e6, queue: int = 50, rtt: float = 0.04,
                 drops: tuple[int, ...] = (), outage: tuple[int, float] | None = None,
                 rcvbuf: int | None = None, initial_window: int | None = None, duration: float = 15.0,
                 capture: bool = True, discipline: str | None = None, options: dict[str, Any] | None = None,
                 forward: Direction | None = None, backward: Direction | None = None) -> None:
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
        self.discipline = discipline
        half = self.rtt / 2
        forward, backward = forward or Direction(), backward or Direction()
        queued = {"rate": self.rate, "queue": queue, "discipline": discipline, "options": dict(options or {})} \
            if discipline is not None else {}
        if discipline is None and options:
            raise ValueError("options are for a discipline: give discipline= too")
        self.forward = Direction(**{**forward.to_order(), "delay": forward.delay + half, "drops": list(self.drops),
                                    "outage": outage, "port": SINK_PORT, **queued}).check("forward")
        self.backward = Direction(**{**backward.to_order(), "delay": backward.delay + half}).check("backward")
        self.report = LinkReport()
        self._receiver: subprocess.Popen | None = None
        self._line: DelayLine | None = None

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
        if self.discipline is not None:
            start += f", the delay line's {self.discipline.rpartition(':')[2]} queue"
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

    def probe(self, every: float = 0.02, bound: float = MAX_DURATION) -> RttProbe:
        """A small connection to the echo service whose round trip is timed every `every` s (see `RttProbe`)."""
        return RttProbe(self, every=every, bound=bound)

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
        lab.add_veth("snd0", "dl0", address=f"{SENDER_ADDRESS}/24", neighbour=RECEIVER_ADDRESS,
                     neighbour_mac=_RCV_MAC, mtu=MTU, near_mac=_SND_MAC)
        if self.initial_window is not None:
            # The kernel reads a route's initcwnd when a connection starts: set before any connect.
            lab.run("ip", "route", "change", _NETWORK, "dev", "snd0", "proto", "kernel", "scope", "link",
                    "src", SENDER_ADDRESS, "initcwnd", str(self.initial_window))
        # The receiver: its own network namespace, a child of the lab's.
        self._receiver = lab.popen([sys.executable, "-m", "netlab.core.inlab.receiver"],
                                   stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        # The delay line starts (Python and its imports) while the receiver does; it opens its
        # sockets only when its order comes, once dl1 exists.
        self._line = DelayLine(lab.popen, "dl0", "dl1", forward=self.forward, backward=self.backward,
                               capture="a" if self.capture else None, duration=self.duration,
                               finish_checksums=["snd0"], name="the bottleneck's delay line")
        self._line.start()
        pid = self._expect(self._receiver, "pid ", "receiver")
        steps = [
            ["ip", "link", "add", "dl1", "mtu", str(MTU), "type", "veth", "peer", "name", "rcv0", "address", _RCV_MAC,
             "mtu", str(MTU), "netns", pid],
            ["ip", "link", "set", "dl1", "addrgenmode", "none"],
            ["ip", "link", "set", "dl1", "up"],
        ]
        if self.discipline is None:
            # The bottleneck: tbf sends at `rate`, holds at most `queue` full frames, drops the rest.
            # Its bucket holds two frames, so it never lets a burst through faster than the rate.
            steps.append(["tc", "qdisc", "replace", "dev", "dl1", "root", "tbf", "rate", f"{int(self.rate)}bit",
                          "burst", str(2 * (MTU + 14)), "limit", str(self.queue * (MTU + 14))])
        for argv in steps:
            lab.run(*argv)
        self._order(self._receiver, {"device": "rcv0", "address": RECEIVER_ADDRESS, "sink": SINK_PORT,
                                     "echo": ECHO_PORT, "rcvbuf": self.rcvbuf, "sender": SENDER_ADDRESS,
                                     "mac": _SND_MAC})
        self._expect(self._receiver, "ready", "receiver")
        try:
            self._line.open()
        except DelayLineError as err:
            raise BottleneckError(str(err)) from None

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
        line, self._line = self._line, None
        try:
            if line is not None:
                if self.discipline is None:
                    try:
                        self.report.queue_sent, self.report.queue_drops, _ = self.queue_stats()
                    except Exception:  # noqa: BLE001  (the lab may be gone; the capture matters more)
                        pass
                try:
                    line.close()
                except DelayLineError as err:
                    raise BottleneckError(str(err)) from None
                finally:
                    if self._receiver is not None:
                        stop_program(self._receiver, STOP_TIMEOUT)
                        self._receiver = None
                self._read_report(line)
        finally:
            if self._receiver is not None:
                stop_program(self._receiver, STOP_TIMEOUT)
                self._receiver = None
            for link in ("snd0", "dl1"):
                try:
                    self.lab.run("ip", "link", "del", link)
                except Exception:  # noqa: BLE001  (gone already, or the lab closed: nothing left behind)
                    pass

    def _read_report(self, line: DelayLine) -> None:
        got, report = line.report, self.report
        report.packets, report.log, report.capture_drops = got.packets, got.log, got.capture_drops
        report.forward, report.backward = got.forward, got.backward
        if self.discipline is not None and got.forward:
            report.queue_drops = got.forward["queue_dropped"]
            report.queue_marked = got.forward["queue_marked"]
            report.queue_log = [tuple(e) for e in got.forward["queue_log"]]
            report.queue_sent = got.forward["sent"]

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        try:
            self.close()
        except BottleneckError as err:
            if exc is None:
                raise
            exc.add_note(str(err))


def _size(text: str) -> int:
    """tc's sizes: 1514b, 30Kb, 1Mb (k = 1024)."""
    units = {"b": 1, "Kb": 1024, "Mb": 1024**2, "Gb": 1024**3}
    for unit in ("Kb", "Mb", "Gb", "b"):
        if text.endswith(unit):
            return int(float(text[: -len(unit)]) * units[unit])
    return int(text) if text.isdigit() else 0


class RttProbe:
    """What a queue does to everyone else: a small connection's round trip, timed while a `with` block runs.

        with path.connect("cubic") as bulk, path.probe(every=0.02) as probe:
            send_sampled(bulk, seconds=2)
        probe.samples        # [(Unix time sent, round trip in s), ...]

    One byte to the receiver's echo service every `every` s (TCP_NODELAY, so it leaves at once),
    timed until its echo comes back: its round trip is the path's plus the time it waited in
    the queue behind the bulk transfer's packets (bufferbloat). It stops when the block ends,
    at `bound` s, or when the connection fails (a probe lost in an overflowing queue waits for
    a retransmission: that wait is in its round trip too).
    """

    def __init__(self, path: Bottleneck, *, every: float = 0.02, bound: float = MAX_DURATION) -> None:
        check_seconds("every", every, 1.0)
        check_seconds("bound", bound, MAX_DURATION)
        self.path, self.every, self.bound = path, float(every), float(bound)
        self.samples: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None

    def __enter__(self) -> RttProbe:
        self._sock = self.path.connect(address=self.path.echo)
        self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._thread = threading.Thread(target=self._run, name="netlab RTT probe", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        sock = self._sock
        sock.settimeout(2.0)
        end = time.monotonic() + self.bound
        while not self._stop.is_set() and time.monotonic() < end:
            sent_at = time.time()
            try:
                sock.sendall(b"?")
                if not sock.recv(1):
                    return
            except OSError:
                return
            self.samples.append((sent_at, time.time() - sent_at))
            self._stop.wait(self.every)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(3.0)  # a probe waits at most its 2 s timeout for its echo
        if self._sock is not None:
            self._sock.close()


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
