"""The scripted remote peer: a host at 10.0.0.2 that netlab plays itself, on a 1500-byte link.

Theory of operation
-------------------
The kernel on these machines has no `netem`, so loss, small windows and resets cannot be
ordered from it. Instead netlab plays the remote end of a connection. `add_link(lab)` gives the
lab a veth pair `lab0 ⇄ peer0` with an Ethernet MTU of 1500. The kernel's side, lab0, gets
10.0.0.1/24 and a permanent neighbour entry for the "remote host" 10.0.0.2; peer0 gets no
address at all, so the kernel never answers for 10.0.0.2 and sends no stray RST. A small Python
program reads and writes raw Ethernet frames on peer0 and acts as 10.0.0.2's TCP, following a
`Script`: accept or refuse the SYN, advertise a window, drop a segment, acknowledge late or
never, and so on. The notebook's socket is an ordinary kernel socket in the lab that connects
to 10.0.0.2; everything the kernel does (segmenting, retransmitting, probing a zero window) is
real kernel behaviour.

The peer is a separate process in the lab (`Lab.popen`), not a thread in the lab's helper:
 - it can always be stopped: closing its stdin ends it at once, a kill is the fallback, and the
   lab kills it when it closes; a thread cannot be killed, and a stuck peer would stall the
   helper's request channel for every later request;
 - it has its own interpreter, so the sniffer and the peer do not take turns on one GIL while
   the kernel sends at full speed.
It costs about 0.3 s to start (Python and scapy's layers).

The peer is also the capture. netlab's loopback capture ends on a marker datagram sent over
`lo`, which never crosses a veth; and peer0 sees every frame of the conversation anyway: the
kernel's segments as they arrive and its own as they leave, each stamped by the kernel
(SO_TIMESTAMPNS). It writes them as a pcap, so the Conversation, the tables and the diagrams
work as they do for `lo`. A dropped segment is in the capture (it reached the wire; the peer
then ignores it), like a capture on the sender's host would show it.

The notebook side and the peer talk through files and one line: the script goes in as one JSON
line on stdin, the peer answers "ready" on stdout once it listens, and it writes its log and its
capture into a temporary folder when it ends: when the connection is over, when its script says
so, at its own time bound, or as soon as its stdin closes.

Rules for this file:
1. The peer never waits without a bound: every loop has a deadline (`Script.duration`, at most
   `MAX_DURATION` seconds), and the notebook side stops it within `STOP_TIMEOUT` seconds.
2. The peer sends only on peer0 and only to the lab's own address; nothing leaves the lab.
"""

from __future__ import annotations

import heapq
import json
import os
import random
import select
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from netlab.core.arguments import check_int, check_seconds
from netlab.core.errors import HelperError
from netlab.core.experiment import Experiment, live_or_recorded
from netlab.core.lab import Lab, last_line, read_line
from netlab.core.pcapfiles import load_pcap, write_frames
from netlab.core.sockets import SO_TIMESTAMPNS, recv_stamped, unacknowledged

__all__ = [
    "Script", "Peer", "PeerError", "PeerEvent", "PeerExperiment", "add_link", "transfer", "pattern",
    "LAB_ADDRESS", "PEER_ADDRESS", "MTU", "MSS", "COUNTERS", "kernel_counters", "recording_note",
]

LAB_ADDRESS = "10.0.0.1"  # the kernel's side of the link (lab0)
PEER_ADDRESS = "10.0.0.2"  # the remote host the peer plays (behind peer0)
MTU = 1500  # bytes: Ethernet's, so segments look as they do on a real network
MSS = MTU - 20 - 20  # bytes of payload in a full segment: MTU minus the IP and TCP headers
_LAB_MAC = "02:00:00:00:00:01"  # fixed, locally administered: the frames are the same every run
_PEER_MAC = "02:00:00:00:00:02"
START_TIMEOUT = 15.0  # seconds for the peer process to start listening
STOP_TIMEOUT = 3.0  # seconds for the peer to end once asked, before it is killed
MAX_DURATION = 60.0  # seconds: no script runs longer
# Frames the peer handles before it looks at its clock and its stdin again. It needs about 1 ms
# a frame, and a kernel sending at full speed answers every ACK with new segments, so the
# socket's queue may never run empty: without this bound a busy peer would miss its time
# bound and its order to stop.
_FRAMES_PER_PASS = 64


