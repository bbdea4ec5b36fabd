"""Notebook 13's lesson: the protocol's header, the harness's verdict from what it observed, the checks.

The fast tests build captures with scapy and judge them as the harness would; the lab tests run
the instructor's solutions (taken from the notebook's solution cells, so the package holds none)
and misbehaving functions on the live lossy path.
"""

from __future__ import annotations

import json
import linecache
import os
import re
from pathlib import Path

import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether
from scapy.utils import checksum

import netlab
from netlab.core.delayline import Direction
from netlab.lessons.transport import checks
from netlab.lessons.transport.experiments import CASES, PIPELINE_CASES, SINGLE_LOSS, case, retransmissions
from netlab.lessons.transport.harness import Case, Outcome, TransportRun, problem, run_apart
from netlab.lessons.transport.path import RECEIVER, SENDER
from netlab.lessons.transport.protocol import PAYLOAD, PORT, Segment

NOTEBOOK = Path(__file__).parent.parent / "notebooks" / "13-build-a-transport.ipynb"


# --- the header ---


def test_segment_checksum_is_the_internet_checksum_and_a_flipped_bit_breaks_it():
    raw = bytes(Segment(flags="DATA", seq=7, ack=2) / b"payload")
    assert len(raw) == 11 + 7
    assert int.from_bytes(raw[9:11], "big") == checksum(raw[:9] + b"\0\0" + raw[11:])
    assert Segment(raw).intact()
    for at in (0, 5, 12):
        damaged = bytearray(raw)
        damaged[at] ^= 0x10
        assert not Segment(bytes(damaged)).intact()


def test_a_frame_on_the_lessons_port_dissects_as_the_protocol_both_ways():
    for sport, dport in ((PORT, PORT), (PORT, 40000), (40000, PORT)):
        frame = Ether(bytes(Ether() / IP() / UDP(sport=sport, dport=dport) / Segment(flags="ACK", ack=3)))
        assert Segment in frame and frame[Segment].ack == 3 and "ACK" in frame[Segment].flags
    other = Ether(bytes(Ether() / IP() / UDP(sport=40000, dport=40001) / (b"\x02" * 11)))
    assert Segment not in other


# --- the verdict, from observed data alone ---


def _frame(seg, t: float, forward: bool = True):
    src, dst = (SENDER, RECEIVER) if forward else (RECEIVER, SENDER)
    pkt = Ether(bytes(Ether() / IP(src=src[0], dst=dst[0]) / UDP(sport=src[1], dport=dst[1]) / seg))
    pkt.time = t
    return pkt


def _observed(case: Case, delivered: bytes | None, *, sender: str = "returned", receiver: str = "returned",
              packets: list | None = None, log: list | None = None) -> TransportRun:
    return TransportRun(packets=packets or [], source="live", why="test", case=case.name, size=case.size,
                        sender=Outcome(sender), receiver=Outcome(receiver, delivered), delivered=delivered,
                        correct=delivered == case.data(), line_log=log or [])


ONE = Case("two segments", Direction(), Direction(), 2 * PAYLOAD)


def _two_segments() -> list:
    data = ONE.data()
    return [_frame(Segment(flags="DATA", seq=0) / data[:PAYLOAD], 0.0),
            _frame(Segment(flags="DATA", seq=1) / data[PAYLOAD:], 0.001),
            _frame(Segment(flags="ACK", ack=1), 0.02, forward=False)]


def test_every_byte_once_in_order_and_both_ended_passes():
    assert problem(_observed(ONE, ONE.data(), packets=_two_segments()), ONE) is None


def test_a_missing_segment_is_named_with_what_the_line_did_to_it():
    run = _observed(ONE, ONE.data()[:PAYLOAD], packets=_two_segments(), log=[[0.001, "forward: frame 2 lost"]])
    said = problem(run, ONE)
    assert "two segments" in said and "data segment 1" in said and "missing" in said and "lost" in said
    assert run.lines(times=False)[1].endswith("[lost]")


