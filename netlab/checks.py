"""Checks for the notebooks' exercises: each says what is right or what to look at again.

This module sits above the lessons (it may read their constants) and below the face.

A check never reveals the answer: when an answer is wrong it points at the part of the capture
(or the idea) to look at again. Each returns a `Feedback`, which shows as one line in a notebook
and is true when the answer is right, so tests can assert on it.

Grading (README, "Teaching with netlab"): every check below is wrapped (at the end of this file)
so that a result also carries data a grader reads (CHECK_MIME: grade id, passed, feedback); an
answer left as `...` says "not answered yet"; an answer that makes the check raise or hang gives
a ✘, never a traceback; and under grading (NETLAB_GRADING=1) a failed check raises AssertionError
with its hint, which is how nbgrader takes a test cell's points away.
"""

from __future__ import annotations

import dis
import functools
import inspect
import os
import signal
import threading
import types
from dataclasses import dataclass
from typing import Any

from netlab.core.conversation import CLIENT_TO_SERVER, SERVER_TO_CLIENT, Conversation
from netlab.core.errors import PcapError
from netlab.core.pcapfiles import load_pcap
from netlab.core.sockets import RetryError

__all__ = ["Feedback", "handshake_completer", "server_ack_after_hello", "time_wait_side", "four_segment_teardown",
           # notebook 03
           "final_ack_raw", "delayed_ack", "reliable_close_delay",
           # notebooks 00, 01, 02
           "live_or_recorded", "segments_in_file", "reloaded_capture", "server_port", "last_segment_ms",
           "tcp_header_length", "ip_protocol",
           "built_datagram", "connect_segments", "framed_messages", "timeout_error",
           "frame_length", "internet_checksum", "client_isn", "recv_sizes", "own_recv_message", "ask_within",
           # notebook 04
           "content_length", "syn_count", "closing_header", "read_body", "keeps_connection_open", "second_response_seq",
           # notebook 07
           "requests_per_second", "thread_count", "idle_model", "bulk_gbit_per_second",
           "mean_round_trip", "blocking_prediction", "asyncio_echo",
           # notebook 08
           "tls_server_name", "tls_certificate_record", "tls_response_size", "tls_refusal_alert",
           "tls_record_prediction", "request_record_seq", "tls_records",
           # notebook 06
           "syn_retransmissions", "errno_name", "bytes_after_fin", "gave_up_quickly",
           "two_syns_timeout", "reset_raw_seq", "retrying_connect",
           # notebook 05
           "segments_for_write", "first_rto", "first_window_probe", "window_throughput",
           "own_first_rto", "probe_raw_seq", "window_transfer_time",
           # notebook 09
           "slow_start_prediction", "recovery_duration", "window_limit",
           # notebook 10
           "router_rewrite", "ttl_prediction", "own_traceroute"]


# The MIME type of a check's result as data: {"grade_id", "passed", "feedback"}, read by netlab's grader.
CHECK_MIME = "application/vnd.netlab.check+json"
# Set (to anything but "" or "0") by a grader: a failed check then raises AssertionError.
GRADING_ENV = "NETLAB_GRADING"
# A check that runs longer than this (seconds) is stopped: a student's function may hang.
CHECK_SECONDS = 90.0
NOT_ANSWERED = "Not answered yet: replace the `...` with your answer and run the cell again."


@dataclass(frozen=True)
class Feedback:
    """The verdict on one exercise answer: one line in a notebook (✔ or ✘ and the message), plus
    the same verdict as CHECK_MIME data for a grader; `grade_id` names the exercise when known."""

    ok: bool
    message: str
    grade_id: str | None = None

    def __bool__(self) -> bool:
        return self.ok

    def __repr__(self) -> str:
        return ("✔ " if self.ok else "✘ ") + self.message

    def data(self) -> dict[str, Any]:
        """The verdict as the grader reads it (CHECK_MIME); `feedback` is the message without its mark."""
        return {"grade_id": self.grade_id, "passed": self.ok, "feedback": self.message}

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        # Jupyter shows text/plain; the data travels beside it in the same output, for graders.
        return {"text/plain": repr(self), CHECK_MIME: self.data()}

    def _ipython_display_(self) -> None:
        # Shown as display data, not as the cell's result: nbgrader reads a test cell's result as
        # partial credit (a number) and warns that text there may become an error.
        from IPython.display import display

        display(self._repr_mimebundle_(), raw=True)


def _unanswered(answer: Any) -> Feedback | None:
    if answer is None or answer is ...:
        return Feedback(False, NOT_ANSWERED)
    return None


def _whole(answer: Any) -> bool:
    """True for an int that is not a bool: a count, a length, a raw sequence number."""
    return isinstance(answer, int) and not isinstance(answer, bool)


def _names_used(func: Any) -> set[str]:
    """Every global, attribute and closure name a function's code (and the code nested in it) refers to."""
    names: set[str] = set()
    stack = [getattr(func, "__code__", None)]
    while stack:
        code = stack.pop()
        if code is None:
            continue
        names.update(code.co_names, code.co_freevars)
        stack.extend(c for c in code.co_consts if isinstance(c, types.CodeType))
    return names


def _borrowed(func: Any, forbidden: set[str]) -> str | None:
    """The first of netlab's own solutions that `func` calls (the exercise asks for the student's own), or None."""
    used = sorted(_names_used(func) & forbidden)
    return used[0] if used else None


def handshake_completer(conv: Conversation, answer: Any) -> Feedback:
    """Exercise: the number of the segment that completes the three-way handshake."""
    if (fb := _unanswered(answer)) is not None:
        return fb
    if not isinstance(answer, int) or isinstance(answer, bool):
        return Feedback(False, f"Give the segment's number (the # column), an int, not {type(answer).__name__}.")
    third = conv.handshake_ack
    if third is None:
        return Feedback(False, "This capture has no complete handshake; run the capture cell again.")
    if answer == third.number:
        return Feedback(True, f"Segment {answer}: the client's ACK of the server's SYN. Both sides are now ESTABLISHED.")
    chosen = next((s for s in conv.segments if s.number == answer), None)
    if chosen is None:
        return Feedback(False, f"There is no segment {answer}; the table numbers them 1 to {len(conv.segments)}.")
    if chosen.flags == "SYN":
        return Feedback(False, f"Segment {answer} is the client's SYN: it opens the handshake, and the server "
                               "has not answered yet.")
    if chosen.has("SYN"):
        return Feedback(False, f"Segment {answer} still carries SYN: the handshake needs one more segment after it.")
    return Feedback(False, f"Segment {answer} is a {chosen.flags} in the {chosen.phase} phase; "
                           "the handshake was already complete before it. Look earlier.")


def server_ack_after_hello(conv: Conversation, answer: Any) -> Feedback:
    """Exercise: the relative ack the server sends once it has the client's first message."""
    if (fb := _unanswered(answer)) is not None:
        return fb
    first = next((s for s in conv.segments if s.direction == CLIENT_TO_SERVER and s.length), None)
    if first is None:
        return Feedback(False, "The client sent no data in this capture.")
    expected = first.seq + first.length
    if answer == expected:
        return Feedback(True, f"ack={expected}: the next byte the server expects. The SYN counted as one "
                              f"sequence number, and the {first.length} bytes of data as {first.length} more.")
    if answer == first.length:
        return Feedback(False, "Close: that is the number of data bytes. Remember that the SYN also used up one sequence number.")
    if answer == expected - 1:
        return Feedback(False, "That is the relative number of the last byte received; an ACK names the next byte expected.")
    return Feedback(False, "Start from the client's data segment: its seq, plus how many bytes it carried.")


def time_wait_side(exp: Any, answer: Any) -> Feedback:
    """Exercise: which side ('client' or 'server') ends up in TIME-WAIT, read from `ss`."""
    if (fb := _unanswered(answer)) is not None:
        return fb
    if answer not in ("client", "server"):
        return Feedback(False, "Answer 'client' or 'server'.")
    conv = exp.conversation
    waiting = [s for s in exp.kernel_states if s.state == "TIME-WAIT"]
    if not waiting:
        return Feedback(False, "The kernel listed no TIME-WAIT socket in this run; look at the `ss` output again.")
    side = "client" if waiting[0].local == conv.client else "server"
    if answer == side:
        return Feedback(True, f"The {side}: it sent the first FIN, so it holds the connection's 4-tuple "
                              "(60 s on Linux) in case its last ACK was lost.")
    return Feedback(False, "Compare the local address:port of the TIME-WAIT socket in the `ss` output "
                           "with the client's and the server's address:port in the table.")


def four_segment_teardown(exp: Any) -> Feedback:
    """Exercise: make the teardown show FIN, ACK, FIN, ACK (four segments) by delaying the server."""
    teardown = exp.conversation.phase("teardown")
    flags = [s.flags for s in teardown]
    if len(teardown) == 4:
        return Feedback(True, f"Four segments: {', '.join(flags)}. The kernel ACKed the FIN before the program closed.")
    if len(teardown) == 3:
        return Feedback(False, f"Still three ({', '.join(flags)}): the server closed before the client's FIN "
                               "was acknowledged, so the ACK rode on the server's FIN. Make the server wait longer "
                               "than the delayed-ACK timer.")
    return Feedback(False, f"The teardown has {len(teardown)} segments ({', '.join(flags) or 'none'}); "
                           "check that the client closes the connection.")



def final_ack_raw(exp: Any, answer: Any) -> Feedback:
    """Exercise: the raw acknowledgement number in the client's last ACK of the student's own capture `exp`."""
    if (fb := _unanswered(answer)) is not None:
        return fb
    if not _whole(answer):
        return Feedback(False, f"Give the raw number, an int, not {type(answer).__name__}.")
    from scapy.layers.inet import TCP

    conv = exp.conversation
    last = next((s for s in reversed(conv.segments) if s.direction == CLIENT_TO_SERVER and s.ack is not None), None)
    if last is None or not conv.phase("teardown"):
        return Feedback(False, "This capture has no teardown; run the capture cell of section 1 again.")
    raw = int(last.packet[TCP].ack)
    if answer == raw:
        return Feedback(True, f"The raw ack {raw}: the server's ISN + {last.ack}, one for its SYN, one per byte "
                              "it sent, one for its FIN. " + ("No one else's capture has this number." if exp.live
                                                              else "(From the recording.)"))
    if answer == last.ack:
        return Feedback(False, "That is the relative number the table shows; the exercise asks for the raw one.")
    if answer in ((raw - 1) % 2**32, (raw - 2) % 2**32):
        return Feedback(False, "Close. Count what used up the server's sequence numbers: not only its bytes.")
    if abs(answer - conv.isn["client"]) < 2**16:
        return Feedback(False, "That is in the client's numbering; an ACK counts the bytes of the other side.")
    return Feedback(False, "Start from the server's ISN (section 3) and count every sequence number the server used.")


def _slow_close(exp: Any) -> tuple[Any, Any, Any] | None:
    """The client's FIN, the server's lone ACK of it and the server's FIN, in a four-segment teardown; None otherwise."""
    teardown = exp.conversation.phase("teardown")
    if len(teardown) != 4:
        return None
    fin, ack, server_fin = teardown[:3]
    if fin.direction != CLIENT_TO_SERVER or "FIN" not in fin.flags or ack.direction != SERVER_TO_CLIENT \
            or "FIN" in ack.flags or "FIN" not in server_fin.flags:
        return None
    return fin, ack, server_fin


def delayed_ack(exp: Any, answer: Any) -> Feedback:
    """Exercise: seconds from the client's FIN to the server kernel's lone ACK of it, in the student's own slow-close run."""
    if (fb := _unanswered(answer)) is not None:
        return fb
    if not _number(answer):
        return Feedback(False, f"Give a number of seconds, not {type(answer).__name__}.")
    segments = _slow_close(exp)
    if segments is None:
        return Feedback(False, "Capture with netlab.handshake(close_delay=0.5): its teardown has four segments.")
    fin, ack, server_fin = segments
    if exp.live and server_fin.time - fin.time < 0.4:  # the recording held its close 0.2 s
        return Feedback(False, "Capture a run of your own with close_delay=0.5, as the exercise asks.")
    measured = ack.time - fin.time
    if abs(answer - measured) <= 0.0005:
        return Feedback(True, f"{measured * 1000:.1f} ms in {'your capture' if exp.live else 'the recording'}: the "
                              "delayed-ACK timer, between Linux's "
                              "40 ms minimum and 200 ms maximum. Keep this number for the next exercise.")
    if abs(answer / 1000 - measured) <= 0.0005:
        return Feedback(False, "That looks like milliseconds; give seconds.")
    if abs(answer - (server_fin.time - fin.time)) <= 0.002:
        return Feedback(False, "That is the time to the server's FIN, which the program's close sent. The kernel's "
                               "own ACK came earlier.")
    return Feedback(False, "Take the times (seconds) of two segments of the teardown: the client's FIN, and the "
                           "segment by which the server's kernel acknowledged it.")


def reliable_close_delay(delay: Any, measured: Any) -> Feedback:
    """Exercise: a close_delay that gives four teardown segments in three fresh runs of three, at most twice `measured`.

    `measured` is the delayed-ACK timer (seconds) the student measured in the exercise before.
    """
    if (fb := _unanswered(delay)) is not None or (fb := _unanswered(measured)) is not None:
        return fb
    if not _number(delay) or not _number(measured):
        return Feedback(False, "Give `close_delay` in seconds, a number, and keep `delayed_ack` from exercise 2.")
    if not 0.02 <= measured <= 0.5:
        return Feedback(False, "Your `delayed_ack` is not a delayed-ACK time in seconds: do exercise 2 first.")
    if delay <= measured:
        return Feedback(False, "Not longer than the delayed ACK you measured: the server's FIN would leave before "
                               "the ACK and carry it.")
    if delay > 2 * measured:
        return Feedback(False, f"{delay} s works, but it is more than twice the delayed ACK you measured. What must "
                               "happen before the server closes? Wait only a little longer than that.")
    from netlab.lessons.handshake import handshake

    runs = [handshake(close_delay=delay)]
    if not runs[0].live:
        return Feedback(True, f"{delay} s, between your delayed ACK and twice it. Trying it needs the live lab; "
                              "from the recording, only your reasoning is graded.")
    runs += [handshake(close_delay=delay) for _ in range(2)]
    four = sum(_slow_close(r) is not None for r in runs)
    if four == 3:
        return Feedback(True, f"Four segments in 3 runs of 3 with close_delay={delay:.3g} s: the server's kernel sends "
                              "its delayed ACK before the program closes, so the ACK cannot ride on the FIN.")
    return Feedback(False, f"Four segments in {four} of 3 fresh runs: the timer varies by a few ms from run to run. "
                           "Leave a little more margin.")


# --- notebook 00: start here ---


def live_or_recorded(exp: Any, answer: Any) -> Feedback:
    """Exercise: did this experiment run 'live' or was it 'recorded'?"""
    if (fb := _unanswered(answer)) is not None:
        return fb
    if answer not in ("live", "recorded"):
        return Feedback(False, "Answer 'live' or 'recorded'.")
    if answer == exp.source:
        return Feedback(True, f"{exp.source.capitalize()}: the experiment says so in `exp.why` and in its table's first line.")
    return Feedback(False, "Read `exp.why` (or the first line of the table) again: it names the source.")


