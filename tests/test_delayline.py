"""The delay line: impairments repeatable by seed, corruption that reaches the program, its own queue.

Unit tests drive one direction (`_Way`) with frames built by scapy and a clock the test sets;
the live tests run it on the bottleneck's link, between the lab and a real Linux receiver.
"""

from __future__ import annotations

import random
import re
import sys

import pytest
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether
from scapy.packet import Raw

from netlab.core.bottleneck import Bottleneck, send_sampled
from netlab.core.conversation import Conversation
from netlab.core.delayline import DelayLine
from netlab.core.inlab.delayline import Direction, DropTail, Packet, _corrupt, _Way, discipline_class
from netlab.core.lab import Lab
from netlab.core.sockets import recv_exactly


def udp_frame(payload: bytes = b"x" * 100, tos: int = 0) -> bytes:
    return bytes(Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") / IP(src="10.0.0.1", dst="10.0.0.2", tos=tos)
                 / UDP(sport=1000, dport=2000) / Raw(payload))


def run_way(spec: Direction, frames: list[bytes]) -> tuple[list[tuple[float, bytes]], list[str]]:
    """Pass `frames` (1 ms apart) through one direction; return what it holds to send (when, frame) and its log."""
    held, log = [], []
    way = _Way("forward", spec.to_order(), out=None, started=0.0, note=log.append)
    for n, frame in enumerate(frames):
        way.arrive(frame, n * 0.001, lambda when, f, _way: held.append((when, f)))
    return held, log


def test_the_same_seed_loses_the_same_frames_and_another_seed_others():
    frames = [udp_frame(bytes([n]) * 50) for n in range(200)]
    first = run_way(Direction(loss=0.2, seed=7), frames)[1]
    again = run_way(Direction(loss=0.2, seed=7), frames)[1]
    other = run_way(Direction(loss=0.2, seed=8), frames)[1]
    assert first == again
    assert first != other
    assert 20 < len(first) < 60  # about a fifth of 200


def test_a_duplicated_frame_is_held_twice_and_a_reordered_one_longer():
    frames = [udp_frame(bytes([n]) * 50) for n in range(50)]
    held, log = run_way(Direction(delay=0.01, duplicate=0.1, reorder=0.1, reorder_gap=0.02, seed=1), frames)
    duplicated = [line for line in log if "duplicated" in line]
    reordered = [line for line in log if "reordered" in line]
    assert duplicated and reordered
    assert len(held) == len(frames) + len(duplicated)
    late = [when - frames.index(frame) * 0.001 for when, frame in held]
    assert sorted({round(d, 6) for d in late}) == [0.01, 0.03]  # the delay, or the delay and the gap
    sent_order = [frame for _, frame in sorted(held, key=lambda h: h[0])]
    assert sent_order != [frame for _, frame in held]  # later frames overtook the reordered ones


@pytest.mark.parametrize("packet", [
    IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=1, dport=2) / Raw(b"hello world" * 3),
    IP(src="10.0.0.1", dst="10.0.0.2") / TCP(sport=1, dport=2, flags="PA") / Raw(b"hello world" * 3),
    IPv6(src="fd00::1", dst="fd00::2") / UDP(sport=1, dport=2) / Raw(b"hello world" * 3),
    IPv6(src="fd00::1", dst="fd00::2") / TCP(sport=1, dport=2, flags="PA") / Raw(b"hello world" * 3),
], ids=["udp", "tcp", "udp6", "tcp6"])
def test_corruption_flips_one_payload_bit_and_keeps_the_checksum_valid(packet):
    frame = bytes(Ether() / packet)
    changed, said = _corrupt(frame, random.Random(3), keep_checksum=True)
    assert "checksum recomputed" in said
    layer = TCP if TCP in packet else UDP
    got = Ether(changed)
    assert sum(bin(a ^ b).count("1") for a, b in zip(got[Raw].load, packet[Raw].load)) == 1  # one payload bit
    sent = got[layer].chksum
    del got[layer].chksum
    assert Ether(bytes(got))[layer].chksum == sent  # what the receiving kernel computes


def test_corruption_without_keep_checksum_leaves_a_checksum_the_receiver_rejects():
    frame = udp_frame()
    changed, _ = _corrupt(frame, random.Random(3), keep_checksum=False)
    got = Ether(changed)
    sent = got[UDP].chksum
    del got[UDP].chksum
    assert Ether(bytes(got))[UDP].chksum != sent


def test_a_header_only_frame_is_never_corrupted():
    ack = bytes(Ether() / IP(src="10.0.0.1", dst="10.0.0.2") / TCP(sport=1, dport=2, flags="A"))
    held, log = run_way(Direction(corrupt=1.0, seed=1), [ack] * 5)
    assert [frame for _, frame in held] == [ack] * 5 and not log


def test_drop_tail_loses_what_finds_the_queue_full():
    queue = DropTail(limit=3)
    for n in range(5):
        queue.enqueue(Packet(udp_frame(), n * 0.001), n * 0.001)
    assert (len(queue.packets), queue.dropped) == (3, 2)
    assert queue.dequeue(0.01).arrived == 0.0  # first in, first out
    assert queue.bytes == 2 * len(udp_frame())


def test_an_ecn_capable_packet_is_marked_ce_with_a_valid_ip_checksum():
    ect = Packet(udp_frame(tos=0x02), 0.0)  # ECT(0)
    assert ect.mark_ce()
    ip = Ether(ect.frame)[IP]
    assert ip.tos & 3 == 3
    sent = ip.chksum
    del ip.chksum
    assert IP(bytes(ip))[IP].chksum == sent
    assert not Packet(udp_frame(tos=0), 0.0).mark_ce()  # not ECN-capable: the discipline must drop it