def test_a_duplicate_delivered_twice_and_a_corrupted_byte_are_told_apart():
    data = ONE.data()
    twice = problem(_observed(ONE, data[:PAYLOAD] * 2 + data[PAYLOAD:], packets=_two_segments()), ONE)
    assert "data segment 1" in twice and "out of order or twice" in twice
    wrong = bytearray(data)
    wrong[PAYLOAD + 10] ^= 1
    said = problem(_observed(ONE, bytes(wrong), packets=_two_segments(),
                             log=[[0.001, "forward: frame 2 corrupted: byte 21 of the payload, bit 0"]]), ONE)
    assert f"offset {PAYLOAD + 10}" in said and "wrong bytes" in said and "corrupted" in said


def test_raising_hanging_flooding_and_silent_functions_each_get_their_own_hint():
    raised = _observed(ONE, None, packets=_two_segments())
    raised.sender = Outcome("raised", "ValueError: x")
    assert "your sender raised ValueError: x" in problem(raised, ONE)
    waiting = _observed(ONE, None, receiver="timeout", packets=_two_segments())
    assert "receiver had not returned" in problem(waiting, ONE)
    silent = _observed(ONE, None, sender="timeout", receiver="timeout")
    assert "sent nothing" in problem(silent, ONE)
    flood = _observed(ONE, ONE.data(), packets=[_frame(Segment(flags="DATA"), i * 1e-4) for i in range(40)])
    assert "floods" in problem(flood, ONE)
    slow = _observed(ONE, ONE.data(), sender="timeout", packets=_two_segments())
    assert "sender had not returned" in problem(slow, ONE)
    text = _observed(ONE, None, packets=_two_segments())
    text.receiver = Outcome("returned", "'hello'")
    assert "not bytes" in problem(text, ONE)


def test_retransmissions_count_data_sent_again_not_fins_or_acks():
    run = _observed(ONE, ONE.data(), packets=[*_two_segments(), _frame(Segment(flags="DATA", seq=1), 0.1),
                                              _frame(Segment(flags="FIN", seq=2), 0.2),
                                              _frame(Segment(flags="FIN", seq=2), 0.3)])
    assert retransmissions(run) == 1


# --- bad input: one line, no lab ---


def test_bad_arguments_to_the_experiments_are_one_clear_error():
    with pytest.raises(ValueError, match="window must be a whole number of segments from 1 to 64, not 0"):
        netlab.transport.run(print, print, window=0)
    with pytest.raises(TypeError, match="sender must be a function you wrote, not int"):
        netlab.transport.run(42, print)
    with pytest.raises(ValueError, match="no case named 'nope'"):
        case("nope")
    with pytest.raises(ValueError, match="windows must be a list"):
        netlab.transport.utilisation(print, print, windows=3)


def test_checks_refuse_what_is_not_an_answer_without_opening_a_lab():
    def stub(sock):
        ...

    assert "Not answered yet" in checks.stop_and_wait(print, stub).message
    assert "Not answered yet" in checks.go_back_n(..., print).message
    assert "not a int" in checks.stop_and_wait(42, print).message
    def sender(sock, data, peer):
        return 0

    def receiver_of_two(sock, window):
        return b""

    assert "must take 1 argument: receiver(sock)" in checks.stop_and_wait(sender, receiver_of_two).message
    assert "must take 4 arguments" in checks.selective_repeat(sender, receiver_of_two).message


def test_each_protocols_cases_are_named_distinctly_and_the_single_loss_loses_only_the_third_frame():
    import random

    for cases in (CASES, PIPELINE_CASES):
        assert len({c.name for c in cases}) == len(cases)
    draws = random.Random(SINGLE_LOSS.forward.seed)
    assert [i for i in range(40) if draws.random() < SINGLE_LOSS.forward.loss] == [2]


def test_run_apart_keeps_what_a_function_prints_and_returns_and_kills_what_hangs():
    import time

    def talks():
        print("hello")
        return b"ok"

    def hangs():
        time.sleep(30)

    started = time.monotonic()
    said, hung, raised = run_apart([(talks, ()), (hangs, ()), (lambda: 1 / 0, ())], 0.5)
    assert time.monotonic() - started < 3
    assert (said.kind, said.value, said.output) == ("returned", b"ok", "hello\n")
    assert hung.kind == "timeout"
    assert raised.kind == "raised" and raised.value.startswith("ZeroDivisionError")


