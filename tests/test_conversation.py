"""The analysis of a TCP conversation, checked against the protocol and against scapy itself.

Two kinds of evidence:
- the recordings shipped in netlab/data (real captures on loopback), whose numbers are derived
  here from the protocol and cross-checked against the raw scapy fields of the same packets;
- synthetic conversations built with scapy, where the test chooses every number (ISNs next to
  2**32, window scales, who closes first, resets, retransmissions, Ethernet padding).
"""

from __future__ import annotations

import pytest
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.l2 import Ether
from scapy.packet import Padding, Raw

from netlab.core.conversation import (
    Conversation,
    ConversationError,
    NoHandshakeError,
    conversations,
    flag_words,
)
from netlab.core.pcapfiles import recorded_packets as recorded

C2S, S2C = "C→S", "S→C"
CLIENT = ("10.0.0.1", 40000)
SERVER = ("10.0.0.2", 80)
MOD = 2**32


def segment(src, dst, flags, seq, ack=0, data=b"", *, window=8192, options=(), time=0.0, padding=b""):
    """One TCP segment as a capture holds it: built, then dissected again from its bytes."""
    pkt = (Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
           / IP(src=src[0], dst=dst[0])
           / TCP(sport=src[1], dport=dst[1], flags=flags, seq=seq % MOD, ack=ack % MOD,
                 window=window, options=list(options)))
    if data:
        pkt = pkt / Raw(data)
    if padding:
        pkt = pkt / Padding(padding)
    pkt = Ether(bytes(pkt))
    pkt.time = time
    return pkt


def c2s(flags, seq, ack=0, data=b"", **kw):
    return segment(CLIENT, SERVER, flags, seq, ack, data, **kw)


def s2c(flags, seq, ack=0, data=b"", **kw):
    return segment(SERVER, CLIENT, flags, seq, ack, data, **kw)


def handshake(cisn, sisn, **kw):
    """SYN, SYN-ACK, ACK: each SYN uses up one sequence number."""
    return [c2s("S", cisn, **kw), s2c("SA", sisn, cisn + 1, **kw), c2s("A", cisn + 1, sisn + 1, **kw)]


def walk_states(walk):
    return [state for _, state in walk]


# ---------------------------------------------------------------------------
# Flags in words


@pytest.mark.parametrize("flags, words", [
    ("S", "SYN"), ("SA", "SYN-ACK"), ("A", "ACK"), ("PA", "PSH-ACK"), ("FA", "FIN-ACK"),
    ("R", "RST"), ("RA", "RST-ACK"), ("FPA", "FIN-PSH-ACK"), ("", "none"),
    ("SEC", "SYN-ECE-CWR"), ("AE", "ECE-ACK"),
])
def test_flag_words_name_flags_the_way_people_say_them(flags, words):
    assert flag_words(flags) == words
    assert flag_words(TCP(flags=flags).flags) == words  # scapy's own FlagValue too


# ---------------------------------------------------------------------------
# The shipped recording of a handshake, one message each way, and the teardown


@pytest.fixture(scope="module")
def recorded_handshake():
    return Conversation.from_packets(recorded("handshake"), source="recorded")


@pytest.mark.slow
def test_recorded_handshake_has_the_ten_segments_in_order(recorded_handshake):
    assert recorded_handshake.flags() == [
        "SYN", "SYN-ACK", "ACK", "PSH-ACK", "ACK", "PSH-ACK", "ACK", "FIN-ACK", "FIN-ACK", "ACK"]
    assert [s.number for s in recorded_handshake.segments] == list(range(1, 11))
    assert [s.direction for s in recorded_handshake.segments] == [
        C2S, S2C, C2S, C2S, S2C, S2C, C2S, C2S, S2C, C2S]
    times = [s.time for s in recorded_handshake.segments]
    assert times[0] == 0 and times == sorted(times)


