"""The scripted peer against the real kernel: every script action shows the kernel behaviour it
is for (segments of one MSS, retransmissions on a doubling timer, fast retransmit, zero-window
probes, a checksum error counted and repaired), and the peer always stops and leaves nothing
behind, also when the socket side fails or the notebook is interrupted.

Live tests (Linux). Waits are bounded by the peer's own time bound and the notebook side's
timeouts, never by a sleep.
"""

from __future__ import annotations

import hashlib
import json
import os
import select
import shutil
import subprocess
import sys
import threading
import time
from collections import Counter

import pytest
from conftest import _children

import netlab
import netlab.core.peer as core_peer
import netlab.lessons.transfer.experiments as peer
from netlab.core.conversation import CLIENT_TO_SERVER, SERVER_TO_CLIENT
from netlab.core.experiment import load_recorded
from netlab.lessons.transfer.experiments import MSS, PeerError, Script

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="the lab is a Linux network namespace")


def _data(conv, direction=CLIENT_TO_SERVER):
    return [s for s in conv.segments if s.direction == direction and s.length]


def _acks(conv):
    return [s for s in conv.segments if s.direction == SERVER_TO_CLIENT and s.flags == "ACK"]


# ---------------------------------------------------------------------------
# The link and the default script.


@pytest.mark.lab
def test_a_write_leaves_the_1500_byte_link_in_segments_of_one_mss(nothing_left_behind):
    exp = peer.transfer(Script(), data=20_000, recorded=None)
    conv = exp.conversation
    assert exp.source == "live" and exp.result == 20_000, exp.why
    syn, synack = conv.segments[0], conv.segments[1]
    assert "MSS=1460" in syn.options and synack.options == "MSS=1460"
    sizes = [s.length for s in _data(conv)]
    assert sizes == [MSS] * 13 + [20_000 - 13 * MSS], sizes
    assert conv.data() == peer.pattern(20_000)
    # Both sides closed: the kernel's FIN, the peer's FIN, the kernel's last ACK; TIME-WAIT in the lab.
    assert conv.flags()[-1] == "ACK" and conv.closed_first == "client"
    assert [s.state for s in exp.kernel_states] == ["TIME-WAIT"]
    assert any("connection closed" in e.what for e in exp.log)


@pytest.mark.lab
def test_loopback_carries_the_same_write_in_a_few_giant_segments(nothing_left_behind):
    exp = peer.loopback_transfer(100_000, recorded=None)
    sizes = [s.length for s in _data(exp.conversation)]
    assert exp.result == 100_000 and sum(sizes) == 100_000, sizes
    assert len(sizes) < 10 and max(sizes) > 20 * MSS, sizes


# ---------------------------------------------------------------------------
# The SYN: accept, refuse, ignore.


@pytest.mark.lab
def test_refuse_answers_the_syn_with_a_reset(nothing_left_behind):
    exp = peer.transfer(Script().refuse(), data=100, recorded=None)
    assert isinstance(exp.result, ConnectionRefusedError)
    assert exp.conversation.flags() == ["SYN", "RST-ACK"]


@pytest.mark.lab
def test_ignored_syns_are_retransmitted_until_connect_times_out(nothing_left_behind):
    start = time.monotonic()
    exp = peer.transfer(Script().ignore_syns(), data=100, timeout=1.5, recorded=None)
    assert isinstance(exp.result, TimeoutError)
    assert exp.conversation.flags() == ["SYN", "SYN"], exp.conversation.table()  # resent after 1 s
    assert [e.what for e in exp.log[:2]] == ["SYN number 1 ignored", "SYN number 2 ignored"]
    assert time.monotonic() - start < 6


# ---------------------------------------------------------------------------
# Loss and retransmission.


