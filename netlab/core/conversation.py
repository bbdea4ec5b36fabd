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

Any capture a student brings is read the way Wireshark reads it: each packet is read once
(`_read`) for its innermost IP and TCP headers, so a segment inside a tunnel (GRE, VXLAN, Geneve,
GTP-U, IP-in-IP, 6in4, MPLS) shows the inner addresses and ports; IPv4 fragments are put back
together first; a segment's length comes from its IP header, so a frame cut short by the
capture's snap length keeps its real length and is marked. A stream whose handshake was not
captured can still be read (`partial=True`), with numbers relative to each side's first segment
and the unknowns said out loud; what needs the handshake (phases, states) refuses it.

Rules for this file:
1. Everything here is computed from the packets alone: no clock, no kernel, no lab. The same
   pcap gives the same table on every machine.
2. The TCP state machine (RFC 9293, section 3.3.2) lives in `TRANSITIONS`, one table; the
   per-side state walk reads it, and so may any diagram.
"""

from __future__ import annotations

import functools
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


# (bit, name), in the order they are spoken: SYN, FIN, RST, PSH, URG, ECE, CWR, AE, then ACK.
_FLAG_NAMES = ((0x02, "SYN"), (0x01, "FIN"), (0x04, "RST"), (0x08, "PSH"), (0x20, "URG"), (0x40, "ECE"),
               (0x80, "CWR"), (0x100, "AE"))
_FLAG_LETTERS = {"F": 0x01, "S": 0x02, "R": 0x04, "P": 0x08, "A": 0x10, "U": 0x20, "E": 0x40, "C": 0x80, "N": 0x100}


def flag_words(flags: Any) -> str:
    """Name TCP flags the way people say them: 'SYN', 'SYN-ACK', 'PSH-ACK', 'FIN-ACK', 'RST'.

    `flags` is the flag bits as an int or scapy's letters ('SA'); AE is AccECN's bit (RFC 9768),
    scapy's 'N' (it was the ECN nonce).
    """
    if not isinstance(flags, int):
        flags = sum(bit for letter, bit in _FLAG_LETTERS.items() if letter in str(flags))
    return _flag_words(flags & 0x1FF)


@functools.lru_cache(maxsize=512)
def _flag_words(bits: int) -> str:
    names = [name for bit, name in _FLAG_NAMES if bits & bit]
    if bits & 0x10:
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
    length: int  # payload bytes, as the IP header says (Wireshark's tcp.len)
    window: int  # receive window the sender advertises, in bytes (scaling applied)
    phase: str  # "handshake", "data", "teardown" or "reset" ("unknown" without the SYN)
    payload: bytes = field(repr=False)
    packet: Any = field(repr=False, compare=False)
    # Named by a second pass over the whole conversation (see `_mark_repeats` for the rules):
    retransmission: bool = False  # its sequence range was already sent the same way
    window_probe: bool = False  # sent into the peer's zero window, to learn when it reopens
    dup_ack: bool = False  # a duplicate ACK as RFC 5681 defines it
    truncated: bool = False  # the capture's snap length cut it: `payload` is shorter than `length`
    timestamps: tuple[int, int] | None = None  # (TSval, TSecr) of its Timestamps option (RFC 7323), if any

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


@dataclass(frozen=True)
class _Wire:
    """One TCP segment as read off the wire: its innermost IP and TCP headers, found once."""

    packet: Any
    ip: Any  # the innermost IP or IPv6 layer, the one that carries the TCP segment
    src: tuple[str, int]
    dst: tuple[str, int]
    flags: int  # the 9 flag bits, AE (bit 8) to FIN (bit 0)
    seq: int
    ack: int
    window: int  # as sent, before any scaling
    wscale: int | None  # the Window Scale option's shift, as sent (clamped later)
    length: int  # payload bytes the IP header says the segment carried
    payload: bytes  # payload bytes captured: fewer than `length` when the snap length cut the frame
    time: float
    timestamps: tuple[int, int] | None  # (TSval, TSecr) of the Timestamps option, None without one


_SYN, _RST, _ACK = 0x02, 0x04, 0x10


@functools.cache
def _layers() -> tuple[type, type, type, type]:
    """scapy's IP, IPv6, TCP and NoPayload classes, imported on first use (scapy takes a second to import)."""
    from scapy.layers.inet import IP, TCP
    from scapy.layers.inet6 import IPv6
    from scapy.packet import NoPayload

    return IP, IPv6, TCP, NoPayload


