"""The exercise checks of notebooks 00, 01 and 03: each says what is right or what to look at again.

Every public function marked `@exercise_check` is a check a notebook calls as `netlab.checks.NAME`
(`netlab.checks` finds it here); what a check shares with the others (`Feedback`, "not answered
yet", grading) is in `netlab.core.checking`. A check never reveals the answer.
"""

from __future__ import annotations

import os
from typing import Any

from netlab.core.checking import Feedback, borrowed, exercise_check, number, unanswered, whole
from netlab.core.conversation import CLIENT_TO_SERVER, SERVER_TO_CLIENT

# --- notebook 00: start here ---


@exercise_check
def reloaded_capture(exp: Any, packets: Any) -> Feedback:
    """Exercise: a capture of the student's own, carrying a message they chose (live), saved as a pcap and loaded
    back with netlab.load_pcap; pass the experiment and what was loaded."""
    if (fb := unanswered(exp)) is not None or (fb := unanswered(packets)) is not None:
        return fb
    if not isinstance(packets, list):
        return Feedback(False, f"Pass the list netlab.load_pcap returned, not {type(packets).__name__}.")
    sent = b"".join(s.payload for s in exp.conversation.segments if s.direction == CLIENT_TO_SERVER)
    if getattr(exp, "live", False) and sent in (b"", b"Hello, World!"):
        return Feedback(False, "This capture carries the lesson's own message (or none): capture one of your own, "
                               "with a message you choose (`netlab.handshake(message=b\"...\")`).")
    saved = exp.conversation.packets
    if len(packets) != len(saved):
        return Feedback(False, f"The file holds {len(packets)} packets and the experiment {len(saved)}: "
                               "did you load the file you just saved?")
    if [bytes(p) for p in packets] != [bytes(p) for p in saved]:
        return Feedback(False, "As many packets, but not the same bytes: load the file this experiment saved.")
    return Feedback(True, f"The same {len(packets)} packets, byte for byte: a pcap keeps each frame whole, "
                          "with its time stamp.")


@exercise_check
def server_port(exp: Any, answer: Any) -> Feedback:
    """Exercise: the port the server listened on in the student's own capture `exp` (the kernel picks it on each run)."""
    if (fb := unanswered(answer)) is not None:
        return fb
    if isinstance(answer, str):
        return Feedback(False, "Give the port alone, a number (an int), not text.")
    if not whole(answer):
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


@exercise_check
def last_segment_ms(exp: Any, answer: Any) -> Feedback:
    """Exercise: the time (ms) of the last segment in the table of the student's own capture `exp`."""
    if (fb := unanswered(answer)) is not None:
        return fb
    if not number(answer):
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
    return Feedback(False, "Print your capture's table (`print(mine.conversation)`) and read the `time ms` column "
                           "of its last row.")


# --- notebook 01: layers and packets ---


_LINK_MTU = 1500  # the lab's links (netlab.core.topology): what a fragment, IP header included, may fill


