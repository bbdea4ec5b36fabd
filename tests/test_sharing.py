"""Notebook 14's lesson (in progress): Jain's index, and RED and CoDel acting on the delay line's queue."""

from __future__ import annotations

import functools

import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether
from scapy.packet import Raw

from netlab.core.bottleneck import Bottleneck, send_sampled
from netlab.core.inlab.delayline import Packet, discipline_class
from netlab.core.lab import Lab
from netlab.lessons.sharing.fairness import jain_index, shares
from netlab.lessons.sharing.flows import two_flows
from netlab.lessons.sharing.queues import CoDel, Red


@functools.cache
def frame(tos: int = 0) -> bytes:
    return bytes(Ether() / IP(src="10.0.0.1", dst="10.0.0.2", tos=tos) / UDP(sport=1000, dport=2000) / Raw(b"x" * 1000))


def run_link(queue, arrivals_per_send: int, sends: int, gap: float = 0.001, tos: int = 0) -> list[tuple[float, Packet]]:
    """Offer `arrivals_per_send` packets per `gap` to a link that sends one per `gap`; what it sent, and when."""
    queue.started = 0.0  # the log's times count from the simulated start
    sent, now = [], 0.0
    for _ in range(sends):
        for _ in range(arrivals_per_send):
            queue.enqueue(Packet(frame(tos), now), now)
        packet = queue.dequeue(now)
        if packet is not None:
            sent.append((now, packet))
        now += gap
    return sent


def test_jain_index_is_one_for_equal_shares_and_one_over_n_for_a_monopoly():
    assert jain_index([3.0, 3.0, 3.0]) == pytest.approx(1.0)
    assert jain_index([9.0, 0.0, 0.0]) == pytest.approx(1 / 3)
    assert jain_index([3.0, 1.0]) == pytest.approx(16 / 20)
    assert shares([3.0, 1.0]) == [0.75, 0.25]
    for bad in ([], [0.0, 0.0], [1.0, -1.0]):
        with pytest.raises(ValueError):
            jain_index(bad)


def test_the_delay_line_finds_the_lessons_disciplines_by_module_path():
    assert discipline_class("netlab.lessons.sharing.queues:CoDel") is CoDel
    assert discipline_class("netlab.lessons.sharing.queues:Red") is Red


def test_codel_leaves_a_queue_that_drains_alone():
    codel = CoDel(limit=1000)
    sent = run_link(codel, arrivals_per_send=1, sends=500)
    assert len(sent) == 500 and codel.dropped == 0 and codel.marked == 0


def test_codel_drops_only_after_the_sojourn_stays_above_target_for_an_interval_then_faster():
    codel = CoDel(limit=10_000)
    run_link(codel, arrivals_per_send=2, sends=1000)  # the queue grows by one packet a millisecond
    drops = [when for when, what in codel.log if what.startswith("dropped")]
    assert codel.dropped == len(drops) > 3
    # The sojourn passes 5 ms at about 5 ms; the first drop waits a further interval (100 ms).
    assert 0.100 <= drops[0] <= 0.110
    gaps = [b - a for a, b in zip(drops, drops[1:])]
    assert gaps[0] == pytest.approx(0.1, abs=0.002)  # interval/√1 after the first...
    assert gaps[-1] < gaps[0] / 2  # ...then interval/√count: faster and faster
    assert all(sojourn >= 0 for _, sojourn in codel.sojourns)


def test_codel_marks_an_ecn_capable_packet_instead_of_dropping_it():
    codel = CoDel(limit=10_000)
    sent = run_link(codel, arrivals_per_send=2, sends=400, tos=0b10)  # ECT(0)
    assert codel.dropped == 0 and codel.marked > 0
    ce = [p for _, p in sent if p.frame[14 + 1] & 0b11 == 0b11]
    assert len(ce) == codel.marked


def test_red_drops_early_between_its_thresholds_but_not_below():
    red = Red(limit=100, min_th=10, max_th=60, max_p=0.2, weight=0.05, seed=1)
    run_link(red, arrivals_per_send=2, sends=300)
    early = [what for _, what in red.log if "early" in what]
    assert early and red.dropped >= len(early)
    assert len(red.packets) < red.limit  # early drops kept it from filling
    calm = Red(limit=100, min_th=10, max_th=60)
    run_link(calm, arrivals_per_send=1, sends=300)
    assert calm.dropped == 0


@pytest.mark.parametrize("cls, options", [(CoDel, {"target": 0.2, "interval": 0.1}), (Red, {"min_th": 50, "max_th": 10}),
                                          (Red, {"max_p": 0}), (CoDel, {"quantum": 3})])
def test_bad_options_are_one_clear_error(cls, options):
    with pytest.raises((ValueError, TypeError)):
        cls(limit=100, **options)


@pytest.mark.lab
def test_codel_in_the_delay_line_keeps_the_small_connections_round_trip_near_the_paths(nothing_left_behind):
    """Behind drop-tail a bulk transfer's standing queue adds 100 ms to the probe; behind CoDel it stays near target."""
    medians = {}
    with Lab() as lab:
        for discipline in ("droptail", "netlab.lessons.sharing.queues:CoDel"):
            with Bottleneck(lab, rate=5e6, queue=200, rtt=0.03, capture=False, discipline=discipline) as path:
                with path.connect("cubic") as bulk, path.probe(every=0.02) as probe:
                    send_sampled(bulk, seconds=1.5)
            rtts = sorted(rtt for _, rtt in probe.samples)
            medians[discipline] = rtts[len(rtts) // 2]
            if discipline != "droptail":
                assert path.report.queue_drops > 0
                assert any("sojourn above 5 ms" in what for _, what in path.report.queue_log)
    assert medians["droptail"] > 0.03 + 0.05
    assert medians["netlab.lessons.sharing.queues:CoDel"] < 0.03 + 0.03


@pytest.mark.lab
def test_two_cubic_flows_started_apart_share_the_bottleneck(nothing_left_behind):
    with Lab() as lab:
        shared = two_flows(lab, ("cubic", "cubic"), rate=5e6, queue=100, rtt=0.03, seconds=2.5, apart=0.5)
    first, second = shared.throughputs()
    assert 0.6 * 5e6 < first + second < 1.1 * 5e6  # together they fill the link, and no more
    assert second > 0.1 * 5e6  # the late flow's slow start takes a share
    assert 0.5 < shared.jain() <= 1.0
    with pytest.raises(ValueError, match="apart"):
        two_flows(lab, apart=3.0, seconds=2.0)