@pytest.mark.lab
def test_never_ack_makes_the_kernel_retransmit_on_a_doubling_timer(nothing_left_behind):
    exp = peer.retransmissions(3, recorded=None)
    times = peer.retransmission_times(exp.conversation)
    assert len(times) == 3, exp.conversation.table()
    waits = [b - a for a, b in zip([0.0] + times, times)]
    assert 0.19 <= waits[0] <= 0.5, waits  # Linux's minimum RTO is 200 ms
    for before, after in zip(waits, waits[1:]):
        assert 1.6 <= after / before <= 2.4, waits
    assert not _acks(exp.conversation)[1:] or all(s.ack == 1 for s in _acks(exp.conversation)[1:])
    assert exp.counters["TcpExtTCPTimeouts"] >= 3


@pytest.mark.lab
def test_a_dropped_segment_is_fast_retransmitted_after_duplicate_acks(nothing_left_behind):
    exp = peer.transfer(Script().drop(3), data=30_000, recorded=None)
    conv = exp.conversation
    lost = _data(conv)[2]
    copies = [s for s in _data(conv) if s.seq == lost.seq]
    assert len(copies) == 2, conv.table()
    dups = [s for s in _acks(conv) if s.ack == lost.seq and s.time < copies[1].time]
    assert len(dups) >= 4, conv.table()  # the first ACK for the gap, then three or more duplicates
    assert copies[1].time - lost.time < 0.2  # before any retransmission timer could fire
    assert exp.counters["TcpExtTCPFastRetrans"] == 1 and exp.counters["TcpExtTCPTimeouts"] == 0
    assert conv.data() == peer.pattern(30_000)  # the peer kept the segments after the gap


@pytest.mark.lab
def test_duplicate_acks_are_sent_and_the_segment_is_sent_again(nothing_left_behind):
    exp = peer.transfer(Script().duplicate_acks(2, count=3), data=2 * MSS, recorded=None)
    conv = exp.conversation
    second = _data(conv)[1]
    repeats = [s for s in _acks(conv) if s.ack == second.seq]
    assert len(repeats) == 4, conv.table()  # the ACK of segment 1, then three duplicates
    assert [s.seq for s in _data(conv)].count(second.seq) == 2
    assert conv.data() == peer.pattern(2 * MSS)


@pytest.mark.lab
def test_late_acks_set_the_round_trip_time(nothing_left_behind):
    exp = peer.transfer(Script().accept(window=3 * MSS).ack_late(0.1), data=6 * MSS, recorded=None)
    conv = exp.conversation
    first, ack = _data(conv)[0], next(s for s in _acks(conv) if s.ack == 1 + MSS)
    assert 0.1 <= ack.time - first.time < 0.2
    # A window of three segments: never more than three unacknowledged at once, and three reached.
    acked, in_flight = 1, []
    for s in conv.segments:  # captured at the peer: an ACK is on the wire before what it lets the kernel send
        if s.direction == SERVER_TO_CLIENT and s.ack is not None:
            acked = max(acked, s.ack)
        elif s.direction == CLIENT_TO_SERVER and s.length:
            in_flight.append(s.seq + s.length - acked)
    assert max(in_flight) == 3 * MSS, (in_flight, conv.table())
    assert _data(conv)[3].time - first.time >= 0.1  # the fourth waited for the late ACK


@pytest.mark.lab
def test_reset_mid_stream_reaches_the_program_as_connection_reset(nothing_left_behind):
    exp = peer.transfer(Script().reset(after=3), data=30_000, recorded=None)
    assert isinstance(exp.result, ConnectionResetError), exp.result
    assert exp.conversation.segments[-1].flags == "RST-ACK"
    assert exp.conversation.segments[-1].direction == SERVER_TO_CLIENT


@pytest.mark.lab
def test_a_corrupted_ack_is_counted_dropped_and_the_data_retransmitted(nothing_left_behind):
    from scapy.layers.inet import IP, TCP

    exp = peer.transfer(Script().corrupt_ack(1), data=1000, recorded=None)
    conv = exp.conversation
    bad = _acks(conv)[0]
    wire = bad.packet[IP]
    fixed = IP(bytes(wire))
    del fixed[TCP].chksum
    assert IP(bytes(fixed))[TCP].chksum != wire[TCP].chksum  # the checksum on the wire is wrong
    assert exp.counters["TcpInCsumErrors"] == 1
    assert [s.seq for s in _data(conv)] == [1, 1]  # so the kernel sent the data again
    assert exp.result == 1000