def _value(layer: Any, name: str) -> Any:
    """A header field as dissected: read from the layer's own table, a tenth of the time of scapy's
    attribute lookup (which matters once per field per packet); a field never set has its default."""
    fields = layer.fields
    return fields[name] if name in fields else getattr(layer, name)


def _read(pkt: Any) -> _Wire | None:
    """The innermost IP/TCP of `pkt` (through GRE, VXLAN, Geneve, GTP-U, IP-in-IP, 6in4, MPLS, as
    Wireshark reads them), or None when it holds no TCP segment."""
    ip_class, ipv6_class, tcp_class, _ = _layers()
    tcp = pkt.getlayer(tcp_class)
    if tcp is None:
        return None
    ip = tcp.underlayer  # the IP header just above TCP (after IPv6 extension headers), not the tunnel's
    while ip is not None and not isinstance(ip, (ip_class, ipv6_class)):
        ip = ip.underlayer
    if ip is None:
        return None
    raw = _captured_bytes(tcp)
    header = int(_value(tcp, "dataofs") or 5) * 4
    captured = raw[header:]
    length = _segment_length(ip, tcp, header)
    return _Wire(
        packet=pkt, ip=ip, src=(str(_value(ip, "src")), int(_value(tcp, "sport"))),
        dst=(str(_value(ip, "dst")), int(_value(tcp, "dport"))), flags=int(_value(tcp, "flags")),
        seq=int(_value(tcp, "seq")), ack=int(_value(tcp, "ack")), window=int(_value(tcp, "window")),
        wscale=_wscale(tcp), length=len(captured) if length is None else length, payload=captured[:length],
        time=float(pkt.time), timestamps=_timestamps(raw[20:header]),
    )


def _captured_bytes(tcp: Any) -> bytes:
    """The TCP header and payload as captured, without rebuilding them (a payload scapy dissects as
    some protocol can come out different when rebuilt); rebuilt only when changed since it was read,
    or built in Python."""
    no_payload = _layers()[3]
    layer = tcp
    while not isinstance(layer, no_payload):
        if layer.raw_packet_cache is None:
            return bytes(tcp)
        layer = layer.payload
    return tcp.original or bytes(tcp)


def _segment_length(ip: Any, tcp: Any, header: int) -> int | None:
    """The payload length the IP header gives (Wireshark's tcp.len), in bytes: right even when the
    capture cut the frame short or Ethernet padded it. None when the header cannot say: a length of
    0 (captured before segmentation offload split it) or a packet built in Python without one."""
    if isinstance(ip, _layers()[0]):
        total, above = _value(ip, "len"), int(_value(ip, "ihl") or 5) * 4
    else:
        total, above = _value(ip, "plen"), 0  # IPv6: the payload length counts extension headers
        if ip.payload is not tcp and ip.payload.original and tcp.original:
            above = len(ip.payload.original) - len(tcp.original)
    if not total:
        return None
    length = int(total) - above - header
    return length if length >= 0 else None


def _wscale(tcp: Any) -> int | None:
    for name, value in _value(tcp, "options") or []:
        if name == "WScale":
            return int(value)
    return None


def _timestamps(options: bytes) -> tuple[int, int] | None:
    """(TSval, TSecr) from a TCP header's option bytes (kind 8, length 10: RFC 7323), or None.

    Read from the bytes, as the header is walked by a receiver: scapy's parsed options cost a
    field lookup per segment, and a long transfer has thousands."""
    i = 0
    while i < len(options):
        kind = options[i]
        if kind == 0:  # end of options
            return None
        if kind == 1:  # no-operation
            i += 1
            continue
        if i + 1 >= len(options) or options[i + 1] < 2:
            return None  # a malformed option: nothing more can be read
        if kind == 8 and options[i + 1] == 10 and i + 10 <= len(options):
            return int.from_bytes(options[i + 2:i + 6], "big"), int.from_bytes(options[i + 6:i + 10], "big")
        i += options[i + 1]
    return None


