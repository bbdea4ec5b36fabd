"""netlab.failures (notebook 06): each failure live in the lab, what the program saw and what was
on the wire; its recordings; and connect_with_retry, on the host's loopback."""

from __future__ import annotations

import errno
import random
import socket
import sys

import pytest

import netlab
import netlab.core.experiment
from netlab.core.conversation import CLIENT_TO_SERVER as C2S
from netlab.core.conversation import SERVER_TO_CLIENT as S2C
from netlab.core.sockets import RetryError, connect_with_retry
from netlab.lessons.failures import experiments as failures

live = pytest.mark.skipif(sys.platform != "linux", reason="the lab is a Linux network namespace")


@pytest.mark.lab
@live
def test_connect_timeout_retransmits_the_unanswered_syn_then_raises_timeout(nothing_left_behind):
    exp = failures.connect_timeout()  # notebook 06's: 2.2 s
    assert exp.live, exp.why
    assert isinstance(exp.result, TimeoutError)
    conv = exp.conversation
    assert set(conv.flags()) == {"SYN"} and len(conv.segments) >= 2, conv.table()
    assert conv.retransmissions() == conv.segments[1:]
    # The first retransmission waits the initial RTO of a SYN: 1 s (RFC 6298 2.1).
    assert 0.9 < conv.segments[1].time < 1.5, conv.table()
    assert conv.segments[-1].time < 2.2


def test_syn_give_up_time_follows_the_kernels_documented_sums():
    # ip-sysctl.rst: tcp_syn_retries 6 "corresponds to 63 seconds till the last retransmission ...
    # the final timeout ... will happen after 127 seconds"; with tcp_syn_linear_timeouts 4 the
    # waits are 1, 1, 1, 1, 1, 2, 4, ... (five of 1 s), ten retransmissions in all.
    assert failures._syn_give_up_seconds(6, 0) == 127
    assert failures._syn_give_up_seconds(6, 4) == 5 + 2 + 4 + 8 + 16 + 32 + 64
    assert failures._syn_give_up_seconds(15, 0) == sum(min(2**n, 120) for n in range(16))  # TCP_RTO_MAX caps each


@pytest.mark.lab
@live
def test_syn_limits_are_the_lab_namespaces_own(nothing_left_behind):
    limits = failures.syn_limits()
    with netlab.Lab() as lab:
        retries = int(lab.run("cat", "/proc/sys/net/ipv4/tcp_syn_retries"))
    assert limits["tcp_syn_retries"] == retries
    linear = limits["tcp_syn_linear_timeouts"] or 0
    assert limits["retransmissions"] == retries + linear
    assert limits["seconds"] == failures._syn_give_up_seconds(retries, linear)


@live
def test_read_timeout_is_silence_on_the_wire(nothing_left_behind):
    exp = failures.read_timeout(timeout=0.3)
    assert isinstance(exp.result, TimeoutError)
    conv = exp.conversation
    fin = next(s for s in conv.segments if s.has("FIN"))
    request = [s for s in conv.segments if s.direction == C2S and s.length][-1]
    assert fin.direction == C2S and fin.time - request.time >= 0.3, conv.table()
    between = conv.segments[request.number:fin.number - 1]
    assert all(s.flags == "ACK" and not s.length for s in between), "only the server kernel's ACK of the request"
    assert not any(s.has("RST") for s in conv.segments)
    assert conv.data(S2C) == b""


@live
def test_reset_by_peer_is_a_rst_and_connection_reset_error(nothing_left_behind):
    exp = failures.reset_by_peer()
    assert isinstance(exp.result, ConnectionResetError) and exp.result.errno == errno.ECONNRESET
    conv = exp.conversation
    assert conv.segments[-1].direction == S2C and conv.segments[-1].has("RST"), conv.table()
    assert not any(s.has("FIN") for s in conv.segments), "an abort sends no FIN"