# ---------------------------------------------------------------------------
# Flow control.


@pytest.mark.lab
def test_stop_reading_closes_the_window_and_the_kernel_probes_until_it_reopens(nothing_left_behind):
    exp = peer.transfer(Script().accept(window=10 * MSS).stop_reading(after=0, seconds=0.8), data=20 * MSS,
                        recorded=None)
    conv = exp.conversation
    windows = [s.window for s in _acks(conv)]
    assert windows[:10] == [MSS * n for n in range(9, -1, -1)], windows
    closed_at = next(s.time for s in _acks(conv) if s.window == 0)
    reopened = next(s for s in _acks(conv) if s.time > closed_at and s.window > 0)
    assert reopened.time - closed_at >= 0.75
    # Probes: empty segments with an old sequence number while the window is zero.
    probes = [s for s in conv.segments if s.direction == CLIENT_TO_SERVER and not s.length
              and s.flags == "ACK" and closed_at < s.time < reopened.time]
    assert probes and all(p.seq == 10 * MSS for p in probes), conv.table()
    assert exp.counters["TcpExtTCPWinProbe"] == len(probes)
    assert conv.data() == peer.pattern(20 * MSS)


# ---------------------------------------------------------------------------
# Always stops, always cleans up.


@pytest.mark.lab
def test_stop_after_ends_the_peer_by_itself(nothing_left_behind):
    with netlab.Lab() as lab, peer.Peer(lab, Script().never_ack().stop_after(segments=1)) as p:
        with lab.create_connection(p.address, timeout=2) as sock:
            sock.sendall(b"x")
            assert p.wait(2.0)
    assert p.finished and "stopping after 1 data segments" in p.log[-2].what


@pytest.mark.lab
def test_peer_ends_at_its_time_bound(nothing_left_behind):
    start = time.monotonic()
    with netlab.Lab() as lab, peer.Peer(lab, Script().ignore_syns().within(0.5)) as p:
        assert p.wait(5.0)
    assert time.monotonic() - start < 5
    assert not p.finished and p.log[-1].what == "peer ends: time bound of 0.5 s reached"


def _flood(sock, keep_going, busy=None):
    """Keep the kernel's send buffer full, never pausing, while keep_going(); set `busy` after 2 MB."""
    sock.setblocking(False)
    chunk, sent = b"x" * 65536, 0
    while keep_going():
        if select.select([], [sock], [], 0.1)[1]:
            try:
                sent += sock.send(chunk)
            except BlockingIOError:
                pass
            if busy is not None and sent >= 2_000_000:
                busy.set()


def _data_segments_seen(log):
    return sum(1 for e in log if e.what.startswith("data segment"))


@pytest.mark.lab
def test_a_peer_under_a_sender_that_never_pauses_ends_at_its_time_bound(nothing_left_behind):
    # The kernel answers every ACK with new segments, so frames never stop arriving; the peer
    # must still look at its clock.
    with netlab.Lab() as lab, peer.Peer(lab, Script().within(1.0)) as p:
        with lab.create_connection(p.address, timeout=2) as sock:
            start = time.monotonic()
            _flood(sock, lambda: p.running and time.monotonic() < start + 6)
            took = time.monotonic() - start
    assert took < 1.0 + 2, f"the peer ran {took:.1f} s past a 1 s time bound"
    assert p.log[-1].what == "peer ends: time bound of 1 s reached"
    assert _data_segments_seen(p.log) > 100, "the sender was not busy: the test shows nothing"
    assert p.packets