@exercise_check
def fragments_prediction(size: Any, answer: Any) -> Feedback:
    """Exercise: predict the fragments, (offset in bytes, data bytes), of one UDP datagram with `size` bytes of payload
    sent with DF off over a 1500-byte link; the check sends it in a fresh lab and reads them off the link."""
    import socket
    import time

    from scapy.layers.inet import IP

    from netlab.core.errors import LabUnavailable
    from netlab.core.lab import Lab
    from netlab.core.topology import Topology

    if (fb := unanswered(size)) is not None or (fb := unanswered(answer)) is not None:
        return fb
    if not whole(size) or not 1500 <= size <= 6000:
        return Feedback(False, "Choose `size` yourself: an int from 1500 to 6000 (bytes of UDP payload).")
    if not isinstance(answer, list) or not all(isinstance(f, tuple) and len(f) == 2 and all(whole(x) for x in f)
                                               for f in answer):
        return Feedback(False, "Give a list of pairs of ints, (offset, length), one per fragment, in order.")
    try:
        lab = Lab()
    except LabUnavailable as err:
        return Feedback(False, f"The check sends your datagram in the lab, and this machine refuses it: {err}")
    with lab:
        lab.check_join()
        with Topology(lab) as net, net.capture("c0") as cap:
            with net.client.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
                # IP_PMTUDISC_DONT: DF off, so the kernel fragments instead of refusing a datagram over the MTU.
                sock.setsockopt(socket.IPPROTO_IP, getattr(socket, "IP_MTU_DISCOVER", 10),
                                getattr(socket, "IP_PMTUDISC_DONT", 0))
                sock.sendto(os.urandom(size), ("10.2.0.2", 9))
                time.sleep(0.3)  # the ARP exchange, then the fragments, on a link in the same machine
    sent = sorted((int(p[IP].frag) * 8, len(p[IP].payload)) for p in cap.packets
                  if p.haslayer(IP) and p[IP].src == "10.1.0.2" and p[IP].proto == 17)
    if not sent:
        return Feedback(False, "The run captured no fragment: run the check again.")
    if answer == sent:
        return Feedback(True, f"{len(sent)} fragments, as the link showed just now: each carries at most "
                              f"{_LINK_MTU} bytes with its 20-byte IP header, cut at a multiple of 8 (the offset "
                              "field counts 8-byte units), and the UDP header travels in the first one only.")
    if sum(n for _, n in answer) == size:
        return Feedback(False, "Your fragments add up to the payload alone: what else did UDP put in the datagram?")
    if len(answer) != len(sent):
        return Feedback(False, f"The link carried another number of fragments: how many data bytes fit in one "
                               f"{_LINK_MTU}-byte packet beside its IP header?")
    if any(offset % 8 for offset, _ in answer):
        return Feedback(False, "An offset that is no multiple of 8 cannot be written in the header: the field counts "
                               "8-byte units.")
    return Feedback(False, "As many fragments, but not the same offsets or lengths: each fragment's offset is where "
                           "the one before it ended.")


@exercise_check
def built_acknowledgement(exp: Any, reply: Any) -> Feedback:
    """Exercise: with scapy, the IP/TCP packet with which the server acknowledges the client's first data packet of
    the student's own capture `exp`; compared with the segment the server really sent (raw numbers: a random ISN)."""
    from scapy.layers.inet import IP, TCP
    from scapy.packet import Packet

    if (fb := unanswered(reply)) is not None:
        return fb
    if not isinstance(reply, Packet) or IP not in reply or TCP not in reply:
        return Feedback(False, "Build the packet with scapy's layers, stacked with `/`: IP(...)/TCP(...).")
    data = exp.conversation.phase("data")
    sent = next((s for s in data if s.direction == CLIENT_TO_SERVER and s.length), None)
    if sent is None:
        return Feedback(False, "Your capture `exp` holds no data from the client: run the capture's cell again.")
    packet = sent.packet
    end = (packet[TCP].seq + len(packet[TCP].payload)) % 2**32
    answer = next((s.packet for s in exp.conversation.segments if s.direction == SERVER_TO_CLIENT
                   and s.packet.time >= packet.time and s.packet[TCP].flags.A and s.packet[TCP].ack == end), None)
    if answer is None:
        return Feedback(False, "In your capture the server never acknowledged the client's data: run the capture's "
                               "cell again.")
    wire = IP(bytes(reply[IP]))  # what a receiver would read
    tcp = wire[TCP]
    problems = []
    if (wire.src, wire.dst) != (answer[IP].src, answer[IP].dst):
        problems.append("the addresses: who sends this packet, and to whom?")
    if (tcp.sport, tcp.dport) != (answer[TCP].sport, answer[TCP].dport):
        problems.append("the ports: the server answers from the port the client's packet went to")
    if tcp.ack != answer[TCP].ack:
        problems.append("ack: the next byte the server expects, a raw number: where the client's packet starts, "
                        "and how many bytes it carries" + (" (ack is the one right after them)"
                                                           if tcp.ack == packet[TCP].seq else ""))
    if tcp.seq != answer[TCP].seq:
        problems.append("seq: the server's next byte, a raw number; the client's packet already says which byte "
                        "it expects from the server" + (" (that is its ack field, not its seq)"
                                                        if tcp.seq == packet[TCP].seq else ""))
    if not tcp.flags.A or tcp.flags & 0x07:  # ACK set; no FIN, SYN or RST
        problems.append("the flags: an acknowledgement has ACK set, and no SYN, FIN or RST")
    if len(tcp.payload):
        problems.append("the payload: an acknowledgement alone carries no data")
    if problems:
        return Feedback(False, "Look again at " + "; ".join(problems) + ".")
    return Feedback(True, "The server's own numbers: seq is the next byte it sends (the client's ack said which), "
                          "ack the byte after the client's data (its seq plus its length). Your capture's raw "
                          "numbers, and no one else's.")