# --- live: the instructor's solutions and misbehaving code on the lossy path ---


def _solutions() -> dict:
    """The notebook's header cell and solution cells, run: the instructor's functions (the package holds none)."""
    cells = json.loads(NOTEBOOK.read_text())["cells"]
    namespace: dict = {"netlab": netlab}
    for number, cell in enumerate(cells):
        source = "".join(cell["source"])
        if source.startswith("Segment = netlab.transport.Segment") or "solution" in cell["metadata"].get("tags", []):
            # A name per cell whose lines inspect can find, as IPython gives each cell: a check hands a
            # function over as its source.
            filename = f"<{NOTEBOOK.name} cell {number}>"
            linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
            exec(compile(source, filename, "exec"), namespace)
    return namespace


@pytest.fixture
def grading(monkeypatch):
    monkeypatch.setenv("NETLAB_GRADING", "1")


@pytest.mark.lab
@pytest.mark.parametrize("check, sender, receiver", [("stop_and_wait", "sender", "receiver"),
                                                     ("go_back_n", "gbn_sender", "gbn_receiver"),
                                                     ("selective_repeat", "sr_sender", "sr_receiver")])
def test_the_instructors_solutions_pass_every_case(grading, check, sender, receiver):
    found = _solutions()
    feedback = getattr(checks, check)(found[sender], found[receiver])
    assert feedback, feedback.message
    assert "cases" in feedback.message


@pytest.mark.lab
def test_go_back_n_is_not_selective_repeat(monkeypatch):
    monkeypatch.delenv("NETLAB_GRADING", raising=False)  # a student's run: the first cases are enough
    found = _solutions()
    feedback = checks.selective_repeat(found["gbn_sender"], found["gbn_receiver"])
    assert not feedback
    assert re.search("one data segment was lost and your sender sent [4-9] data segments again", feedback.message)


@pytest.mark.lab
def test_a_sender_that_hangs_floods_or_raises_gets_a_hint_and_leaves_no_process():
    import time

    found = _solutions()
    segment = bytes(Segment(flags="DATA", seq=0) / b"x")

    def hangs(sock, data, peer):
        time.sleep(60)

    def floods(sock, data, peer):
        end = time.monotonic() + 30
        while time.monotonic() < end:
            sock.sendto(segment, peer)

    def raises(sock, data, peer):
        raise RuntimeError("my bug")

    def lets_damage_through(sock):
        got, expected = [], 0
        sock.settimeout(1)
        while True:
            raw, peer = sock.recvfrom(2048)
            seg = Segment(raw)
            if seg.seq == expected:
                if "FIN" in seg.flags:
                    return b"".join(got)
                got.append(bytes(seg.payload))
                expected += 1
            sock.sendto(bytes(Segment(flags="ACK", ack=seg.seq + 1)), peer)

    netlab.transport.kept_path()  # the kept lab and path stay on purpose: only what a check started must go
    children_before = _children()
    for sender, receiver, said in ((hangs, found["receiver"], "sent nothing"), (floods, found["receiver"], "floods"),
                                   (raises, found["receiver"], "raised RuntimeError: my bug"),
                                   (found["sender"], lets_damage_through, "wrong bytes")):
        started = time.monotonic()
        feedback = checks.stop_and_wait(sender, receiver)
        assert not feedback and said in feedback.message, feedback.message
        assert "everything at once" in feedback.message
        assert time.monotonic() - started < 30
    assert _children() <= children_before, "a check left a process behind"


def _children() -> set[str]:
    mine = str(os.getpid())
    found = set()
    for pid in os.listdir("/proc"):
        try:
            if pid.isdigit() and Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1] == mine:
                found.add(pid)
        except (OSError, IndexError):
            pass
    return found


@pytest.mark.lab
def test_tcp_on_the_same_path_delivers_and_retransmits():
    tcp = netlab.transport.tcp_beside(case="20% of segments lost each way")
    assert tcp.delivered == tcp.size == 8 * PAYLOAD
    assert tcp.retransmitted >= 1 and str(tcp.packets[0]["TCP"].flags) == "S"