@live
def test_broken_pipe_first_write_leaves_and_is_reset_second_raises(nothing_left_behind):
    exp = failures.broken_pipe()
    assert isinstance(exp.result, BrokenPipeError) and exp.result.errno == errno.EPIPE
    conv = exp.conversation
    after_fin = conv.segments[[s.has("FIN") for s in conv.segments].index(True) + 1:]
    # The client's kernel may acknowledge the FIN on its own first (a pure ACK, left out here).
    told = [(s.direction, s.has("RST"), s.length) for s in after_fin if s.length or s.has("RST")]
    assert told == [(C2S, False, len(b"first write")), (S2C, True, 0)], conv.table()
    assert after_fin[-1].has("RST")
    assert b"second" not in conv.data()


@live
def test_half_close_lets_data_flow_back_after_the_clients_fin(nothing_left_behind):
    exp = failures.half_close()
    conv = exp.conversation
    client_fin = next(s for s in conv.segments if s.direction == C2S and s.has("FIN"))
    later = [s for s in conv.segments if s.number > client_fin.number and s.direction == S2C and s.length]
    assert later and conv.data(S2C) == exp.result == b"got 17 bytes after which you sent FIN"
    assert conv.closed_first == "client"


@live
def test_blocked_send_times_out_while_the_window_is_zero_and_the_window_reopens(nothing_left_behind):
    exp = failures.blocked_send(timeout=0.5)
    assert isinstance(exp.result, TimeoutError)
    conv = exp.conversation
    zero = conv.zero_windows(S2C)
    assert zero, conv.table()
    reopened = [s for s in conv.segments if s.direction == S2C and s.number > zero[-1].number and s.window > 0]
    assert reopened, "the receiver read, so its window opened again"
    assert conv.retransmissions() == []


@pytest.mark.lab
@live
def test_retry_refused_gives_up_after_the_attempts_with_growing_waits(nothing_left_behind):
    attempts = failures.retry_refused(attempts=3, first_delay=0.05)
    assert isinstance(attempts.result, RetryError)
    assert [c.flags() for c in attempts.conversations] == [["SYN", "RST-ACK"]] * 3
    first, second = attempts.waits
    assert 0.05 <= first and 0.1 <= second and second > first


@pytest.mark.parametrize("name", sorted(failures.RECORDINGS))
def test_every_failure_has_a_recording_shown_when_the_lab_is_refused(name, monkeypatch):
    monkeypatch.setenv("NETLAB_RECORDED", "1")
    exp = failures.RECORDINGS[name]()
    assert exp.source == "recorded" and "NETLAB_RECORDED" in exp.why
    assert not isinstance(exp.result, str), f"the recorded result was not rebuilt: {exp.result!r}"


def test_recorded_exceptions_are_rebuilt_with_their_errno(monkeypatch):
    monkeypatch.setenv("NETLAB_RECORDED", "1")
    assert failures.reset_by_peer().result.errno == errno.ECONNRESET
    assert failures.broken_pipe().result.errno == errno.EPIPE
    assert isinstance(failures.retry_refused().result, RetryError)


@pytest.mark.parametrize("text", ["not python (", "os.system('x')", "SystemExit(0)x", "__import__('os')"])
def test_recorded_results_that_are_not_plain_values_stay_text(text):
    assert netlab.core.experiment.rebuild(text) == text


# ---------------------------------------------------------------------------
# connect_with_retry, on the host's loopback


@pytest.fixture
def closed_port():
    """A loopback port where a socket is bound but not listening: connecting is refused (RST)."""
    with socket.socket() as bound:
        bound.bind(("127.0.0.1", 0))
        yield bound


def test_gives_up_after_the_attempts_with_the_last_error(closed_port):
    with pytest.raises(RetryError, match=r"after 3 attempts .* ConnectionRefusedError") as info:
        connect_with_retry(closed_port.getsockname(), attempts=3, first_delay=0.01, rng=random.Random(1))
    err = info.value
    assert err.attempts == 3 and isinstance(err.last, ConnectionRefusedError)
    assert isinstance(err, ConnectionError) and err.__cause__ is err.last