def _read_all(packets: Iterable[Any]) -> list[_Wire]:
    """Every TCP segment in `packets`, with IPv4 fragments put back together first (as Wireshark does)."""
    packets = list(packets)
    wires = []
    last_pieces = {}  # (link, id, src, dst, protocol) -> time of the fragment that completes the packet
    for pkt in packets:
        wire = _read(pkt)
        if wire is not None:
            wires.append(wire)
        ip = _fragment(pkt, wire)
        if ip is not None:
            last_pieces[(getattr(pkt, "sniffed_on", None), ip.id, ip.src, ip.dst, ip.proto)] = float(pkt.time)
    if not last_pieces:
        return wires
    return [w for w in map(_read, _reassemble(packets, last_pieces)) if w is not None]


def _fragment(pkt: Any, wire: _Wire | None) -> Any:
    """The IPv4 header of `pkt` if it is a fragment, else None; cheap for a whole TCP segment."""
    ip_class = _layers()[0]
    ip = pkt.getlayer(ip_class) if wire is None else wire.ip
    if not isinstance(ip, ip_class):
        return None
    return ip if _value(ip, "frag") or int(_value(ip, "flags")) & 1 else None


def _reassemble(packets: list[Any], last_pieces: dict[tuple, float]) -> list[Any]:
    """IPv4 fragments put back together by scapy's `defragment`, link by link (a capture on several
    links holds each fragment once per link), each whole packet dissected anew (so a SYN split before
    its options keeps them) and placed, and timed, where its last piece was captured, as in Wireshark.
    The pieces of a packet that never came whole (a fragment lost) make no packet."""
    from scapy.layers.inet import IP, defragment

    links: dict[Any, list[Any]] = {}
    for pkt in packets:
        links.setdefault(getattr(pkt, "sniffed_on", None), []).append(pkt)
    result = []
    for link, group in links.items():
        originals = {id(pkt) for pkt in group}
        for pkt in defragment(group):
            if isinstance(pkt, tuple):  # scapy's way of returning the pieces of an incomplete packet
                continue
            if id(pkt) not in originals:
                whole = pkt.__class__(bytes(pkt))
                ip = whole.getlayer(IP)
                whole.time = last_pieces.get((link, ip.id, ip.src, ip.dst, ip.proto), pkt.time)
                if link is not None:
                    whole.sniffed_on = link
                pkt = whole
            result.append(pkt)
    return sorted(result, key=lambda pkt: float(pkt.time))  # stable: packets stamped alike keep their order


def _split(wires: list[_Wire]) -> list[list[_Wire]]:
    """Group segments into streams in one pass, numbered in order of first appearance like tcp.stream."""
    streams: list[list[_Wire]] = []
    current: dict[frozenset, int] = {}  # endpoint pair -> index of its latest stream
    first_syn: dict[int, int] = {}  # stream index -> sequence number of its opening SYN
    for w in wires:
        key = frozenset((w.src, w.dst))
        opening = w.flags & (_SYN | _ACK) == _SYN
        index = current.get(key)
        # The same ports used again by a new connection (a SYN with a new ISN) start a new
        # stream, as in Wireshark; a retransmitted SYN carries the same ISN and does not.
        if index is None or (opening and first_syn.get(index, w.seq) != w.seq):
            index = current[key] = len(streams)
            streams.append([])
        if opening:
            first_syn.setdefault(index, w.seq)
        streams[index].append(w)
    return streams


def conversations(packets: Iterable[Any], source: str = "live", *, partial: bool = False) -> list[Conversation]:
    """Split packets into TCP streams (once, in one pass) and understand each.

    Streams without a SYN are skipped, unless `partial` is true: then they are understood as far
    as a capture without the handshake allows (see `Conversation`).
    """
    result = []
    for number, stream in enumerate(_split(_read_all(packets))):
        try:
            result.append(Conversation._of(stream, number, source, partial))
        except NoHandshakeError:
            continue
    return result