def test_relative_numbers_follow_from_the_protocol(recorded_handshake):
    hello = len(b"Hello, World!")  # 13 bytes each way
    got = [(s.seq, s.ack, s.length) for s in recorded_handshake.segments]
    assert got == [
        (0, None, 0),                   # SYN: seq is the ISN itself, no ACK flag
        (0, 1, 0),                      # SYN-ACK: acks the SYN, which used one number
        (1, 1, 0),                      # ACK: the client's next byte is 1
        (1, 1, hello),                  # the client's message, bytes 1..13
        (1, 1 + hello, 0),              # the server acks 14: the next byte it expects
        (1, 1 + hello, hello),          # the echo
        (1 + hello, 1 + hello, 0),      # the client acks it
        (1 + hello, 1 + hello, 0),      # client's FIN at 14
        (1 + hello, 2 + hello, 0),      # server's FIN at 14 acks the FIN (one number): 15
        (2 + hello, 2 + hello, 0),      # the last ACK
    ]
    assert recorded_handshake.segments[3].label == "PSH-ACK seq=1 ack=1 len=13"
    assert recorded_handshake.segments[0].label == "SYN seq=0"


def test_recorded_handshake_phases_and_payload(recorded_handshake):
    assert [s.phase for s in recorded_handshake.segments] == ["handshake"] * 3 + ["data"] * 4 + ["teardown"] * 3
    assert recorded_handshake.handshake_complete
    assert not recorded_handshake.refused
    assert recorded_handshake.data() == b"Hello, World!"
    assert recorded_handshake.data(S2C) == b"Hello, World!"
    assert recorded_handshake.closed_first == "client"


def test_recorded_windows_are_scaled_except_on_syns(recorded_handshake):
    syn, synack = recorded_handshake.segments[:2]
    scale = {p: dict(s.packet[TCP].options)["WScale"] for p, s in (("client", syn), ("server", synack))}
    for s in recorded_handshake.segments:
        raw = s.packet[TCP].window
        if s.has("SYN"):
            assert s.window == raw  # RFC 7323: the window in a SYN is never scaled
        else:
            sender = "client" if s.direction == C2S else "server"
            assert s.window == raw << scale[sender]


@pytest.mark.parametrize("name", ["handshake", "handshake-slow-close", "refused"])
def test_analysis_agrees_with_scapy_on_shipped_recordings(name):
    packets = recorded(name)
    conv = Conversation.from_packets(packets)
    syn = packets[0][TCP]
    assert syn.flags == "S"
    client_isn = syn.seq
    # The server's ISN is in its SYN-ACK; a refused connection has none, and the RST stands in.
    answer = next(p for p in packets if p[IP].src == conv.server[0] and p[TCP].sport == conv.server[1])
    server_isn = answer[TCP].seq
    assert conv.isn == {"client": client_isn, "server": server_isn}
    assert len(conv.segments) == len(packets)
    for s, pkt in zip(conv.segments, packets):
        tcp, ip = pkt[TCP], pkt[IP]
        from_client = (ip.src, tcp.sport) == conv.client
        mine, theirs = (client_isn, server_isn) if from_client else (server_isn, client_isn)
        assert s.direction == (C2S if from_client else S2C)
        assert s.seq == (tcp.seq - mine) % MOD
        assert s.ack == ((tcp.ack - theirs) % MOD if "A" in str(tcp.flags) else None)
        assert s.length == ip.len - ip.ihl * 4 - tcp.dataofs * 4
        assert s.payload == bytes(tcp.payload)[: s.length]
        assert s.packet is pkt


# ---------------------------------------------------------------------------
# RFC 9293 state walks


def test_states_when_the_client_closes_first(recorded_handshake):
    # The server's FIN carries the ACK of the client's FIN: the client skips FIN-WAIT-2.
    assert recorded_handshake.states() == {
        "client": [(0, "CLOSED"), (1, "SYN-SENT"), (2, "ESTABLISHED"), (8, "FIN-WAIT-1"), (9, "TIME-WAIT")],
        "server": [(0, "LISTEN"), (1, "SYN-RECEIVED"), (3, "ESTABLISHED"), (8, "CLOSE-WAIT"),
                   (9, "LAST-ACK"), (10, "CLOSED")],
    }


def test_four_segment_teardown_takes_the_client_through_fin_wait_2():
    conv = Conversation.from_packets(recorded("handshake-slow-close"))
    assert [s.flags for s in conv.phase("teardown")] == ["FIN-ACK", "ACK", "FIN-ACK", "ACK"]
    assert [s.number for s in conv.phase("teardown")] == [8, 9, 10, 11]
    # The server's kernel acked the FIN (ack=15) 40 ms later; the program closed 0.2 s later.
    assert [(s.seq, s.ack) for s in conv.phase("teardown")] == [(14, 14), (14, 15), (14, 15), (15, 15)]
    assert conv.segments[9].time - conv.segments[7].time >= 0.15
    states = conv.states()
    assert states["client"][-3:] == [(8, "FIN-WAIT-1"), (9, "FIN-WAIT-2"), (10, "TIME-WAIT")]
    assert states["server"][-3:] == [(8, "CLOSE-WAIT"), (10, "LAST-ACK"), (11, "CLOSED")]
    assert conv.closed_first == "client"


