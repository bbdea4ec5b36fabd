"""Captured packets understood: one TCP conversation, segment by segment.

Theory of operation
-------------------
A capture is a list of scapy packets. `conversations()` groups the TCP segments into streams
by their pair of endpoints (in the order each stream first appears, numbered from 0 as
Wireshark's `tcp.stream` does). `Conversation` then reads one stream the way a person reads a
ladder diagram: who is the client (the side that sent the first SYN), each side's initial
sequence number (ISN), and for every segment its direction, its flags in words, its sequence
and acknowledgement numbers *relative to the ISNs*, its payload length, the receive window it
advertises in bytes, and the phase it belongs to. A second pass names what went wrong or was
repeated on the way: retransmissions, zero-window probes and duplicate ACKs (`_mark_repeats`).

Rules for this file:
1. Everything here is computed from the packets alone: no clock, no kernel, no lab. The same
   pcap gives the same table on every machine.
2. The TCP state machine (RFC 9293, section 3.3.2) lives in `TRANSITIONS`, one table; the
   per-side state walk reads it, and so may any diagram.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from netlab.core.errors import ConversationError, NoHandshakeError
from netlab.core.pcapfiles import save_pcap

__all__ = [
    "CLIENT_TO_SERVER",
    "Conversation",
    "ConversationError",
    "NoHandshakeError",
    "SERVER_TO_CLIENT",
    "Segment",
    "TRANSITIONS",
    "conversations",
    "flag_words",
    "split_streams",
    "RESETTABLE",
]

CLIENT_TO_SERVER = "C→S"  # a Segment's direction, and the `direction=` argument of functions that take one
SERVER_TO_CLIENT = "S→C"


def flag_words(flags: Any) -> str:
    """Name TCP flags the way people say them: 'SYN', 'SYN-ACK', 'PSH-ACK', 'FIN-ACK', 'RST'."""
    f = str(flags)
    names = [name for letter, name in (("S", "SYN"), ("F", "FIN"), ("R", "RST"), ("P", "PSH"), ("U", "URG"),
                                       ("E", "ECE"), ("C", "CWR")) if letter in f]
    if "A" in f:
        names.append("ACK")
    return "-".join(names) if names else "none"


@dataclass(frozen=True)
class Segment:
    """One TCP segment of a conversation, with numbers relative to each side's ISN."""

    number: int  # 1-based position in the conversation
    time: float  # seconds since the conversation's first segment
    direction: str  # "C→S" (client to server) or "S→C"
    flags: str  # in words: "SYN", "SYN-ACK", "ACK", "PSH-ACK", "FIN-ACK", "RST", "RST-ACK"
    seq: int  # relative sequence number (0 = the sender's ISN)
    ack: int | None  # relative acknowledgement number, None when the ACK flag is off
    length: int  # payload bytes
    window: int  # receive window the sender advertises, in bytes (scaling applied)
    phase: str  # "handshake", "data", "teardown" or "reset"
    payload: bytes = field(repr=False)
    packet: Any = field(repr=False, compare=False)
    # Named by a second pass over the whole conversation (see `_mark_repeats` for the rules):
    retransmission: bool = False  # its sequence range was already sent the same way
    window_probe: bool = False  # sent into the peer's zero window, to learn when it reopens
    dup_ack: bool = False  # a duplicate ACK as RFC 5681 defines it

    @property
    def label(self) -> str:
        """A short label for diagrams: 'SYN seq=0', 'PSH-ACK seq=1 ack=1 len=13'."""
        parts = [self.flags, f"seq={self.seq}"]
        if self.ack is not None:
            parts.append(f"ack={self.ack}")
        if self.length:
            parts.append(f"len={self.length}")
        return " ".join(parts)

    @property
    def options(self) -> str:
        """The TCP options in words ('MSS=65495 SAckOK Timestamp NOP WScale=7').

        Timestamp values are left out: they start from a random offset, like ISNs.
        """
        from scapy.layers.inet import TCP

        words = []
        for name, value in self.packet[TCP].options or []:
            if name in ("MSS", "WScale"):
                words.append(f"{name}={value}")
            else:
                words.append(str(name))
        return " ".join(words)

    def has(self, flag: str) -> bool:
        """True when the segment carries `flag` ('SYN', 'ACK', 'FIN', 'RST', 'PSH')."""
        return flag in self.flags.split("-")