def split_streams(packets: Iterable[Any]) -> list[list[Any]]:
    """The packets of each TCP stream, in order of first appearance (Wireshark's tcp.stream numbers)."""
    return [[w.packet for w in stream] for stream in _split(_read_all(packets))]


class Conversation:
    """One TCP conversation: client, server, and its segments understood.

    `source` says where the packets came from: "live" (captured just now in the lab) or
    "recorded" (a capture shipped with netlab, shown when the lab is not available) or a file name.

    A stream whose SYN is not in the capture raises `NoHandshakeError`, unless `partial` is true:
    then the server is the side that sent a SYN-ACK (or else the lower port), sequence numbers are
    relative to each side's first segment as in Wireshark ("ISN unknown"), windows are shown
    unscaled ("window scaling unknown"), every phase is "unknown", and `states()` and `phase()`
    raise `NoHandshakeError`.
    """

    def __init__(self, packets: list[Any], stream_number: int = 0, source: str = "live", *,
                 partial: bool = False) -> None:
        self._understand(_read_all(packets), stream_number, source, partial)

    @classmethod
    def _of(cls, wires: list[_Wire], stream_number: int, source: str, partial: bool) -> Conversation:
        conv = cls.__new__(cls)
        conv._understand(wires, stream_number, source, partial)
        return conv

    def _understand(self, wires: list[_Wire], stream_number: int, source: str, partial: bool) -> None:
        self.packets = [w.packet for w in wires]  # TCP segments only
        self.stream_number = stream_number
        self.source = source
        if not wires:
            raise ConversationError("the capture holds no TCP segments")
        syn = next((w for w in wires if w.flags & (_SYN | _ACK) == _SYN), None)
        self.partial = syn is None  # the opening SYN is not in the capture
        if self.partial and not partial:
            raise self._no_handshake(wires[0])
        synack = next((w for w in wires if w.flags & (_SYN | _ACK) == _SYN | _ACK
                       and (syn is None or w.src == syn.dst)), None)
        self.client, self.server = _sides(wires, syn, synack)
        self.answered = any(w.src == self.server for w in wires)  # False: a SYN nobody answered
        self.isn, self.isn_known = _initial_numbers(wires, self.client, self.server, syn, synack)
        self.window_shift = _window_shifts(syn, synack)
        self.segments: list[Segment] = _mark_repeats(self._segments(wires))

    def _no_handshake(self, first: _Wire) -> NoHandshakeError:
        a, b = first.src, first.dst
        return NoHandshakeError(
            f"TCP stream {self.stream_number} ({a[0]}:{a[1]} ⇄ {b[0]}:{b[1]}) has no SYN: the capture "
            "started after the connection was opened, so its handshake is not in it"
        )

    def _segments(self, wires: list[_Wire]) -> list[Segment]:
        """Each captured segment with numbers relative to the ISNs, its window scaled, its phase."""
        start = wires[0].time
        phases = _Phases(unknown=self.partial)
        segments = []
        for number, w in enumerate(wires, 1):
            me, peer = ("client", "server") if w.src == self.client else ("server", "client")
            window = w.window
            if self.window_shift is not None and not w.flags & _SYN:
                window <<= self.window_shift[me]
            direction = CLIENT_TO_SERVER if me == "client" else SERVER_TO_CLIENT
            flags = flag_words(w.flags)
            segments.append(Segment(
                number=number,
                time=w.time - start,
                direction=direction,
                flags=flags,
                seq=(w.seq - self.isn[me]) % 2**32,
                ack=(w.ack - (self.isn[peer] or 0)) % 2**32 if w.flags & _ACK else None,
                length=w.length,
                window=window,
                phase=phases.of(direction, flags, w.length),
                payload=w.payload,
                packet=w.packet,
                truncated=len(w.payload) < w.length,
                timestamps=w.timestamps,
            ))
        return segments

    @classmethod
    def from_packets(cls, packets: Iterable[Any], stream: int | None = None, source: str = "live", *,
                     partial: bool = False) -> Conversation:
        """Understand the TCP conversation in `packets` (stream N when there are several)."""
        streams = _split(_read_all(packets))
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
        return cls._of(streams[stream], stream, source, partial)

    def caveats(self) -> list[str]:
        """What the capture leaves unknown about this stream, in words (empty for a complete one)."""
        notes = []
        if self.partial:
            notes.append("no handshake captured: ISN unknown, numbers relative to each side's first segment")
        elif not self.answered:
            notes.append("a SYN without an answer")
        elif not self.isn_known["server"] and not self.refused:
            notes.append("no SYN-ACK captured: the server's ISN unknown")
        if self.window_shift is None and not self.refused and self.answered:
            notes.append("window scaling unknown")
        if self.partial:
            notes.append("client and server guessed" + ("" if self.isn_known["server"] else " from the ports"))
        broken = self.causality
        if broken:
            more = f"; {len(broken)} segments break causality" if len(broken) > 1 else ""
            notes.append(f"not causal in capture order: {broken[0]}{more}")
        return notes

    @functools.cached_property
    def causality(self) -> list[str]:
        """What in this capture could not have happened in the order captured, one sentence per segment.

        Three rules, checked in capture order (see `_causality`): no segment acknowledges
        bytes (or a SYN or FIN) the other side has not sent yet; no Timestamps option echoes a
        TSval the other side has not sent yet (RFC 7323); no side sends new data in a state
        that does not allow it (before its connection is synchronized, or after its FIN). A
        capture made at one point with one clock keeps them all; one that mixes clocks, sorts
        frames wrongly or missed packets does not. Empty when the capture is causal.
        """
        states = None if self.partial else self.states()
        # An ACK is checked against what the peer sent only where the peer's ISN is known: its numbers
        # are relative to it (a partial capture's to the peer's first segment, once that is seen).
        known = {side for side, isn_known in self.isn_known.items() if isn_known and not self.partial}
        return _causality(self.segments, states, known)



    # -- facts a lesson asks about ------------------------------------------

    def flags(self) -> list[str]:
        """The flags of every segment in order, in words."""
        return [s.flags for s in self.segments]

    def phase(self, name: str) -> list[Segment]:
        """The segments of one phase: 'handshake', 'data', 'teardown' or 'reset' (a stream whose
        SYN is not in the capture has no phases: NoHandshakeError)."""
        if self.partial:
            raise self._no_handshake(_read(self.packets[0]))
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
        moved that side into the state. A RST moves a state only when its receiver would accept
        it (RFC 9293 3.10.7.3 and 3.10.7.4): an out-of-window RST (a forged one, say) changes nothing.
        A stream whose SYN is not in the capture has no known start: NoHandshakeError.
        """
        if self.partial:
            raise self._no_handshake(_read(self.packets[0]))
        return _StateWalk(self.refused).run(self.segments)

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
        caveats = self.caveats()
        lines = [
            f"TCP stream {self.stream_number}, {self.source}: client {c[0]}:{c[1]}  server {srv[0]}:{srv[1]}"
            + (f"  ({'; '.join(caveats)})" if caveats else ""),
            f"{'#':>3}  {'time ms':>8}  {'dir':<4} {'flags':<8} {'seq':>7} {'ack':>7} {'len':>6} {'window':>7}  phase",
        ]
        for s in self.segments:
            ack = "" if s.ack is None else str(s.ack)
            line = (f"{s.number:>3}  {s.time * 1000:>8.3f}  {s.direction:<4} {s.flags:<8} {s.seq:>7} {ack:>7} "
                    f"{s.length:>6} {s.window:>7}  {s.phase}")
            notes = [word for word, on in (("retransmission", s.retransmission), ("window probe", s.window_probe),
                                           ("dup ACK", s.dup_ack)) if on]
            if s.truncated:
                notes.append(f"captured {len(s.payload)} of {s.length} bytes")
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


# A side may send new data (beyond a SYN's) only in these states; a SYN-RECEIVED server may, with
# TCP Fast Open (RFC 7413), before the handshake's last ACK arrives.
_MAY_SEND_DATA = {"SYN-RECEIVED", "ESTABLISHED", "CLOSE-WAIT"}


def _causality(segments: list[Segment], states: dict[str, list[tuple[int, str]]] | None,
               known: set[str]) -> list[str]:
    """Each segment that could not have been sent when the capture says, with the rule it breaks.

    Sequence numbers here are relative, so "sent" is the relative number after the highest byte
    (SYN and FIN count one) each side has sent so far. `states` (from `Conversation.states`, None
    without a handshake) gives each side's state before each segment; `known` names the sides whose
    ISN the capture shows, so that an ACK or a timestamp echo of theirs before they sent anything is impossible.
    """
    sent: dict[str, int] = {}  # side -> relative sequence number after the last byte it has sent
    tsvals: dict[str, int] = {}  # side -> the highest TSval it has sent
    fin_at: dict[str, int] = {}  # side -> relative sequence number of its FIN
    state_before = _state_lookup(states) if states is not None else None
    broken = []
    for s in segments:
        me, peer = ("client", "server") if s.direction == CLIENT_TO_SERVER else ("server", "client")
        problem = None
        checkable = peer in sent or peer in known
        if s.ack is not None and not s.has("RST") and checkable and (peer not in sent or _seq_before(sent[peer], s.ack)):
            problem = (f"#{s.number} ({s.direction} {s.flags}) acknowledges {s.ack}, but the {peer} has sent "
                       + (f"only up to {sent[peer]}" if peer in sent else "nothing yet"))
        elif s.timestamps and s.timestamps[1] and not s.has("RST") and (
                _seq_before(tsvals[peer], s.timestamps[1]) if peer in tsvals else peer in known):
            # (where the capture began after the peer's first segment, what it echoes may predate the capture)
            problem = (f"#{s.number} ({s.direction} {s.flags}) echoes a timestamp the {peer} has not sent yet")
        elif s.length and not s.has("SYN") and state_before is not None:
            state = state_before(me, s.number)
            new_data = me not in sent or _seq_before(sent[me], s.seq + s.length)
            if new_data and (state not in _MAY_SEND_DATA or (me in fin_at and _seq_before(fin_at[me], s.seq + s.length))):
                problem = f"#{s.number} ({s.direction} {s.flags}) carries new data while the {me} is in {state}"
        if problem:
            broken.append(problem)
        end = (s.seq + s.length + s.has("SYN") + s.has("FIN")) % 2**32
        if me not in sent or _seq_before(sent[me], end):
            sent[me] = end
        if s.has("FIN"):
            fin_at.setdefault(me, (s.seq + s.length) % 2**32)
        if s.timestamps and (me not in tsvals or _seq_before(tsvals[me], s.timestamps[0])):
            tsvals[me] = s.timestamps[0]
    return broken


def _state_lookup(states: dict[str, list[tuple[int, str]]]) -> Any:
    """A function (side, segment number) -> that side's state just before the segment."""

    def before(side: str, number: int) -> str:
        state = states[side][0][1]
        for step, name in states[side][1:]:
            if step >= number:
                break
            state = name
        return state

    return before