@pytest.mark.lab
def test_stop_during_a_busy_transfer_ends_the_peer_at_once_with_its_log(nothing_left_behind):
    busy, done = threading.Event(), threading.Event()
    with netlab.Lab() as lab, peer.Peer(lab, Script().within(30)) as p:
        with lab.create_connection(p.address, timeout=2) as sock:
            # The sender goes on while the peer is asked to stop: frames keep arriving.
            sender = threading.Thread(target=_flood, args=(sock, lambda: not done.is_set(), busy))
            sender.start()
            try:
                assert busy.wait(10), "the kernel did not take 2 MB in 10 s"
                start = time.monotonic()
                p.stop()
                took = time.monotonic() - start
            finally:
                done.set()
                sender.join(5)
    assert took < core_peer.STOP_TIMEOUT, f"stop() took {took:.1f} s: the peer was killed, not stopped"
    assert p.log[-1].what == "peer ends: told to stop"
    assert _data_segments_seen(p.log) > 100 and len(p.packets) > 200


def _peer_that_ignores_stop(lab):
    """Make the lab start, instead of the peer, a program that says "ready" and then ignores its stdin."""
    popen = lab.popen
    lab.popen = lambda argv, **kwargs: popen(["sh", "-c", "read order; echo ready; exec sleep 30"], **kwargs)


@pytest.mark.lab
def test_a_peer_killed_before_writing_its_capture_raises_instead_of_showing_nothing(nothing_left_behind,
                                                                                   monkeypatch):
    monkeypatch.setattr(core_peer, "STOP_TIMEOUT", 0.5)
    with netlab.Lab() as lab:
        _peer_that_ignores_stop(lab)
        with pytest.raises(PeerError, match=r"the peer did not stop within 0.5 s; its capture is lost"):
            with peer.Peer(lab, Script()) as p:
                pass
    assert p.log == [] and p.packets == [] and not p.running


@pytest.mark.lab
def test_a_lost_capture_does_not_hide_the_error_that_ended_the_block(nothing_left_behind, monkeypatch):
    monkeypatch.setattr(core_peer, "STOP_TIMEOUT", 0.5)
    with netlab.Lab() as lab:
        _peer_that_ignores_stop(lab)
        with pytest.raises(ValueError, match="the student's bug") as raised:
            with peer.Peer(lab, Script()):
                raise ValueError("the student's bug")
    assert raised.value.__notes__ == ["the peer did not stop within 0.5 s; its capture is lost"]


@pytest.mark.lab
def test_transfer_waits_at_most_its_timeout_for_a_peer_that_never_acknowledges(nothing_left_behind):
    timeout = 2.0
    start = time.monotonic()
    exp = peer.transfer(Script().never_ack(), data=1000, timeout=timeout, recorded=None)
    took = time.monotonic() - start
    assert exp.result == 1000  # the bytes went into the kernel's buffer; nothing came back
    # The peer is told to stop once the one budget is spent, not after a second one.
    assert exp.log[-1].what == "peer ends: told to stop"
    assert exp.log[-1].time < timeout + 0.5, [(e.time, e.what) for e in exp.log]
    # On top: starting the lab and the peer (about a second), stopping it.
    assert took < timeout + 3, f"transfer(timeout={timeout:g}) took {took:.1f} s"


def peers_in(lab):
    """Command lines of scripted peers (`python -m netlab.core.inlab.peer`) in this lab's network namespace.

    A lab has no PID namespace of its own, so `ps` in it would list the whole machine,
    another test run's peers included; a process is the lab's when its network namespace is.
    """
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            netns = os.stat(f"/proc/{pid}/ns/net").st_ino
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                args = f.read().decode(errors="replace").split("\0")
        except OSError:  # ended meanwhile, or not ours to read
            continue
        if netns == lab.netns and "netlab.core.inlab.peer" in args:
            found.append(" ".join(args))
    return found


@pytest.mark.lab
def test_peer_stops_and_leaves_nothing_when_the_socket_side_fails(nothing_left_behind):
    start = time.monotonic()
    with netlab.Lab() as lab:
        with pytest.raises(ValueError, match="the student's bug"):
            with peer.Peer(lab, Script()) as p:
                assert len(peers_in(lab)) == 1  # the check below sees a running peer
                with lab.create_connection(p.address, timeout=2) as sock:
                    sock.sendall(b"half a message")
                    raise ValueError("the student's bug")
        assert not p.running
        assert peers_in(lab) == []
    assert time.monotonic() - start < 5
    # At once: told to stop, or done with the connection the kernel closed; never at its 10 s bound.
    assert p.log[-1].what in ("peer ends: told to stop", "peer ends: the connection is over")