def test_refused_connection_resets_the_client_and_server_stays_closed():
    conv = Conversation.from_packets(recorded("refused"))
    assert conv.flags() == ["SYN", "RST-ACK"]
    assert conv.refused
    assert not conv.handshake_complete
    assert conv.closed_first is None
    rst = conv.segments[1]
    assert rst.phase == "reset" and rst.ack == 1  # the reset acknowledges the SYN
    assert conv.states() == {
        "client": [(0, "CLOSED"), (1, "SYN-SENT"), (2, "CLOSED")],
        "server": [(0, "CLOSED")],
    }


def test_teardown_when_server_closes_first():
    ci, si = 1000, 5000
    packets = handshake(ci, si) + [
        s2c("FA", si + 1, ci + 1),
        c2s("FA", ci + 1, si + 2),   # the client's FIN carries the ACK of the server's FIN
        s2c("A", si + 2, ci + 2),
    ]
    conv = Conversation(packets)
    assert conv.closed_first == "server"
    assert [s.phase for s in conv.segments] == ["handshake"] * 3 + ["teardown"] * 3
    assert walk_states(conv.states()["server"]) == [
        "LISTEN", "SYN-RECEIVED", "ESTABLISHED", "FIN-WAIT-1", "TIME-WAIT"]
    assert walk_states(conv.states()["client"]) == [
        "CLOSED", "SYN-SENT", "ESTABLISHED", "CLOSE-WAIT", "LAST-ACK", "CLOSED"]


def test_ack_riding_on_a_fin_acknowledges_the_fin_it_answers():
    ci, si = 7, 9
    packets = handshake(ci, si) + [
        c2s("FA", ci + 1, si + 1),
        s2c("FA", si + 1, ci + 2),
        c2s("A", ci + 2, si + 2),
    ]
    conv = Conversation(packets)
    fin, fin_ack, last = conv.phase("teardown")
    assert (fin.seq, fin.ack) == (1, 1)
    assert (fin_ack.seq, fin_ack.ack) == (1, 2)
    assert (last.seq, last.ack) == (2, 2)
    assert conv.states()["client"][-1] == (5, "TIME-WAIT")
    assert "FIN-WAIT-2" not in walk_states(conv.states()["client"])


def test_simultaneous_close_takes_both_sides_through_closing():
    # Both FINs cross on the wire: neither acknowledges the other's FIN.
    ci, si = 1000, 5000
    packets = handshake(ci, si) + [
        c2s("FA", ci + 1, si + 1),
        s2c("FA", si + 1, ci + 1),
        c2s("A", ci + 2, si + 2),
        s2c("A", si + 2, ci + 2),
    ]
    conv = Conversation(packets)
    for side in ("client", "server"):
        assert walk_states(conv.states()[side])[-3:] == ["FIN-WAIT-1", "CLOSING", "TIME-WAIT"], side
    # Each side enters CLOSING on the other's FIN, and TIME-WAIT on the ACK of its own FIN.
    assert conv.states()["client"][-3:] == [(4, "FIN-WAIT-1"), (5, "CLOSING"), (7, "TIME-WAIT")]
    assert conv.states()["server"][-3:] == [(5, "FIN-WAIT-1"), (4, "CLOSING"), (6, "TIME-WAIT")]


def test_reset_mid_stream_ends_the_conversation_for_both_sides():
    ci, si = 1000, 5000
    packets = handshake(ci, si) + [
        c2s("PA", ci + 1, si + 1, b"abc"),
        s2c("RA", si + 1, ci + 4),          # the server aborts
    ]
    conv = Conversation(packets)
    assert [s.phase for s in conv.segments] == ["handshake"] * 3 + ["data", "reset"]
    assert conv.closed_first is None
    assert not conv.refused
    states = conv.states()
    assert states["client"][-1] == (5, "CLOSED")
    assert states["server"][-1] == (5, "CLOSED")  # RFC 9293 ABORT: send a reset, enter CLOSED