def _seq_before(a: int, b: int) -> bool:
    """True when sequence number `a` comes before `b` (RFC 9293's comparison, modulo 2**32)."""
    return 0 < (b - a) % 2**32 < 2**31


class _StateWalk:
    """Both sides walked through TRANSITIONS, one captured segment at a time (see `Conversation.states`).

    A FIN in the capture has not necessarily reached its receiver yet: in a simultaneous close
    both FINs are on the wire before either arrives. A side has taken in the peer's FIN once it
    acknowledges it or gets a later segment from the peer (TCP delivers in order); until then the
    FIN waits in `unread_fin`, as side -> (segment number, event).
    """

    def __init__(self, refused: bool) -> None:
        # A refused connection had no listening socket: the server side stays CLOSED and resets.
        server_start = "CLOSED" if refused else "LISTEN"
        self.state = {"client": "CLOSED", "server": server_start}
        self.walk: dict[str, list[tuple[int, str]]] = {"client": [(0, "CLOSED")], "server": [(0, server_start)]}
        self.fin_seq_end: dict[str, int] = {}
        self.unread_fin: dict[str, tuple[int, str]] = {}
        self.next_seq: dict[str, int] = {}  # per side: the sequence number after the highest it sent
        self.window: dict[str, int] = {}  # per side: the last receive window it advertised, in bytes

    def run(self, segments: list[Segment]) -> dict[str, list[tuple[int, str]]]:
        for s in segments:
            sender, receiver = ("client", "server") if s.direction == CLIENT_TO_SERVER else ("server", "client")
            self.take_in_fin(receiver)  # everything the sender sent before this segment has arrived
            if (sender in self.unread_fin and s.has("ACK") and s.ack is not None
                    and s.ack >= self.fin_seq_end[receiver]):
                self.take_in_fin(sender)  # the sender acknowledges the peer's FIN, so it had read it
            if not s.has("RST") or self.acceptable_reset(s, receiver):
                for side, events in self.events(s, sender, receiver).items():
                    for event in events:
                        self.move(side, event, s.number)
            self.remember(s, sender)
        for side in list(self.unread_fin):  # the capture ended: the last FINs have arrived by now
            self.take_in_fin(side)
        return self.walk

    def events(self, s: Segment, sender: str, receiver: str) -> dict[str, list[str]]:
        """What this segment means to each side: {"client": ["send SYN"], "server": ["recv SYN"]}."""
        events: dict[str, list[str]] = {sender: [], receiver: []}
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
                self.fin_seq_end[sender] = s.seq + s.length + 1
            acks_fin = (s.has("ACK") and receiver in self.fin_seq_end and s.ack is not None
                        and s.ack >= self.fin_seq_end[receiver])
            if s.has("FIN"):
                events[sender].append("send FIN")
                self.unread_fin[receiver] = (s.number, "recv FIN+ACK of FIN" if acks_fin else "recv FIN")
            elif acks_fin:
                events[receiver].append("recv ACK of FIN")
            elif s.has("ACK"):
                events[receiver].append("recv ACK")
        return events

    def acceptable_reset(self, s: Segment, receiver: str) -> bool:
        """Whether the receiver accepts this RST: in SYN-SENT only if it acknowledges the SYN
        (RFC 9293 3.10.7.3); in the other states only if its sequence number is in the receive
        window, [RCV.NXT, RCV.NXT + RCV.WND), or equals RCV.NXT when the window is 0 (3.10.7.4)."""
        if self.state[receiver] == "SYN-SENT":
            return s.has("ACK") and s.ack == 1
        expected = self.next_seq.get("client" if receiver == "server" else "server")
        if expected is None or self.state[receiver] in ("CLOSED", "LISTEN"):
            return True  # nothing to check it against (and LISTEN and CLOSED ignore a RST anyway)
        offset = (s.seq - expected) % 2**32
        return offset == 0 or offset < self.window.get(receiver, 0)

    def remember(self, s: Segment, sender: str) -> None:
        span = s.length + s.has("SYN") + s.has("FIN")
        end = (s.seq + span) % 2**32
        if sender not in self.next_seq or _seq_before(self.next_seq[sender], end):
            self.next_seq[sender] = end
        if not s.has("RST"):
            self.window[sender] = s.window

    def move(self, side: str, event: str, number: int) -> None:
        state = self.state[side]
        if event == "recv RST" and state == "SYN-RECEIVED" and side == "server":
            nxt = "LISTEN"  # a connection that came from LISTEN goes back to listening
        elif event == "recv RST":
            nxt = "CLOSED" if state in RESETTABLE else None
        elif event == "send RST":
            nxt = "CLOSED" if state in _ABORTABLE else None
        else:
            nxt = TRANSITIONS.get((state, event))
            if nxt is None and event == "recv FIN+ACK of FIN":
                # FIN-WAIT-1 is the only state where this differs from a plain FIN.
                nxt = TRANSITIONS.get((state, "recv FIN"))
        if nxt and nxt != state:
            self.state[side] = nxt
            self.walk[side].append((number, nxt))

    def take_in_fin(self, side: str) -> None:
        if side in self.unread_fin:
            number, event = self.unread_fin.pop(side)
            self.move(side, event, number)


