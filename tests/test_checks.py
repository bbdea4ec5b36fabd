"""The exercise checks: a right answer is confirmed; a wrong one gets a hint, never the answer.

The answers are derived from the protocol on the shipped recordings: the handshake completes
with segment 3 (the client's ACK of the SYN-ACK); after 13 bytes the server acks 14 (the SYN
used one number); the client, which sent the first FIN, is the side left in TIME-WAIT.
"""

from __future__ import annotations

import re

import pytest
from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether
from scapy.packet import Raw

import netlab
from netlab import checks
from netlab.checks import Feedback
from netlab.core.conversation import Conversation
from netlab.core.experiment import Experiment
from netlab.core.lab import SocketState

NOT_ANSWERED = "Not answered yet"


@pytest.fixture(scope="module")
def exp():
    return netlab.load_recorded("handshake")


@pytest.fixture(scope="module")
def slow():
    return netlab.load_recorded("handshake-slow-close")


def assert_right(fb: Feedback) -> None:
    assert isinstance(fb, Feedback)
    assert fb and fb.ok
    assert repr(fb).startswith("✔ ")


def assert_wrong(fb: Feedback, *, not_saying: str | None = None) -> str:
    assert isinstance(fb, Feedback)
    assert not fb and not fb.ok
    assert repr(fb).startswith("✘ ")
    assert fb.message.strip()
    if not_saying is not None:
        assert not re.search(rf"\b{re.escape(not_saying)}\b", fb.message), fb.message
    return fb.message


def test_feedback_is_true_only_when_right():
    assert bool(Feedback(True, "yes")) and not bool(Feedback(False, "no"))
    assert repr(Feedback(True, "yes")) == "✔ yes"
    assert repr(Feedback(False, "no")) == "✘ no"


@pytest.mark.parametrize("check", [checks.handshake_completer, checks.server_ack_after_hello])
@pytest.mark.parametrize("answer", [..., None])
def test_unanswered_conversation_exercises(exp, check, answer):
    fb = check(exp.conversation, answer)
    assert not fb and NOT_ANSWERED in fb.message


@pytest.mark.parametrize("answer", [..., None])
def test_unanswered_time_wait_side(exp, answer):
    fb = checks.time_wait_side(exp, answer)
    assert not fb and NOT_ANSWERED in fb.message


# ---------------------------------------------------------------------------
# handshake_completer: the third segment, the client's ACK of the SYN-ACK


@pytest.mark.parametrize("name", ["handshake", "handshake-slow-close"])
def test_handshake_completer_accepts_the_clients_ack(name):
    conv = netlab.load_recorded(name).conversation
    assert conv.flags()[:3] == ["SYN", "SYN-ACK", "ACK"]
    fb = checks.handshake_completer(conv, 3)
    assert_right(fb)
    assert "ESTABLISHED" in fb.message


def test_handshake_completer_on_the_syn(exp):
    msg = assert_wrong(checks.handshake_completer(exp.conversation, 1), not_saying="3")
    assert "SYN" in msg


def test_handshake_completer_on_the_syn_ack(exp):
    msg = assert_wrong(checks.handshake_completer(exp.conversation, 2), not_saying="3")
    assert "SYN" in msg and "one more segment" in msg


@pytest.mark.parametrize("answer", [4, 7, 10])
def test_handshake_completer_on_a_later_segment_says_look_earlier(exp, answer):
    msg = assert_wrong(checks.handshake_completer(exp.conversation, answer), not_saying="3")
    assert "earlier" in msg
    assert exp.conversation.segments[answer - 1].flags in msg


@pytest.mark.parametrize("answer", [0, 11, -1])
def test_handshake_completer_on_a_segment_that_does_not_exist(exp, answer):
    msg = assert_wrong(checks.handshake_completer(exp.conversation, answer), not_saying="3")
    assert f"no segment {answer}" in msg and "1 to 10" in msg


@pytest.mark.parametrize("answer", ["3", 3.0, True])
def test_handshake_completer_wants_an_int(exp, answer):
    msg = assert_wrong(checks.handshake_completer(exp.conversation, answer))
    assert "int" in msg and type(answer).__name__ in msg


def test_handshake_completer_without_a_handshake():
    conv = netlab.load_recorded("refused").conversation
    msg = assert_wrong(checks.handshake_completer(conv, 2))
    assert "no complete handshake" in msg