def test_every_step_of_a_walk_is_a_transition_of_the_table_or_a_reset():
    from netlab.core.conversation import RESETTABLE, TRANSITIONS

    for name in ("handshake", "handshake-slow-close", "refused"):
        conv = Conversation.from_packets(recorded(name))
        for side, walk in conv.states().items():
            for (_, before), (number, after) in zip(walk, walk[1:]):
                resets = conv.segments[number - 1].has("RST") and before in RESETTABLE and after == "CLOSED"
                assert resets or after in {TRANSITIONS[key] for key in TRANSITIONS if key[0] == before}, \
                    (name, side, before, after)


def test_states_is_driven_by_one_transition_table(monkeypatch):
    import netlab.core.conversation
    from netlab.core.conversation import TRANSITIONS

    conv = Conversation.from_packets(recorded("handshake"))
    assert walk_states(conv.states()["client"]) == ["CLOSED", "SYN-SENT", "ESTABLISHED", "FIN-WAIT-1", "TIME-WAIT"]
    # A state renamed in the table is the state the walk reaches.
    renamed = {key: "TIME-WAIT (patched)" if state == "TIME-WAIT" else state for key, state in TRANSITIONS.items()}
    monkeypatch.setattr(netlab.core.conversation, "TRANSITIONS", renamed)
    assert walk_states(conv.states()["client"])[-1] == "TIME-WAIT (patched)"
    # A transition added to the table is taken, and the walk goes on from the new state.
    detour = {**TRANSITIONS, ("SYN-SENT", "recv SYN-ACK"): "SYN-ACKED", ("SYN-ACKED", "send FIN"): "FIN-WAIT-1"}
    monkeypatch.setattr(netlab.core.conversation, "TRANSITIONS", detour)
    assert conv.states()["client"] == [(0, "CLOSED"), (1, "SYN-SENT"), (2, "SYN-ACKED"), (8, "FIN-WAIT-1"),
                                       (9, "TIME-WAIT")]
    # A transition taken out of the table is not taken: the client stays in SYN-SENT.
    without = {key: state for key, state in TRANSITIONS.items() if key != ("SYN-SENT", "recv SYN-ACK")}
    monkeypatch.setattr(netlab.core.conversation, "TRANSITIONS", without)
    assert conv.states()["client"] == [(0, "CLOSED"), (1, "SYN-SENT")]
    assert walk_states(conv.states()["server"])[-1] == "CLOSED"  # the server's side did not use that entry


# ---------------------------------------------------------------------------
# Synthetic numbers: wraparound, window scaling, piggybacking, retransmission, padding


def test_sequence_numbers_wrap_around_2_to_the_32():
    ci, si = MOD - 3, MOD - 1  # the client's data crosses 2**32; the server's SYN-ACK does too
    msg = b"0123456789"
    packets = handshake(ci, si) + [
        c2s("PA", ci + 1, si + 1, msg),
        s2c("A", si + 1, ci + 1 + len(msg)),
    ]
    raw = [p[TCP].seq for p in packets]
    assert raw[2] == MOD - 2 and packets[4][TCP].ack == 8  # the raw numbers did wrap
    conv = Conversation(packets)
    assert [(s.seq, s.ack) for s in conv.segments] == [(0, None), (0, 1), (1, 1), (1, 1), (1, 11)]
    assert conv.data() == msg


def test_window_scaling_applies_when_both_syns_offer_it():
    ci, si = 100, 200
    packets = [
        c2s("S", ci, window=65535, options=[("MSS", 1460), ("WScale", 7)]),
        s2c("SA", si, ci + 1, window=28960, options=[("MSS", 1460), ("WScale", 3)]),
        c2s("A", ci + 1, si + 1, window=502),
        s2c("A", si + 1, ci + 1, window=1000),
    ]
    conv = Conversation(packets)
    assert [s.window for s in conv.segments] == [65535, 28960, 502 << 7, 1000 << 3]


@pytest.mark.parametrize("client_offers, server_offers", [(True, False), (False, True), (False, False)])
def test_window_scaling_is_off_unless_both_syns_offer_it(client_offers, server_offers):
    ci, si = 100, 200
    packets = [
        c2s("S", ci, window=65535, options=[("WScale", 7)] if client_offers else []),
        s2c("SA", si, ci + 1, window=28960, options=[("WScale", 3)] if server_offers else []),
        c2s("A", ci + 1, si + 1, window=502),
        s2c("A", si + 1, ci + 1, window=1000),
    ]
    assert [s.window for s in Conversation(packets).segments] == [65535, 28960, 502, 1000]


