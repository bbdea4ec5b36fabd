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

import json
import os
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
from netlab.core.inlab import peer as program
from netlab.core.inlab.peer import LAB_ADDRESS, MAX_DURATION, MSS, MTU, PEER_ADDRESS
from netlab.core.inlab.peer import LAB_MAC as _LAB_MAC
from netlab.core.inlab.peer import PEER_MAC as _PEER_MAC
from netlab.core.lab import Lab, last_line, read_line, stop_program
from netlab.core.pcapfiles import load_pcap
from netlab.core.sockets import unacknowledged

__all__ = [
    "Script", "Peer", "PeerError", "PeerEvent", "PeerExperiment", "add_link", "transfer", "pattern",
    "LAB_ADDRESS", "PEER_ADDRESS", "MTU", "MSS", "COUNTERS", "kernel_counters", "recording_note",
]

START_TIMEOUT = 15.0  # seconds for the peer process to start listening
STOP_TIMEOUT = 3.0  # seconds for the peer to end once asked, before it is killed


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
            self._proc = self.lab.popen([sys.executable, "-m", program.__name__], stdin=subprocess.PIPE,
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
                killed, said = stop_program(proc, STOP_TIMEOUT)  # closing its stdin is the peer's signal to end now
                self._collect(said, killed)
        finally:
            if self._dir is not None:
                shutil.rmtree(self._dir, ignore_errors=True)
                self._dir = None

    def _kill(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()

    def _collect(self, stderr: str, killed: bool = False) -> None:
        """Read the peer's log and capture; `stderr` is the last line it wrote there."""
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
        elif stderr and not self.log:
            raise PeerError(f"the peer failed: {stderr}")

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