@pytest.mark.lab
def test_interrupt_while_waiting_for_the_peer_stops_it(nothing_left_behind, interrupt_in):
    with netlab.Lab() as lab:
        with pytest.raises(KeyboardInterrupt):
            with peer.Peer(lab, Script().ignore_syns()) as p:
                proc = p._proc
                interrupt_in(0.3)
                p.wait(10)
        assert proc.poll() is not None
    assert _children() == []


@pytest.mark.lab
def test_interrupt_while_the_lab_starts_leaves_nothing_behind(nothing_left_behind, interrupt_in):
    # A lab takes 50 ms or more to start (unshare, a new Python): the stop button lands in its start.
    with pytest.raises(KeyboardInterrupt):
        interrupt_in(0.02)
        with netlab.Lab():
            threading.Event().wait(5)  # if the lab was quicker, the interrupt ends this wait instead


@pytest.mark.lab
def test_interrupt_during_a_transfer_leaves_nothing_behind(nothing_left_behind, interrupt_in):
    start = time.monotonic()
    interrupt_in(0.8)
    with pytest.raises(KeyboardInterrupt):
        peer.transfer(Script().never_ack(), data=1000, recorded=None)
    assert time.monotonic() - start < 5


@pytest.mark.lab
def test_a_peer_that_cannot_start_fails_within_its_timeout(nothing_left_behind):
    start = time.monotonic()
    with netlab.Lab() as lab:
        popen = lab.popen
        lab.popen = lambda argv, **kwargs: popen(["sleep", "30"], **kwargs)  # never says "ready"
        with pytest.raises(PeerError, match="did not start within 0.5 s"):
            with peer.Peer(lab, Script(), start_timeout=0.5):
                pass
    assert time.monotonic() - start < 5


# ---------------------------------------------------------------------------
# Bad scripts, recorded fallback, the command line.


@pytest.mark.parametrize("build, words", [
    (lambda: Script(port=0), "port must be a whole number from 1 to 65535"),
    (lambda: Script().accept(window=70000), "window must be a whole number from 0 to 65535"),
    (lambda: Script().drop(0), "a data segment's number must be"),
    (lambda: Script().ack_late(-1), "ack_late must be a number of seconds above 0"),
    (lambda: Script().within(600), "at most 60"),
    (lambda: peer.transfer("drop 3"), "follows a netlab.peer.Script, not str"),
    (lambda: peer.transfer(data=3.5), "data is bytes or a size in bytes, not float"),
])
def test_bad_scripts_are_refused_with_a_message_naming_the_problem(build, words):
    with pytest.raises((TypeError, ValueError), match=words):
        build()


def test_script_reads_back_as_written():
    script = Script(port=80).accept(window=14600).drop(3).ack_late(0.1)
    assert repr(script) == "Script(port=80).accept(window=14600).drop(3).ack_late(0.1)"


def _shape(exp) -> dict:
    """What a run of a script shows whatever the run's timing: a live run and its recording must agree on it.

    The outcome, the script, the handshake, the bytes delivered, how the link cut them into
    segments (on the 1500-byte link; loopback's giant segments depend on timing), which were sent
    more than once, and whether the window closed and was probed.
    """
    conv = exp.conversation
    data = _data(conv)
    copies = Counter((s.seq, s.length) for s in data)
    return {
        "result": repr(exp.result) if isinstance(exp.result, BaseException) else exp.result,
        "script": getattr(exp, "script", ""),
        "handshake": conv.flags()[:3],
        "bytes": hashlib.sha256(conv.data()).hexdigest(),
        "segments": sorted(copies) if data and max(s.length for s in data) <= MSS else "loopback",
        "sent again": {seq: n for (seq, _), n in copies.items() if n > 1},
        "zero window": bool(conv.zero_windows(SERVER_TO_CLIENT)),
        "probed": bool(conv.window_probes()),
    }