def test_data_piggybacked_on_the_third_handshake_segment():
    ci, si = 10, 20
    packets = [
        c2s("S", ci),
        s2c("SA", si, ci + 1),
        c2s("PA", ci + 1, si + 1, b"GET /"),  # the handshake's ACK carries the first data
        s2c("A", si + 1, ci + 6),
    ]
    conv = Conversation(packets)
    assert [s.phase for s in conv.segments] == ["handshake", "handshake", "data", "data"]
    assert conv.handshake_complete
    assert conv.data() == b"GET /"
    assert conv.segments[3].ack == 6
    assert conv.states()["server"][-1] == (3, "ESTABLISHED")


def test_retransmitted_segment_appears_twice_but_its_bytes_count_once():
    ci, si = 10, 20
    packets = handshake(ci, si) + [
        c2s("PA", ci + 1, si + 1, b"hello "),
        c2s("PA", ci + 1, si + 1, b"hello "),     # retransmission: same seq, same bytes
        c2s("PA", ci + 7, si + 1, b"world"),
        s2c("A", si + 1, ci + 12),
    ]
    conv = Conversation(packets)
    assert [s.seq for s in conv.segments if s.length] == [1, 1, 7]
    assert conv.data() == b"hello world"


def test_out_of_order_segments_are_put_back_in_order():
    ci, si = 10, 20
    packets = handshake(ci, si) + [
        c2s("PA", ci + 1, si + 1, b"aaaa"),
        c2s("PA", ci + 9, si + 1, b"cccc"),       # arrives before the segment it follows
        c2s("PA", ci + 5, si + 1, b"bbbb"),
        c2s("PA", ci + 3, si + 1, b"aabbbb"),     # a retransmission overlapping both
    ]
    assert Conversation(packets).data() == b"aaaabbbbcccc"


def test_ethernet_padding_on_short_frames_is_not_payload():
    ci, si = 10, 20
    packets = handshake(ci, si) + [
        c2s("PA", ci + 1, si + 1, b"hi", padding=b"\x00" * 4),
        s2c("A", si + 1, ci + 3, padding=b"\x00" * 6),
    ]
    assert [len(bytes(p)) for p in packets[3:]] == [60, 60]  # the minimum Ethernet frame
    conv = Conversation(packets)
    hi, ack = conv.segments[3:]
    assert (hi.length, hi.payload) == (2, b"hi")
    assert (ack.length, ack.payload) == (0, b"")
    assert conv.data() == b"hi"


# ---------------------------------------------------------------------------
# Streams


def _two_interleaved_streams():
    a = (("10.0.0.1", 40001), SERVER)
    b = (("10.0.0.1", 40002), SERVER)
    return [
        segment(a[0], a[1], "S", 100),
        segment(b[0], b[1], "S", 300),
        segment(b[1], b[0], "SA", 400, 301),
        segment(a[1], a[0], "SA", 200, 101),
        segment(b[0], b[1], "A", 301, 401),
        segment(a[0], a[1], "A", 101, 201),
        segment(a[0], a[1], "PA", 101, 201, b"from a"),
        segment(b[0], b[1], "PA", 301, 401, b"from b"),
    ]


def test_conversations_splits_interleaved_streams_in_first_appearance_order():
    convs = conversations(_two_interleaved_streams())
    assert [c.stream_number for c in convs] == [0, 1]
    assert [c.client[1] for c in convs] == [40001, 40002]
    assert [c.flags() for c in convs] == [["SYN", "SYN-ACK", "ACK", "PSH-ACK"]] * 2
    assert [c.data() for c in convs] == [b"from a", b"from b"]


def test_conversations_skips_streams_without_handshake_but_keeps_their_numbers():
    midway = [c2s("PA", 5000, 9000, b"late"), s2c("A", 9000, 5004)]
    convs = conversations(midway + _two_interleaved_streams())
    assert [c.stream_number for c in convs] == [1, 2]


def test_from_packets_with_several_streams_asks_which_one():
    packets = _two_interleaved_streams()
    with pytest.raises(ConversationError, match="2 TCP streams"):
        Conversation.from_packets(packets)
    second = Conversation.from_packets(packets, stream=1)
    assert second.client == ("10.0.0.1", 40002) and second.stream_number == 1