def _sides(wires: list[_Wire], syn: _Wire | None, synack: _Wire | None) -> tuple[tuple[str, int], tuple[str, int]]:
    """(client, server): the SYN's sender is the client, a SYN-ACK's sender the server; with
    neither in the capture, the side with the lower port is taken for the server (a guess)."""
    if syn is not None:
        return syn.src, syn.dst
    if synack is not None:
        return synack.dst, synack.src
    a, b = wires[0].src, wires[0].dst
    return (b, a) if a[1] < b[1] else (a, b)


def _initial_numbers(wires: list[_Wire], client: tuple[str, int], server: tuple[str, int], syn: _Wire | None,
                     synack: _Wire | None) -> tuple[dict[str, int | None], dict[str, bool]]:
    """Each side's ISN (the base of its relative numbers) and whether the capture shows it.

    A SYN gives its sender's ISN, a SYN-ACK the server's and (its ack - 1) the client's. Without
    them, Wireshark's rule: a side's first segment gets relative sequence number 1, unless the
    peer acknowledged that side earlier (then the ack is relative 1). A RST answering a SYN
    (nothing listened) carries no ISN of its own: its sequence number counts from 0.
    """
    isn: dict[str, int | None] = {"client": None, "server": None}
    if syn is not None:
        isn["client"] = syn.seq
    if synack is not None:
        isn["server"] = synack.seq
        if isn["client"] is None:
            isn["client"] = (synack.ack - 1) % 2**32
    known = {side: value is not None for side, value in isn.items()}
    first_answer = next((w for w in wires if w.src == server), None)
    if synack is None and syn is not None and first_answer is not None and first_answer.flags & _RST:
        isn["server"] = first_answer.seq
    for w in wires:
        me, peer = ("client", "server") if w.src == client else ("server", "client")
        if isn[me] is None:
            isn[me] = (w.seq - 1) % 2**32
        if isn[peer] is None and w.flags & _ACK:
            isn[peer] = (w.ack - 1) % 2**32
    return isn, known