class PeerError(HelperError):
    """The scripted peer was given a bad script or could not run it."""


# ---------------------------------------------------------------------------
# The script: what the remote host does, readable in one glance.


class Script:
    """What the peer at 10.0.0.2 does, built step by step.

        netlab.peer.Script(port=80).accept(window=14600).drop(3)

    Data segments are counted as they arrive, from 1, retransmissions included. By default the
    peer accepts, advertises a 65535-byte window, reads and acknowledges every segment at once,
    and closes when the kernel closes.
    """

    def __init__(self, port: int = 80) -> None:
        if not isinstance(port, int) or not 1 <= port <= 65535:
            raise ValueError(f"port must be a whole number from 1 to 65535, not {port!r}")
        self.port = port
        self.syn = "accept"
        self.window = 65535
        self.drops: list[int] = []
        self.ack_delay = 0.0
        self.acks = True
        self.duplicates: dict[int, int] = {}
        self.reset_at: int | None = None
        self.corrupt: list[int] = []
        self.pause: tuple[int, float] | None = None
        self.stop_at: int | None = None
        self.duration = 10.0
        self._steps: list[str] = []

    def _step(self, text: str) -> Script:
        self._steps.append(text)
        return self

    def accept(self, window: int = 65535) -> Script:
        """Answer the SYN with a SYN-ACK and offer a receive buffer of `window` bytes (at most 65535)."""
        check_int("window", window, 0, 65535)
        self.syn, self.window = "accept", window
        return self._step(f"accept(window={window})")

    def refuse(self) -> Script:
        """Answer the SYN with a reset, as a host where nothing listens on the port."""
        self.syn = "refuse"
        return self._step("refuse()")

    def ignore_syns(self) -> Script:
        """Never answer a SYN, as a host that is down or behind a firewall that drops."""
        self.syn = "ignore"
        return self._step("ignore_syns()")

    def drop(self, *segments: int) -> Script:
        """Lose these data segments (1 = the first to arrive): no ACK, the bytes are not kept."""
        for n in segments:
            check_int("a data segment's number", n, 1, 10_000)
        self.drops += list(segments)
        return self._step(f"drop({', '.join(map(str, segments))})")

    def never_ack(self) -> Script:
        """Keep receiving but never acknowledge any data: the sender retransmits on its timer."""
        self.acks = False
        return self._step("never_ack()")

    def ack_late(self, seconds: float) -> Script:
        """Send every acknowledgement `seconds` late: a long round trip (RTT = about `seconds`)."""
        check_seconds("ack_late", seconds, 5.0)
        self.ack_delay = float(seconds)
        return self._step(f"ack_late({seconds:g})")

    def duplicate_acks(self, segment: int, count: int = 3) -> Script:
        """Throw data segment `segment` away and answer it with `count` copies of the previous ACK."""
        check_int("a data segment's number", segment, 1, 10_000)
        check_int("count", count, 1, 20)
        self.duplicates[segment] = count
        return self._step(f"duplicate_acks({segment}, count={count})")

    def reset(self, after: int) -> Script:
        """Send a reset when data segment `after` arrives, in the middle of the stream."""
        check_int("a data segment's number", after, 1, 10_000)
        self.reset_at = after
        return self._step(f"reset(after={after})")

    def corrupt_ack(self, *segments: int) -> Script:
        """Send the ACK of these data segments with a wrong TCP checksum: the kernel must drop it."""
        for n in segments:
            check_int("a data segment's number", n, 1, 10_000)
        self.corrupt += list(segments)
        return self._step(f"corrupt_ack({', '.join(map(str, segments))})")

    def stop_reading(self, after: int = 0, seconds: float = 1.0) -> Script:
        """The peer's program stops reading once `after` bytes have arrived, for `seconds`.

        Unread bytes fill its receive buffer, so the window it advertises shrinks, down to zero;
        when the program reads again the window reopens.
        """
        check_int("after", after, 0, 10**9)
        check_seconds("stop_reading", seconds, 30.0)
        self.pause = (after, float(seconds))
        return self._step(f"stop_reading(after={after}, seconds={seconds:g})")

    def stop_after(self, segments: int) -> Script:
        """End the peer (and its capture) once `segments` data segments have arrived."""
        check_int("segments", segments, 1, 10_000)
        self.stop_at = segments
        return self._step(f"stop_after(segments={segments})")

    def within(self, seconds: float) -> Script:
        """The peer's time bound: it ends after `seconds` whatever happens (default 10)."""
        check_seconds("within", seconds, MAX_DURATION)
        self.duration = float(seconds)
        return self._step(f"within({seconds:g})")

    def to_json(self) -> dict[str, Any]:
        return {
            "port": self.port, "syn": self.syn, "window": self.window, "drops": self.drops,
            "ack_delay": self.ack_delay, "acks": self.acks,
            "duplicates": {str(k): v for k, v in self.duplicates.items()}, "reset_at": self.reset_at,
            "corrupt": self.corrupt, "pause": self.pause, "stop_at": self.stop_at, "duration": self.duration,
        }

    def __repr__(self) -> str:
        return f"Script(port={self.port})" + "".join(f".{s}" for s in self._steps)


