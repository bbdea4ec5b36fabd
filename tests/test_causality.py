"""A capture is causal: nothing is acknowledged, echoed or sent before the capture shows it possible.

Checked on every recording shipped, on synthetic captures that break each rule (a foreign
capture reports it in one line and is read on), and on a live run of every experiment that
makes a recording.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether
from scapy.packet import Raw
from scapy.utils import wrpcap

from netlab.core.conversation import Conversation, conversations
from netlab.core.pcapfiles import DATA, recorded_packets
from netlab.recordings import all_recordings

CLIENT = ("10.0.0.1", 40000)
SERVER = ("10.0.0.2", 80)


def seg(src, dst, flags, seq, ack=0, data=b"", ts=None, time=0.0):
    options = [("Timestamp", ts)] if ts else []
    pkt = (Ether() / IP(src=src[0], dst=dst[0])
           / TCP(sport=src[1], dport=dst[1], flags=flags, seq=seq, ack=ack, window=8192, options=options))
    if data:
        pkt = pkt / Raw(data)
    pkt = Ether(bytes(pkt))
    pkt.time = time
    return pkt


def c2s(*args, **kwargs):
    return seg(CLIENT, SERVER, *args, **kwargs)


def s2c(*args, **kwargs):
    return seg(SERVER, CLIENT, *args, **kwargs)


def causal_exchange():
    """Handshake, one request each way, the client closes: every rule kept."""
    return [
        c2s("S", 100, ts=(1000, 0)), s2c("SA", 500, 101, ts=(7000, 1000)), c2s("A", 101, 501, ts=(1001, 7000)),
        c2s("PA", 101, 501, b"hello", ts=(1002, 7000)), s2c("PA", 501, 106, b"world", ts=(7001, 1002)),
        c2s("FA", 106, 506, ts=(1003, 7001)), s2c("FA", 506, 107, ts=(7002, 1003)), c2s("A", 107, 507, ts=(1004, 7002)),
    ]


@pytest.mark.parametrize("name", sorted(p.stem for p in DATA.glob("*.pcap")))
def test_every_shipped_recording_is_causal(name):
    for conv in conversations(recorded_packets(name), partial=True):
        assert conv.causality == [], f"{name}, stream {conv.stream_number}: {conv.causality[:3]}"


def test_a_causal_exchange_breaks_no_rule():
    conv = Conversation.from_packets(causal_exchange())
    assert conv.causality == []
    assert "causal" not in conv.table()


def test_an_ack_captured_before_what_it_acknowledges_is_named():
    # 09's old recordings: the client's ACK stamped before the SYN-ACK that it answers.
    packets = causal_exchange()
    packets[1], packets[2] = packets[2], packets[1]
    conv = Conversation.from_packets(packets)
    assert conv.causality[0].startswith("#2 (C→S ACK) acknowledges 1, but the server has sent nothing yet")


def test_an_ack_of_bytes_not_yet_sent_is_named():
    packets = causal_exchange()
    packets[3], packets[4] = packets[4], packets[3]  # the reply captured before the request it answers
    broken = Conversation.from_packets(packets).causality
    assert broken and broken[0].startswith("#4 (S→C PSH-ACK) acknowledges 6, but the client has sent only up to 1")


def test_a_timestamp_echoed_before_it_was_sent_is_named():
    packets = causal_exchange()
    packets[4] = s2c("PA", 501, 101, b"world", ts=(7001, 1009))  # echoes a TSval the client never sent
    broken = Conversation.from_packets(packets).causality
    assert broken == ["#5 (S→C PSH-ACK) echoes a timestamp the client has not sent yet"]


def test_a_capture_begun_mid_connection_is_not_called_non_causal_for_what_came_before_it():
    # The first segments echo TSvals and acknowledge bytes sent before the capture began: nothing broken.
    late = Conversation.from_packets(causal_exchange()[3:], partial=True)
    assert late.partial and late.causality == []
    # Once the capture has seen a side's TSvals, an echo of one it has not seen yet is still named.
    packets = causal_exchange()[3:]
    packets[-1] = packets[-1].copy()
    packets[-1][TCP].options = [("Timestamp", (7100, 99999))]
    assert any("echoes a timestamp" in line for line in Conversation.from_packets(packets, partial=True).causality)


@pytest.mark.parametrize(("where", "packet", "state"), [
    (1, c2s("P", 101, 0, b"early"), "SYN-SENT"),  # data before the SYN-ACK, without an ACK
    (8, c2s("PA", 107, 507, b"late"), "TIME-WAIT"),  # new data after the client's FIN
])
def test_data_a_state_does_not_allow_is_named(where, packet, state):
    packets = causal_exchange()
    packets.insert(where, packet)
    broken = Conversation.from_packets(packets).causality
    assert any(f"carries new data while the client is in {state}" in b for b in broken), broken


def test_a_foreign_capture_says_it_in_one_line_and_is_read_on(tmp_path):
    packets = causal_exchange()
    packets[1], packets[2] = packets[2], packets[1]
    conv = Conversation.from_packets(packets, source="foreign.pcap")
    header = conv.table().splitlines()[0]
    assert "not causal in capture order: #2 (C→S ACK) acknowledges 1" in header
    assert len(conv.table().splitlines()) == 2 + len(packets)  # every segment still listed
    path = tmp_path / "foreign.pcap"
    wrpcap(str(path), packets)
    shown = subprocess.run([sys.executable, "-m", "netlab", "show", str(path)], capture_output=True, text=True,
                           timeout=60)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.count("not causal") == 1 and "Traceback" not in shown.stderr


@pytest.mark.lab
@pytest.mark.slow
def test_a_live_run_of_every_experiment_is_causal():
    """Every experiment that makes a recording, run live now: each of its streams keeps the rules."""
    for name, experiment in all_recordings().items():
        exp = experiment()
        assert exp.live, f"{name}: {exp.why}"
        for conv in conversations(exp.packets, partial=True):
            assert conv.causality == [], f"{name}, stream {conv.stream_number}: {conv.causality[:3]}"
