"""Notebook 09: the bottleneck, TCP_INFO read from the kernel, slow start, cuts after a loss, the cwnd command.

Live runs through netlab's bottleneck (tbf queue, delay line, a Linux receiver in its own
namespace), each bounded to a few seconds.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from dataclasses import replace

import pytest

from netlab.core.bottleneck import MSS, Bottleneck, available_algorithms, send_sampled
from netlab.core.experiment import load_recorded
from netlab.core.lab import Lab
from netlab.core.sockets import tcp_info
from netlab.lessons.congestion import experiments as congestion

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="the lab is a Linux network namespace")


def _ss_fields(text: str) -> dict[str, str]:
    """The key:value fields of one `ss -ti` socket (cwnd:10, rtt:40.2/20.1, bytes_acked:…)."""
    return dict(re.findall(r"\b([a-z_]+):(\S+)", text))


@pytest.mark.lab
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


@pytest.mark.lab
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


@pytest.mark.lab
def test_slow_start_from_the_routes_initial_window(nothing_left_behind):
    exp = congestion.slow_start(initial_window=3, capture=False)  # RFC 3390's 3 segments of 1448 bytes
    assert exp.live and exp.samples[0].cwnd == 3
    assert [r.cwnd for r in exp.rounds[:4]] == [6, 12, 24, 48]
    assert "initial window 3 segments" in exp.path


@pytest.mark.slow
def test_slow_start_from_another_initial_window_has_no_recording_to_stand_in(monkeypatch):
    from netlab.core.errors import LabUnavailable

    monkeypatch.setenv("NETLAB_RECORDED", "1")
    assert congestion.slow_start().samples[0].cwnd == 10  # the recording starts from Linux's 10
    with pytest.raises(LabUnavailable):
        congestion.slow_start(initial_window=3)


@pytest.mark.parametrize("initial_window", [0, 101, 2.5, "4"])
def test_a_bad_initial_window_is_refused_before_a_lab_is_made(initial_window):
    with pytest.raises((TypeError, ValueError), match="initial_window"):
        congestion.slow_start(initial_window=initial_window)


@pytest.mark.lab
@pytest.mark.parametrize(("algorithm", "low", "high"), [("reno", 0.45, 0.55), ("cubic", 0.65, 0.75)])
def test_one_loss_cuts_cwnd_by_the_algorithms_factor(algorithm, low, high):
    exp = congestion.after_loss(algorithm, recorded=None)
    cut = exp.reductions[0]
    assert cut.cause == "fast-retransmit"
    assert low <= cut.factor <= high, str(cut)
    assert exp.samples[-1].total_retrans >= 1
    assert "forward: data segment 150: dropped" in [what for _, what in exp.log]


def _shaped(recording, fields, rows, **same):
    """Samples shaped by hand from one recorded sample, 2 ms apart: `fields` set from each row, `same` in all."""
    first = load_recorded(recording, kind=congestion.CongestionExperiment).samples[0]
    return [replace(first, time=first.time + 0.002 * k, **dict(zip(fields, row)), **same) for k, row in enumerate(rows)]


def _samples(recording, *states):
    """(ca_state, cwnd, ssthresh) per sample."""
    return _shaped(recording, ("ca_state", "cwnd", "ssthresh"), states, bytes_sent=1)


def _slow_start(points, ssthresh=None):
    """(cwnd, segments acknowledged) per sample of a cwnd-limited sender: it has sent acknowledged + cwnd."""
    rows = [(cwnd, acked * MSS + 1, (acked + cwnd) * MSS) for cwnd, acked in points]  # bytes_acked counts the SYN
    return _shaped("congestion-slow-start", ("cwnd", "bytes_acked", "bytes_sent"), rows,
                   ca_state="Open", ssthresh=ssthresh, bytes_retrans=0)


def test_rounds_in_slow_start_read_cwnd_where_the_round_ended_not_where_a_late_sample_was_taken():
    # cwnd-limited slow start: sent = acknowledged + cwnd, and cwnd = 10 + segments acknowledged.
    # Round 3 ends when the 70 segments sent by the end of round 2 are acknowledged: cwnd 80. The
    # sample after it came late, at 118 acknowledged and cwnd 128 (a fresh-clone run under load
    # read [20, 40, 128, 185, 286]); the rounds after it were shifted too.
    points = [(10, 0), (20, 10), (40, 30), (60, 50), (128, 118), (200, 190), (330, 320)]
    samples = _slow_start(points)
    assert [r.cwnd for r in congestion.rounds(samples)] == [20, 40, 80, 160, 320]


def test_rounds_outside_slow_start_keep_the_sample_after_the_end():
    points = [(10, 0), (20, 10), (40, 30), (60, 50), (128, 118), (128, 246)]
    samples = _slow_start(points, ssthresh=500)
    assert [r.cwnd for r in congestion.rounds(samples)][:3] == [20, 40, 128]


@pytest.mark.slow
def test_reductions_reads_one_recovery_as_one_cut():
    samples = _samples("congestion-reno", ("Open", 150, None), ("Disorder", 159, None), ("Recovery", 156, 79),
                       ("Recovery", 100, 79), ("Recovery", 79, 79), ("Open", 79, 79), ("Open", 80, 79))
    assert [(r.before, r.after, r.cause, r.ssthresh) for r in congestion.reductions(samples)] == [
        (159, 79, "fast-retransmit", 79)]


def test_reductions_tells_two_cuts_apart_when_the_samples_missed_the_exit_between_them():
    # Seen on a busy machine: a sample 95 ms late, with Reno back in Recovery under a new ssthresh.
    # Read as one cut it was 159 → 39 (× 0.25); the kernel made two, each × 0.5.
    samples = _samples("congestion-reno", ("Open", 150, None), ("Disorder", 159, None), ("Recovery", 156, 79),
                       ("Recovery", 90, 79), ("Recovery", 78, 39), ("Recovery", 50, 39), ("Open", 39, 39))
    cuts = congestion.reductions(samples)
    assert [(r.before, r.after, r.ssthresh) for r in cuts] == [(159, 79, 79), (79, 39, 39)]
    assert [r.cause for r in cuts] == ["fast-retransmit"] * 2
    assert cuts[1].time > cuts[0].time


def test_reductions_of_a_timeout_keep_cwnd_at_its_lowest():
    samples = _samples("congestion-timeout", ("Open", 60, None), ("Loss", 1, 30), ("Loss", 2, 30), ("Open", 3, 30))
    assert [(r.before, r.after, r.cause) for r in congestion.reductions(samples)] == [(60, 1, "timeout")]


@pytest.mark.lab
def test_an_outage_ends_in_a_timeout_and_cwnd_of_one():
    exp = congestion.timeout(recorded=None)
    cut = exp.reductions[0]
    assert cut.cause == "timeout"
    assert cut.after == 1


def test_unknown_algorithm_is_refused_naming_those_the_kernel_has():
    with pytest.raises(ValueError, match="no congestion control 'vegas-nope'; it offers"):
        congestion.run("vegas-nope")


@pytest.mark.lab
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


@pytest.mark.lab
def test_cwnd_command_says_why_each_cut_happened_from_the_kernels_counters():
    # Reno's slow start overshoots the path (33 segments in flight, 100 queued) long before data
    # segment 300: the ordered loss comes with the queue's own drops in one window, one cut; back at
    # half of 268, cwnd is still above what the path holds, and the queue's next drop is a cut of its own.
    done = subprocess.run([sys.executable, "-m", "netlab", "cwnd", "--cc", "reno", "--loss", "300"],
                          capture_output=True, text=True, timeout=90)
    assert done.returncode == 0, done.stderr
    cuts = [line for line in done.stdout.splitlines() if re.match(r"\s+at [\d.]+ s ", line)]
    assert cuts and "the one the path lost" in cuts[0] and "more that the full queue dropped" in cuts[0]
    assert all("a loss of its own" in line for line in cuts[1:])
    losses = re.search(r"the path lost data segment 300 as ordered; its full queue dropped (\d+) \(tc's count\); "
                       r"the sender retransmitted (\d+)", done.stdout)
    assert losses, done.stdout
    queue_drops, resent = map(int, losses.groups())
    assert resent >= queue_drops + 1  # every drop was resent: the ordered one, and the queue's
    counted = sum(int(n) for n in re.findall(r"(\d+) segments? resent", "\n".join(cuts)))
    assert 1 < counted <= resent, cuts  # the cuts' own counts, of the kernel's total


def test_cwnd_command_with_an_unknown_algorithm_says_so_in_one_line():
    done = subprocess.run([sys.executable, "-m", "netlab", "cwnd", "--cc", "nope"], capture_output=True, text=True,
                          timeout=30)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1
    assert all(name in lines[0] for name in available_algorithms())


@pytest.mark.lab
def test_send_sampled_samples_several_times_per_round_trip(nothing_left_behind):
    with Lab() as lab, Bottleneck(lab, rate=10e6, queue=30, rtt=0.04) as path:
        with path.connect("reno") as sock:
            sent, samples = send_sampled(sock, seconds=0.3)
    assert sent > 0
    gaps = [b.time - a.time for a, b in zip(samples, samples[1:])]
    assert sorted(gaps)[len(gaps) // 2] < 0.01  # at least four per 40 ms round trip
    assert path.report.packets and path.report.capture_drops == 0


@pytest.mark.slow
def test_every_recording_loads_with_its_samples():
    for name in congestion.RECORDINGS:
        exp = load_recorded(name, kind=congestion.CongestionExperiment)
        assert exp.samples and exp.algorithm, name
        if name.startswith("congestion-bloat-"):  # bufferbloat keeps the samples and its probes' RTTs, no capture
            assert exp.probes, name
        elif not name.startswith("congestion-growth-"):  # the long runs keep samples only, by design
            assert exp.conversation.segments, name


def test_at_once_returns_results_in_order_and_overlaps_the_waiting():
    started = time.monotonic()
    results = congestion.at_once(lambda: time.sleep(0.3) or "a", lambda: time.sleep(0.3) or "b")
    assert results == ["a", "b"]
    assert time.monotonic() - started < 0.55


def test_at_once_raises_the_first_failure_after_all_have_ended():
    ended = []

    def slow() -> str:
        time.sleep(0.2)
        ended.append("slow")
        return "slow"

    def fail() -> None:
        raise ValueError("refused")

    with pytest.raises(ValueError, match="refused"):
        congestion.at_once(slow, fail)
    assert ended == ["slow"]


@pytest.mark.lab
def test_a_run_without_capture_keeps_the_samples_only(nothing_left_behind):
    exp = congestion.run("reno", rate=10e6, queue=30, rtt=0.04, seconds=0.3, capture=False, every=0.005, recorded=None)
    assert exp.live and exp.packets == [] and exp.sent > 0
    assert exp.samples[-1].bytes_acked > 1 and exp.kernel.startswith("Linux")


@pytest.mark.lab
def test_the_small_buffer_run_is_limited_by_the_receivers_window():
    exp = congestion.window_limits("rwnd", recorded=None)
    est = congestion.window_estimate(exp)
    assert est.limit == "rwnd", str(est)
    assert est.cwnd_bytes >= 10 * exp.samples[-1].mss  # cwnd never below the initial window: no loss here
    # rwnd/RTT is the ceiling. Idle, the throughput is within a few % of it; every round trip also
    # waits for the receiving program to read, which fell to 82 % of it beside two test runs and a busy loop.
    assert 0.5 * est.predicted <= est.measured <= 1.1 * est.predicted, str(est)


@pytest.mark.lab
def test_the_path_limited_run_is_predicted_by_cwnd_over_the_rtt_of_the_same_moment():
    exp = congestion.window_limits("cwnd", recorded=None)
    est = congestion.window_estimate(exp)
    assert est.limit == "cwnd", str(est)
    assert est.predicted == pytest.approx(est.cwnd_bytes / est.srtt), "cwnd, rwnd and srtt of one sample"
    assert abs(est.predicted - est.measured) <= 0.2 * est.measured, str(est)


def test_the_growth_recording_shows_renos_line_and_cubics_curve():
    reno, cubic = congestion.growth_recorded()
    assert not reno.live and reno.why.startswith("recorded: a live run of 15 s on ")
    line = max(congestion.increments(reno), key=lambda s: len(s.cwnds))
    assert len(line.steps) >= 40 and line.steps.count(1) >= 0.8 * len(line.steps)
    assert all(0 <= step <= 2 for step in line.steps)
    curve = max(congestion.increments(cubic), key=lambda s: len(s.cwnds))
    third = len(curve.steps) // 3
    first, middle, last = (sum(p) / len(p) for p in (curve.steps[:third], curve.steps[third:-third], curve.steps[-third:]))
    assert middle < first and middle < last  # concave, then convex


def test_slow_start_end_tells_hystart_from_a_loss():
    reno, cubic = congestion.growth_recorded()
    by_loss, by_hystart = congestion.slow_start_end(reno), congestion.slow_start_end(cubic)
    assert not by_loss.without_loss and by_loss.retransmitted > 0
    assert by_hystart.without_loss and by_hystart.ssthresh == by_hystart.cwnd


# ---------------------------------------------------------------------------
# The lesson's own drawings (netlab/lessons/congestion/draw.py), offered as netlab.congestion.NAME.


def test_the_lessons_drawings_load_matplotlib_only_when_first_drawn():
    code = ("import sys, netlab\n"
            "import netlab.lessons.congestion.experiments as experiments\n"
            "assert 'matplotlib' not in sys.modules, 'the experiments loaded matplotlib'\n"
            "from netlab.lessons.congestion import draw\n"
            "assert netlab.congestion.rtt_plot is draw.rtt_plot and experiments.cwnd_plot is draw.cwnd_plot\n"
            "assert netlab.congestion.figure is draw.figure and 'growth_figure' in dir(netlab.congestion)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


def test_a_drawing_of_another_lesson_is_not_the_cores():
    # 09's plots moved from netlab.core.draw into the lesson; the core's drawing keeps what several use.
    import netlab

    assert not hasattr(netlab.draw, "rtt_plot") and not hasattr(netlab.draw, "cwnd_plot")
    with pytest.raises(AttributeError, match="no attribute 'no_such_plot'"):
        netlab.congestion.no_such_plot  # noqa: B018


def test_cwnd_plot_draws_cwnd_ssthresh_in_flight_and_the_recovery_of_a_recording():
    exp = load_recorded("congestion-reno", kind=congestion.CongestionExperiment)
    ax = congestion.cwnd_plot(exp.samples, start=exp.start).axes[0]
    lines = {line.get_gid(): line for line in ax.lines}
    assert {"cwnd", "ssthresh", "in flight"} <= set(lines)
    assert list(lines["cwnd"].get_ydata()) == [s.cwnd for s in exp.samples]
    assert any((p.get_gid() or "").startswith("recovery ") for p in ax.patches)  # the loss's fast recovery, shaded
    with pytest.raises(ValueError, match="at least one TCP_INFO sample"):
        congestion.cwnd_plot([])


def test_rtt_plot_draws_one_line_per_label_in_ms():
    series = {"long queue": [(0.0, 0.040), (0.5, 0.300)], "short queue": [(0.0, 0.040), (0.5, 0.045)]}
    ax = congestion.rtt_plot(series, title="two queues").axes[0]
    drawn = {line.get_gid(): list(line.get_ydata()) for line in ax.lines}
    assert drawn == {"rtt long queue": [40.0, 300.0], "rtt short queue": [40.0, 45.0]}
    assert ax.get_title() == "two queues"