# ---------------------------------------------------------------------------
# The notebook side.


@dataclass(frozen=True)
class PeerEvent:
    """One thing the peer did or saw, `time` seconds after it started listening."""

    time: float
    what: str

    def __str__(self) -> str:
        return self.what


def add_link(lab: Lab) -> None:
    """Give the lab the veth link lab0 (10.0.0.1, MTU 1500) ⇄ peer0 (the peer's side); once per lab."""
    if "lab0" in lab.run("ip", "-o", "link", "show"):
        return
    lab.add_veth("lab0", "peer0", address=f"{LAB_ADDRESS}/24", neighbour=PEER_ADDRESS, neighbour_mac=_PEER_MAC,
                 mtu=MTU, near_mac=_LAB_MAC, far_mac=_PEER_MAC)


class Peer:
    """The scripted remote host, running while the `with` block runs.

        with netlab.Lab() as lab, netlab.peer.Peer(lab, script) as peer:
            sock = lab.create_connection(peer.address)

    After the block, `log` holds what the peer did and `packets` every frame on the link.
    """

    def __init__(self, lab: Lab, script: Script, start_timeout: float = START_TIMEOUT) -> None:
        if not isinstance(script, Script):
            raise TypeError(f"a Peer follows a netlab.peer.Script, not {type(script).__name__}")
        self.lab = lab
        self.script = script
        self.start_timeout = start_timeout
        self.log: list[PeerEvent] = []
        self.packets: list = []
        self.finished = False  # True when the peer ended on its own (conversation over or script done)
        self._proc: subprocess.Popen | None = None
        self._dir: str | None = None

    @property
    def address(self) -> tuple[str, int]:
        """Where the peer listens: (10.0.0.2, the script's port)."""
        return PEER_ADDRESS, self.script.port

    def __enter__(self) -> Peer:
        add_link(self.lab)
        self._dir = tempfile.mkdtemp(prefix="netlab-peer-")
        try:
            self._proc = self.lab.popen([sys.executable, "-m", "netlab.core.peer"], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            order = dict(self.script.to_json(), out=self._dir)
            self._proc.stdin.write(json.dumps(order).encode() + b"\n")
            self._proc.stdin.flush()
            line = read_line(self._proc.stdout, self.start_timeout)
            if line != b"ready":
                self._kill()
                detail = last_line(self._proc.stderr.read().decode(errors="replace")) if self._proc.stderr else ""
                if not line:
                    raise PeerError(f"the peer did not start within {self.start_timeout:g} s"
                                    + (f": {detail}" if detail else ""))
                raise PeerError(f"the peer did not start: {detail or line.decode(errors='replace')}")
        except BaseException as err:
            self.__exit__(type(err), err, err.__traceback__)
            raise
        return self

    @property
    def running(self) -> bool:
        """True while the peer process is still playing its part."""
        return self._proc is not None and self._proc.poll() is None

    def wait(self, timeout: float) -> bool:
        """Wait up to `timeout` seconds for the peer to end on its own; True if it did."""
        if self._proc is None:
            return self.finished
        try:
            self._proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return False
        return True

    def stop(self) -> None:
        """End the peer (at once, or killed after STOP_TIMEOUT s) and collect its log and capture.

        Raises PeerError if the peer had to be killed before it wrote them: there is no
        conversation to show, and an empty one would look like a run where nothing happened.
        """
        proc, self._proc = self._proc, None
        try:
            if proc is not None:
                try:
                    proc.stdin.close()  # the peer's signal to end now
                except OSError:
                    pass
                killed = False
                try:
                    proc.wait(STOP_TIMEOUT)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(STOP_TIMEOUT)
                    killed = True
                # The peer writes only a line or two to its pipes: they cannot have filled up.
                err = proc.stderr.read().decode(errors="replace")
                proc.stdout.close()
                proc.stderr.close()
                self._collect(err, killed)
        finally:
            if self._dir is not None:
                shutil.rmtree(self._dir, ignore_errors=True)
                self._dir = None

    def _kill(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()

    def _collect(self, stderr: str, killed: bool = False) -> None:
        out = Path(self._dir or "")
        log = out / "log.json"
        if killed and not log.is_file():
            raise PeerError(f"the peer did not stop within {STOP_TIMEOUT:g} s; its capture is lost")
        if log.is_file():
            data = json.loads(log.read_text())
            self.log = [PeerEvent(t, what) for t, what in data["log"]]
            self.finished = data["finished"]
        pcap = out / "link.pcap"
        if pcap.is_file():
            self.packets = load_pcap(pcap)
        elif stderr.strip() and not self.log:
            raise PeerError(f"the peer failed: {last_line(stderr)}")

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        try:
            self.stop()
        except PeerError as err:
            if exc is None:
                raise
            # The exception that ended the block is the one to see; the lost capture is a note on it.
            exc.add_note(str(err))


@dataclass
class PeerExperiment(Experiment):
    """An Experiment with the scripted peer: also its script and its own log."""

    script: str = ""
    log: list[PeerEvent] = field(default_factory=list)
    counters: dict[str, int] = field(default_factory=dict)  # the lab kernel's TCP counters afterwards (nstat)

    def recording_fields(self) -> dict[str, Any]:
        return {"script": self.script, "log": [[e.time, e.what] for e in self.log], "counters": self.counters}

    @classmethod
    def from_recording(cls, meta: dict[str, Any]) -> dict[str, Any]:
        return {"script": meta.get("script", ""), "log": [PeerEvent(t, what) for t, what in meta.get("log", [])],
                "counters": meta.get("counters", {})}


def pattern(size: int) -> bytes:
    """`size` bytes of readable text whose position shows: a missing or repeated piece stands out."""
    # Readable, position-revealing bytes: a missing or repeated piece shows in the payload.
    line = b"netlab data transfer. "
    return (line * (size // len(line) + 1))[:size]


def transfer(script: Script | None = None, data: int | bytes = 100_000, *, recorded: str | None = None,
             timeout: float = 10.0) -> PeerExperiment:
    """Connect to the scripted peer, send `data` (bytes, or a size in bytes), close: captured on the link.

    Waits up to `timeout` seconds in all for the connection, the sending and the peer's end,
    counted from the moment the peer listens (starting the lab and the peer come on top). The
    result is the number of bytes sent, or the exception the socket raised (a refusal, a reset,
    a timeout is an outcome to look at). `recorded` names the capture in netlab/data to show when
    this machine refuses the lab.
    """
    script = script if script is not None else Script()
    if not isinstance(script, Script):
        raise TypeError(f"transfer() follows a netlab.peer.Script, not {type(script).__name__}")
    if isinstance(data, int) and not isinstance(data, bool):
        check_int("data", data, 0, 10_000_000)
        payload = pattern(data)
    elif isinstance(data, (bytes, bytearray)):
        payload = bytes(data)
    else:
        raise TypeError(f"data is bytes or a size in bytes, not {type(data).__name__}")
    exp = live_or_recorded(lambda lab: _transfer(lab, script, payload, timeout), recorded, kind=PeerExperiment)
    if not exp.live and exp.script and exp.script != repr(script):
        exp.why += recording_note(exp.script)
    return exp


def recording_note(recorded_script: str) -> str:
    """What a recorded transfer adds to its `why` when the recording followed another script than the one asked for."""
    return f" (This recording followed {recorded_script}, not the script asked for.)"


def _transfer(lab: Lab, script: Script, payload: bytes, timeout: float) -> PeerExperiment:
    with Peer(lab, script) as peer:
        deadline = time.monotonic() + timeout  # one budget for every wait below
        try:
            result: Any = _send(lab, peer, payload, deadline)
        except OSError as err:
            result = err
        if not isinstance(result, OSError):
            peer.wait(_left(deadline))
    states = lab.socket_states()
    counters = kernel_counters(lab)
    return _experiment(peer, script, result, states, counters)


def _left(deadline: float) -> float:
    """Seconds left until `deadline` (time.monotonic()), never below zero."""
    return max(0.0, deadline - time.monotonic())


def _send(lab: Lab, peer: Peer, payload: bytes, deadline: float) -> int:
    """The program's side: connect, send, wait for the acknowledgements, close; all by `deadline`."""
    # A socket timeout of 0 would make the socket non-blocking: a millisecond is "no time left".
    with lab.create_connection(peer.address, timeout=max(0.001, _left(deadline))) as sock:
        sock.settimeout(max(0.001, _left(deadline)))  # what connect() left, for the whole sendall
        sock.sendall(payload)
        # Close only once the peer has acknowledged everything (or stopped): a FIN sent at once
        # would ride on the retransmissions and its ACK would cover a lost ACK.
        while unacknowledged(sock) and peer.running and time.monotonic() < deadline:
            time.sleep(0.005)
        error = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if error:
            raise OSError(error, os.strerror(error))  # e.g. ConnectionResetError after a RST
        if peer.running:
            sock.shutdown(socket.SHUT_WR)  # the FIN; the peer's program then closes its side
            peer.wait(_left(deadline))
    return len(payload)


# The lab kernel's counters a lesson reads (`nstat`): each lab has its own, so they count only
# this experiment. RFC 4022/Linux names: segments retransmitted, segments with a bad checksum.
COUNTERS = ("TcpRetransSegs", "TcpInCsumErrors", "TcpExtTCPFastRetrans", "TcpExtTCPTimeouts",
            "TcpExtTCPLossProbes", "TcpExtTCPWinProbe", "TcpExtTCPToZeroWindowAdv")


def kernel_counters(lab: Lab) -> dict[str, int]:
    """The lab kernel's TCP counters named in COUNTERS (from `nstat`), 0 where it has none."""
    values = {}
    # -a: absolute values, -z: zeros too, -s: keep no history file
    data = json.loads(lab.run("nstat", "-azs", "--json"))
    for table in data.values():
        for name, value in table.items():
            if name in COUNTERS:
                values[name] = int(value)
    return {name: values.get(name, 0) for name in COUNTERS}


def _experiment(peer: Peer, script: Script, result: Any, states: list, counters: dict[str, int]) -> PeerExperiment:
    return PeerExperiment(
        peer.packets,
        "live",
        "live: captured just now on a 1500-byte link to a peer that netlab plays, in a private network namespace",
        kernel_states=[s for s in states if s.state != "LISTEN"],
        result=result,
        script=repr(script),
        log=peer.log,
        counters=counters,
    )


# ---------------------------------------------------------------------------
# The peer itself: runs in the lab (python -m netlab.core.peer), script on stdin.

_ETH_P_ALL = 0x0003
_PACKET_OUTGOING = 4


class _Tcp:
    """10.0.0.2's TCP for one connection, as the script says; the peer process's whole logic."""

    def __init__(self, order: dict[str, Any], sock: socket.socket, started: float) -> None:
        self.o = order
        self.sock = sock
        self.started = started
        self.log: list[tuple[float, str]] = []
        self.state = "LISTEN"
        self.done = False
        self.finished = False  # done by the conversation or the script, not by a time bound
        self.client: tuple[str, int] | None = None
        self.iss = random.getrandbits(32)
        self.snd_nxt = self.iss
        self.irs = 0
        self.rcv_nxt = 0
        self.segments = 0  # data segments arrived so far
        self.unread = 0  # bytes received that the peer's program has not read yet
        self.delivered = 0
        self.ooo: dict[int, bytes] = {}  # out-of-order data by sequence number
        self.fin_in = False
        self.paused_until: float | None = None
        self.pause_done = False
        self.timers: list[tuple[float, int, str]] = []  # (when, tie-break, what)
        self.syns_ignored = 0
        self.duplicates = {int(k): v for k, v in order["duplicates"].items()}

    # -- helpers ------------------------------------------------------------

    def note(self, what: str) -> None:
        self.log.append((round(time.monotonic() - self.started, 6), what))

    def rel(self, seq: int) -> int:
        return (seq - self.irs) % 2**32

    def window(self) -> int:
        return max(0, self.o["window"] - self.unread)

    def send(self, flags: str, *, seq: int | None = None, ack: int | None = None, window: int | None = None,
             options: list | None = None, corrupt: bool = False) -> None:
        from scapy.layers.inet import IP, TCP
        from scapy.layers.l2 import Ether

        tcp = TCP(sport=self.o["port"], dport=self.client[1], flags=flags,
                  seq=self.snd_nxt if seq is None else seq, ack=self.rcv_nxt if ack is None else ack,
                  window=self.window() if window is None else window, options=options or [])
        frame = Ether(src=_PEER_MAC, dst=_LAB_MAC) / IP(src=PEER_ADDRESS, dst=self.client[0]) / tcp
        if corrupt:
            frame = Ether(bytes(frame))
            frame[TCP].chksum ^= 0x5A5A  # any other value is wrong; the receiver's sum will not match
        self.sock.send(bytes(frame))

    def ack_now(self, what: str | None = None, corrupt: bool = False) -> None:
        self.send("A", corrupt=corrupt)
        if what:
            self.note(what)

    def later(self, seconds: float, what: str) -> None:
        heapq.heappush(self.timers, (time.monotonic() + seconds, len(self.log) + len(self.timers), what))

    def respond(self, corrupt: bool = False) -> None:
        """Acknowledge what has arrived, now or `ack_delay` seconds late (with the numbers of now)."""
        if not self.o["acks"]:
            return
        if self.o["ack_delay"]:
            self.later(self.o["ack_delay"], json.dumps(["ack", self.rcv_nxt, self.window(), corrupt]))
        else:
            self.ack_now(corrupt=corrupt)

    # -- timers ---------------------------------------------------------------

    def fire(self, now: float) -> None:
        while self.timers and self.timers[0][0] <= now:
            _, _, what = heapq.heappop(self.timers)
            kind, *args = json.loads(what)
            if kind == "ack":  # a late ACK carries the numbers of when it was due
                fin = args[3:] == ["fin"]
                self.send("FA" if fin else "A", ack=args[0], window=args[1], corrupt=args[2])
                if fin:
                    self.snd_nxt = (self.snd_nxt + 1) % 2**32
            elif kind == "read":
                read, self.unread = self.unread, 0
                self.paused_until = None
                self.note(f"the program reads {read} bytes: window reopens to {self.window()}")
                if self.state == "ESTABLISHED" or self.fin_in:
                    self.ack_now()
                self.maybe_close()

    def next_timer(self) -> float | None:
        return self.timers[0][0] if self.timers else None

    # -- segments -----------------------------------------------------------------

    def on_frame(self, data: bytes) -> None:
        from scapy.layers.inet import IP, TCP
        from scapy.layers.l2 import Ether

        frame = Ether(data)
        if IP not in frame or TCP not in frame or frame[IP].dst != PEER_ADDRESS:
            return
        ip, tcp = frame[IP], frame[TCP]
        if tcp.dport != self.o["port"]:
            return
        flags = str(tcp.flags)
        length = max(0, ip.len - ip.ihl * 4 - tcp.dataofs * 4)
        payload = bytes(tcp.payload)[:length]
        if "S" in flags and "A" not in flags:
            self.on_syn(ip, tcp)
            return
        if self.client is None or (ip.src, tcp.sport) != self.client or self.state in ("LISTEN", "CLOSED"):
            return
        if "R" in flags:
            self.note("reset from the kernel: connection closed")
            self.state, self.done, self.finished = "CLOSED", True, True
            return
        if self.state == "SYN-RECEIVED" and "A" in flags and tcp.ack == (self.iss + 1) % 2**32:
            self.state = "ESTABLISHED"
            self.note("handshake complete")
            self.check_pause()
        if self.state == "LAST-ACK" and "A" in flags and tcp.ack == self.snd_nxt:
            self.state, self.done, self.finished = "CLOSED", True, True
            self.note("the kernel acknowledged our FIN: connection closed")
            return
        if length:
            self.on_data(tcp.seq, payload)
        elif "F" not in flags and tcp.seq == (self.rcv_nxt - 1) % 2**32 and self.state == "ESTABLISHED":
            self.note(f"window probe (seq {self.rel(tcp.seq)}): answered with window {self.window()}")
            self.ack_now()
        if "F" in flags and self.o["acks"] and not self.fin_in and (tcp.seq + length) % 2**32 == self.rcv_nxt:
            self.fin_in = True
            self.rcv_nxt = (self.rcv_nxt + 1) % 2**32
            self.note("FIN from the kernel")
            self.maybe_close()

    def on_syn(self, ip: Any, tcp: Any) -> None:
        how = self.o["syn"]
        if self.state not in ("LISTEN", "SYN-RECEIVED"):
            return
        if how == "ignore":
            self.syns_ignored += 1
            self.note(f"SYN number {self.syns_ignored} ignored")
            return
        self.client = (ip.src, tcp.sport)
        self.irs = tcp.seq
        self.rcv_nxt = (tcp.seq + 1) % 2**32
        if how == "refuse":
            self.send("RA", seq=0)
            self.note("SYN refused with RST")
            self.state, self.done, self.finished = "CLOSED", True, True
            return
        again = self.state == "SYN-RECEIVED"
        self.snd_nxt = self.iss
        self.send("SA", options=[("MSS", MSS)])
        self.snd_nxt = (self.iss + 1) % 2**32
        self.state = "SYN-RECEIVED"
        self.note(("SYN again: SYN-ACK again" if again else "SYN: SYN-ACK") + f", MSS {MSS}, window {self.window()}")

    def on_data(self, seq: int, payload: bytes) -> None:
        self.segments += 1
        n, o = self.segments, self.o
        where = f"data segment {n} (seq {self.rel(seq)}, {len(payload)} bytes)"
        if n in o["drops"]:
            self.note(f"{where}: dropped")
        elif o["reset_at"] == n:
            self.send("RA")
            self.note(f"{where}: answered with RST")
            self.state, self.done, self.finished = "CLOSED", True, True
        elif n in self.duplicates:
            for _ in range(self.duplicates[n]):
                self.ack_now()
            self.note(f"{where}: thrown away, {self.duplicates[n]} duplicate ACKs of {self.rel(self.rcv_nxt)}")
        else:
            kept = self.take(seq, payload)
            if n in o["corrupt"] and o["acks"]:
                self.ack_now(corrupt=True)
                self.note(f"{where}: {kept}, ACK {self.rel(self.rcv_nxt)} sent with a wrong checksum")
            else:
                self.respond()
                self.note(f"{where}: {kept}" + (", not acknowledged" if not o["acks"] else ""))
            self.check_pause()
        if o["stop_at"] == n:
            self.note(f"stopping after {n} data segments, as the script says")
            self.done = self.finished = True

    def take(self, seq: int, payload: bytes) -> str:
        """Keep the new bytes that fit in the window; say what became of the segment."""
        offset = (seq - self.rcv_nxt) % 2**32
        if offset >= 2**31:  # (partly) old data: keep only what is new
            skip = 2**32 - offset
            if skip >= len(payload):
                return "had it already"
            payload, offset = payload[skip:], 0
        room = self.window() - offset
        if room <= 0:
            return "no room in the window, not kept"
        payload = payload[:room]
        if offset:
            # A receiver keeps what arrives after a gap, but can acknowledge only up to the gap.
            self.ooo[(self.rcv_nxt + offset) % 2**32] = payload
            return "after a gap: kept aside"
        while payload:
            self.rcv_nxt = (self.rcv_nxt + len(payload)) % 2**32
            self.delivered += len(payload)
            if self.paused_until is not None:
                self.unread += len(payload)
            payload = self.ooo.pop(self.rcv_nxt, b"")
        return "kept"

    def check_pause(self) -> None:
        pause = self.o["pause"]
        if pause and not self.pause_done and self.delivered >= pause[0]:
            self.pause_done = True
            self.paused_until = time.monotonic() + pause[1]
            self.later(pause[1], json.dumps(["read"]))
            self.note(f"the program stops reading for {pause[1]:g} s")

    def maybe_close(self) -> None:
        """Once the kernel's FIN is in and everything is read, the peer's program closes too."""
        if self.fin_in and self.unread == 0 and self.state == "ESTABLISHED":
            self.state = "LAST-ACK"
            if self.o["ack_delay"]:
                self.later(self.o["ack_delay"], json.dumps(["ack", self.rcv_nxt, self.window(), False, "fin"]))
            else:
                self.send("FA")
                self.snd_nxt = (self.snd_nxt + 1) % 2**32
            self.note("the program closes: FIN")
        elif self.fin_in and self.state == "ESTABLISHED":
            self.ack_now()


def _serve() -> None:
    """The peer process: read the script, listen on peer0, play TCP until done, write log and pcap."""
    order = json.loads(sys.stdin.buffer.readline())
    out = Path(order["out"])
    import scapy.layers.inet  # noqa: F401  (the layers the peer builds and reads)
    import scapy.layers.l2  # noqa: F401

    # Two sockets: the kernel never hands a frame back to the packet socket that sent it, so
    # one socket sends (protocol 0: it receives nothing) and the other sees every frame on
    # peer0, the kernel's as they arrive and the sender's as they leave.
    sender = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
    sender.bind(("peer0", 0))
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(_ETH_P_ALL))
    sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    sock.bind(("peer0", 0))
    sock.setblocking(False)
    started = time.monotonic()
    tcp = _Tcp(order, sender, started)
    frames: list[tuple[bytes, float]] = []
    print("ready", flush=True)
    why_end = _play(tcp, sock, frames, started + min(float(order["duration"]), MAX_DURATION), order["duration"])
    _collect_last_frames(sock, frames)
    sock.close()
    sender.close()
    tcp.note(f"peer ends: {why_end}")
    write_frames(out / "link.pcap.part", frames)
    os.replace(out / "link.pcap.part", out / "link.pcap")
    # The log last, whole or not at all: its presence says the capture is complete too.
    (out / "log.json.part").write_text(json.dumps({"log": tcp.log, "finished": tcp.finished}))
    os.replace(out / "log.json.part", out / "log.json")


def _play(tcp: _Tcp, sock: socket.socket, frames: list[tuple[bytes, float]], deadline: float, duration: float) -> str:
    """Answer frames and fire timers until the conversation is over, the deadline passes or stdin closes; say which."""
    stdin = sys.stdin.buffer.fileno()
    while not tcp.done:
        now = time.monotonic()
        tcp.fire(now)
        if now >= deadline:
            return f"time bound of {duration:g} s reached"
        wake = min(t for t in (deadline, tcp.next_timer()) if t is not None)
        ready = select.select([sock, stdin], [], [], max(0.0, wake - now))[0]
        if stdin in ready and not os.read(stdin, 4096):
            return "told to stop"
        for _ in range(_FRAMES_PER_PASS):
            if tcp.done or time.monotonic() >= deadline:
                break
            try:
                data, stamp, addr = recv_stamped(sock)
            except BlockingIOError:
                break
            frames.append((data, stamp))
            if addr[2] != _PACKET_OUTGOING:
                tcp.on_frame(data)
            tcp.fire(time.monotonic())
    return "the connection is over"


def _collect_last_frames(sock: socket.socket, frames: list[tuple[bytes, float]], wait: float = 0.05) -> None:
    """Frames the peer sent last are still on their way back to this socket: collect them (`wait` seconds at most)."""
    end = time.monotonic() + wait
    while time.monotonic() < end and select.select([sock], [], [], end - time.monotonic())[0]:
        try:
            data, stamp, _addr = recv_stamped(sock)
        except BlockingIOError:
            break
        frames.append((data, stamp))


if __name__ == "__main__":
    _serve()
    # Leave without the interpreter's teardown, as the lab's helper does: unloading scapy's
    # classes takes about 0.2 s, and every transfer waits for this process to end.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