@pytest.mark.parametrize("number", [2, -1])
def test_from_packets_with_a_stream_number_that_does_not_exist(number):
    with pytest.raises(ConversationError, match=f"no TCP stream {number}"):
        Conversation.from_packets(_two_interleaved_streams(), stream=number)


# ---------------------------------------------------------------------------
# Bad input: an error that says what is wrong, never an IndexError


def test_no_packets_is_a_conversation_error():
    with pytest.raises(ConversationError, match="no TCP"):
        Conversation.from_packets([])
    with pytest.raises(ConversationError, match="no TCP"):
        Conversation([])


def test_only_udp_is_a_conversation_error():
    udp = [Ether() / IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=5353, dport=53) / Raw(b"q")]
    with pytest.raises(ConversationError, match="no TCP"):
        Conversation.from_packets(udp)
    with pytest.raises(ConversationError, match="no TCP"):
        Conversation(udp)
    assert conversations(udp) == []


def test_udp_among_tcp_is_left_out():
    udp = Ether() / IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=5353, dport=53)
    packets = handshake(1, 2)
    conv = Conversation([udp] + packets)
    assert conv.flags() == ["SYN", "SYN-ACK", "ACK"]


def test_stream_captured_mid_connection_has_no_handshake():
    packets = [c2s("PA", 5000, 9000, b"late"), s2c("A", 9000, 5004)]
    with pytest.raises(NoHandshakeError, match="the capture started after the connection was opened"):
        Conversation.from_packets(packets)
    assert issubclass(NoHandshakeError, ConversationError)


# ---------------------------------------------------------------------------
# The table


@pytest.mark.parametrize("source", ["recorded", "live", "handshake.pcap"])
def test_table_has_a_line_per_segment_and_names_its_source(source):
    conv = Conversation.from_packets(recorded("handshake"), source=source)
    lines = conv.table().splitlines()
    assert len(lines) == 2 + len(conv.segments)
    assert source in lines[0] and "127.0.0.1" in lines[0]
    assert lines[1].split()[:3] == ["#", "time", "ms"]
    for line, s in zip(lines[2:], conv.segments):
        fields = line.split()
        assert fields[0] == str(s.number) and s.flags in fields and fields[-1] == s.phase
    assert str(conv) == conv.table()
    assert "b'Hello, World!'" in conv.table(payload=True)


def test_refused_after_a_retransmitted_syn_is_still_refused():
    # The client's SYN went out twice before the server's kernel answered with a reset.
    conv = Conversation([c2s("S", 100), c2s("S", 100, time=1.0), s2c("RA", 0, 101, time=1.0)])
    assert conv.refused
    assert not conv.handshake_complete


def test_reset_answering_a_syn_ack_sends_the_server_back_to_listen():
    # RFC 9293 3.10.7.4: a connection that came from LISTEN returns there on a RST in SYN-RECEIVED.
    conv = Conversation([c2s("S", 100), s2c("SA", 500, 101), c2s("R", 101)])
    assert walk_states(conv.states()["server"]) == ["LISTEN", "SYN-RECEIVED", "LISTEN"]
    assert not conv.refused


def test_ports_used_again_by_a_new_connection_start_a_new_stream():
    first = handshake(100, 500) + [c2s("FA", 101, 501), s2c("FA", 501, 102), c2s("A", 102, 502)]
    second = handshake(90_000, 7_000)
    retransmitted_syn = [second[0], second[0]] + second[1:]
    streams = conversations(first + retransmitted_syn)
    assert [len(c.segments) for c in streams] == [6, 4]
    assert [c.isn["client"] for c in streams] == [100, 90_000]


# ---------------------------------------------------------------------------
# What repeats: retransmissions, duplicate ACKs, zero-window probes (built by hand, exact rules)


def _five_segments_second_lost(ci, si):
    """Five 100-byte segments, the 2nd lost; the receiver repeats ack=101 for each later one
    (RFC 5681 duplicate ACKs), the sender resends the 2nd (fast retransmit), then all is acked."""
    data = [c2s("PA", ci + 1 + 100 * k, si + 1, bytes([65 + k]) * 100, time=0.01 * k) for k in range(5)]
    lost = data.pop(1)
    resent = c2s("PA", ci + 101, si + 1, bytes(lost[Raw].load), time=0.1)
    return handshake(ci, si) + [
        data[0], s2c("A", si + 1, ci + 101, time=0.011),
        data[1], s2c("A", si + 1, ci + 101, time=0.021),
        data[2], s2c("A", si + 1, ci + 101, time=0.031),
        data[3], s2c("A", si + 1, ci + 101, time=0.041),
        resent, s2c("A", si + 1, ci + 501, time=0.101),
    ]