@exercise_check
def frame_length(message: Any, answer: Any) -> Feedback:
    """Exercise: predict the length in bytes of the frame that carries the student's `message`; a fresh capture sends it."""
    if (fb := unanswered(message)) is not None or (fb := unanswered(answer)) is not None:
        return fb
    if not isinstance(message, bytes) or not 1 <= len(message) <= 1000 or len(message) == 13:
        return Feedback(False, "Choose `message` yourself: bytes, 1 to 1000 of them, and not 13 long like b'Hello, World!'.")
    if not whole(answer):
        return Feedback(False, f"Give a number of bytes, an int, not {type(answer).__name__}.")
    from scapy.layers.inet import TCP

    from netlab.lessons.handshake.experiments import handshake

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


@exercise_check
def internet_checksum(func: Any, packet: Any) -> Feedback:
    """Exercise: a function bytes -> the 16-bit Internet checksum (RFC 1071), run on the packet's own IP header and hard cases."""
    if (fb := unanswered(func)) is not None:
        return fb
    if not callable(func):
        return Feedback(False, "Give a function that takes bytes and returns the checksum, an int from 0 to 0xffff.")
    if (name := borrowed(func, {"checksum", "in4_chksum", "chksum"})) is not None:
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
        if not whole(got):
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


# --- notebook 03: the handshake and the teardown ---


@exercise_check
def final_ack_raw(exp: Any, answer: Any) -> Feedback:
    """Exercise: the raw acknowledgement number in the client's last ACK of the student's own capture `exp`."""
    if (fb := unanswered(answer)) is not None:
        return fb
    if not whole(answer):
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


@exercise_check
def delayed_ack(exp: Any, answer: Any) -> Feedback:
    """Exercise: seconds from the client's FIN to the server kernel's lone ACK of it, in the student's own slow-close run."""
    if (fb := unanswered(answer)) is not None:
        return fb
    if not number(answer):
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


@exercise_check
def reliable_close_delay(delay: Any, measured: Any) -> Feedback:
    """Exercise: a close_delay that gives four teardown segments in three fresh runs of three, at most twice `measured`.

    `measured` is the delayed-ACK timer (seconds) the student measured in the exercise before.
    """
    if (fb := unanswered(delay)) is not None or (fb := unanswered(measured)) is not None:
        return fb
    if not number(delay) or not number(measured):
        return Feedback(False, "Give `close_delay` in seconds, a number, and keep `delayed_ack` from exercise 2.")
    if not 0.02 <= measured <= 0.5:
        return Feedback(False, "Your `delayed_ack` is not a delayed-ACK time in seconds: do exercise 2 first.")
    if delay <= measured:
        return Feedback(False, "Not longer than the delayed ACK you measured: the server's FIN would leave before "
                               "the ACK and carry it.")
    if delay > 2 * measured:
        return Feedback(False, f"{delay} s works, but it is more than twice the delayed ACK you measured. What must "
                               "happen before the server closes? Wait only a little longer than that.")
    from netlab.lessons.handshake.experiments import handshake

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