# RFC 7323 section 2.3: a shift above 14 is taken as 14 (a window of at most 2**30 bytes).
_MAX_WINDOW_SHIFT = 14


def _window_shifts(syn: _Wire | None, synack: _Wire | None) -> dict[str, int] | None:
    """Each side's window shift ({"client": 7, "server": 7}; 0 when scaling is off), or None when
    the capture cannot tell (a SYN missing while the other offered scaling).

    Scaling is in force only when both SYNs offer it (RFC 7323), and never applies to a SYN.
    """
    if (syn is not None and syn.wscale is None) or (synack is not None and synack.wscale is None):
        return {"client": 0, "server": 0}  # one side did not offer it: off, whatever the other did
    if syn is None or synack is None:
        return None
    return {"client": min(syn.wscale, _MAX_WINDOW_SHIFT), "server": min(synack.wscale, _MAX_WINDOW_SHIFT)}


class _Phases:
    """Names each segment's phase in capture order: handshake until the client's first ACK after
    its SYN, then data; teardown from the first FIN, reset from the first RST (for good)."""

    def __init__(self, unknown: bool) -> None:
        self.unknown = unknown  # without the SYN there is no telling
        self.phase = "handshake"
        self.handshake_done = False

    def of(self, direction: str, flags: str, length: int) -> str:
        """The phase of the next segment, given its direction, flags in words and payload length."""
        if self.unknown:
            return "unknown"
        names = flags.split("-")
        if "RST" in names:
            self.phase = "reset"
        elif "FIN" in names and self.phase != "reset":
            self.phase = "teardown"
        elif self.phase == "handshake" and self.handshake_done:
            self.phase = "data"
        phase = self.phase
        if phase == "handshake" and direction == CLIENT_TO_SERVER:
            # The client's ACK ends the handshake; when it already carries data, it is data itself.
            if flags == "ACK":
                self.handshake_done = True
            if "ACK" in names and length:
                self.handshake_done = True
                phase = self.phase = "data"
        return phase
