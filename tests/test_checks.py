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