# ---------------------------------------------------------------------------
# The TCP state machine, RFC 9293 section 3.3.2, as (state, event) -> next state.
# An event is what one side does: "send SYN", "recv SYN-ACK", "close" is implied by "send FIN".

TRANSITIONS: dict[tuple[str, str], str] = {
    ("CLOSED", "listen"): "LISTEN",  # a program's listen(): no segment, so no capture shows it
    ("CLOSED", "send SYN"): "SYN-SENT",
    ("LISTEN", "recv SYN"): "SYN-RECEIVED",
    ("SYN-SENT", "recv SYN-ACK"): "ESTABLISHED",
    ("SYN-SENT", "recv RST"): "CLOSED",
    ("SYN-RECEIVED", "recv ACK"): "ESTABLISHED",
    ("ESTABLISHED", "send FIN"): "FIN-WAIT-1",
    ("ESTABLISHED", "recv FIN"): "CLOSE-WAIT",
    ("FIN-WAIT-1", "recv ACK of FIN"): "FIN-WAIT-2",
    ("FIN-WAIT-1", "recv FIN"): "CLOSING",
    ("FIN-WAIT-1", "recv FIN+ACK of FIN"): "TIME-WAIT",
    ("FIN-WAIT-2", "recv FIN"): "TIME-WAIT",
    ("CLOSING", "recv ACK of FIN"): "TIME-WAIT",
    ("CLOSE-WAIT", "send FIN"): "LAST-ACK",
    ("LAST-ACK", "recv ACK of FIN"): "CLOSED",
    ("TIME-WAIT", "2MSL timeout"): "CLOSED",  # a timer, 60 s on Linux: after the capture ends
}
# Any state but LISTEN and CLOSED goes to CLOSED on a valid RST (RFC 9293 3.10.7.4; TIME-WAIT
# too, as Linux does unless net.ipv4.tcp_rfc1337 is set).
RESETTABLE = {"SYN-SENT", "SYN-RECEIVED", "ESTABLISHED", "FIN-WAIT-1", "FIN-WAIT-2", "CLOSE-WAIT", "CLOSING",
               "LAST-ACK", "TIME-WAIT"}
# A side that sends a RST from a synchronized state aborts: it goes to CLOSED too (RFC 9293
# 3.10.5, ABORT). From SYN-SENT or SYN-RECEIVED a RST may only answer a bad ACK, so it does not.
_ABORTABLE = {"ESTABLISHED", "FIN-WAIT-1", "FIN-WAIT-2", "CLOSE-WAIT", "CLOSING", "LAST-ACK"}


def _endpoints(pkt: Any) -> tuple[tuple[str, int], tuple[str, int]] | None:
    from scapy.layers.inet import IP, TCP
    from scapy.layers.inet6 import IPv6

    if TCP not in pkt:
        return None
    ip = pkt[IP] if IP in pkt else pkt[IPv6] if IPv6 in pkt else None
    if ip is None:
        return None
    tcp = pkt[TCP]
    return (str(ip.src), int(tcp.sport)), (str(ip.dst), int(tcp.dport))


def conversations(packets: Iterable[Any], source: str = "live") -> list[Conversation]:
    """Split packets into TCP streams and understand each; streams without a SYN are skipped."""
    result = []
    for number, stream in enumerate(split_streams(packets)):
        try:
            result.append(Conversation(stream, stream_number=number, source=source))
        except NoHandshakeError:
            continue
    return result


def split_streams(packets: Iterable[Any]) -> list[list[Any]]:
    from scapy.layers.inet import TCP

    streams: list[list[Any]] = []
    current: dict[frozenset, int] = {}  # endpoint pair -> index of its latest stream
    first_syn: dict[int, int] = {}  # stream index -> sequence number of its opening SYN
    for pkt in packets:
        ends = _endpoints(pkt)
        if ends is None:
            continue
        key = frozenset(ends)
        flags = str(pkt[TCP].flags)
        opening = "S" in flags and "A" not in flags
        index = current.get(key)
        # The same ports used again by a new connection (a SYN with a new ISN) start a new
        # stream, as in Wireshark; a retransmitted SYN carries the same ISN and does not.
        if index is None or (opening and first_syn.get(index, pkt[TCP].seq) != pkt[TCP].seq):
            index = current[key] = len(streams)
            streams.append([])
        if opening:
            first_syn.setdefault(index, int(pkt[TCP].seq))
        streams[index].append(pkt)
    return streams