def _segment(src, dst, flags, seq, ack=0, data=b""):
    pkt = Ether() / IP(src=src[0], dst=dst[0]) / TCP(sport=src[1], dport=dst[1], flags=flags, seq=seq, ack=ack)
    return Ether(bytes(pkt / Raw(data) if data else pkt))


def test_handshake_completer_when_the_third_segment_carries_data():
    c, s = ("10.0.0.1", 40000), ("10.0.0.2", 80)
    conv = Conversation([
        _segment(c, s, "S", 10), _segment(s, c, "SA", 20, 11),
        _segment(c, s, "PA", 11, 21, b"GET /"), _segment(s, c, "A", 21, 16),
    ])
    assert_right(checks.handshake_completer(conv, 3))
    assert_wrong(checks.handshake_completer(conv, 4), not_saying="3")


# ---------------------------------------------------------------------------
# server_ack_after_hello: seq 1 plus 13 bytes = 14


@pytest.mark.parametrize("name", ["handshake", "handshake-slow-close"])
def test_server_ack_after_hello_accepts_14(name):
    conv = netlab.load_recorded(name).conversation
    hello = next(s for s in conv.segments if s.direction == "C→S" and s.length)
    assert (hello.seq, hello.length) == (1, len(b"Hello, World!"))
    fb = checks.server_ack_after_hello(conv, 14)
    assert_right(fb)
    # The server's ACK in the capture says the same.
    assert any(s.direction == "S→C" and s.ack == 14 for s in conv.segments)


def test_server_ack_after_hello_when_forgetting_the_syn(exp):
    msg = assert_wrong(checks.server_ack_after_hello(exp.conversation, 13), not_saying="14")
    assert "SYN" in msg


@pytest.mark.parametrize("answer", [1, 15, 27, 0])
def test_server_ack_after_hello_other_wrong_numbers(exp, answer):
    assert_wrong(checks.server_ack_after_hello(exp.conversation, answer), not_saying="14")


def test_server_ack_after_hello_with_the_raw_number(exp):
    raw = exp.conversation.segments[4].packet[TCP].ack  # the server's ACK, not relative
    assert_wrong(checks.server_ack_after_hello(exp.conversation, raw), not_saying="14")


def test_server_ack_after_hello_when_the_client_sent_nothing():
    conv = netlab.load_recorded("refused").conversation
    msg = assert_wrong(checks.server_ack_after_hello(conv, 14))
    assert "no data" in msg


# ---------------------------------------------------------------------------
# time_wait_side: the side that closed first, read from the kernel's `ss`


@pytest.mark.parametrize("name", ["handshake", "handshake-slow-close"])
def test_time_wait_side_is_the_client_in_the_recordings(name):
    exp = netlab.load_recorded(name)
    assert exp.conversation.closed_first == "client"
    [waiting] = [s for s in exp.kernel_states if s.state == "TIME-WAIT"]
    assert waiting.local == exp.conversation.client  # the recorded `ss` agrees
    assert_right(checks.time_wait_side(exp, "client"))


def test_time_wait_side_wrong_side_points_at_the_addresses(exp):
    msg = assert_wrong(checks.time_wait_side(exp, "server"))
    # It names both sides, so it does not give away which.
    assert "client" in msg and "server" in msg and "TIME-WAIT" in msg


@pytest.mark.parametrize("answer", ["Alice", "both", 1])
def test_time_wait_side_wants_client_or_server(exp, answer):
    msg = assert_wrong(checks.time_wait_side(exp, answer))
    assert "'client' or 'server'" in msg


def test_time_wait_side_when_the_server_closed_first(exp):
    conv = exp.conversation
    server_waits = Experiment(exp.packets, source="recorded", why="test",
                              kernel_states=[SocketState("TIME-WAIT", conv.server, conv.client)])
    assert_right(checks.time_wait_side(server_waits, "server"))
    assert_wrong(checks.time_wait_side(server_waits, "client"))


def test_time_wait_side_without_a_time_wait_socket(exp):
    nothing = Experiment(exp.packets, source="recorded", why="test", kernel_states=[])
    msg = assert_wrong(checks.time_wait_side(nothing, "client"))
    assert "no TIME-WAIT" in msg


# ---------------------------------------------------------------------------
# four_segment_teardown: FIN, ACK, FIN, ACK when the server waits before closing