def test_the_rate_limit_sends_one_frame_per_transmission_time():
    spec = Direction(rate=1e6, queue=10, delay=0.0)
    way = _Way("forward", spec.to_order(), out=None, started=0.0, note=lambda _: None)
    held = []

    def hold(when, frame, _way):
        held.append(when)

    frame = udp_frame(b"x" * 1000)  # 1042 bytes: 8.336 ms at 1 Mbit/s
    for _ in range(4):
        way.arrive(frame, 0.0, hold)
    now = 0.0
    while way.queue.packets:
        now = way.serve(now, hold) or now
    assert [round(t, 6) for t in held] == [round(n * len(frame) * 8 / 1e6, 6) for n in range(1, 5)]


@pytest.mark.parametrize(("spec", "words"), [
    (Direction(loss=1.5), "forward's loss must be a probability from 0 to 1, not 1.5"),
    (Direction(delay=-1), "forward's delay must be in seconds"),
    (Direction(rate=5), "forward's rate must be in bits/s"),
    (Direction(discipline="fifo"), "forward's discipline must be one of droptail or 'package.module:Class'"),
    (Direction(seed="x"), "forward's seed must be an integer or None"),
    (Direction(drops=[0]), "forward's drops must be data segments' numbers, from 1"),
    (Direction(outage=(5, -1)), "forward's outage must be (first data segment, seconds)"),
    (Direction(port=70000), "forward's port must be a TCP port from 1 to 65535"),
    (Direction(rate=1e6, discipline="netlab.nothing:Red"), "forward's discipline 'netlab.nothing:Red' cannot be imported"),
    (Direction(rate=1e6, discipline="netlab.core.inlab.delayline:Packet"),
     "forward's discipline: netlab.core.inlab.delayline:Packet is not a Discipline class"),
])
def test_bad_directions_are_refused_in_one_line(spec, words):
    with pytest.raises(ValueError, match="^" + re.escape(words)):
        spec.check("forward")


def test_a_discipline_is_found_by_its_module_path_and_must_be_one():
    assert discipline_class("netlab.core.inlab.delayline:DropTail") is DropTail
    with pytest.raises(ValueError, match="is not a Discipline class"):
        discipline_class("netlab.core.inlab.delayline:Packet")


def test_a_bad_capture_point_is_refused_before_anything_starts():
    with pytest.raises(ValueError, match="capture must be 'a', 'b' or None"):
        DelayLine(lambda *a, **k: None, "x0", "x1", capture="c")


# ---------------------------------------------------------------------------
# Live, on the bottleneck's link.

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="the lab is a Linux network namespace")

@pytest.mark.lab
def test_corruption_that_keeps_the_checksum_reaches_the_echoing_program(nothing_left_behind):
    message = bytes(range(256)) * 4
    with Lab() as lab:
        with Bottleneck(lab, rate=10e6, rtt=0.01, forward=Direction(corrupt=1.0, seed=5)) as path:
            with path.connect(address=path.echo) as sock:
                sock.sendall(message)
                echoed = recv_exactly(sock, len(message))
    assert path.report.forward["corrupted"] >= 1
    differing = sum(bin(a ^ b).count("1") for a, b in zip(message, echoed))
    assert differing == path.report.forward["corrupted"]  # one flipped bit per corrupted segment, delivered
    conv = Conversation.from_packets(path.report.packets)
    assert not conv.retransmissions() and conv.causality == []


@pytest.mark.lab
def test_the_delay_lines_own_queue_paces_at_the_rate_and_drops_at_its_limit(nothing_left_behind):
    with Lab() as lab:
        with Bottleneck(lab, rate=5e6, queue=20, rtt=0.02, discipline="droptail") as path:
            with path.connect("cubic") as sock:
                sent, samples = send_sampled(sock, seconds=1.5)
    report = path.report
    assert report.queue_drops > 0  # a 20-packet queue overflows under a bulk sender
    assert report.queue_log and "queue full" in report.queue_log[0][1]
    acked = samples[-1].bytes_acked
    assert 0.6 * 5e6 / 8 * 1.5 < acked < 1.2 * 5e6 / 8 * 1.5 + 200_000  # about the rate, not the veth's speed
    assert Conversation.from_packets(report.packets).causality == []


@pytest.mark.lab
def test_the_rtt_probe_sees_the_queue_a_bulk_transfer_fills(nothing_left_behind):
    """The bufferbloat probe (in the core, for any lesson): its round trip grows from the path's by the queue's wait."""
    with Lab() as lab:
        with Bottleneck(lab, rate=5e6, queue=200, rtt=0.03, capture=False) as path:
            with path.connect("cubic") as bulk, path.probe(every=0.02) as probe:
                send_sampled(bulk, seconds=1.0)
    rtts = [rtt for _, rtt in probe.samples]
    assert len(rtts) >= 5
    assert min(rtts) >= 0.03 * 0.9  # never below the path's own round trip
    assert max(rtts) > 0.03 + 0.05  # 200 packets at 5 Mbit/s can hold 0.48 s: it waited in the queue


def test_a_frame_reaching_an_idle_rate_limited_link_takes_its_whole_transmission_time():
    """The catch-up for a late program never gives a frame on an idle link a head start (#30)."""
    frame = udp_frame(b"x" * 1000)
    spec = Direction(delay=0.01, rate=2e6, queue=10)
    way = _Way("forward", spec.to_order(), out=None, started=0.0, note=lambda what: None)
    held = []
    way.arrive(frame, 1.0, lambda when, f, _way: held.append(when))
    way.serve(1.0, lambda when, f, _way: held.append(when))
    assert held == [pytest.approx(1.0 + len(frame) * 8 / 2e6 + 0.01)]