def segments_in_file(path: Any, answer: Any) -> Feedback:
    """Exercise: how many TCP segments does the saved pcap file at `path` hold?"""
    if (fb := _unanswered(answer)) is not None:
        return fb
    try:
        packets = load_pcap(path)
    except PcapError as err:
        return Feedback(False, f"The file cannot be read as a capture: {err}. Save it again with exp.save(...).")
    from scapy.layers.inet import TCP

    count = sum(TCP in p for p in packets)
    if answer == count:
        return Feedback(True, f"{count} TCP segments: one per row of the table, and one per line in Wireshark.")
    if isinstance(answer, int) and not isinstance(answer, bool):
        return Feedback(False, f"Not {answer}: load the file with netlab.load_pcap and count what it holds.")
    return Feedback(False, f"Give a number (an int), not {type(answer).__name__}.")


def reloaded_capture(exp: Any, packets: Any) -> Feedback:
    """Exercise: save `exp` as a pcap and load it back with netlab.load_pcap; pass what was loaded."""
    if (fb := _unanswered(packets)) is not None:
        return fb
    if not isinstance(packets, list):
        return Feedback(False, f"Pass the list netlab.load_pcap returned, not {type(packets).__name__}.")
    saved = exp.conversation.packets
    if len(packets) != len(saved):
        return Feedback(False, f"The file holds {len(packets)} packets and the experiment {len(saved)}: "
                               "did you load the file you just saved?")
    if [bytes(p) for p in packets] != [bytes(p) for p in saved]:
        return Feedback(False, "As many packets, but not the same bytes: load the file this experiment saved.")
    return Feedback(True, f"The same {len(packets)} packets, byte for byte: a pcap keeps each frame whole, "
                          "with its time stamp.")


def server_port(exp: Any, answer: Any) -> Feedback:
    """Exercise: the port the server listened on in the student's own capture `exp` (the kernel picks it on each run)."""
    if (fb := _unanswered(answer)) is not None:
        return fb
    if isinstance(answer, str):
        return Feedback(False, "Give the port alone, a number (an int), not text.")
    if not _whole(answer):
        return Feedback(False, f"Give the port, an int, not {type(answer).__name__}.")
    conv = exp.conversation
    (host, port), (client_host, client_port) = conv.server, conv.client
    if answer == port:
        return Feedback(True, f"{host}:{port}: the kernel chose it when the server bound port 0, so it changes "
                              f"from run to run; the client's was {client_host}:{client_port}.")
    if answer == client_port:
        return Feedback(False, "That is the client's port. The table's first line names both sides.")
    if answer == 0:
        return Feedback(False, "Port 0 is what the server asked for, meaning 'any'. Which one did it get?")
    return Feedback(False, "The first line of your capture's table names the client and the server, each as address:port.")


def last_segment_ms(exp: Any, answer: Any) -> Feedback:
    """Exercise: the time (ms) of the last segment in the table of the student's own capture `exp`."""
    if (fb := _unanswered(answer)) is not None:
        return fb
    if not _number(answer):
        return Feedback(False, f"Give the time in milliseconds, a number, not {type(answer).__name__}.")
    segments = exp.conversation.segments
    last_ms = segments[-1].time * 1000
    if abs(answer - last_ms) <= 0.001:
        return Feedback(True, f"{last_ms:.3f} ms after the first SYN, segment {len(segments)}: the table's last row. "
                              "Your neighbour's run took another time.")
    if abs(answer - segments[-1].time) <= 0.000001:
        return Feedback(False, "That is in seconds; the table's `time ms` column counts milliseconds.")
    if abs(answer - len(segments)) < 0.5:
        return Feedback(False, "That is the number of the last row (#), not its time.")
    return Feedback(False, "Print your capture's table (`print(exp.conversation)`) and read the `time ms` column "
                           "of its last row.")


# --- notebook 01: layers and packets ---


def tcp_header_length(pkt: Any, answer: Any) -> Feedback:
    """Exercise: the length in bytes of this packet's TCP header."""
    from scapy.layers.inet import TCP

    if (fb := _unanswered(answer)) is not None:
        return fb
    length = int(pkt[TCP].dataofs) * 4
    if answer == length:
        return Feedback(True, f"{length} bytes: the data offset field says {pkt[TCP].dataofs} words of 4 bytes, "
                              f"20 fixed and {length - 20} of options.")
    if answer == 20:
        return Feedback(False, "20 is the header without options; this segment carries options. Read the data offset field.")
    if answer == pkt[TCP].dataofs:
        return Feedback(False, "That is the data offset field itself: it counts 4-byte words, not bytes.")
    return Feedback(False, "Look at the TCP header's data offset (dataofs) field, or at the byte ranges drawn above.")


def ip_protocol(pkt: Any, answer: Any) -> Feedback:
    """Exercise: the number in the IP header's protocol field that says 'a TCP segment follows'."""
    from scapy.layers.inet import IP

    if (fb := _unanswered(answer)) is not None:
        return fb
    number = int(pkt[IP].proto)
    if answer == number:
        return Feedback(True, f"{number}: the IP layer names the protocol of its payload, so the receiver "
                              "knows to hand it to TCP.")
    if answer == 17:
        return Feedback(False, "17 is UDP's number. This packet carries TCP: read `proto` in the IP header.")
    if isinstance(answer, str):
        return Feedback(False, "Give the number as it is on the wire (an int), not a name.")
    return Feedback(False, "Read the `proto` field of the IP header in the .show() output.")


def built_datagram(pkt: Any) -> Feedback:
    """Exercise: an IP/UDP packet to 127.0.0.1 port 9999 carrying b'ping', built with scapy."""
    from scapy.layers.inet import IP, UDP
    from scapy.packet import Packet

    if (fb := _unanswered(pkt)) is not None:
        return fb
    if not isinstance(pkt, Packet) or IP not in pkt:
        return Feedback(False, "Build the packet with scapy's layers, stacked with `/`: IP(...)/UDP(...)/payload.")
    if UDP not in pkt:
        return Feedback(False, "There is no UDP layer on top of the IP layer.")
    wire = IP(bytes(pkt[IP]))  # what a receiver would read: lengths and checksums filled in
    problems = []
    if wire.dst != "127.0.0.1":
        problems.append(f"it goes to {wire.dst}, not 127.0.0.1")
    if wire[UDP].dport != 9999:
        problems.append(f"its destination port is {wire[UDP].dport}, not 9999")
    if bytes(wire[UDP].payload) != b"ping":
        problems.append(f"it carries {bytes(wire[UDP].payload)!r}, not b'ping'")
    if problems:
        return Feedback(False, "Almost: " + "; ".join(problems) + ".")
    return Feedback(True, f"{len(bytes(wire))} bytes: 20 of IP header, 8 of UDP header, 4 of payload; scapy "
                          f"filled in the lengths and the checksums (UDP checksum {wire[UDP].chksum:#06x}).")


def frame_length(message: Any, answer: Any) -> Feedback:
    """Exercise: predict the length in bytes of the frame that carries the student's `message`; a fresh capture sends it."""
    if (fb := _unanswered(message)) is not None or (fb := _unanswered(answer)) is not None:
        return fb
    if not isinstance(message, bytes) or not 1 <= len(message) <= 1000 or len(message) == 13:
        return Feedback(False, "Choose `message` yourself: bytes, 1 to 1000 of them, and not 13 long like b'Hello, World!'.")
    if not _whole(answer):
        return Feedback(False, f"Give a number of bytes, an int, not {type(answer).__name__}.")
    from scapy.layers.inet import TCP

    from netlab.lessons.handshake import handshake

    exp = handshake(message=message)
    data = next(s for s in exp.conversation.segments if s.direction == CLIENT_TO_SERVER and s.length)
    tcp = int(data.packet[TCP].dataofs) * 4
    headers = len(bytes(data.packet)) - data.length
    expected = headers + len(message)
    if answer == expected:
        sent = f"your {len(message)} bytes went out in a frame of {expected}" if exp.live else (
            f"this needs the live lab to send your message; on the recording's headers, {expected}")
        return Feedback(True, f"{expected} bytes ({sent}): Ethernet 14, IP 20, TCP {tcp} with its options, then "
                              "your data. The headers do not grow with the message.")
    if answer == len(message):
        return Feedback(False, "That is only your data: every layer below puts a header in front of it.")
    if answer == expected - 14:
        return Feedback(False, "That is the IP packet; the frame also carries the link's header.")
    if answer == expected - (tcp - 20):
        return Feedback(False, "Close: this TCP header is longer than the bare minimum. Section 5 says why.")
    return Feedback(False, "Add up the header of each layer, as section 3 drew them, and then your bytes.")


def internet_checksum(func: Any, packet: Any) -> Feedback:
    """Exercise: a function bytes -> the 16-bit Internet checksum (RFC 1071), run on the packet's own IP header and hard cases."""
    if (fb := _unanswered(func)) is not None:
        return fb
    if not callable(func):
        return Feedback(False, "Give a function that takes bytes and returns the checksum, an int from 0 to 0xffff.")
    if (name := _borrowed(func, {"checksum", "in4_chksum", "chksum"})) is not None:
        return Feedback(False, f"Your function uses scapy's `{name}`: the exercise asks you to add the words yourself.")
    from scapy.layers.inet import IP
    from scapy.utils import checksum

    header = bytearray(bytes(packet[IP])[:int(packet[IP].ihl) * 4])
    header[10:12] = b"\0\0"  # the checksum field counts as zero while the checksum is computed
    odd = os.urandom(2 * (os.urandom(1)[0] % 40) + 21)  # a length of its own on each run, always odd
    cases = [("your packet's IP header (checksum field zeroed)", bytes(header), int(packet[IP].chksum)),
             ("two bytes, 0x00 0x01", b"\x00\x01", checksum(b"\x00\x01")),
             (f"{len(odd)} random bytes (an odd length)", odd, checksum(odd)),
             ("one byte, 0x01 (an odd length)", b"\x01", checksum(b"\x01")),
             ("1000 bytes of 0xff (the sum carries many times)", b"\xff" * 1000, checksum(b"\xff" * 1000))]
    wrong = []
    for what, data, expected in cases:
        try:
            got = func(data)
        except Exception as err:
            return Feedback(False, f"Your function raised {type(err).__name__} on {what}: {err}")
        if not _whole(got):
            return Feedback(False, f"Your function returned {type(got).__name__} for {what}; return an int (0 to 0xffff).")
        if got != expected:
            wrong.append((what, data, got, expected))
    if not wrong:
        return Feedback(True, "Right on all five, your own packet's IP header included (it gives the checksum the "
                              "packet carries): add 16-bit words, fold the carries back in, take the ones' complement.")
    what, data, got, expected = wrong[0]
    if all(len(d) % 2 for _, d, _, _ in wrong):
        return Feedback(False, f"Right on even lengths, wrong on {what}: what does RFC 1071 do with a last byte "
                               "that has no partner?")
    if got == (~expected) & 0xFFFF:
        return Feedback(False, f"For {what} you returned the folded sum; the field carries its ones' complement.")
    if got > 0xFFFF:
        return Feedback(False, f"For {what} you returned {got:#x}, more than 16 bits: fold the carries back in.")
    return Feedback(False, f"Wrong for {what} ({len(wrong)} of 5 cases wrong): add the data as big-endian 16-bit "
                           "words, fold the carries back in, then complement.")


def client_isn(exp: Any, answer: Any) -> Feedback:
    """Exercise: the client's raw initial sequence number in the student's own capture `exp` (it differs on every run)."""
    if (fb := _unanswered(answer)) is not None:
        return fb
    if not _whole(answer):
        return Feedback(False, f"Give the raw number, an int, not {type(answer).__name__}.")
    from scapy.layers.inet import TCP

    conv = exp.conversation
    isn = conv.isn["client"]
    data = conv.phase("data")[0]
    raw = int(data.packet[TCP].seq)
    if answer == isn:
        own = "no one else's capture has it" if exp.live else "the recording's"
        return Feedback(True, f"Your client's ISN was {isn} ({own}): the raw seq {raw} of your data packet minus "
                              f"its relative seq {data.seq}.")
    if answer == raw:
        return Feedback(False, "That is your data packet's raw seq. Relative numbers count from the ISN: subtract.")
    if answer == conv.isn["server"]:
        return Feedback(False, "That belongs to the server's numbering: the ack field counts the other side's bytes.")
    if answer in (0, 1):
        return Feedback(False, "That is a relative number; the exercise asks for the raw one, as it is on the wire.")
    return Feedback(False, "Read your data packet's raw seq (scapy's TCP layer) and its relative seq (netlab's).")


# --- notebook 02: sockets ---


def connect_segments(walk: Any, answer: Any) -> Feedback:
    """Exercise: how many segments did the *client* put on the wire while connect() ran, in the socket walk?"""
    if (fb := _unanswered(answer)) is not None:
        return fb
    before = 0
    for call, count in walk.result:
        if call == "client.connect(address)":
            break
        before += count
    else:
        return Feedback(False, "This walk has no connect() step; run netlab.socket_walk() again.")
    during = walk.conversation.segments[before:before + count]
    sent = [s.flags for s in during if s.direction == CLIENT_TO_SERVER]
    received = [s.flags for s in during if s.direction == SERVER_TO_CLIENT]
    if answer == len(sent):
        return Feedback(True, f"{len(sent)}: the client's {' and '.join(sent)}. The {' '.join(received)} between them "
                              "is the server's: connect() waits for it and returns once its own ACK has answered it.")
    if answer == len(during):
        return Feedback(False, "That counts every segment of the handshake. Which of them did the client send? "
                               "Look at the direction of each one.")
    if answer == 0:
        return Feedback(False, "That is accept()'s count. Look at the row of connect().")
    return Feedback(False, "Read the connect() row of the walk: each flag name there is one segment, and C→S means "
                           "the client sent it.")


def framed_messages(received: Any) -> Feedback:
    """Exercise: send [b'alpha', b'', b'omega'] with send_message, read them back with recv_message."""
    expected = [b"alpha", b"", b"omega"]
    if (fb := _unanswered(received)) is not None:
        return fb
    if received == expected:
        return Feedback(True, "Three messages back, the empty one included: the length prefix keeps each boundary.")
    if isinstance(received, (bytes, bytearray)) or received == [b"alphaomega"]:
        return Feedback(False, "The messages ran together: read them one at a time with netlab.recv_message.")
    if isinstance(received, list) and [m for m in received if m] == [b"alpha", b"omega"]:
        return Feedback(False, "The empty message is missing: recv_message returns b'' for it and None only at the end.")
    return Feedback(False, f"Expected a list of the three messages in order, got {received!r}.")


def timeout_error(err: Any) -> Feedback:
    """Exercise: the exception a recv raises when its socket's timeout runs out."""
    if (fb := _unanswered(err)) is not None:
        return fb
    if isinstance(err, TimeoutError):
        return Feedback(True, f"{type(err).__name__}({str(err)!r}): socket.timeout is the same class as "
                              "TimeoutError, an OSError. Catch it, and the program decides what to do next.")
    if isinstance(err, type):
        return Feedback(False, "Pass the exception object you caught (`except ... as err`), not its class.")
    if isinstance(err, BaseException):
        return Feedback(False, f"{type(err).__name__} is not a timeout: did you set sock.settimeout(...) before recv?")
    return Feedback(False, "Catch the exception with `except Exception as err:` and pass `err`.")