def test_four_segment_teardown_accepts_the_slow_close(slow):
    fb = checks.four_segment_teardown(slow)
    assert_right(fb)
    assert "FIN-ACK, ACK, FIN-ACK, ACK" in fb.message


def test_four_segment_teardown_with_three_segments_says_wait_longer(exp):
    msg = assert_wrong(checks.four_segment_teardown(exp))
    assert "three" in msg.lower() and "longer" in msg


def test_four_segment_teardown_without_a_teardown():
    msg = assert_wrong(checks.four_segment_teardown(netlab.load_recorded("refused")))
    assert "0 segments" in msg and "client closes" in msg


# ---------------------------------------------------------------------------
# Notebook 05: segments per write, the first RTO, the first zero-window probe, window / RTT.
# The expected values are worked out here from the rules, not read from netlab.checks.


@pytest.mark.parametrize("check", [
    lambda answer: checks.segments_for_write(50_000, answer),
    lambda answer: checks.first_rto(0.3, answer),
    lambda answer: checks.window_throughput(8760, 0.050, answer),
    lambda answer: checks.first_window_probe(netlab.load_recorded("handshake").conversation, answer),
])
@pytest.mark.parametrize("answer", [..., None])
def test_unanswered_notebook_05_exercises(check, answer):
    assert NOT_ANSWERED in assert_wrong(check(answer))


@pytest.mark.parametrize("size, mss, segments", [
    (50_000, 1460, 35),  # 34 full segments (49 640 bytes), and 360 bytes left over
    (2920, 1460, 2),     # an exact multiple: nothing left over
    (1, 1460, 1),
    (3000, 1448, 3),     # with timestamps on, the MSS of a 1500-byte link carries 1448 bytes
])
def test_segments_for_write_accepts_the_rounded_up_quotient(size, mss, segments):
    fb = checks.segments_for_write(size, segments, mss=mss)
    assert_right(fb)
    assert f"{segments} segments" in fb.message


def test_segments_for_write_on_the_full_segments_only_says_the_rest_travels_too():
    msg = assert_wrong(checks.segments_for_write(50_000, 34), not_saying="35")
    assert "left over" in msg