def _wscale(tcp: Any) -> int | None:
    for name, value in tcp.options or []:
        if name == "WScale":
            return int(value)
    return None


class Conversation:
    """One TCP conversation: client, server, and its segments understood.

    `source` says where the packets came from: "live" (captured just now in the lab) or
    "recorded" (a capture shipped with netlab, shown when the lab is not available) or a file name.
    """

    def __init__(self, packets: list[Any], stream_number: int = 0, source: str = "live") -> None:
        from scapy.layers.inet import TCP

        self.packets = [p for p in packets if _endpoints(p) is not None]  # TCP segments only
        self.stream_number = stream_number
        self.source = source
        if not self.packets:
            raise ConversationError("the capture holds no TCP segments")
        syn = next((p for p in self.packets if "S" in str(p[TCP].flags) and "A" not in str(p[TCP].flags)), None)
        if syn is None:
            a, b = _endpoints(self.packets[0])
            raise NoHandshakeError(
                f"TCP stream {stream_number} ({a[0]}:{a[1]} ⇄ {b[0]}:{b[1]}) has no SYN: the capture "
                "started after the connection was opened, so its handshake is not in it"
            )
        self.client, self.server = _endpoints(syn)
        start = float(self.packets[0].time)

        from_server = [p for p in self.packets if _endpoints(p)[0] == self.server]
        synack = next((p for p in from_server if "S" in str(p[TCP].flags)), None)
        # Without a SYN-ACK (a refused connection), the server's first segment stands in.
        self.isn = {
            "client": int(syn[TCP].seq),
            "server": int((synack or (from_server[0] if from_server else syn))[TCP].seq),
        }
        # Window scaling is in force only when both SYNs offer it (RFC 7323), and never on SYNs.
        scales = {"client": _wscale(syn[TCP]), "server": _wscale(synack[TCP]) if synack else None}
        use_scaling = None not in scales.values()

        segments = []
        phase = "handshake"
        handshake_done = False
        for number, pkt in enumerate(self.packets, 1):
            tcp = pkt[TCP]
            from_client = _endpoints(pkt)[0] == self.client
            me, peer = ("client", "server") if from_client else ("server", "client")
            flags = flag_words(tcp.flags)
            has_ack = "A" in str(tcp.flags)
            window = int(tcp.window)
            if use_scaling and "S" not in str(tcp.flags):
                window <<= scales[me]
            payload = bytes(tcp.payload)
            # Ethernet pads short frames: trust the IP length for the payload, not the frame.
            payload = payload[: _tcp_payload_length(pkt)]
            if "R" in str(tcp.flags):
                phase = "reset"
            elif "F" in str(tcp.flags) and phase != "reset":
                phase = "teardown"
            elif phase == "handshake" and handshake_done:
                phase = "data"
            segments.append(Segment(
                number=number,
                time=float(pkt.time) - start,
                direction=CLIENT_TO_SERVER if from_client else SERVER_TO_CLIENT,
                flags=flags,
                seq=(int(tcp.seq) - self.isn[me]) % 2**32,
                ack=(int(tcp.ack) - self.isn[peer]) % 2**32 if has_ack else None,
                length=len(payload),
                window=window,
                phase=phase,
                payload=payload,
                packet=pkt,
            ))
            if phase == "handshake" and from_client and flags == "ACK" and synack is not None:
                handshake_done = True
            if phase == "handshake" and from_client and has_ack and synack is not None and len(payload):
                handshake_done = True
                segments[-1] = _with_phase(segments[-1], "data")
                phase = "data"
        self.segments: list[Segment] = _mark_repeats(segments)

    @classmethod
    def from_packets(cls, packets: Iterable[Any], stream: int | None = None, source: str = "live") -> Conversation:
        """Understand the TCP conversation in `packets` (stream N when there are several)."""
        streams = split_streams(packets)
        if not streams:
            raise ConversationError("the capture holds no TCP segments")
        if stream is None:
            if len(streams) > 1:
                raise ConversationError(
                    f"the capture holds {len(streams)} TCP streams; choose one with stream=0..{len(streams) - 1}"
                )
            stream = 0
        if not 0 <= stream < len(streams):
            raise ConversationError(f"there is no TCP stream {stream}; the capture holds streams 0..{len(streams) - 1}")
        return cls(streams[stream], stream_number=stream, source=source)

    # -- facts a lesson asks about ------------------------------------------

    def flags(self) -> list[str]:
        """The flags of every segment in order, in words."""
        return [s.flags for s in self.segments]

    def phase(self, name: str) -> list[Segment]:
        """The segments of one phase: 'handshake', 'data', 'teardown' or 'reset'."""
        return [s for s in self.segments if s.phase == name]

    @property
    def handshake_ack(self) -> Segment | None:
        """The client's ACK that completes the handshake (it may carry data), or None if there is none."""
        synack = next((s for s in self.segments if s.direction == SERVER_TO_CLIENT and s.flags == "SYN-ACK"), None)
        if synack is None:
            return None
        return next((s for s in self.segments
                     if s.number > synack.number and s.direction == CLIENT_TO_SERVER and s.has("ACK")
                     and not s.has("RST") and s.ack is not None and s.ack >= 1), None)

    @property
    def handshake_complete(self) -> bool:
        """True when SYN, SYN-ACK and the client's ACK are all in the capture."""
        return self.handshake_ack is not None

    @property
    def refused(self) -> bool:
        """True when the server answered the SYN with a reset (nothing listened on the port)."""
        # The client may have sent its SYN more than once before the answer: look at the answer.
        answer = next((s for s in self.segments if s.direction == SERVER_TO_CLIENT), None)
        return answer is not None and answer.has("RST") and not answer.has("SYN")

    @property
    def closed_first(self) -> str | None:
        """'client' or 'server': the side that sent the first FIN (None if nobody did)."""
        fin = next((s for s in self.segments if s.has("FIN")), None)
        if fin is None:
            return None
        return "client" if fin.direction == CLIENT_TO_SERVER else "server"

    def retransmissions(self, direction: str | None = None) -> list[Segment]:
        """The segments that carried sequence numbers already sent (data, SYN or FIN), in order;
        one direction ("C→S" or "S→C") or both."""
        return [s for s in self.segments if s.retransmission and direction in (None, s.direction)]

    def dup_acks(self, direction: str | None = None) -> list[Segment]:
        """The duplicate ACKs (RFC 5681: no data, same ack and window as before, data outstanding)."""
        return [s for s in self.segments if s.dup_ack and direction in (None, s.direction)]

    def window_probes(self, direction: str | None = None) -> list[Segment]:
        """The zero-window probes: segments sent into a window of 0 bytes to see whether it reopened."""
        return [s for s in self.segments if s.window_probe and direction in (None, s.direction)]

    def zero_windows(self, direction: str | None = None) -> list[Segment]:
        """The segments that advertise a receive window of 0 bytes ("stop sending"); resets are left
        out, since a RST's window means nothing."""
        return [s for s in self.segments if s.window == 0 and not s.has("RST") and direction in (None, s.direction)]

    def data(self, direction: str = CLIENT_TO_SERVER) -> bytes:
        """All payload bytes sent one way, in sequence order: each byte once, however often it was
        retransmitted or in whatever order it was captured; stops at bytes missing from the capture."""
        out = bytearray()
        sent = sorted((s for s in self.segments if s.direction == direction and s.length), key=lambda s: s.seq)
        for s in sent:
            start = s.seq - 1 + s.has("SYN")  # byte 1 is the first after the SYN's sequence number
            if start <= len(out) < start + s.length:
                out += s.payload[len(out) - start:]
        return bytes(out)

    def states(self) -> dict[str, list[tuple[int, str]]]:
        """Walk each side through the RFC 9293 state machine: {'client': [(segment number, state)], ...}.

        Entry 0 is the state before the first segment ("CLOSED" for the client, "LISTEN" for
        the server, or "CLOSED" when nothing listened); each later entry says which segment
        moved that side into the state.
        """
        # A refused connection had no listening socket: the server side stays CLOSED and resets.
        server_start = "CLOSED" if self.refused else "LISTEN"
        state = {"client": "CLOSED", "server": server_start}
        walk: dict[str, list[tuple[int, str]]] = {"client": [(0, "CLOSED")], "server": [(0, server_start)]}
        fin_seq_end: dict[str, int] = {}
        # A FIN in the capture has not necessarily reached its receiver yet: in a simultaneous
        # close both FINs are on the wire before either arrives. A side has taken in the peer's
        # FIN once it acknowledges it or gets a later segment from the peer (TCP delivers in
        # order); until then the FIN waits here, as side -> (segment number, event).
        unread_fin: dict[str, tuple[int, str]] = {}

        def move(side: str, event: str, number: int) -> None:
            if event == "recv RST" and state[side] == "SYN-RECEIVED" and side == "server":
                nxt = "LISTEN"  # a connection that came from LISTEN goes back to listening
            elif event == "recv RST":
                nxt = "CLOSED" if state[side] in RESETTABLE else None
            elif event == "send RST":
                nxt = "CLOSED" if state[side] in _ABORTABLE else None
            else:
                nxt = TRANSITIONS.get((state[side], event))
                if nxt is None and event == "recv FIN+ACK of FIN":
                    # FIN-WAIT-1 is the only state where this differs from a plain FIN.
                    nxt = TRANSITIONS.get((state[side], "recv FIN"))
            if nxt and nxt != state[side]:
                state[side] = nxt
                walk[side].append((number, nxt))

        def take_in_fin(side: str) -> None:
            if side in unread_fin:
                number, event = unread_fin.pop(side)
                move(side, event, number)

        for s in self.segments:
            sender, receiver = ("client", "server") if s.direction == CLIENT_TO_SERVER else ("server", "client")
            take_in_fin(receiver)  # everything the sender sent before this segment has arrived
            if sender in unread_fin and s.has("ACK") and s.ack is not None and s.ack >= fin_seq_end[receiver]:
                take_in_fin(sender)  # the sender acknowledges the peer's FIN, so it had read it
            events = {sender: [], receiver: []}
            if s.has("RST"):
                events[sender].append("send RST")
                events[receiver].append("recv RST")
            elif s.has("SYN") and not s.has("ACK"):
                events[sender].append("send SYN")
                events[receiver].append("recv SYN")
            elif s.has("SYN"):
                events[receiver].append("recv SYN-ACK")
            else:
                if s.has("FIN"):
                    fin_seq_end[sender] = s.seq + s.length + 1
                acks_fin = s.has("ACK") and receiver in fin_seq_end and s.ack is not None and s.ack >= fin_seq_end[receiver]
                if s.has("FIN"):
                    events[sender].append("send FIN")
                    unread_fin[receiver] = (s.number, "recv FIN+ACK of FIN" if acks_fin else "recv FIN")
                elif acks_fin:
                    events[receiver].append("recv ACK of FIN")
                elif s.has("ACK"):
                    events[receiver].append("recv ACK")
            for side in (sender, receiver):
                for event in events[side]:
                    move(side, event, s.number)
        for side in list(unread_fin):  # the capture ended: the last FINs have arrived by now
            take_in_fin(side)
        return walk

    # -- showing it ---------------------------------------------------------

    def state_table(self) -> str:
        """Each side's walk through the TCP states, with the segment (#) that caused each step."""
        lines = []
        for side, walk in self.states().items():
            steps = [walk[0][1]] + [f"{state} (#{number})" for number, state in walk[1:]]
            lines.append(f"{side + ':':<8}" + " → ".join(steps))
        return "\n".join(lines)

    def table(self, payload: bool = False) -> str:
        """The conversation as a plain-text table, one line per segment."""
        c, srv = self.client, self.server
        lines = [
            f"TCP stream {self.stream_number}, {self.source}: client {c[0]}:{c[1]}  server {srv[0]}:{srv[1]}",
            f"{'#':>3}  {'time ms':>8}  {'dir':<4} {'flags':<8} {'seq':>7} {'ack':>7} {'len':>6} {'window':>7}  phase",
        ]
        for s in self.segments:
            ack = "" if s.ack is None else str(s.ack)
            line = (f"{s.number:>3}  {s.time * 1000:>8.3f}  {s.direction:<4} {s.flags:<8} {s.seq:>7} {ack:>7} "
                    f"{s.length:>6} {s.window:>7}  {s.phase}")
            notes = [word for word, on in (("retransmission", s.retransmission), ("window probe", s.window_probe),
                                           ("dup ACK", s.dup_ack)) if on]
            if notes:
                line += f" ({', '.join(notes)})"
            if payload and s.length:
                line += f"  {s.payload[:24]!r}{'…' if s.length > 24 else ''}"
            lines.append(line)
        return "\n".join(lines)

    def outline(self) -> str:
        """The conversation's story in one line per segment that says something: every segment but
        the pure ACKs (no data, no SYN, FIN or RST), with direction and label, no numbers or times.

        Whether a kernel acknowledges at once or a moment later, alone or riding on its next
        segment, depends on timing; what is left is the same on every run.
        """
        lines = []
        for s in self.segments:
            if s.flags == "ACK" and not s.length and not s.window_probe:
                continue
            notes = [word for word, on in (("retransmission", s.retransmission), ("window probe", s.window_probe))
                     if on]
            lines.append(f"{s.direction}  {s.label}" + (f"  ({', '.join(notes)})" if notes else ""))
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()

    def __repr__(self) -> str:
        return (f"<Conversation stream {self.stream_number} ({self.source}): {len(self.segments)} segments, "
                f"{' '.join(self.flags())}>")

    def save(self, path: Any) -> Any:
        """Write this conversation's packets as a pcap file that Wireshark opens."""
        return save_pcap(self.packets, path)