def test_waits_double_with_at_most_the_jitter_added(closed_port):
    with pytest.raises(RetryError) as info:
        connect_with_retry(closed_port.getsockname(), attempts=4, first_delay=0.01, jitter=0.25, rng=random.Random(7))
    expected_rng = random.Random(7)
    expected = [0.01 * 2 ** k * (1 + 0.25 * expected_rng.random()) for k in range(3)]
    assert info.value.waits == pytest.approx(expected)
    for k, wait in enumerate(info.value.waits):
        assert 0.01 * 2 ** k <= wait <= 0.01 * 2 ** k * 1.25


class _ListenOnFirstWait(random.Random):
    """A random source that, when first asked for jitter (after the first refusal), starts the server."""

    def __init__(self, sock: socket.socket) -> None:
        super().__init__(0)
        self.sock = sock

    def random(self) -> float:
        self.sock.listen(1)
        return 0.0


def test_returns_the_connected_socket_once_an_attempt_succeeds(closed_port):
    with connect_with_retry(closed_port.getsockname(), attempts=3, first_delay=0.0,
                            rng=_ListenOnFirstWait(closed_port)) as sock:
        assert sock.getpeername() == closed_port.getsockname()


@pytest.mark.parametrize("kwargs, words", [
    ({"attempts": 0}, "attempts must be"), ({"attempts": 2.5}, "attempts must be"),
    ({"first_delay": -1}, "first_delay"), ({"jitter": 2}, "jitter"), ({"timeout": 0}, "timeout"),
])
def test_bad_arguments_are_named(kwargs, words):
    with pytest.raises(ValueError, match=words):
        connect_with_retry(("127.0.0.1", 9), **kwargs)


def test_an_error_retrying_cannot_fix_is_raised_at_once():
    with pytest.raises(OSError) as info:
        connect_with_retry(("256.0.0.1", 80), attempts=5, first_delay=10)
    assert not isinstance(info.value, RetryError)


def test_the_names_a_notebook_uses_are_at_the_top():
    assert netlab.connect_with_retry is connect_with_retry and netlab.failures is failures


def test_refused_recorded_result_is_the_exception_with_its_errno(monkeypatch):
    monkeypatch.setenv("NETLAB_RECORDED", "1")
    exp = failures.refused()
    assert exp.source == "recorded"
    assert isinstance(exp.result, ConnectionRefusedError) and exp.result.errno == errno.ECONNREFUSED


@pytest.mark.parametrize("experiment", ["connect_timeout", "read_timeout", "blocked_send"])
@pytest.mark.parametrize("timeout, error", [(0, ValueError), (-1, ValueError), ("1", TypeError), (60, ValueError)])
def test_failures_refuse_a_timeout_they_cannot_use_naming_it(experiment, timeout, error):
    with pytest.raises(error, match="timeout must be a number of seconds"):
        getattr(failures, experiment)(timeout)


@pytest.mark.lab
@live
def test_a_rebooted_host_answers_the_next_segment_with_a_bare_rst_after_silence():
    exp = failures.rebooted_host()
    assert exp.live, exp.why
    segments = exp.conversation.segments
    assert isinstance(exp.result, ConnectionResetError) and exp.result.errno == errno.ECONNRESET
    # The crash left nothing on the wire: no FIN and no RST before the client's second request.
    second = [s for s in segments if s.direction == C2S and s.length][-1]
    assert not any(s.has("FIN") or s.has("RST") for s in segments if s.number < second.number)
    # The reset answers that request: RST alone, its sequence number the request's ACK number (RFC 9293 3.5.2).
    reset = segments[-1]
    assert reset.direction == S2C and reset.flags == "RST" and reset.seq == second.ack, exp.conversation


def test_the_rebooted_host_recording_shows_the_same(monkeypatch):
    monkeypatch.setenv("NETLAB_RECORDED", "1")
    exp = failures.rebooted_host()
    assert exp.source == "recorded"
    assert isinstance(exp.result, ConnectionResetError) and exp.result.errno == errno.ECONNRESET
    assert exp.conversation.flags()[-1] == "RST" and "FIN-ACK" not in exp.conversation.flags()