@pytest.mark.lab
@pytest.mark.parametrize("name", sorted(peer.RECORDINGS))
def test_every_notebook_experiment_has_a_recording_that_shows_what_a_live_run_shows(monkeypatch, name):
    live = peer.RECORDINGS[name]()
    assert live.source == "live", live.why
    monkeypatch.setenv("NETLAB_RECORDED", "1")
    recorded = load_recorded(name, why="recorded", kind=peer.PeerExperiment)
    assert recorded.source == "recorded" and recorded.conversation.source == "recorded"
    assert _shape(recorded) == _shape(live)


@pytest.mark.slow
def test_a_recorded_exception_reads_back_as_that_exception(monkeypatch, tmp_path):
    import netlab.core.pcapfiles

    shutil.copy(netlab.core.pcapfiles.DATA / "transfer-fast.pcap", tmp_path / "reset.pcap")
    (tmp_path / "reset.json").write_text(json.dumps({
        "result": "ConnectionResetError(104, 'Connection reset by peer')", "script": "Script(port=80).reset(after=3)",
    }))
    monkeypatch.setattr(netlab.core.pcapfiles, "DATA", tmp_path)
    exp = load_recorded("reset", kind=peer.PeerExperiment)
    assert isinstance(exp.result, ConnectionResetError) and exp.result.errno == 104, repr(exp.result)
    assert exp.script == "Script(port=80).reset(after=3)"


def test_recorded_transfer_says_which_script_it_followed(monkeypatch):
    monkeypatch.setenv("NETLAB_RECORDED", "1")
    same = peer.transfer(Script().drop(3), data=30_000, recorded="transfer-fast")
    assert same.source == "recorded" and "NETLAB_RECORDED" in same.why and "not the script asked for" not in same.why
    # The recording did what drop(3) does: the third data segment went twice, no other did.
    sent = Counter(s.seq for s in _data(same.conversation))
    assert [seq for seq, n in sent.items() if n > 1] == [1 + 2 * MSS], same.conversation.table()
    assert same.conversation.data() == peer.pattern(30_000)
    other = peer.transfer(Script().drop(4), data=30_000, recorded="transfer-fast")
    assert "This recording followed Script(port=80).drop(3), not the script asked for." in other.why


@pytest.mark.lab
def test_retransmit_command_prints_each_timeout_about_double_the_last():
    done = subprocess.run([sys.executable, "-m", "netlab", "retransmit", "--count", "3"],
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    lines = [ln for ln in done.stdout.splitlines() if "retransmission" in ln]
    assert len(lines) == 3, done.stdout
    ratios = [float(ln.split(", ")[-1].split(" ×")[0]) for ln in lines[1:]]
    assert all(1.6 <= r <= 2.4 for r in ratios), done.stdout


def test_swapped_data_words_pass_the_checksum_that_scapy_computes():
    from scapy.layers.inet import IP, TCP

    segment = IP(src="10.0.0.1", dst="10.0.0.2") / TCP(sport=40000, dport=80, flags="PA") / b"netlab data"
    intact, damaged = peer.swap_words(IP(bytes(segment)), word=1)
    assert bytes(intact[TCP].payload) == b"netlab data" and bytes(damaged[TCP].payload) == b"neabtl data"
    recomputed = IP(bytes(damaged))
    del recomputed[TCP].chksum
    assert damaged[TCP].chksum == intact[TCP].chksum == IP(bytes(recomputed))[TCP].chksum
    assert IP(bytes(damaged))[IP].chksum == intact[IP].chksum  # the IP header is untouched


def test_swap_words_refuses_a_swap_that_changes_nothing_or_leaves_the_data():
    from scapy.layers.inet import IP, TCP

    with pytest.raises(ValueError, match="equal"):
        peer.swap_words(IP() / TCP() / b"abab", word=0)
    with pytest.raises(ValueError, match="too few"):
        peer.swap_words(IP() / TCP() / b"abcdef", word=2)
    with pytest.raises(ValueError, match="TCP"):
        peer.swap_words(IP() / b"abcd")
