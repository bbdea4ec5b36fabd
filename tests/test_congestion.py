"""Notebook 09: the bottleneck, TCP_INFO read from the kernel, slow start, cuts after a loss, the cwnd command.

Live runs through netlab's bottleneck (tbf queue, delay line, a Linux receiver in its own
namespace), each bounded to a few seconds.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

from netlab.core.bottleneck import Bottleneck, available_algorithms, send_sampled, tcp_info
from netlab.core.experiment import load_recorded
from netlab.core.lab import Lab
from netlab.lessons import congestion

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="the lab is a Linux network namespace")


def _ss_fields(text: str) -> dict[str, str]:
    """The key:value fields of one `ss -ti` socket (cwnd:10, rtt:40.2/20.1, bytes_acked:…)."""
    return dict(re.findall(r"\b([a-z_]+):(\S+)", text))


def test_tcp_info_agrees_with_ss_on_an_idle_connection(nothing_left_behind):
    with Lab() as lab, Bottleneck(lab, rate=10e6, queue=20, rtt=0.02) as path:
        with path.connect("cubic") as sock:
            sock.sendall(b"x" * 20_000)
            info = None
            for _ in range(200):  # until everything is acknowledged: then nothing changes under us
                info = tcp_info(sock)
                if info.bytes_acked > 20_000:
                    break
                sock.settimeout(0.01)
                try:
                    sock.recv(1)
                except TimeoutError:
                    pass
            line = lab.run("ss", "-tinH", "dst", "10.9.0.2", "dport", "=", "9")
            info = tcp_info(sock)
    ss = _ss_fields(line)
    assert info.algorithm == "cubic" and "cubic" in line
    assert info.cwnd == int(ss["cwnd"])
    assert info.mss == int(ss["mss"])
    assert info.bytes_acked == int(ss["bytes_acked"])
    assert info.segs_out == int(ss["segs_out"])
    assert info.data_segs_out == int(ss["data_segs_out"])
    assert info.srtt * 1000 == pytest.approx(float(ss["rtt"].split("/")[0]), abs=0.01)
    assert info.min_rtt * 1000 == pytest.approx(float(ss["minrtt"]), abs=0.01)
    assert 0.019 <= info.min_rtt <= 0.03  # the delay line's 20 ms, and a little


def test_slow_start_doubles_cwnd_each_round_from_the_initial_window(nothing_left_behind):
    exp = congestion.slow_start(recorded=None)
    assert exp.live and exp.algorithm == "reno"
    rounds = exp.rounds
    assert len(rounds) >= 4
    assert 16 <= rounds[0].cwnd <= 24  # 10 segments, each acknowledged: 20
    for r in rounds[1:3]:
        assert 1.6 <= r.ratio <= 2.4, [x.cwnd for x in rounds]
    assert not exp.reductions
    assert exp.samples[-1].data_segs_out == sum(1 for s in exp.conversation.segments if s.direction == "C→S" and s.length)


@pytest.mark.parametrize(("algorithm", "low", "high"), [("reno", 0.45, 0.55), ("cubic", 0.65, 0.75)])
def test_one_loss_cuts_cwnd_by_the_algorithms_factor(algorithm, low, high):
    exp = congestion.after_loss(algorithm, recorded=None)
    cut = exp.reductions[0]
    assert cut.cause == "fast-retransmit"
    assert low <= cut.factor <= high, str(cut)
    assert exp.samples[-1].total_retrans >= 1
    assert "data segment 150: dropped" in [what for _, what in exp.log]


def test_an_outage_ends_in_a_timeout_and_cwnd_of_one():
    exp = congestion.timeout(recorded=None)
    cut = exp.reductions[0]
    assert cut.cause == "timeout"
    assert cut.after == 1


def test_unknown_algorithm_is_refused_naming_those_the_kernel_has():
    with pytest.raises(ValueError, match="no congestion control 'vegas-nope'; it offers"):
        congestion.run("vegas-nope")


def test_cwnd_command_prints_one_json_object():
    done = subprocess.run([sys.executable, "-m", "netlab", "cwnd", "--cc", "reno", "--loss", "100", "--json"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert set(out) == {"cc", "source", "rounds", "reductions"}
    assert out["cc"] == "reno" and out["source"] == "live"
    assert [r["round"] for r in out["rounds"]] == list(range(1, len(out["rounds"]) + 1))
    assert all(set(r) == {"round", "cwnd"} and isinstance(r["cwnd"], int) for r in out["rounds"])
    assert out["reductions"] and out["reductions"][0]["cause"] == "fast-retransmit"
    assert all(set(r) == {"before", "after", "cause"} and r["cause"] in ("fast-retransmit", "timeout", "other")
               for r in out["reductions"])


def test_cwnd_command_with_an_unknown_algorithm_says_so_in_one_line():
    done = subprocess.run([sys.executable, "-m", "netlab", "cwnd", "--cc", "nope"], capture_output=True, text=True,
                          timeout=30)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1
    assert all(name in lines[0] for name in available_algorithms())


def test_send_sampled_samples_several_times_per_round_trip(nothing_left_behind):
    with Lab() as lab, Bottleneck(lab, rate=10e6, queue=30, rtt=0.04) as path:
        with path.connect("reno") as sock:
            sent, samples = send_sampled(sock, seconds=0.3)
    assert sent > 0
    gaps = [b.time - a.time for a, b in zip(samples, samples[1:])]
    assert sorted(gaps)[len(gaps) // 2] < 0.01  # at least four per 40 ms round trip
    assert path.report.packets and path.report.capture_drops == 0


def test_every_recording_loads_with_its_samples():
    for name in congestion.RECORDINGS:
        exp = load_recorded(name, kind=congestion.CongestionExperiment)
        assert exp.samples and exp.algorithm and exp.conversation.segments, name