def test_fast_retransmit_after_three_duplicate_acks():
    conv = Conversation(_five_segments_second_lost(10, 20))
    assert [(s.number, s.seq) for s in conv.retransmissions()] == [(12, 101)]
    assert [s.number for s in conv.dup_acks()] == [7, 9, 11]
    assert all(s.direction == S2C and s.ack == 101 for s in conv.dup_acks())
    assert not conv.segments[4].dup_ack, "the first ACK of 101 is new, not a duplicate"
    assert conv.data() == b"A" * 100 + b"B" * 100 + b"C" * 100 + b"D" * 100 + b"E" * 100
    assert conv.window_probes() == []


def test_retransmission_counts_only_the_copy_not_the_original():
    ci, si = 10, 20
    conv = Conversation(handshake(ci, si) + [
        c2s("PA", ci + 1, si + 1, b"hello "),
        c2s("PA", ci + 1, si + 1, b"hello "),
        c2s("PA", ci + 7, si + 1, b"world"),
    ])
    assert [s.retransmission for s in conv.segments[3:]] == [False, True, False]
    assert conv.retransmissions(S2C) == [] and len(conv.retransmissions(C2S)) == 1
    lines = conv.table().splitlines()[2:]  # after the title and the column names
    assert ["(retransmission)" in line for line in lines] == [False] * 4 + [True, False]


def test_partly_resent_bytes_are_a_retransmission():
    ci, si = 10, 20
    conv = Conversation(handshake(ci, si) + [
        c2s("PA", ci + 1, si + 1, b"aaaa"),
        c2s("PA", ci + 3, si + 1, b"aabb"),  # two old bytes, two new ones (repacketised)
    ])
    assert [s.number for s in conv.retransmissions()] == [5]


def test_out_of_order_arrival_is_not_a_retransmission():
    ci, si = 10, 20
    conv = Conversation(handshake(ci, si) + [
        c2s("PA", ci + 5, si + 1, b"bbbb"),  # captured before the segment it follows, sent once
        c2s("PA", ci + 1, si + 1, b"aaaa"),
    ])
    # Only the order of capture says which came first: the second segment's bytes lie below the
    # highest sent so far, so by the sender-side rule it counts as a retransmission, as in
    # Wireshark (which calls it "out-of-order" only with timing it cannot have here).
    assert [s.number for s in conv.retransmissions()] == [5]


def test_retransmitted_syn_and_fin_are_retransmissions_but_resets_never():
    ci, si = 10, 20
    packets = [c2s("S", ci), c2s("S", ci, time=1.0), s2c("SA", si, ci + 1, time=1.0001), c2s("A", ci + 1, si + 1),
               c2s("FA", ci + 1, si + 1), c2s("FA", ci + 1, si + 1, time=1.2), s2c("R", si + 1), s2c("R", si + 1)]
    conv = Conversation(packets)
    assert [(s.number, s.flags) for s in conv.retransmissions()] == [(2, "SYN"), (6, "FIN-ACK")]


def test_window_update_with_the_same_ack_is_not_a_duplicate_ack():
    ci, si = 10, 20
    conv = Conversation(handshake(ci, si) + [
        c2s("PA", ci + 1, si + 1, b"x" * 100),
        c2s("PA", ci + 101, si + 1, b"y" * 100),
        s2c("A", si + 1, ci + 101, window=100),
        s2c("A", si + 1, ci + 101, window=4000),  # the same ack, a new window: an update
        s2c("A", si + 1, ci + 101, window=4000),  # the same again, data still outstanding: duplicate
    ])
    assert [s.number for s in conv.dup_acks()] == [8]


def test_repeated_ack_with_nothing_outstanding_is_not_a_duplicate_ack():
    ci, si = 10, 20
    conv = Conversation(handshake(ci, si) + [
        c2s("PA", ci + 1, si + 1, b"x" * 100),
        s2c("A", si + 1, ci + 101),
        s2c("A", si + 1, ci + 101),  # all data acknowledged already: RFC 5681 (a) fails
        s2c("PA", si + 1, ci + 101, b"reply"),  # carries data: never a duplicate ACK
    ])
    assert conv.dup_acks() == []