def _mark_repeats(segments: list[Segment]) -> list[Segment]:
    """Name each segment that repeats something: a retransmission, a zero-window probe, a duplicate ACK.

    Read in capture order, keeping per direction the sequence number after the highest one sent
    so far (`sent_up_to`), the highest ack, and the window of the last ACK:
    - A *retransmission* uses sequence numbers (data, SYN or FIN each count) and starts below
      `sent_up_to`: at least its first byte was sent before. A RST is never one.
    - A *window probe* is sent while the peer's last advertised window is 0 bytes, and is either
      Linux's probe (no data, seq one below `sent_up_to`, an old byte the receiver must answer
      with an ACK) or the RFC 9293 probe (one new byte at `sent_up_to`, or that byte again).
      It is not a retransmission, though it may resend a byte.
    - A *duplicate ACK* follows RFC 5681's definition: the receiver of the ACK has data
      outstanding (sent but not acknowledged), the ACK carries no data, SYN and FIN are off,
      its ack equals the greatest ack this side has sent, and its window equals the one in this
      side's previous ACK. (A window update has a new window, so it is not a duplicate.)
    """
    from dataclasses import replace

    sent_up_to: dict[str, int] = {}
    greatest_ack: dict[str, int] = {}
    last_window: dict[str, int] = {}  # window of the last ACK each direction sent
    advertised: dict[str, int] = {}  # window of the last segment each direction sent
    result = []
    for s in segments:
        other = SERVER_TO_CLIENT if s.direction == CLIENT_TO_SERVER else CLIENT_TO_SERVER
        span = s.length + s.has("SYN") + s.has("FIN")  # SYN and FIN each use one sequence number
        before = sent_up_to.get(s.direction)
        plain = not (s.has("SYN") or s.has("FIN") or s.has("RST"))
        probe = (plain and before is not None and advertised.get(other) == 0
                 and ((s.length == 0 and s.seq == (before - 1) % 2**32)
                      or (s.length == 1 and s.seq in (before, (before - 1) % 2**32))))
        retransmission = (not probe and not s.has("RST") and span > 0 and before is not None
                          and _seq_before(s.seq, before))
        dup = (plain and s.length == 0 and s.ack is not None and not probe
               and greatest_ack.get(s.direction) == s.ack and last_window.get(s.direction) == s.window
               and other in sent_up_to and _seq_before(s.ack, sent_up_to[other]))
        if span and (before is None or _seq_before(before, s.seq + span)):
            sent_up_to[s.direction] = (s.seq + span) % 2**32
        if s.ack is not None and not s.has("RST"):
            if s.direction not in greatest_ack or _seq_before(greatest_ack[s.direction], s.ack):
                greatest_ack[s.direction] = s.ack
            last_window[s.direction] = s.window
        if not s.has("RST"):
            advertised[s.direction] = s.window
        if retransmission or probe or dup:
            s = replace(s, retransmission=retransmission, window_probe=probe, dup_ack=dup)
        result.append(s)
    return result


def _seq_before(a: int, b: int) -> bool:
    """True when sequence number `a` comes before `b` (RFC 9293's comparison, modulo 2**32)."""
    return 0 < (b - a) % 2**32 < 2**31


def _with_phase(seg: Segment, phase: str) -> Segment:
    from dataclasses import replace

    return replace(seg, phase=phase)


def _tcp_payload_length(pkt: Any) -> int:
    from scapy.layers.inet import IP, TCP
    from scapy.layers.inet6 import IPv6

    tcp = pkt[TCP]
    header = int(tcp.dataofs or 5) * 4
    if IP in pkt:
        ip = pkt[IP]
        return max(0, int(ip.len) - int(ip.ihl) * 4 - header)
    if IPv6 in pkt:
        return max(0, int(pkt[IPv6].plen) - header)  # no extension headers in the lab
    return len(bytes(tcp.payload))