def recv_sizes(size: Any, bufsize: Any, answer: Any) -> Feedback:
    """Exercise: predict each recv's length when `size` bytes sent in one sendall are read with recv(`bufsize`); run live."""
    if any(_is_unanswered(a) for a in (size, bufsize, answer)):
        return Feedback(False, NOT_ANSWERED)
    if not (_whole(size) and _whole(bufsize)) or not 0 < 2 * bufsize < size <= 60_000 or size % bufsize == 0:
        return Feedback(False, "Choose `size` (up to 60000 bytes) and `bufsize` yourself, ints, with at least three "
                               "recvs to read it and a size that is not a multiple of bufsize.")
    if (size, bufsize) == (3000, 1024):
        return Feedback(False, "Section 3 already ran 3000 and 1024: choose numbers of your own.")
    if not isinstance(answer, (list, tuple)) or not all(_whole(a) for a in answer):
        return Feedback(False, "Give a list of ints: the number of bytes each recv returns, in order.")
    from netlab.lessons.sockets import one_send_many_recvs

    exp = one_send_many_recvs(size=size, bufsize=bufsize)
    if exp.live:
        measured, where = list(exp.result["recvs"]), "measured just now in the lab"
    else:  # the recording holds 3000/1024 only: grade by the rule it shows
        measured = [bufsize] * (size // bufsize) + [size % bufsize]
        where = "this needs the live lab to try your numbers; graded by the rule the recording shows"
    if list(answer) == measured:
        return Feedback(True, f"{len(measured)} recvs ({where}): each returns at most `bufsize` bytes, the last "
                              "what is left. One send, many recvs: TCP keeps no message boundaries.")
    if sum(answer) != size:
        return Feedback(False, f"Your recvs add up to {sum(answer)} bytes; the receiver reads until it has all {size}.")
    if any(a > bufsize for a in answer):
        return Feedback(False, "One of your recvs returns more than `bufsize` bytes: can a recv do that?")
    return Feedback(False, "The total is right, not the split: the data had all arrived before the first recv.")


def _is_unanswered(value: Any) -> bool:
    return value is None or value is ...


_FRAMING_HELPERS = {"recv_message", "recv_exactly", "recv_until_closed", "MSG_WAITALL"}


def own_recv_message(func: Any) -> Feedback:
    """Exercise: the student's own recv_message(sock), run in the lab against a server that splits its frames."""
    if (fb := _unanswered(func)) is not None:
        return fb
    if not callable(func):
        return Feedback(False, "Give a function recv_message(sock) that returns one message, or None at the end.")
    if (name := _borrowed(func, _FRAMING_HELPERS)) is not None:
        return Feedback(False, f"Your function uses `{name}`: write the loop yourself, with sock.recv.")
    import struct

    from netlab.lessons.sockets import against_script

    big = os.urandom(3000 + os.urandom(1)[0])
    frames = [b"alpha", b"", big]
    wire = b"".join(struct.pack("!I", len(m)) + m for m in frames)
    split = [wire[:2], 0.05, wire[2:6], 0.05, wire[6:11], 0.05, wire[11:900], 0.05, wire[900:2000], 0.05, wire[2000:]]

    def read_all(sock: Any) -> list[Any]:
        out = []
        for _ in range(len(frames) + 1):
            out.append(func(sock))
            if out[-1] is None:
                break
        return out

    whole, cut = against_script(read_all, [split, [struct.pack("!I", 10) + b"Hello"]], timeout=5.0)
    if whole.hung:
        return Feedback(False, "Your function was still waiting after 5 s: does it stop when recv returns b''?")
    if whole.raised is not None:
        err = whole.raised
        return Feedback(False, f"Your function raised {type(err).__name__} ({err}) on three whole messages sent "
                               "in pieces, 50 ms apart.")
    got = whole.returned
    if got == [*frames, None]:
        if cut.hung:
            return Feedback(False, "Three messages right; but a peer that closed in the middle of a message left "
                                   "your function waiting.")
        if isinstance(cut.raised, EOFError):
            return Feedback(True, "Right on all of it: a length split across two segments, an empty message, a "
                                  "long one in short reads, None at a clean end, EOFError for a message cut short.")
        did = f"returned {repr(cut.returned)[:40]}" if cut.raised is None else f"raised {type(cut.raised).__name__}"
        return Feedback(False, f"Three messages right; but when the peer closes in the middle of a message, raise "
                               f"EOFError (your function {did}).")
    if got and got[0] not in (b"alpha", None) and isinstance(got[0], (bytes, bytearray)) and b"alpha".startswith(got[0]):
        return Feedback(False, "The first message came back short: a recv may return less than you asked for.")
    if got[:1] == [b"alpha"] and got[1:2] == [None]:
        return Feedback(False, "After the first message your function returned None: a message of length 0 is "
                               "not the end of the stream.")
    if got[:2] == [b"alpha", b""] and len(got) > 2 and got[2] != big:
        return Feedback(False, "The long message came back wrong: it arrived in several segments.")
    return Feedback(False, "The messages did not come back as sent. The 4-byte length can be split across "
                           f"segments too. (Your function returned {repr(got)[:60]}.)")


def ask_within(func: Any) -> Feedback:
    """Exercise: ask(sock, request, seconds) -> the reply line, or None when no whole line came within `seconds` in all."""
    if (fb := _unanswered(func)) is not None:
        return fb
    if not callable(func):
        return Feedback(False, "Give a function ask(sock, request, seconds) that returns a line or None.")
    from netlab.lessons.sockets import KEEP_OPEN, READ, against_script

    seconds = 0.5
    word = os.urandom(4).hex().encode()
    scripts = {"a reply in two pieces": [READ, word[:3], 0.1, word[3:] + b"\n", KEEP_OPEN],
               "a server that never answers": [READ, KEEP_OPEN],
               "a server that sends a byte every 0.15 s and never a newline": [READ, *[b".", 0.15] * 8, KEEP_OPEN],
               "a server that closes without answering": [READ]}
    runs = dict(zip(scripts, against_script(lambda sock: func(sock, b"PING\n", seconds), list(scripts.values()),
                                            timeout=4.0), strict=True))
    for what, run in runs.items():
        if run.hung:
            return Feedback(False, f"Against {what}, your function was still busy after 4 s.")
        if isinstance(run.raised, TimeoutError):
            return Feedback(False, f"Against {what}, your function let TimeoutError out: catch it and return None.")
        if run.raised is not None:
            return Feedback(False, f"Against {what}, your function raised {type(run.raised).__name__}: {run.raised}")
    first = runs["a reply in two pieces"].returned
    if first != word + b"\n":
        short = isinstance(first, (bytes, bytearray)) and (word + b"\n").startswith(bytes(first))
        return Feedback(False, "Against a reply in two pieces, 0.1 s apart: " + (
            "your function returned its first piece only. Read until the line is complete." if short and first
            else f"expected the whole line with its b'\\n', got {repr(first)[:40]}."))
    for what in list(scripts)[1:]:
        run = runs[what]
        if run.returned is not None:
            return Feedback(False, f"Against {what}, your function returned {repr(run.returned)[:40]}, not None.")
        if run.seconds > seconds + 0.25:
            slow = (" settimeout bounds each call, not the whole wait: keep a deadline and give each recv the time "
                    "that is left." if what.startswith("a server that sends") else "")
            return Feedback(False, f"Against {what}, your function gave up after {run.seconds:.2f} s, not within "
                                   f"{seconds} s.{slow}")
    return Feedback(True, "Right on all four: a reply read whole across two segments, and None within the time "
                          "for silence, for a trickle that never ends its line, and for a server that closed.")


# --- notebook 08: TLS ---


def tls_server_name(exchange: Any, answer: Any) -> Feedback:
    """Exercise: the server name the client asked for, read from the HTTPS capture's ClientHello."""
    if (fb := _unanswered(answer)) is not None:
        return fb
    sni = exchange.sni
    if sni is None:
        return Feedback(False, "This capture has no ClientHello with a server name; run the capture cell again.")
    if isinstance(answer, bytes):
        answer = answer.decode(errors="replace")
    if answer == sni:
        return Feedback(True, f"{sni!r}: the ClientHello carries it in the clear (the server_name extension), "
                              "so anyone on the path learns which site you visit.")
    if answer in ("127.0.0.1", exchange.conversation.server[0]):
        return Feedback(False, "That is the server's address from the IP header. The name is in the first TLS record.")
    return Feedback(False, "Look in the client's first record (the ClientHello) for the server_name extension.")


def tls_certificate_record(exchange: Any, answer: Any) -> Feedback:
    """Exercise: the number of the record that carries the server's certificate in a TLS 1.3 capture."""
    if (fb := _unanswered(answer)) is not None:
        return fb
    if not isinstance(answer, int) or isinstance(answer, bool):
        return Feedback(False, f"Give the record's number (the # column), an int, not {type(answer).__name__}.")
    records = exchange.records()
    chosen = next((r for r in records if r.number == answer), None)
    if chosen is None:
        return Feedback(False, f"There is no record {answer}; the table numbers them 1 to {len(records)}.")
    # The server's encrypted handshake flight: its application_data records before the client's first one.
    first_client_encrypted = next((r.number for r in records if r.direction == "C→S" and r.encrypted), len(records) + 1)
    flight = [r for r in records if r.direction == "S→C" and r.encrypted and r.number < first_client_encrypted]
    if not flight:
        return Feedback(False, "This capture has no encrypted server records; run the capture cell again.")
    certificate = max(flight, key=lambda r: r.length)
    der = exchange.certificate_der
    size = f" (the certificate itself is {len(der)} bytes)" if der else ""
    if chosen is certificate:
        return Feedback(True, f"Record {answer}: {chosen.length} bytes{size}. It is encrypted, but its size gives it away.")
    if chosen.direction == "C→S":
        return Feedback(False, "That record comes from the client. The server sends its certificate.")
    if not chosen.encrypted:
        return Feedback(False, f"Record {answer} is readable ({chosen.type}). In TLS 1.3 the certificate is sent "
                               "after ServerHello, encrypted.")
    if chosen in flight:
        return Feedback(False, f"Record {answer} is in the right flight but is only {chosen.length} bytes. A certificate "
                               f"is a few hundred bytes{size}: compare the lengths.")
    return Feedback(False, "That record comes after the handshake. Look at the server's encrypted records right after "
                           "its ServerHello and ChangeCipherSpec.")


def tls_response_size(comparison: Any, answer: Any) -> Feedback:
    """Exercise: the size of the HTTP response inside the last HTTPS record, from record lengths only."""
    if (fb := _unanswered(answer)) is not None:
        return fb
    if not isinstance(answer, int) or isinstance(answer, bool):
        return Feedback(False, f"Give a number of bytes, an int, not {type(answer).__name__}.")
    from netlab.lessons.tls import TLS13_OVERHEAD  # loaded with the lesson: TLS brings in ssl

    last = [r for r in comparison.https.records() if r.direction == SERVER_TO_CLIENT and r.encrypted]
    if not last:
        return Feedback(False, "This capture has no encrypted server records; run the capture cell again.")
    expected = last[-1].length - TLS13_OVERHEAD
    plain = len(comparison.http.conversation.data(SERVER_TO_CLIENT))
    if answer == expected:
        same = " exactly the size of the response in the plain HTTP capture" if plain == expected else ""
        return Feedback(True, f"{expected} bytes:{same or ' the response, read from the outside'}. "
                              "Encryption hides the content, not the size.")
    if answer == last[-1].length:
        return Feedback(False, "That is the whole record's payload. TLS 1.3 adds a content-type byte and a "
                               "16-byte authentication tag to it.")
    if answer == last[-1].length + 5:
        return Feedback(False, "That counts the 5-byte record header too, and TLS's own additions.")
    return Feedback(False, "Take the length of the server's last record and subtract what TLS 1.3 adds to each record.")


def tls_refusal_alert(exchange: Any, answer: Any) -> Feedback:
    """Exercise: the alert a client sent when it refused a certificate (its description, e.g. 'unknown_ca')."""
    if (fb := _unanswered(answer)) is not None:
        return fb
    alerts = [m.split()[-1] for r in exchange.records() for m in r.messages if m.startswith("alert:")]
    if not alerts:
        return Feedback(False, "No readable alert in this capture; run the refusal cell again.")
    answer = str(answer).strip().lower().replace(" ", "_")
    if answer == alerts[0]:
        return Feedback(True, f"{alerts[0]}: the client sent it in the clear, before it had switched to the handshake keys.")
    if answer in ("fatal", "alert"):
        return Feedback(False, "That is the alert's level or type; give its description, the word after it.")
    return Feedback(False, "Find the client's alert record in the record table; give the description it names.")


def _response_record(exchange: Any) -> Any:
    """The server's largest encrypted record: the one that carries the HTTP response (certificates are smaller)."""
    records = [r for r in exchange.records() if r.direction == SERVER_TO_CLIENT and r.encrypted]
    return max(records, key=lambda r: r.length) if records else None


def tls_record_prediction(comparison: Any, size: Any, predicted: Any) -> Feedback:
    """Exercise: a body size of the student's choosing and the predicted length of the record carrying the response,
    checked on a fresh HTTPS request for /large?bytes=SIZE; `comparison` is the lesson's plain and HTTPS capture."""
    if (fb := _unanswered(size)) is not None or (fb := _unanswered(predicted)) is not None:
        return fb
    if not _whole(size) or not _whole(predicted):
        return Feedback(False, "Give `size` (body bytes) and `predicted` (the record's length field), two ints.")
    if not 1000 <= size <= 12000 or size == 3000:
        return Feedback(False, "Choose a body size from 1000 to 12000 bytes, other than the lesson's 3000.")
    from netlab.lessons.tls import TLS13_OVERHEAD, https_request

    plain = len(comparison.http.conversation.data(SERVER_TO_CLIENT))
    body = comparison.http.facts.get("body_length", 3000)
    model = plain - body - len(str(body)) + len(str(size)) + size + TLS13_OVERHEAD
    run = https_request(f"/large?bytes={size}")
    record = _response_record(run) if run.live else None
    expected = record.length if record is not None else model
    where = "the live run" if record is not None else "the model (running it needs the live lab)"
    if predicted == expected:
        return Feedback(True, f"{expected} bytes, as {where} says: the response (status line, headers and your "
                              f"{size}-byte body) plus TLS 1.3's {TLS13_OVERHEAD} bytes. Encryption hides what a "
                              "response says, not how long it is.")
    if predicted == expected - TLS13_OVERHEAD:
        return Feedback(False, "That is the HTTP response alone; what does TLS 1.3 add to every encrypted record?")
    if predicted == expected + 5:
        return Feedback(False, "The length field counts what follows the 5-byte record header, not the header.")
    if predicted == size + TLS13_OVERHEAD or predicted == size:
        return Feedback(False, "The record carries more than the body: the status line and headers travel in it too.")
    if abs(predicted - expected) <= 2:
        return Feedback(False, "Close: which header's length changes with the body's size?")
    return Feedback(False, "Start from the plain HTTP response of the lesson's capture: what changes when the body "
                           "changes, and what does TLS 1.3 add?")


def _client_records(exchange: Any) -> list[Any]:
    return [r for r in exchange.records() if r.direction == CLIENT_TO_SERVER]


def request_record_seq(exchange: Any, answer: Any) -> Feedback:
    """Exercise: the raw TCP sequence number at which the record carrying the HTTP request starts, in the student's
    own HTTPS capture (the client's ISN + 1 + every record before it, 5-byte headers included)."""
    if (fb := _unanswered(answer)) is not None:
        return fb
    if not _whole(answer):
        return Feedback(False, f"Give the raw sequence number, an int, not {type(answer).__name__}.")
    mine = _client_records(exchange)
    encrypted = [r for r in mine if r.encrypted]
    if not encrypted:
        return Feedback(False, "This capture has no encrypted record from the client; run the capture cell again.")
    request = max(encrypted, key=lambda r: r.length)
    before = mine[:mine.index(request)]
    isn = exchange.conversation.isn["client"]
    offset = sum(5 + r.length for r in before)
    raw = (isn + 1 + offset) % 2**32
    if answer == raw:
        return Feedback(True, f"{raw} = the client's ISN {isn} + 1 (its SYN) + {offset} bytes of {len(before)} records "
                              "before it, each with its 5-byte header: records are laid end to end in TCP's byte "
                              "stream. " + ("Your capture's own number." if exchange.live else "(From the recording.)"))
    if answer == 1 + offset:
        return Feedback(False, "That is the relative number; the exercise asks for the raw one.")
    if answer == (raw - 1) % 2**32:
        return Feedback(False, "Off by one: what used up the client's first sequence number?")
    if answer == (isn + 1 + sum(r.length for r in before)) % 2**32:
        return Feedback(False, "That leaves out the records' headers: every record starts with 5 bytes of its own.")
    if abs(answer - exchange.conversation.isn["server"]) < 2**20:
        return Feedback(False, "That is in the server's numbering; the request is the client's.")
    return Feedback(False, "Find the client's records in the record table, which one carries the request, and count "
                           "the bytes before it in the client's stream, headers included, from the client's ISN.")


_TLS_PARSERS = {"TLS", "_records_of", "load_layer", "records", "record_table"}


def _records_by_hand(stream: bytes) -> list[tuple[int, int]]:
    out, pos = [], 0
    while pos + 5 <= len(stream):
        length = int.from_bytes(stream[pos + 3:pos + 5], "big")
        if pos + 5 + length > len(stream):
            break
        out.append((stream[pos], length))
        pos += 5 + length
    return out


def tls_records(func: Any, exchange: Any) -> Feedback:
    """Exercise: tls_records(stream) -> [(content type, length)] for each complete record of a TLS byte stream, run on
    the student's own capture, a fresh HTTPS response of 40 000 bytes (three records) and streams cut short."""
    if (fb := _unanswered(func)) is not None:
        return fb
    if not callable(func):
        return Feedback(False, "Give a function tls_records(stream) that returns a list of (type, length) pairs.")
    if (name := _borrowed(func, _TLS_PARSERS)) is not None:
        return Feedback(False, f"Your function uses `{name}`: read the 5-byte headers yourself.")
    from netlab.lessons.tls import https_request

    conv = exchange.conversation
    server = conv.data(SERVER_TO_CLIENT)
    cases = [("your capture's client stream", conv.data(CLIENT_TO_SERVER)),
             ("your capture's server stream", server)]
    large = https_request("/large?bytes=40000")
    cases.append(("a fresh HTTPS response of 40 000 bytes" + ("" if large.live else " (recorded)"),
                  large.conversation.data(SERVER_TO_CLIENT)))
    cut = 5 + int.from_bytes(server[3:5], "big") + 3
    cases += [("a stream cut in the middle of a record's header", server[:cut]),
              ("a stream cut in the middle of a record", server[:len(server) - 10]),
              ("an empty stream", b"")]
    for what, stream in cases:
        expected = _records_by_hand(stream)
        try:
            got = func(bytes(stream))
        except Exception as err:
            return Feedback(False, f"Your function raised {type(err).__name__} on {what}: {err}")
        try:
            got = [tuple(pair) for pair in got]
        except TypeError:
            return Feedback(False, f"On {what} your function returned {type(got).__name__}; return a list of pairs.")
        if got == expected:
            continue
        if len(got) == len(expected) + 1 and got[:-1] == expected:
            return Feedback(False, f"On {what} your list ends with a record that is not all there: leave it out.")
        if got and expected and got[0] != expected[0]:
            return Feedback(False, f"On {what} the first pair is wrong: byte 0 is the type, bytes 3 and 4 the length "
                                   "(big-endian).")
        return Feedback(False, f"On {what} your pairs differ from the records: after a record's 5-byte header come "
                               "exactly `length` bytes, then the next header.")
    return Feedback(True, "Right on all six: your own capture both ways, a 40 000-byte response in three records "
                          "(at most 16 384 bytes of content each), and streams that end in the middle of a record.")


# --- notebook 07: concurrency ---


def requests_per_second(point: Any, answer: Any) -> Feedback:
    """Exercise: echoes per second of one load run, from its numbers (`point.requests`, `point.seconds`)."""
    if (fb := _unanswered(answer)) is not None:
        return fb
    if not isinstance(answer, (int, float)):
        return Feedback(False, "Answer with a number: echoes per second.")
    expected = point.requests / point.seconds
    if abs(answer - expected) <= 0.01 * expected:
        return Feedback(True, "Throughput is the work done divided by the wall time it took, with all "
                              "clients working at the same time.")
    if abs(answer - point.clients / point.seconds) <= 0.01 * expected / point.messages:
        return Feedback(False, "That counts clients, not echoes: each client sent several messages.")
    if abs(answer - 1 / point.seconds) <= 0.01 or abs(answer - point.seconds / point.requests) <= 1e-6:
        return Feedback(False, "Look at the units: echoes per second is a count divided by a time.")
    return Feedback(False, "Divide the number of echoes the run completed by the seconds it took.")


def thread_count(point: Any, answer: Any) -> Feedback:
    """Exercise: how many threads the thread-per-connection server added while `point.clients` clients were connected."""
    if (fb := _unanswered(answer)) is not None:
        return fb
    expected = point.clients + 1
    if point.server_threads < expected:
        return Feedback(False, f"This run measured {point.server_threads} threads, not one per client plus one: "
                               "run the load cell again.")
    if answer == expected:
        return Feedback(True, f"{expected}: one thread per connected client, each blocked in recv(), plus the one "
                              "that waits in accept().")
    if answer == point.clients:
        return Feedback(False, "Close: one per client, but who accepts the new connections?")
    if answer in (1, 2):
        return Feedback(False, "That is an event loop's count; this server gives every connection a thread of its own.")
    return Feedback(False, "Count the threads this server starts: one for each accepted connection, and one more.")


def idle_model(answer: Any) -> Feedback:
    """Exercise: which model ('threads', 'selectors' or 'asyncio') to hold 10 000 mostly idle connections."""
    if (fb := _unanswered(answer)) is not None:
        return fb
    if answer not in ("threads", "selectors", "asyncio"):
        return Feedback(False, "Answer 'threads', 'selectors' or 'asyncio'.")
    if answer == "threads":
        return Feedback(False, "Look at what one idle connection cost the thread model: a thread, its stack's "
                               "address space and resident memory, times 10 000.")
    return Feedback(True, f"{answer}: an idle connection costs an event loop only a registered socket and a small "
                          "object, not a thread and a stack; one thread waits on all of them at once.")


def bulk_gbit_per_second(transfer: Any, answer: Any) -> Feedback:
    """Exercise: a bulk transfer's throughput in Gbit/s (10⁹ bits per second) from its bytes and seconds."""
    if (fb := _unanswered(answer)) is not None:
        return fb
    if not isinstance(answer, (int, float)):
        return Feedback(False, "Answer with a number of Gbit/s.")
    expected = transfer.nbytes * 8 / transfer.seconds / 1e9
    if abs(answer - expected) <= 0.01 * expected:
        return Feedback(True, "Bytes × 8 bits, per second, in units of 10⁹: the way link speeds are quoted.")
    if abs(answer - expected / 8) <= 0.01 * expected / 8:
        return Feedback(False, "That is gigabytes per second: network speeds count bits, 8 to a byte.")
    if abs(answer * 2**30 / 1e9 - expected) <= 0.01 * expected:
        return Feedback(False, "Network units are decimal: a gigabit is 10⁹ bits, not 2³⁰.")
    return Feedback(False, "Take the bytes received, times 8 bits, divided by the seconds, divided by 10⁹.")


def mean_round_trip(point: Any, answer: Any) -> Feedback:
    """Exercise: the mean echo round trip (ms) of the student's own load run, by Little's law: clients / echoes per second."""
    if (fb := _unanswered(answer)) is not None:
        return fb
    if not _number(answer):
        return Feedback(False, f"Give milliseconds, a number, not {type(answer).__name__}.")
    expected = point.clients / point.requests_per_second * 1000
    if abs(answer - expected) <= 0.01 * expected:
        return Feedback(True, f"{expected:.2f} ms: with one echo in flight per client, {point.clients} echoes are "
                              "always under way, and the rate times the time each takes must equal that number "
                              "(Little's law).")
    if abs(answer - expected / 1000) <= 0.01 * expected / 1000:
        return Feedback(False, "That looks like seconds; give milliseconds.")
    if abs(answer - 1000 / point.requests_per_second) <= 0.01 * expected / point.clients:
        return Feedback(False, "That is the time between two echoes of the whole server; each client waits for its "
                               "own, with the others in flight at the same time.")
    if abs(answer - point.p50_ms) <= 0.02 * max(point.p50_ms, 0.001):
        return Feedback(False, "That is the median the table printed; work the mean out from the rate.")
    return Feedback(False, "Each client always has exactly one echo in flight: how many are under way at any moment, "
                           "and how many finish per second?")


def blocking_prediction(predictions: Any) -> Feedback:
    """Exercise: predicted echoes per second of "threads" and "selectors" when each echo blocks 5 ms, 10 clients, run live."""
    if (fb := _unanswered(predictions)) is not None:
        return fb
    if not isinstance(predictions, dict) or set(predictions) != {"threads", "selectors"} \
            or not all(_number(v) and v > 0 for v in predictions.values()):
        return Feedback(False, 'Give a dict {"threads": echoes per second, "selectors": echoes per second}, two '
                               "positive numbers.")
    from netlab.lessons.concurrency import blocking_work

    clients, work = 10, 0.005
    measured = blocking_work(clients=clients, messages=10, work=work)
    threads, selectors = predictions["threads"], predictions["selectors"]
    # Wide margins: on a busy machine every sleep overshoots while its thread waits for a core, so
    # both rates fall below the ideal ones (clients / work, 1 / work); a prediction of the ideal is right.
    sel_ok = 0.6 * measured["selectors"] <= selectors <= 1.5 * max(measured["selectors"], 1 / work)
    thr_ok = 0.5 * measured["threads"] <= threads <= max(4 * measured["threads"], 1.5 * clients / work)
    if sel_ok and thr_ok and threads >= 4 * selectors:
        return Feedback(True, f"Measured just now: threads {measured['threads']:.0f}/s, selectors "
                              f"{measured['selectors']:.0f}/s. A blocking call stops only its own thread, but it "
                              "stops an event loop, and every client with it: the sleeps add up one after another.")
    if not sel_ok and abs(selectors - threads) <= 0.25 * threads:
        return Feedback(False, "You predict about the same for both. While the event loop sleeps, can it serve "
                               "anyone else?")
    if not sel_ok:
        return Feedback(False, ("Too many" if selectors > measured["selectors"] else "Too few") + " for selectors: "
                               "one thread serves every client, and each echo holds it for 5 ms.")
    return Feedback(False, ("Too many" if threads > measured["threads"] else "Too few") + " for threads: each client "
                           "has a thread of its own, and ten of them can sleep at the same time.")


_ASYNC_HELPERS = {"AsyncioEchoServer", "model_server"}


def _echo_client(address: tuple[str, int], lab: Any, pieces: list[bytes], timeout: float) -> tuple[bytes, bool]:
    """Send `pieces` 20 ms apart and read until the whole echo is back (or `timeout` seconds pass), then shut down
    writing and wait as long for the server's end: (the echo received, whether the server then closed)."""
    import socket
    import time

    total = sum(len(p) for p in pieces)
    sock = lab.create_connection(address, timeout=timeout) if lab else socket.create_connection(address, timeout)
    with sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        got = bytearray()
        try:
            for piece in pieces:
                sock.sendall(piece)
                time.sleep(0.02)
            while len(got) < total and (data := sock.recv(65536)):
                got += data
            sock.shutdown(socket.SHUT_WR)
            while data := sock.recv(65536):
                got += data
        except OSError:  # a timeout included
            return bytes(got), False
        return bytes(got), True


async def _stop_serving(server: Any) -> None:
    """Close an asyncio server and cancel its handlers (a student's handler may wait forever)."""
    import asyncio

    server.close()
    tasks = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def _echo_verdict(words: list[bytes], replies: list[tuple[bytes, bool]], big: bytes, large: tuple[bytes, bool],
                  errors: list[BaseException]) -> Feedback | None:
    """What went wrong in asyncio_echo's runs, or None."""
    if errors:
        return Feedback(False, f"Your handler raised {type(errors[0]).__name__}: {errors[0]}")
    for word, (echo, ended) in zip(words, replies, strict=True):
        if echo != word:
            return Feedback(False, "With one idle client connected, a message sent in three pieces (and no newline) "
                                   f"came back as {echo[:12]!r} within 3 s: echo every piece as it comes, without "
                                   "waiting for anything the client never sends.")
        if not ended:
            return Feedback(False, "Every echo came back, but when a client closed its side, your handler did not "
                                   "close the connection: the client waits for the end forever.")
    if large != (big, True):
        return Feedback(False, "A 200 kB message did not come back whole: it arrives in many reads, and writing it "
                               "back needs `await writer.drain()`.")
    return None


def asyncio_echo(func: Any) -> Feedback:
    """Exercise: an asyncio echo handler `async def echo(reader, writer)`, run in the lab with an idle client connected,
    20 clients whose messages arrive in pieces, and one 200 kB message; each client closes and waits for the end."""
    import asyncio
    import inspect as _inspect

    if (fb := _unanswered(func)) is not None:
        return fb
    if not _inspect.iscoroutinefunction(func):
        return Feedback(False, "Give a coroutine function: `async def echo(reader, writer): ...`.")
    if (name := _borrowed(func, _ASYNC_HELPERS)) is not None:
        return Feedback(False, f"Your handler uses netlab's `{name}`: write the loop yourself.")
    import contextlib
    import socket
    from concurrent.futures import ThreadPoolExecutor

    from netlab.core.experiment import lab_or_host
    from netlab.core.sockets import listener

    errors: list[BaseException] = []

    async def guarded(reader: Any, writer: Any) -> None:
        try:
            await func(reader, writer)
        except asyncio.CancelledError:  # the check is over (the idle client's handler still waits): end quietly
            writer.close()
        except Exception as err:
            errors.append(err)
            writer.close()

    words = [os.urandom(24).hex().encode() for _ in range(20)]  # no newline in any of them
    big = os.urandom(200_000)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    verdict = server = None
    with lab_or_host() as (lab, _where, _why), listener(lab, backlog=64) as listen:
        try:
            server = asyncio.run_coroutine_threadsafe(asyncio.start_server(guarded, sock=listen), loop).result(5)
            address = listen.getsockname()
            idle = lab.create_connection(address, timeout=5) if lab else socket.create_connection(address, 5)
            with idle, ThreadPoolExecutor(21) as pool:
                small = [pool.submit(_echo_client, address, lab, [w[:5], w[5:30], w[30:]], 3.0) for w in words]
                large = pool.submit(_echo_client, address, lab, [big], 5.0)
                replies = [f.result() for f in small]
                verdict = _echo_verdict(words, replies, big, large.result(), errors)
        finally:
            responsive = threading.Event()  # a handler that blocks the loop would leave _stop_serving never run
            loop.call_soon_threadsafe(responsive.set)
            if server is not None and responsive.wait(1.0):
                with contextlib.suppress(Exception):
                    asyncio.run_coroutine_threadsafe(_stop_serving(server), loop).result(2.0)
            loop.call_soon_threadsafe(loop.stop)
            thread.join(2.0)
            if not thread.is_alive():
                loop.close()
    if verdict is not None:
        return verdict
    return Feedback(True, "Right on all of it: every byte echoed however it was split, 21 clients served at once by "
                          "one thread while another sat idle, 200 kB echoed with back-pressure, and each connection "
                          "closed when its client did.")


# --- notebook 06: errors and timeouts ---


def syn_retransmissions(conv: Conversation, answer: Any) -> Feedback:
    """Exercise: how many times the client's kernel sent its SYN *again* before connect gave up."""
    if (fb := _unanswered(answer)) is not None:
        return fb
    if not isinstance(answer, int) or isinstance(answer, bool):
        return Feedback(False, f"Give a count, an int, not {type(answer).__name__}.")
    syns = [s for s in conv.segments if s.flags == "SYN"]
    again = len(conv.retransmissions())
    if answer == again:
        # The count itself depends on the kernel (linear or doubling SYN timeouts): not in the message.
        return Feedback(True, "Right: after the first SYN, every one was the same SYN (seq=0) sent again, "
                              "none answered, until the program's timeout ran out.")
    if answer == len(syns):
        return Feedback(False, "That counts every SYN, the first one too: a retransmission is a copy sent again.")
    return Feedback(False, "Count the SYN rows in the connect-timeout table; the first one was not sent again.")


def errno_name(error: Any, answer: Any) -> Feedback:
    """Exercise: the symbolic errno name ('EXXXX') of the exception a program got."""
    import errno

    if (fb := _unanswered(answer)) is not None:
        return fb
    if not isinstance(error, OSError) or error.errno is None:
        return Feedback(False, f"{error!r} carries no errno; run the experiment's cell again.")
    expected = errno.errorcode[error.errno]
    if not isinstance(answer, str):
        return Feedback(False, "Answer with the errno's name as a string, such as 'EAGAIN'.")
    if answer == expected:
        return Feedback(True, f"{expected} ({error.errno}): the kernel's word for it, which Python turned into "
                              f"{type(error).__name__}.")
    if answer.upper() == expected:
        return Feedback(False, "Right name, wrong case: errno names are written in capitals.")
    if answer.isdigit() or answer == str(error.errno):
        return Feedback(False, "That is the number; the name is what `errno.errorcode` maps it to.")
    return Feedback(False, "Look at `err.errno` and `errno.errorcode` for the exception the program got.")


def bytes_after_fin(conv: Conversation, answer: Any) -> Feedback:
    """Exercise: how many data bytes the server sent after the client's FIN (half-close)."""
    if (fb := _unanswered(answer)) is not None:
        return fb
    fin = next((s for s in conv.segments if s.direction == CLIENT_TO_SERVER and s.has("FIN")), None)
    if fin is None:
        return Feedback(False, "The client sent no FIN in this capture; run the half-close cell again.")
    after = sum(s.length for s in conv.segments if s.number > fin.number and s.direction != CLIENT_TO_SERVER)
    if answer == after:
        return Feedback(True, f"{after} bytes, all after the client's FIN: shutdown(SHUT_WR) closed one "
                              "direction only.")
    if answer == 0:
        return Feedback(False, "A FIN closes only its sender's direction: look at the server's segments after it.")
    return Feedback(False, "Add up the len column of the server's (S→C) segments that come after the client's FIN.")


def gave_up_quickly(attempts: Any, at_least: int = 4, within: float = 0.5) -> Feedback:
    """Exercise: a retry that makes at least `at_least` attempts and gives up within `within` seconds."""
    if attempts is None or attempts is ...:
        return _unanswered(attempts)
    if not attempts.live:
        return Feedback(False, "This is the recorded run (first_delay=0.1); run it live to try your own values.")
    tried = len(attempts.conversations)
    span = attempts.starts[-1] if attempts.starts else 0.0
    if not isinstance(attempts.result, RetryError):
        return Feedback(False, f"It did not give up (result: {attempts.result!r}); the port should stay closed.")
    if tried < at_least:
        return Feedback(False, f"{tried} attempts: ask for at least {at_least}.")
    if span > within:
        return Feedback(False, f"The last attempt started {span:.2f} s after the first: make first_delay smaller; "
                               "each wait doubles it.")
    return Feedback(True, f"{tried} attempts, the last within {within:g} s of the first, then a clean RetryError.")


def two_syns_timeout(timeout: Any) -> Feedback:
    """Exercise: a connect timeout (seconds, at most 1.8) after which exactly two SYNs left, with 0.2 s to spare, run live."""
    if (fb := _unanswered(timeout)) is not None:
        return fb
    if not _number(timeout):
        return Feedback(False, f"Give `timeout` in seconds, a number, not {type(timeout).__name__}.")
    if not 0 < timeout <= 1.8:
        return Feedback(False, "Choose a timeout above 0 and at most 1.8 s: the check runs it, and a short one will do.")
    from netlab.lessons.failures import connect_timeout

    exp = connect_timeout(timeout)
    syns = [s for s in exp.conversation.segments if s.flags == "SYN"]
    if len(syns) < 2:
        return Feedback(False, "Your whole timeout ran out before the kernel's first retransmission. When does it "
                               "resend a SYN? Read the times in the table of section 2.")
    again = syns[1].time - syns[0].time
    if not exp.live:  # the recording ran with a longer timeout: grade the timeout against its SYN times
        if again + 0.2 <= timeout and (len(syns) < 3 or timeout <= syns[2].time - syns[0].time - 0.2):
            return Feedback(True, f"{timeout} s: after the kernel's first retransmission ({again:.2f} s in the recording) "
                                  "and well before its second. Trying it needs the live lab; here only your reasoning "
                                  "is graded.")
        return Feedback(False, "Compare your timeout with the SYN times in the table of section 2: leave 0.2 s on each "
                               "side of the moment it gives up.")
    if len(syns) > 2:
        return Feedback(False, f"{len(syns)} SYNs left in the live run: the kernel retransmitted more than once. "
                               "Give up sooner.")
    if timeout - again < 0.2:
        return Feedback(False, "Two SYNs, but connect gave up less than 0.2 s after the retransmission: on a slower "
                               "run it would come too late. Leave more margin.")
    return Feedback(True, f"Two SYNs in the live run: the retransmission {again:.2f} s after the first, and connect "
                          f"gave up {timeout - again:.2f} s later, before the next one. The kernel's timer, not "
                          "yours, decides when a SYN is resent.")


def reset_raw_seq(exp: Any, answer: Any) -> Feedback:
    """Exercise: the raw sequence number of the bare RST in the student's own rebooted-host capture, worked out from the ISN."""
    if (fb := _unanswered(answer)) is not None:
        return fb
    if not _whole(answer):
        return Feedback(False, f"Give the raw sequence number, an int, not {type(answer).__name__}.")
    from scapy.layers.inet import TCP

    conv = exp.conversation
    rst = next((s for s in conv.segments if s.direction == SERVER_TO_CLIENT and s.flags == "RST"), None)
    if rst is None:
        return Feedback(False, "This capture has no bare RST from the server; run the rebooted-host cell again.")
    raw = int(rst.packet[TCP].seq)
    if answer == raw:
        return Feedback(True, f"{raw} = the server's ISN {conv.isn['server']} + {rst.seq}: the number the client "
                              "acknowledged last, as a reset for a connection the host no longer knows is built "
                              "(RFC 9293). " + ("Your capture's own number." if exp.live else "(From the recording.)"))
    if answer == rst.seq:
        return Feedback(False, "That is the relative number the outline shows; the exercise asks for the raw one.")
    if answer in ((raw + 1) % 2**32, (raw - 1) % 2**32):
        return Feedback(False, "Off by one: count what used up the server's numbers, its SYN included.")
    if abs(answer - conv.isn["client"]) < 2**20:
        return Feedback(False, "That is in the client's numbering; the RST comes from the server's side.")
    return Feedback(False, "Start from the server's ISN (the raw seq of its SYN-ACK), and count what the server "
                           "had sent before it crashed.")


_RETRY_HELPERS = {"connect_with_retry", "retry_refused", "RetryError"}
# Attempts against the port where nothing listens: three show the doubling (0.05 s, then 0.1 s)
# and the give-up; a fourth would only add a 0.2 s wait to every check.
_NEVER_ATTEMPTS = 3


def _bounded_call(func: Any, timeout: float) -> dict[str, Any]:
    """Run `func()` on a thread of its own for at most `timeout` seconds: returned, raised, hung, seconds."""
    import time

    outcome: dict[str, Any] = {"hung": False}

    def target() -> None:
        start = time.monotonic()
        try:
            outcome["returned"] = func()
        except BaseException as err:  # the student's exception is the result to judge
            outcome["raised"] = err
        outcome["seconds"] = time.monotonic() - start

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(timeout)
    outcome["hung"] = thread.is_alive()
    return outcome


def _retry_cases(func: Any, lab: Any) -> dict[str, Any]:
    """Run the student's connect_retrying(connect, attempts, first_delay) on three cases, up to the first that hangs:
    each case's start, the times of its calls to connect, and the outcome."""
    import socket
    import time

    def new_socket() -> socket.socket:
        return lab.socket() if lab else socket.socket()

    def connector(address: tuple[str, int], calls: list[float], error: BaseException | None = None) -> Any:
        def connect() -> socket.socket:
            calls.append(time.monotonic())
            if error is not None:
                raise error
            return lab.create_connection(address, timeout=1.0) if lab else socket.create_connection(address, 1.0)
        return connect

    results: dict[str, Any] = {}
    with new_socket() as late, new_socket() as never:
        late.bind(("127.0.0.1", 0))  # bound, not listening: a SYN to it is refused, until listen()
        never.bind(("127.0.0.1", 0))
        calls: list[float] = []
        timer = threading.Timer(0.3, late.listen)
        timer.start()
        start = time.monotonic()
        out = _bounded_call(lambda: func(connector(late.getsockname(), calls), 6, 0.05), 4.0)
        timer.join()
        results["late"] = (start, calls, out)
        if out["hung"]:
            _close_returned(results)
            return results
        calls = []
        start = time.monotonic()
        out = _bounded_call(lambda: func(connector(never.getsockname(), calls), _NEVER_ATTEMPTS, 0.05), 4.0)
        results["never"] = (start, calls, out)
    if out["hung"]:
        _close_returned(results)
        return results
    calls = []
    start = time.monotonic()
    out = _bounded_call(lambda: func(connector(("127.0.0.1", 9), calls, ValueError("not an address")), 4, 0.05), 4.0)
    results["bug"] = (start, calls, out)
    _close_returned(results)
    return results


def _close_returned(results: dict[str, Any]) -> None:
    for _, _, out in results.values():
        sock = out.get("returned")
        if hasattr(sock, "close"):
            sock.close()


def _waits_double(calls: list[float], first_delay: float) -> bool:
    """True if the pauses between calls are first_delay, then twice the one before (each up to 50 % + 40 ms longer)."""
    waits = [b - a for a, b in zip(calls, calls[1:])]
    return all(first_delay * 2**n * 0.9 <= w <= first_delay * 2**n * 1.5 + 0.04 for n, w in enumerate(waits))


def retrying_connect(func: Any) -> Feedback:
    """Exercise: connect_retrying(connect, attempts, first_delay), run in the lab against a server that starts late,
    one that never listens, and a connect that fails with a bug rather than a refusal."""
    if (fb := _unanswered(func)) is not None:
        return fb
    if not callable(func):
        return Feedback(False, "Give a function connect_retrying(connect, attempts, first_delay) that returns a socket.")
    if (name := _borrowed(func, _RETRY_HELPERS)) is not None:
        return Feedback(False, f"Your function uses netlab's `{name}`: write the loop yourself.")
    from netlab.core.experiment import lab_or_host

    with lab_or_host() as (lab, _where, _why):
        runs = _retry_cases(func, lab)
    start, calls, out = runs["late"]
    what = "a server that starts listening 0.3 s after your first attempt (attempts=6, first_delay=0.05)"
    if out["hung"]:
        return Feedback(False, f"Against {what}, your function was still busy after 4 s.")
    if "raised" in out:
        err = out["raised"]
        return Feedback(False, f"Against {what}, your function raised {type(err).__name__}: {err}. Did it wait and try again?")
    sock = out.get("returned")
    if not hasattr(sock, "getpeername"):
        return Feedback(False, f"Against {what}, your function returned {repr(sock)[:40]}; return the connected socket.")
    if len(calls) < 2:
        return Feedback(False, f"Against {what}, your function connected at once: how?")
    if not _waits_double(calls, 0.05):
        return Feedback(False, f"Against {what}, the pauses between your attempts were not first_delay, then double "
                               "the one before.")
    start, calls, out = runs["never"]
    what = f"a port where nothing ever listens (attempts={_NEVER_ATTEMPTS}, first_delay=0.05)"
    if out["hung"]:
        return Feedback(False, f"Against {what}, your function was still busy after 4 s: does it stop after `attempts`?")
    if len(calls) != _NEVER_ATTEMPTS:
        return Feedback(False, f"Against {what}, your function called connect {len(calls)} times, not `attempts` times.")
    if not _waits_double(calls, 0.05):
        return Feedback(False, f"Against {what}, the pauses between your attempts were not first_delay, then double "
                               "the one before.")
    if "raised" not in out:
        return Feedback(False, f"Against {what}, your function returned {repr(out.get('returned'))[:40]}: when every "
                               "attempt fails, raise, so the caller cannot mistake it for a socket.")
    err = out["raised"]
    chain = [err, err.__cause__, err.__context__]
    if not any(isinstance(e, ConnectionRefusedError) for e in chain):
        return Feedback(False, f"Against {what}, your function raised {type(err).__name__}, which hides why: raise the "
                               "last ConnectionRefusedError (or chain it with `from`).")
    if out["seconds"] - (calls[-1] - start) > 0.1:
        return Feedback(False, f"Against {what}, your function waited again after its last attempt: nothing comes of it.")
    start, calls, out = runs["bug"]
    what = "a connect that raises ValueError (a bug in the caller, not a refusal)"
    if out["hung"] or len(calls) != 1 or not isinstance(out.get("raised"), ValueError):
        return Feedback(False, f"Against {what}, your function tried {len(calls)} times" + (
            "" if isinstance(out.get("raised"), ValueError) else " and did not let the ValueError out")
            + ": retry only what a retry can mend, a refused connection.")
    return Feedback(True, "Right on all three: it waited first_delay, then twice as long each time, until the server "
                          "listened; gave up after `attempts` with the refusal itself; and let a bug out at once.")


# --- notebook 04: HTTP ---


def content_length(response: Any, answer: Any) -> Feedback:
    """Exercise: the body's length in bytes, as the response's Content-Length header says."""
    if (fb := _unanswered(answer)) is not None:
        return fb
    if not isinstance(answer, int) or isinstance(answer, bool):
        return Feedback(False, f"Give the number of bytes as an int, not {type(answer).__name__}: "
                               "header values are text, so convert the value with int().")
    expected = int(response.headers["Content-Length"])
    if answer == expected:
        return Feedback(True, f"Content-Length: {expected}. Exactly that many bytes follow the empty line, "
                              "so the client knows where this response ends and the next begins.")
    if answer > expected:
        return Feedback(False, "Too many: Content-Length counts only the body, the bytes after the empty line, "
                               "not the status line and headers.")
    return Feedback(False, "Too few: read the value of the Content-Length header line, not the bytes one recv returned.")


def syn_count(exp: Any, answer: Any) -> Feedback:
    """Exercise: how many SYN segments (connections opened) an HTTP experiment's capture holds."""
    if (fb := _unanswered(answer)) is not None:
        return fb
    if not isinstance(answer, int) or isinstance(answer, bool):
        return Feedback(False, "Give the number of SYN segments as an int.")
    expected = exp.syns
    requests = len(exp.exchanges)
    if answer == expected:
        how = "one connection carried them all" if expected == 1 else "each request opened its own connection"
        return Feedback(True, f"{expected} SYN{'s' if expected != 1 else ''} for {requests} requests: {how}.")
    if answer == 2 * expected:
        return Feedback(False, "Count only the client's SYN: a SYN-ACK is the server's answer to it, not a new connection.")
    return Feedback(False, "Look at the flags column of each connection's table (or at the ladder diagrams): "
                           "a connection opens with exactly one SYN.")


def closing_header(answer: Any) -> Feedback:
    """Exercise: the request header ('Name: value') that asks the server to close after its response."""
    if (fb := _unanswered(answer)) is not None:
        return fb
    if isinstance(answer, (tuple, list)) and len(answer) == 2:
        answer = f"{answer[0]}: {answer[1]}"
    if not isinstance(answer, str):
        return Feedback(False, "Write the header as text, 'Name: value'.")
    name, colon, value = answer.partition(":")
    name, value = name.strip().lower(), value.strip().lower()
    if not colon:
        return Feedback(False, "Write the whole header line, its name and its value: 'Name: value'.")
    if name == "connection" and value == "close":
        return Feedback(True, "Connection: close. The server answers, then sends its FIN; in HTTP/1.1 without it the "
                              "connection stays open for the next request.")
    if name == "connection":
        return Feedback(False, f"'{value}' asks for the opposite, or nothing: which value ends the connection?")
    return Feedback(False, "That header describes the message, not the connection. Look at the request of the "
                           "'one connection each' experiment.")


_HTTP_HELPERS = {"read_response", "parse_response", "parse_messages", "parse_response_with_stdlib", "HTTPResponse",
                 "getresponse", "http_connection", "urlopen"}


def _response(headers: list[str], body: bytes) -> bytes:
    return ("HTTP/1.1 200 OK\r\n" + "".join(f"{h}\r\n" for h in headers) + "\r\n").encode() + body


def _chunked(body: bytes, sizes: list[int]) -> bytes:
    out, pos = b"", 0
    for number, size in enumerate(sizes):
        piece = body[pos:pos + size]
        pos += size
        out += (f"{len(piece):x}" if number % 2 else f"{len(piece):X};part={number}").encode() + b"\r\n" + piece + b"\r\n"
    return out + b"0\r\n\r\n"


def read_body(func: Any) -> Feedback:
    """Exercise: read_body(sock) -> the body of one HTTP response, run in the lab on responses split across segments."""
    if (fb := _unanswered(func)) is not None:
        return fb
    if not callable(func):
        return Feedback(False, "Give a function read_body(sock) that returns the body, bytes.")
    if (name := _borrowed(func, _HTTP_HELPERS)) is not None:
        return Feedback(False, f"Your function uses `{name}`: read the head and the body yourself, with sock.recv.")
    from netlab.lessons.sockets import KEEP_OPEN, against_script

    bodies = [os.urandom(700 + os.urandom(1)[0]).hex().encode() for _ in range(3)]
    by_length = _response(["Content-Type: text/plain", f"content-LENGTH: {len(bodies[0])}"], bodies[0])
    cut = by_length.index(b"LENGTH") + 3
    chunked = _response(["Transfer-Encoding: chunked"], b"")
    chunks = _chunked(bodies[1], [300, 700, len(bodies[1])])
    until_close = _response(["Content-Type: text/plain"], bodies[2])
    cases = {
        "a Content-Length response whose head is cut in the middle of a header, its body in pieces, the connection "
        "left open": ([by_length[:cut], 0.05, by_length[cut:cut + 500], 0.05, by_length[cut + 500:], KEEP_OPEN], bodies[0]),
        "a chunked body, a size line cut in two, the connection left open":
            ([chunked + chunks[:2], 0.05, chunks[2:400], 0.05, chunks[400:], KEEP_OPEN], bodies[1]),
        "a response with neither Content-Length nor chunks, ended by the server's close":
            ([until_close[:100], 0.05, until_close[100:]], bodies[2]),
    }
    runs = against_script(func, [script for script, _ in cases.values()], timeout=3.0)
    right = 0
    for (what, (_, body)), run in zip(cases.items(), runs, strict=True):
        if run.hung:
            return Feedback(False, f"On {what}: your function was still waiting after 3 s. Which header says where "
                                   "this body ends?")
        if run.raised is not None:
            return Feedback(False, f"On {what}: your function raised {type(run.raised).__name__}: {run.raised}"[:300])
        if run.returned != body:
            got = run.returned
            detail = (f"{len(got)} bytes, not the {len(body)} of the body" if isinstance(got, (bytes, bytearray))
                      else f"{type(got).__name__}, not bytes")
            hint = " Header names are case-insensitive." if "Content-Length" in what and isinstance(got, bytes) \
                and not got else ""
            return Feedback(False, f"On {what}: your function returned {detail}.{hint}")
        right += 1
    return Feedback(True, f"All {right} bodies right, each read across several segments: by Content-Length (any "
                          "case), chunk by chunk up to the chunk of size 0, and until the server's close.")


_VARIANTS = {"HTTP/1.1": ("1.1", None), "HTTP/1.1, Connection: close": ("1.1", "close"),
             "HTTP/1.0": ("1.0", None), "HTTP/1.0, Connection: keep-alive": ("1.0", "keep-alive")}


def _stays_open(site: Any, version: str, connection: str | None) -> bool:
    """Send one request to `site`; True when the server keeps the connection open after its answer."""
    from netlab.lessons.http import read_response

    headers = "Host: lab\r\n" + (f"Connection: {connection}\r\n" if connection else "")
    with site.connect() as sock:
        sock.sendall(f"GET / HTTP/{version}\r\n{headers}\r\n".encode())
        read_response(sock)
        sock.settimeout(0.3)
        try:
            return sock.recv(1) != b""
        except TimeoutError:
            return True


def keeps_connection_open(predictions: Any) -> Feedback:
    """Exercise: predict, for four requests, whether the lab's server keeps the connection open; each is sent live."""
    if (fb := _unanswered(predictions)) is not None:
        return fb
    if not isinstance(predictions, dict) or set(predictions) != set(_VARIANTS) \
            or not all(isinstance(v, bool) for v in predictions.values()):
        return Feedback(False, f"Give a dict with the four keys {', '.join(map(repr, _VARIANTS))}, each True (stays "
                               "open) or False (closed).")
    from netlab.lessons.http import site

    with site() as lab_site:
        seen = {name: _stays_open(lab_site, version, connection) for name, (version, connection) in _VARIANTS.items()}
    wrong = [name for name in _VARIANTS if predictions[name] != seen[name]]
    if not wrong:
        return Feedback(True, "All four as the server did just now: HTTP/1.1 keeps the connection unless a side "
                              "says `Connection: close`; HTTP/1.0 closes unless the client asks for keep-alive.")
    if all(name.startswith("HTTP/1.0") for name in wrong):
        return Feedback(False, f"{len(wrong)} of 4 wrong: your HTTP/1.1 predictions hold; HTTP/1.0's default is "
                               "another one (section 4).")
    return Feedback(False, f"{len(wrong)} of 4 wrong. Which version keeps its connections by default, and what does "
                           "the Connection header change?")


def second_response_seq(exp: Any, answer: Any) -> Feedback:
    """Exercise: the raw sequence number at which the server's second response starts, in the student's kept-alive capture."""
    if (fb := _unanswered(answer)) is not None:
        return fb
    if not _whole(answer):
        return Feedback(False, f"Give the raw number, an int, not {type(answer).__name__}.")
    from scapy.layers.inet import TCP

    conv = exp.conversations[0]
    starts = [s for s in conv.segments if s.direction == SERVER_TO_CLIENT and s.payload.startswith(b"HTTP/")]
    if len(starts) < 2:
        return Feedback(False, "This capture has fewer than two responses on its first connection; capture `kept` again.")
    first, second = starts[:2]
    raw = int(second.packet[TCP].seq)
    if answer == raw:
        return Feedback(True, f"The raw seq {raw} = the server's ISN + 1 (its SYN) + the {second.seq - 1} bytes of its first "
                              "response: the responses follow each other in one byte stream.")
    if answer == second.seq:
        return Feedback(False, "That is the relative number; the exercise asks for the raw one.")
    if answer == int(first.packet[TCP].seq):
        return Feedback(False, "That is where the first response starts.")
    if answer in ((raw - 1) % 2**32, (raw + 1) % 2**32):
        return Feedback(False, "Off by one: what used up the server's first sequence number?")
    if abs(answer - conv.isn["client"]) < 2**20:
        return Feedback(False, "That is in the client's numbering; responses are numbered by the server.")
    return Feedback(False, "Start from the server's ISN, and count every sequence number it used before the second "
                           "response.")


# --- notebook 05: data transfer ---


def _number(answer: Any) -> bool:
    return isinstance(answer, (int, float)) and not isinstance(answer, bool)


def segments_for_write(size: int, answer: Any, mss: int = 1460) -> Feedback:
    """Exercise: how many segments a write of `size` bytes becomes with an MSS of `mss` bytes."""
    if (fb := _unanswered(answer)) is not None:
        return fb
    if not isinstance(answer, int) or isinstance(answer, bool):
        return Feedback(False, f"Give a whole number of segments, an int, not {type(answer).__name__}.")
    full, rest = divmod(size, mss)
    expected = full + (1 if rest else 0)
    if answer == expected:
        return Feedback(True, f"{expected} segments: {full} of {mss} bytes" + (f" and one of {rest}." if rest else "."))
    if answer == full:
        return Feedback(False, "Close: that counts the full segments. The bytes left over travel too.")
    return Feedback(False, f"Divide the write by the MSS ({mss} bytes on this link) and think about what is left over.")


def first_rto(sample: float, answer: Any, granularity: float = 0.001) -> Feedback:
    """Exercise: the RTO (seconds) RFC 6298 gives after the first RTT sample, before any minimum."""
    if (fb := _unanswered(answer)) is not None:
        return fb
    if not _number(answer):
        return Feedback(False, f"Give the RTO in seconds, a number, not {type(answer).__name__}.")
    expected = sample + max(granularity, 4 * sample / 2)
    if abs(answer - expected) < 1e-6:
        return Feedback(True, f"RTO = {expected:g} s: SRTT = R = {sample:g} s, RTTVAR = R/2, and SRTT + 4·RTTVAR = 3·R.")
    if abs(answer - 1.0) < 1e-6:
        return Feedback(False, "That is RFC 6298's minimum, applied afterwards; the question asks for the value before it.")
    if abs(answer - (sample + granularity)) < 1e-6 or abs(answer - sample * 1.5) < 1e-6:
        return Feedback(False, "Check RTTVAR: after the first sample it is R/2, and the RTO adds four of it.")
    return Feedback(False, "Start from the first-sample rule: SRTT = R, RTTVAR = R/2, then RTO = SRTT + max(G, 4·RTTVAR).")


def first_window_probe(conv: Conversation, answer: Any) -> Feedback:
    """Exercise: the number (#) of the first zero-window probe in a flow-control capture."""
    if (fb := _unanswered(answer)) is not None:
        return fb
    if not isinstance(answer, int) or isinstance(answer, bool):
        return Feedback(False, f"Give the segment's number (the # column), an int, not {type(answer).__name__}.")
    probes = conv.window_probes()
    if not probes:
        return Feedback(False, "This capture has no zero-window probe; run the flow-control cell again.")
    if answer == probes[0].number:
        return Feedback(True, f"Segment {answer}: no data, an old sequence number, sent while the window was 0. "
                              "It makes the receiver tell its window again.")
    chosen = next((s for s in conv.segments if s.number == answer), None)
    if chosen is None:
        return Feedback(False, f"There is no segment {answer}; the table numbers them 1 to {len(conv.segments)}.")
    if chosen.direction != CLIENT_TO_SERVER:
        return Feedback(False, f"Segment {answer} comes from the peer; the sender (the kernel, C→S) sends the probes.")
    if chosen.length:
        return Feedback(False, f"Segment {answer} carries data; a probe carries none. Look after the window reached 0.")
    if chosen.window_probe:
        return Feedback(False, f"Segment {answer} is a probe, but not the first one: look earlier.")
    return Feedback(False, f"Segment {answer} is not sent into a zero window. Find the peer's first ACK with window 0, "
                           "then look at what the kernel sends next.")


def window_throughput(window: int, rtt: float, answer: Any) -> Feedback:
    """Exercise: the highest throughput (bytes per second) a window of `window` bytes allows at `rtt` seconds."""
    if (fb := _unanswered(answer)) is not None:
        return fb
    if not _number(answer):
        return Feedback(False, f"Give bytes per second, a number, not {type(answer).__name__}.")
    expected = window / rtt
    if abs(answer - expected) <= expected * 0.01:
        return Feedback(True, f"About {expected:,.0f} bytes/s: one window per round trip.")
    if abs(answer - window * rtt) <= window * rtt * 0.01:
        return Feedback(False, "That multiplies; a window is sent once per round trip, so divide by the RTT.")
    if abs(answer - expected / 1000) <= expected / 1000 * 0.01 or abs(answer - expected * 8) <= expected * 0.08:
        return Feedback(False, "Right idea; give it in bytes per second (not kB/s or bits).")
    return Feedback(False, "At most one window can be unacknowledged, and acknowledging it takes one round trip.")


def _karn_samples(conv: Conversation) -> list[float]:
    """RTT samples (seconds) of a transfer, by Karn's rule: from each data segment sent once to the first ACK covering it."""
    data = [s for s in conv.segments if s.direction == CLIENT_TO_SERVER and s.length]
    first_sent: dict[int, float] = {}
    for s in data:
        first_sent.setdefault(s.seq + s.length, s.time)
    resent = {s.seq + s.length for s in data if s.retransmission}
    samples, used = [], set()
    for a in conv.segments:
        if a.direction == SERVER_TO_CLIENT and a.ack in first_sent and a.ack not in resent and a.ack not in used:
            used.add(a.ack)
            samples.append(a.time - first_sent[a.ack])
    return samples


def own_first_rto(exp: Any, answer: Any, granularity: float = 0.001) -> Feedback:
    """Exercise: RFC 6298's RTO (seconds, before any minimum) after the first RTT sample of the student's own capture."""
    if (fb := _unanswered(answer)) is not None:
        return fb
    if not _number(answer):
        return Feedback(False, f"Give the RTO in seconds, a number, not {type(answer).__name__}.")
    samples = _karn_samples(exp.conversation)
    if not samples:
        return Feedback(False, "This capture has no RTT sample; run the cell of section 7 again.")
    first = samples[0]
    expected = first + max(granularity, 4 * first / 2)
    if abs(answer - expected) <= 0.0005:
        return Feedback(True, f"{expected * 1000:.1f} ms = 3 × your first sample ({first * 1000:.1f} ms): SRTT = R, "
                              "RTTVAR = R/2, RTO = SRTT + 4·RTTVAR. " + ("Your capture's own value." if exp.live
                                                                          else "(From the recording.)"))
    if abs(answer / 1000 - expected) <= 0.0005:
        return Feedback(False, "That looks like milliseconds; give seconds.")
    if abs(answer - 1.0) < 1e-6:
        return Feedback(False, "That is RFC 6298's minimum, applied afterwards; give the value before it.")
    if abs(answer - 0.3) < 1e-6:
        return Feedback(False, "That starts from the peer's nominal 100 ms; start from your capture's first sample.")
    if any(abs(answer - (s + max(granularity, 2 * s))) <= 0.0005 for s in samples[1:]):
        return Feedback(False, "Right rule, wrong sample: the exercise asks for the RTO after the first one.")
    if abs(answer - (first + 0.2)) <= 0.0005 or abs(answer - (first + max(0.2, 2 * first))) <= 0.0005:
        return Feedback(False, "That is Linux's 200 ms floor; the exercise asks for RFC 6298's formula, before any minimum.")
    return Feedback(False, "Take your first sample R (`samples[0]`), then the first-sample rule: SRTT = R, RTTVAR = R/2, "
                           "RTO = SRTT + max(G, 4·RTTVAR).")


def probe_raw_seq(conv: Conversation, answer: Any) -> Feedback:
    """Exercise: the raw sequence number of the first zero-window probe in the student's own flow-control capture."""
    if (fb := _unanswered(answer)) is not None:
        return fb
    if not _whole(answer):
        return Feedback(False, f"Give the raw sequence number, an int, not {type(answer).__name__}.")
    from scapy.layers.inet import TCP

    probes = conv.window_probes()
    if not probes:
        return Feedback(False, "This capture has no zero-window probe; run the flow-control cell again.")
    probe = probes[0]
    raw = int(probe.packet[TCP].seq)
    if answer == raw:
        return Feedback(True, f"{raw} = the client's ISN {conv.isn['client']} + {probe.seq}: the last byte the peer "
                              "already acknowledged, sent again with no data. Your capture's own number.")
    if answer == probe.seq:
        return Feedback(False, "That is the relative number the table shows; the exercise asks for the raw one.")
    if answer == probe.number:
        return Feedback(False, "That is the segment's number in the table; give its sequence number.")
    if any(answer == int(p.packet[TCP].seq) for p in conv.segments if p.direction == CLIENT_TO_SERVER and p.length):
        return Feedback(False, "That is the raw number of a data segment; a probe carries no data.")
    if answer in ((raw + 1) % 2**32, (raw - 1) % 2**32):
        return Feedback(False, "Off by one: which byte does Linux's probe name, one the peer has or the next one?")
    if abs(answer - conv.isn["server"]) < 2**20:
        return Feedback(False, "That is in the peer's numbering; the kernel sends the probes, so count in the client's.")
    return Feedback(False, "Find the first probe in the table, then add its relative seq to the client's ISN "
                           "(the raw seq of its SYN).")


_WINDOW_DATA = 30_000  # bytes sent in the window exercise
_WINDOW_DELAY = 0.1  # seconds the peer waits before each ACK


def _rounds(window: int, mss: int = 1460, initial_cwnd: int = 10) -> int:
    """Round trips to send _WINDOW_DATA bytes when at most min(cwnd, rwnd) segments are in flight (slow start, no loss)."""
    segments, sent, cwnd, rounds = -(-_WINDOW_DATA // mss), 0, initial_cwnd, 0
    rwnd = window // mss
    while sent < segments:
        now = min(cwnd, rwnd, segments - sent)
        sent, rounds = sent + now, rounds + 1
        if now == cwnd:
            cwnd += now  # slow start: one segment more per segment acknowledged
    return rounds


def _round_trips_taken(conv: Conversation) -> int:
    """Round trips on the transfer's critical path, read from the order of the capture, not its clock.

    A data segment sent before any data was acknowledged is in round trip 1; one sent after the ACK
    of a segment of round trip k is in k + 1 (the newest round acknowledged so far). However late a
    busy machine delivers the ACKs, the count is the same.
    """
    round_of_end: dict[int, int] = {}  # relative end of each data segment -> its round trip
    acknowledged = taken = 0
    for s in conv.segments:
        if s.direction == CLIENT_TO_SERVER and s.length:
            round_of_end[s.seq + s.length] = acknowledged + 1
            taken = max(taken, acknowledged + 1)
        elif s.direction == SERVER_TO_CLIENT and s.ack is not None:
            acknowledged = max([acknowledged] + [r for end, r in round_of_end.items() if end <= s.ack])
    return taken


def window_transfer_time(window: Any, predicted: Any) -> Feedback:
    """Exercise: the student's window (bytes) for the peer and the predicted seconds for 30 000 bytes with ACKs 100 ms late.

    The prediction must match the model (min(cwnd, rwnd) segments per round trip, within 10 %); the
    check then runs that transfer live and confirms it by counting the round trips in the capture.
    The time is measured and shown, not graded: on a busy machine the peer, a program, sends its
    ACKs later than 100 ms, and 40 students graded at once must not fail a right answer for that
    (a run beside two test runs and a busy loop took 0.956 s for 6 round trips). Without the lab
    only the model is graded.
    """
    if (fb := _unanswered(window)) is not None or (fb := _unanswered(predicted)) is not None:
        return fb
    if not _whole(window) or not _number(predicted):
        return Feedback(False, "Give `window` in bytes (an int) and `predicted` in seconds (a number).")
    if window % 1460 or not 2 * 1460 <= window <= 10 * 1460:
        return Feedback(False, "Choose a window of whole segments: 2 to 10 times 1460 bytes.")
    rounds = _rounds(window)
    fractional = _WINDOW_DATA / window * _WINDOW_DELAY
    hint = ("Count whole round trips: the last window, even a part-full one, waits for its ACKs too."
            if abs(predicted - fractional) <= 0.01 else
            "The sender keeps at most min(cwnd, rwnd) bytes in flight and waits a round trip for their ACKs: "
            "how many round trips do 30 000 bytes need?")
    model = rounds * _WINDOW_DELAY
    if abs(predicted - model) > 0.1 * model + 0.01:
        return Feedback(False, ("Too long. " if predicted > model else "Too short. ") + hint)
    from netlab.core.errors import LabUnavailable
    from netlab.core.peer import Script, transfer

    try:
        run = transfer(Script(port=80).accept(window=window).ack_late(_WINDOW_DELAY), data=_WINDOW_DATA)
    except LabUnavailable:
        run = None
    if run is None or not run.live:
        return Feedback(True, f"{rounds} round trips of {_WINDOW_DELAY:g} s. Running it needs the live lab; here only "
                              "your reasoning is graded.")
    conv = run.conversation
    done = [s.time for s in conv.segments if s.direction == SERVER_TO_CLIENT and s.ack is not None
            and s.ack >= _WINDOW_DATA + 1]
    first = next((s.time for s in conv.segments if s.direction == CLIENT_TO_SERVER and s.length), None)
    if first is None or not done:
        return Feedback(False, "The live transfer did not finish; run the check again.")
    if conv.retransmissions(CLIENT_TO_SERVER):
        return Feedback(False, "The peer answered so late that the kernel sent data again (a retransmission "
                               "timeout): the machine is very busy. Run the check again.")
    measured, taken = min(done) - first, _round_trips_taken(conv)
    if taken != rounds:
        return Feedback(False, f"The live run took {taken} round trips, not the {rounds} that min(cwnd, rwnd) "
                               "gives: run the check again.")
    return Feedback(True, f"Measured just now: {measured:.3f} s, {rounds} round trips of {measured / rounds * 1000:.0f} ms "
                          f"each with at most {window // 1460} segments in flight: the peer's window, smaller than "
                          f"cwnd, set the pace. The peer waits {_WINDOW_DELAY * 1000:.0f} ms before each ACK; the "
                          "rest of a round trip is this machine's time to pass the packets.")


# --- notebook 09: congestion control ---


# Exercise 1's initial window (segments): RFC 3390's 4380 bytes, 3 segments of this link's MSS of
# 1448 bytes, which Linux used before 2.6.39 (2011). Section 2 measured slow start from 10, never from 3.
_OLD_INITIAL_WINDOW = 3


def _doubling(first: float) -> list[float]:
    return [first * 2**k for k in range(4)]


def _near(answer: Any, expected: list[float], share: float) -> bool:
    return all(abs(a - e) <= max(1.0, share * e) for a, e in zip(answer, expected, strict=True))


def slow_start_prediction(answer: Any) -> Feedback:
    """Exercise: cwnd (segments) at the end of rounds 1 to 4 of slow start from an initial window of
    _OLD_INITIAL_WINDOW segments, checked against a fresh live run with that window on the sender's route.

    The notebook measured slow start from 10 segments only. Without the lab no run can have
    another initial window (the recording starts from 10), so there only the rule is graded.
    """
    if (fb := _unanswered(answer)) is not None:
        return fb
    if not isinstance(answer, (list, tuple)) or len(answer) != 4 or not all(_number(a) for a in answer):
        return Feedback(False, "Give four numbers, a list: cwnd in segments at the end of rounds 1, 2, 3 and 4.")
    from netlab.core.errors import LabUnavailable
    from netlab.lessons.congestion import slow_start

    iw = _OLD_INITIAL_WINDOW
    model = _doubling(2 * iw)  # every segment of a round is acknowledged, and each ACK adds one
    try:
        exp = slow_start(initial_window=iw, capture=False)  # the rounds come from the kernel's samples
        measured = [r.cwnd for r in exp.rounds[:4]]
    except LabUnavailable:
        measured = None
    if measured is not None and len(measured) < 4:
        return Feedback(False, f"The live run had only {len(measured)} rounds; run the check again.")
    why = (f"each ACK adds one segment, so every round trip doubles cwnd, and round 1 already ends with "
           f"twice the initial {iw}.")
    if measured is not None and _near(answer, measured, 0.2):
        return Feedback(True, f"Within 20 % of every round of a run just now with an initial window of {iw} "
                              f"(measured {', '.join(map(str, measured))}): {why}")
    if all(abs(a - m) <= 0.5 for a, m in zip(answer, model, strict=True)):
        if measured is None:
            return Feedback(True, f"That is slow start from {iw} segments: {why} Running it with this initial window "
                                  "needs the live lab (the recording starts from 10); here only your reasoning is graded.")
        return Feedback(True, f"That is slow start from {iw} segments: {why} The run just now, on a busy machine, "
                              f"measured otherwise (measured {', '.join(map(str, measured))}).")
    if any(a >= 1000 for a in answer):
        return Feedback(False, "cwnd counts segments, not bytes (TCP_INFO's snd_cwnd): give segments.")
    if _near(answer, _doubling(20), 0.1):
        return Feedback(False, f"Those are section 2's rounds, which started from 10 segments; this run starts from {iw}.")
    if _near(answer, _doubling(iw), 0.1):
        return Feedback(False, "One round behind: round 1 ends when the initial window has been acknowledged, "
                               "and every one of its ACKs has already grown cwnd.")
    if answer[3] - answer[2] == answer[2] - answer[1] == answer[1] - answer[0]:
        return Feedback(False, "That grows by the same amount each round: slow start adds a segment per ACK, "
                               "not per round trip.")
    if all(b == 2 * a for a, b in zip(answer, answer[1:])):
        return Feedback(False, f"It doubles, as slow start does, but from the wrong start: begin with the initial "
                               f"window of {iw} and ask how many ACKs round 1 brings back.")
    return Feedback(False, f"Start from the initial window of {iw} segments and ask how many ACKs one round brings "
                           "back, and what each ACK does to cwnd.")


def _first_recovery(samples: list[Any]) -> tuple[int, int] | None:
    """Indices of the first sample in Recovery and of the first Open sample after it (None if either is missing)."""
    begin = next((i for i, s in enumerate(samples) if s.ca_state == "Recovery"), None)
    if begin is None:
        return None
    end = next((j for j in range(begin + 1, len(samples)) if samples[j].ca_state == "Open"), None)
    return None if end is None else (begin, end)


def recovery_duration(exp: Any, recovery_ms: Any, round_trips: Any) -> Feedback:
    """Exercise: how long the first fast recovery of the student's own run lasted, read from its TCP_INFO samples.

    `recovery_ms`: from the first sample whose ca_state is Recovery to the first Open sample after
    it, in ms; `round_trips`: that time over the srtt of that Open sample. Recomputed from `exp`'s samples.
    """
    for value in (recovery_ms, round_trips):
        if (fb := _unanswered(value)) is not None:
            return fb
    if not _number(recovery_ms) or not _number(round_trips):
        return Feedback(False, "Give two numbers: `recovery_ms` in milliseconds and `round_trips`, a ratio.")
    samples = list(getattr(exp, "samples", []))
    found = _first_recovery(samples)
    if found is None:
        return Feedback(False, "This run has no fast recovery that ended; run the cell of section 2 again.")
    begin, end = found
    seconds = samples[end].time - samples[begin].time
    srtt = samples[end].srtt
    right_ms, right_rt = 1000 * seconds, seconds / srtt
    if abs(recovery_ms - right_ms) > 0.6:
        if abs(recovery_ms * 1000 - right_ms) <= 0.6:
            return Feedback(False, "`recovery_ms` looks like seconds: `.time` is in seconds, give milliseconds.")
        first_change = begin
        while first_change > 0 and samples[first_change - 1].ca_state not in ("Open", "Recovery"):
            first_change -= 1  # Disorder (duplicate ACKs or SACKs seen) before the fast retransmit
        if first_change != begin and abs(recovery_ms - 1000 * (samples[end].time - samples[first_change].time)) <= 0.6:
            return Feedback(False, "That starts where ca_state first left Open (Disorder: duplicate ACKs seen, nothing "
                                   "retransmitted yet); recovery begins at the first \"Recovery\" sample.")
        if abs(recovery_ms - 1000 * (samples[end - 1].time - samples[begin].time)) <= 0.6:
            return Feedback(False, "That ends at the last \"Recovery\" sample; the question ends at the first \"Open\" "
                                   "sample after it.")
        if recovery_ms <= 0:
            return Feedback(False, "A duration is positive: the end is the first \"Open\" sample after recovery began, "
                                   "not one before it.")
        return Feedback(False, "Find the first sample whose ca_state is \"Recovery\" and the first \"Open\" sample "
                               "after it; subtract their `.time` (seconds) and give milliseconds.")
    if abs(round_trips - right_rt) > 0.03:
        if abs(round_trips - right_ms / srtt) <= 0.03 * right_ms / srtt or abs(round_trips - seconds / (1000 * srtt)) <= 0.03:
            return Feedback(False, "`round_trips` mixes units: `.srtt` is in seconds, your duration in milliseconds.")
        if abs(round_trips - srtt / seconds) <= 0.03:
            return Feedback(False, "`round_trips` is upside down: the duration divided by the round-trip time.")
        rtt = getattr(exp, "rtt", 0.0) or 0.0
        base = [x for x in (rtt, samples[end].min_rtt) if x]
        if any(abs(round_trips - seconds / x) <= 0.03 * seconds / x for x in base):
            return Feedback(False, "That divides by the path's round trip without a queue. The retransmission waited in "
                                   "the bottleneck's queue like everything else: divide by `srtt`, the kernel's "
                                   "smoothed round trip, where recovery ends.")
        if samples[begin].srtt and abs(round_trips - seconds / samples[begin].srtt) <= 0.03:
            return Feedback(False, "That divides by `srtt` where recovery began; the question takes it where recovery "
                                   "ends.")
        return Feedback(False, "`recovery_ms` is right. For `round_trips`, divide the same duration by `.srtt` of the "
                               "first \"Open\" sample, in the same unit.")
    prr = f"; cwnd {samples[begin - 1].cwnd if begin else samples[begin].cwnd} → {samples[end].cwnd}"
    whose = "your run" if getattr(exp, "live", True) else "the recorded run (live, the values are your own)"
    return Feedback(True, f"Right for {whose} (measured {right_ms:.1f} ms = {right_rt:.2f} × srtt{prr}): recovery "
                          "ends when the ACK of the retransmission comes back, about one round trip after it left, "
                          "a round trip that includes the queue's wait. Meanwhile PRR brought cwnd down step by step, "
                          "sending in proportion to what the ACKs said was delivered, instead of stopping the sender.")


def _with_cwnd(sample: Any, factor: float) -> Any:
    """A copy of a TCP_INFO sample whose cwnd × mss is `factor` × the receiver's window, and whose kernel
    counter of time spent waiting for that window (rwnd_limited) agrees: all the busy time, or none."""
    import dataclasses

    changed = {"cwnd": max(1, round(factor * sample.snd_wnd / sample.mss)),
               "rwnd_limited": getattr(sample, "busy_time", 0.0) if factor > 1 else 0.0}
    if dataclasses.is_dataclass(sample):
        return dataclasses.replace(sample, **changed)
    return types.SimpleNamespace(**{**vars(sample), **changed})


def window_limit(limited_by: Any, rwnd_run: Any, cwnd_run: Any) -> Feedback:
    """Exercise: a function samples -> "cwnd" or "rwnd", run on a receiver-limited and a path-limited transfer,
    then on the same samples with cwnd moved to the other side of the receiver's window."""
    if (fb := _unanswered(limited_by)) is not None:
        return fb
    if not callable(limited_by):
        return Feedback(False, "Give a function that takes a run's samples and returns \"cwnd\" or \"rwnd\".")
    said = {}
    for name, run in (("rwnd", rwnd_run), ("cwnd", cwnd_run)):
        said[name] = limited_by(list(run.samples))
        if said[name] not in ("cwnd", "rwnd"):
            return Feedback(False, f"Your function returned {said[name]!r}; return \"cwnd\" or \"rwnd\".")
    if said == {"rwnd": "rwnd", "cwnd": "cwnd"}:
        # Section 5 says which run is which: the function must compare the windows, not recognise the
        # run (or its receiver's window alone). The same samples with cwnd moved to the other side of
        # the receiver's window: the path-limited run's big window now the smaller, the small one the larger.
        for run, factor, expected in ((cwnd_run, 2.0, "rwnd"), (rwnd_run, 0.5, "cwnd")):
            moved = [_with_cwnd(x, factor) for x in run.samples]
            if limited_by(moved) != expected:
                return Feedback(False, "Right on both runs, but not on the same samples with cwnd moved to the other "
                                       "side of snd_wnd (the check tries that too): decide by comparing the two "
                                       "windows, not from something else about the run.")
        return Feedback(True, "Both right: the sender keeps min(cwnd, rwnd) in flight, and the smaller one sets the pace.")
    if said["rwnd"] == said["cwnd"]:
        return Feedback(False, f"Your function says {said['rwnd']!r} for both runs: compare cwnd × mss with snd_wnd, "
                               "in the same unit.")
    return Feedback(False, "Exactly backwards: the limit is the smaller of the two windows, not the larger.")


# --- notebook 10: below TCP ---


def router_rewrite(exp: Any, answer: Any) -> Feedback:
    """Exercise: from the student's own capture, the datagram's TTL on c0 and on r1, the source MAC on r1, r1's IP checksum."""
    if (fb := _unanswered(answer)) is not None:
        return fb
    keys = ("ttl_on_c0", "ttl_on_r1", "source_mac_on_r1", "checksum_on_r1")
    if not isinstance(answer, dict) or set(answer) != set(keys):
        return Feedback(False, f"Give a dict with exactly these keys: {', '.join(keys)}.")
    datagram = {}
    for pkt in getattr(exp, "packets", []):
        if pkt.haslayer("UDP") and pkt.haslayer("IP") and not pkt.haslayer("ICMP"):
            datagram.setdefault(getattr(pkt, "sniffed_on", "?"), pkt)
    if "c0" not in datagram or "r1" not in datagram:
        return Feedback(False, "Your capture lacks the datagram on c0 or on r1: run the experiment's cell again.")
    c0, r1 = datagram["c0"], datagram["r1"]
    wrong = []
    if answer["ttl_on_c0"] != c0["IP"].ttl:
        wrong.append("ttl_on_c0 (the TTL field of the IP header, as the client sent it)")
    if answer["ttl_on_r1"] != r1["IP"].ttl:
        wrong.append("ttl_on_r1 (the same field, after the router)")
    if str(answer["source_mac_on_r1"]).lower() != r1.src.lower():
        wrong.append("source_mac_on_r1 (the Ethernet header's source on the second link: who sent the frame there?)")
    if answer["checksum_on_r1"] != r1["IP"].chksum:
        hint = " (a number: 0x... or an int)" if isinstance(answer["checksum_on_r1"], str) else ""
        wrong.append(f"checksum_on_r1{hint} (the IP header's checksum in the frame seen on r1, in your own capture)")
    if wrong:
        return Feedback(False, "Look again at " + "; ".join(wrong) + ".")
    return Feedback(True, f"Right for your capture: the router took one from the TTL ({c0['IP'].ttl} → {r1['IP'].ttl}), "
                          "so it had to compute the header checksum again, and it sent the frame from its own MAC "
                          "on the second link; the IP addresses did not change.")


def ttl_prediction(answer: Any) -> Feedback:
    """Exercise: predict, then a live run checks: the TTL a datagram sent with TTL 2 arrives with, and who answers TTL 1."""
    if (fb := _unanswered(answer)) is not None:
        return fb
    keys = ("ttl_2_arrives_with", "ttl_1_answered_by")
    if not isinstance(answer, dict) or set(answer) != set(keys):
        return Feedback(False, f"Give a dict with exactly these keys: {', '.join(keys)}.")
    from netlab.lessons.below import LabPath, first_datagram

    with LabPath() as path:  # one lab for both runs (or the recordings, where the lab is refused)
        two, one = first_datagram(path, ttl=2), first_datagram(path, ttl=1)
    where = "measured just now" if two.live else "in the recording"
    arrived = [p["IP"].ttl for p in two.on("r1") if p.haslayer("UDP") and not p.haslayer("ICMP")]
    answered = [p["IP"].src for p in one.on("c0") if p.haslayer("ICMP")]
    if not arrived or not answered:
        return Feedback(False, "The run did not capture what it should; run the check again.")
    wrong = []
    if answer["ttl_2_arrives_with"] != arrived[0]:
        wrong.append("ttl_2_arrives_with: how many routers take one from the TTL on the way to the server?")
    if answer["ttl_1_answered_by"] != answered[0]:
        wrong.append("ttl_1_answered_by: which address does the router use on the client's link?"
                     if str(answer["ttl_1_answered_by"]).startswith("10.2.") else
                     "ttl_1_answered_by: a datagram whose TTL runs out never reaches the server; who noticed?")
    if wrong:
        return Feedback(False, f"Compare with what was {where}: " + " ".join(wrong))
    return Feedback(True, f"Both right, {where}: the router decrements the TTL before it forwards, and where it reaches "
                          "0 the router drops the datagram and sends ICMP Time Exceeded from its address on that link.")


def own_traceroute(func: Any) -> Feedback:
    """Exercise: a function (new_socket, destination) -> list of addresses, run in the lab on two destinations."""
    if (fb := _unanswered(func)) is not None:
        return fb
    if not callable(func):
        return Feedback(False, "Give a function traceroute_hops(new_socket, destination) that returns a list of addresses.")
    import socket as _socket

    from netlab.lessons.below import ROUTER, ROUTER_FAR, SERVER, LabPath

    with LabPath() as path:
        if path.net is None:
            return Feedback(False, f"Your function needs the lab to run, and this machine refuses it: {path.why}")

        def new_socket() -> _socket.socket:
            return path.net.client.socket(_socket.AF_INET, _socket.SOCK_DGRAM)

        cases = ((SERVER, [ROUTER, SERVER], "the server"), (ROUTER_FAR, [ROUTER_FAR], "the router's far address 10.2.0.1"))
        for destination, expected, what in cases:
            got = func(new_socket, destination)
            if not isinstance(got, list):
                return Feedback(False, f"Your function returned {type(got).__name__}; return a list of addresses (str).")
            if got == expected:
                continue
            if got[:len(expected)] == expected:
                return Feedback(False, f"Towards {what} your list goes on after the destination answered: stop when the "
                                       "answer is not Time Exceeded.")
            if None in got:
                return Feedback(False, f"Towards {what} a probe got no answer: did you wait for the error queue "
                                       "(netlab.below.probe does) and use a fresh socket per probe?")
            return Feedback(False, f"Towards {what} the hops are not right: start at TTL 1 and add one per probe.")
    return Feedback(True, "Run in the lab on two paths: two hops to the server, and one to an address the router owns "
                          "(it answers Port Unreachable itself, at TTL 1).")


# --- grading: every check above goes through _graded (keep this section last in the file) ---

_next_grade_id: str | None = None
_depth = threading.local()  # a check that calls another check grades only once, at the outside


def grading() -> bool:
    """True under a grader (NETLAB_GRADING set, not "0"): a failed check then raises AssertionError."""
    return os.environ.get(GRADING_ENV, "") not in ("", "0")


def set_grade_id(grade_id: str | None) -> None:
    """Name the exercise the next check's result belongs to (a grader calls this in each check cell)."""
    global _next_grade_id
    _next_grade_id = grade_id


def _does_nothing(func: types.FunctionType) -> bool:
    """True for a function whose body is only `...` (or `pass`, or a docstring): the student edition's stub."""
    steps = [(i.opname, i.argval) for i in dis.get_instructions(func) if i.opname not in ("RESUME", "NOP", "CACHE")]
    return steps in ([("LOAD_CONST", None), ("RETURN_VALUE", None)], [("RETURN_CONST", None)])


def _is_stub(value: Any) -> bool:
    return value is ... or (isinstance(value, types.FunctionType) and _does_nothing(value))


class _CheckTimeout(BaseException):
    """Raised in a check that ran past CHECK_SECONDS; a BaseException so `except Exception` in student code lets it by."""


def _bounded(seconds: float):
    """Stop the code that runs in this context after `seconds`, where signals allow it (the main thread)."""
    import contextlib

    @contextlib.contextmanager
    def alarm():
        usable = (threading.current_thread() is threading.main_thread() and hasattr(signal, "setitimer")
                  and signal.getitimer(signal.ITIMER_REAL)[0] == 0)
        if not usable:
            yield
            return

        def expire(signum: int, frame: Any) -> None:
            raise _CheckTimeout

        previous = signal.signal(signal.SIGALRM, expire)
        signal.setitimer(signal.ITIMER_REAL, seconds)
        try:
            yield
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)

    return alarm()


def _verdict(check: Any, args: tuple, kwargs: dict) -> Feedback:
    if any(_is_stub(a) for a in (*args, *kwargs.values())):
        return Feedback(False, NOT_ANSWERED)
    try:
        with _bounded(CHECK_SECONDS):
            result = check(*args, **kwargs)
    except NotImplementedError:  # nbgrader's stub, or a student function left unfinished
        return Feedback(False, NOT_ANSWERED)
    except _CheckTimeout:
        return Feedback(False, f"The check gave up after {CHECK_SECONDS:.0f} s: does your code (or your function) "
                               "wait for something that never comes?")
    except Exception as err:  # a wrong type or a student function that raises: a hint, never a traceback
        detail = f"{type(err).__name__}: {err}" if str(err) else type(err).__name__
        if len(detail) > 200:
            detail = detail[:197] + "..."
        return Feedback(False, f"Your answer could not be checked ({detail}). Look at its type and at what it does.")
    if not isinstance(result, Feedback):
        return Feedback(False, f"The check returned {type(result).__name__}, not a verdict.")
    return result


def _show(feedback: Feedback) -> None:
    try:
        from IPython.display import display
    except ImportError:
        print(repr(feedback))
        return
    display(feedback)


def _graded(check: Any) -> Any:
    """Wrap a check: stubs say "not answered yet", errors and hangs become a ✘, the result carries
    the grade id set for it, and under grading a failed result is shown and raised as AssertionError."""

    @functools.wraps(check)
    def graded(*args: Any, **kwargs: Any) -> Feedback:
        global _next_grade_id
        depth = getattr(_depth, "value", 0)
        if depth:
            return check(*args, **kwargs)
        grade_id, _next_grade_id = _next_grade_id, None
        _depth.value = depth + 1
        try:
            feedback = _verdict(check, args, kwargs)
        finally:
            _depth.value = depth
        if grade_id is not None:
            feedback = Feedback(feedback.ok, feedback.message, grade_id)
        if grading() and not feedback:
            _show(feedback)  # the cell ends in an error, so its result would not be shown otherwise
            raise AssertionError(feedback.message)
        return feedback

    return graded


def _checks() -> list[str]:
    """The names of the checks: the public functions of this module that return a Feedback."""
    return [name for name in __all__
            if inspect.isfunction(globals().get(name)) and globals()[name].__annotations__.get("return") == "Feedback"]


for _name in _checks():
    if not hasattr(globals()[_name], "__wrapped__"):
        globals()[_name] = _graded(globals()[_name])