@pytest.mark.parametrize("answer", [36, 0, 50_000 // 1460 * 1460, 3])
def test_segments_for_write_other_wrong_counts_point_at_the_mss(answer):
    msg = assert_wrong(checks.segments_for_write(50_000, answer), not_saying="35")
    assert "MSS" in msg and "1460" in msg


@pytest.mark.parametrize("answer", [50_000 / 1460, 35.0, "35", True])
def test_segments_for_write_wants_an_int(answer):
    msg = assert_wrong(checks.segments_for_write(50_000, answer), not_saying="35")
    assert "int" in msg and type(answer).__name__ in msg


@pytest.mark.parametrize("sample, granularity, rto", [
    (0.3, 0.001, 0.9),         # SRTT = 0.3, RTTVAR = 0.15: 0.3 + 4 × 0.15
    (0.05, 0.001, 0.15),
    (1, 0.001, 3),             # whole seconds are numbers too
    (0.0001, 0.001, 0.0011),   # 4 × RTTVAR = 0.0002 s is below the clock's granularity, which wins
])
def test_first_rto_accepts_srtt_plus_four_rttvar(sample, granularity, rto):
    fb = checks.first_rto(sample, rto, granularity=granularity)
    assert_right(fb)
    assert f"{rto:g} s" in fb.message


def test_first_rto_on_the_one_second_minimum_says_it_comes_afterwards():
    msg = assert_wrong(checks.first_rto(0.3, 1.0), not_saying="0.9")
    assert "minimum" in msg


@pytest.mark.parametrize("answer", [0.3 + 0.001, 0.3 * 1.5])  # RTTVAR forgotten, or counted once
def test_first_rto_with_rttvar_wrong_points_at_rttvar(answer):
    msg = assert_wrong(checks.first_rto(0.3, answer), not_saying="0.9")
    assert "RTTVAR" in msg and "R/2" in msg


@pytest.mark.parametrize("answer", [0.3, 0.6, 1.2, 0.91, 0])
def test_first_rto_other_wrong_values_get_the_rule_not_the_value(answer):
    msg = assert_wrong(checks.first_rto(0.3, answer), not_saying="0.9")
    assert "SRTT = R" in msg


@pytest.mark.parametrize("answer", ["0.9", [0.9], True])
def test_first_rto_wants_a_number(answer):
    msg = assert_wrong(checks.first_rto(0.3, answer), not_saying="0.9")
    assert "number" in msg and type(answer).__name__ in msg


@pytest.mark.parametrize("answer", [175_200, 175_200.0, 174_000, 176_500])  # 8760 B / 0.05 s, within 1 %
def test_window_throughput_accepts_one_window_per_round_trip(answer):
    assert_right(checks.window_throughput(8760, 0.050, answer))


@pytest.mark.parametrize("answer, words", [
    (8760 * 0.050, "divide by the RTT"),      # 438: multiplied
    (175.2, "bytes per second"),              # kB/s
    (175_200 * 8, "bytes per second"),        # bits per second
    (8760, "one round trip"),                 # the window alone
    (172_000, "one round trip"),              # 1.8 % off: not close enough
])
def test_window_throughput_wrong_answers_get_a_hint_without_the_value(answer, words):
    msg = assert_wrong(checks.window_throughput(8760, 0.050, answer))
    assert words in msg
    assert not re.search(r"175[, ]?200|175\.2", msg), msg


@pytest.mark.parametrize("answer", ["175200", [175_200], False])
def test_window_throughput_wants_a_number(answer):
    msg = assert_wrong(checks.window_throughput(8760, 0.050, answer))
    assert "number" in msg and type(answer).__name__ in msg


@pytest.fixture(scope="module")
def flow():
    """Notebook 05's flow-control recording: the peer's window closes, the kernel probes it."""
    return netlab.load_recorded("transfer-window").conversation


def first_probe_by_hand(conv: Conversation) -> int:
    """The first empty C→S segment after the peer advertised a window of 0, with an already-sent seq."""
    closed = next(s for s in conv.segments if s.direction == "S→C" and s.window == 0)
    return next(s.number for s in conv.segments[closed.number:]
                if s.direction == "C→S" and s.length == 0 and s.seq < closed.ack and not s.has("FIN"))


def test_first_window_probe_accepts_the_first_empty_segment_into_a_zero_window(flow):
    answer = first_probe_by_hand(flow)
    fb = checks.first_window_probe(flow, answer)
    assert_right(fb)
    assert f"Segment {answer}" in fb.message


def test_first_window_probe_on_the_peers_zero_window_ack(flow):
    answer = first_probe_by_hand(flow)
    zero = next(s for s in flow.segments if s.direction == "S→C" and s.window == 0)
    msg = assert_wrong(checks.first_window_probe(flow, zero.number), not_saying=str(answer))
    assert "from the peer" in msg


def test_first_window_probe_on_a_data_segment(flow):
    answer = first_probe_by_hand(flow)
    data = [s for s in flow.segments if s.direction == "C→S" and s.length][-1]
    msg = assert_wrong(checks.first_window_probe(flow, data.number), not_saying=str(answer))
    assert "carries data" in msg


def test_first_window_probe_on_an_empty_segment_sent_into_an_open_window(flow):
    answer = first_probe_by_hand(flow)
    msg = assert_wrong(checks.first_window_probe(flow, 3), not_saying=str(answer))  # the handshake's ACK
    assert "zero window" in msg


def test_first_window_probe_on_a_later_probe_says_look_earlier(flow):
    answer = first_probe_by_hand(flow)
    later = [s.number for s in flow.segments if s.window_probe and s.number != answer]
    assert later, flow.table()
    msg = assert_wrong(checks.first_window_probe(flow, later[0]), not_saying=str(answer))
    assert "earlier" in msg and "not sent into a zero window" not in msg


@pytest.mark.parametrize("answer", [0, 999, -1])
def test_first_window_probe_on_a_segment_that_does_not_exist(flow, answer):
    msg = assert_wrong(checks.first_window_probe(flow, answer), not_saying=str(first_probe_by_hand(flow)))
    assert f"no segment {answer}" in msg and f"1 to {len(flow.segments)}" in msg


@pytest.mark.parametrize("answer", ["24", 24.0, True])
def test_first_window_probe_wants_an_int(flow, answer):
    msg = assert_wrong(checks.first_window_probe(flow, answer))
    assert "int" in msg and type(answer).__name__ in msg


def test_first_window_probe_in_a_capture_without_probes():
    msg = assert_wrong(checks.first_window_probe(netlab.load_recorded("handshake").conversation, 3))
    assert "no zero-window probe" in msg