def test_linux_zero_window_probe_is_named_a_probe_not_a_retransmission():
    ci, si = 10, 20
    conv = Conversation(handshake(ci, si) + [
        c2s("PA", ci + 1, si + 1, b"x" * 100),
        s2c("A", si + 1, ci + 101, window=0),  # receive buffer full: stop sending
        c2s("A", ci + 100, si + 1, time=0.2),  # Linux's probe: no data, one below the next byte
        s2c("A", si + 1, ci + 101, window=0, time=0.2001),
        c2s("A", ci + 100, si + 1, time=0.6),
        s2c("A", si + 1, ci + 101, window=1000, time=0.7),  # the window reopens
        c2s("PA", ci + 101, si + 1, b"y" * 100, time=0.7001),
    ])
    assert [s.number for s in conv.window_probes()] == [6, 8]
    assert conv.retransmissions() == [] and conv.dup_acks() == []
    assert [s.number for s in conv.zero_windows()] == [5, 7]
    assert "(window probe)" in conv.table()


def test_one_byte_zero_window_probe_of_rfc_9293_is_a_probe():
    ci, si = 10, 20
    conv = Conversation(handshake(ci, si) + [
        c2s("PA", ci + 1, si + 1, b"x" * 100),
        s2c("A", si + 1, ci + 101, window=0),
        c2s("PA", ci + 101, si + 1, b"y", time=0.2),  # one new byte pushed into the closed window
        c2s("PA", ci + 101, si + 1, b"y", time=0.6),  # the same byte again: a probe again
    ])
    assert [s.number for s in conv.window_probes()] == [6, 7]
    assert conv.retransmissions() == []


def test_reset_window_is_not_a_zero_window():
    conv = Conversation.from_packets(recorded("refused"))
    assert conv.segments[1].window == 0 and conv.zero_windows() == []


# ---------------------------------------------------------------------------
# The same on real captures from the lab (recorded by netlab.failures, see netlab/data/errors-*)


def test_connect_timeout_capture_names_every_syn_after_the_first_a_retransmission():
    conv = Conversation.from_packets(recorded("errors-connect-timeout"))
    syns = [s for s in conv.segments if s.flags == "SYN"]
    assert len(syns) >= 3 and syns == conv.segments
    assert conv.retransmissions() == syns[1:]
    assert {s.seq for s in syns} == {0}


def test_blocked_send_capture_has_zero_windows_and_linux_probes():
    conv = Conversation.from_packets(recorded("errors-blocked-send"))
    zero = conv.zero_windows()
    assert zero and all(s.direction == S2C for s in zero)
    probes = conv.window_probes()
    assert probes and all(p.direction == C2S and p.length == 0 for p in probes)
    for probe in probes:
        last_from_server = [s for s in conv.segments if s.direction == S2C and s.number < probe.number][-1]
        assert last_from_server.window == 0, "a probe is sent into a zero window"
        assert probe.seq == last_from_server.ack - 1, "Linux probes with the byte before the next one"
    assert conv.retransmissions() == [] and conv.dup_acks() == []
    assert conv.segments[-1].flags == "ACK" and conv.data() and conv.data() == b"x" * len(conv.data())


def test_blocked_send_windows_are_scaled_bytes():
    conv = Conversation.from_packets(recorded("errors-blocked-send"))
    syn, synack = conv.segments[0], conv.segments[1]
    scale = {C2S: _scale_of(syn), S2C: _scale_of(synack)}
    for s in conv.segments[2:]:
        assert s.window == s.packet[TCP].window << scale[s.direction], s.label


def _scale_of(seg):
    return next(value for name, value in seg.packet[TCP].options if name == "WScale")


def test_outline_leaves_out_pure_acks_whose_timing_varies():
    ci, si = 10, 20
    quick = handshake(ci, si) + [c2s("FA", ci + 1, si + 1), s2c("FA", si + 1, ci + 2), c2s("A", ci + 2, si + 2)]
    slow = handshake(ci, si) + [c2s("FA", ci + 1, si + 1), s2c("A", si + 1, ci + 2), s2c("FA", si + 1, ci + 2),
                                c2s("A", ci + 2, si + 2)]
    assert Conversation(quick).outline() == Conversation(slow).outline() == "\n".join([
        "C→S  SYN seq=0", "S→C  SYN-ACK seq=0 ack=1", "C→S  FIN-ACK seq=1 ack=1", "S→C  FIN-ACK seq=1 ack=2"])
