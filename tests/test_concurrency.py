"""The three echo servers, the load generator and the bulk transfer (netlab.concurrency and
netlab.bulk, notebook 07), against the real kernel.

Each server model must echo every client's own bytes back under concurrent clients (the load
generator runs in separate processes, in the lab or on the host's loopback), and stop leaving no
thread, descriptor or process behind, also with clients still connected. The bulk transfer must
move exactly the bytes asked for, checked by CRC-32. No test asserts a timing.
"""

from __future__ import annotations

import resource
import socket
import sys
import shutil

import pytest

import netlab
from netlab.bulk import BulkError, iperf3, transfer
from netlab.bulk import compare as bulk_compare
from netlab.concurrency import MODELS, ConcurrencyError, compare, echo_server, idle_cost, load, raise_fd_limit

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="the lab is a Linux network namespace")


@pytest.fixture
def lab(nothing_left_behind):
    """A fresh lab per test, opened after (and closed before) `nothing_left_behind` looks."""
    with netlab.Lab() as lab:
        yield lab


@pytest.mark.parametrize("model", list(MODELS))
def test_each_model_echoes_every_clients_own_messages_under_concurrent_clients(model, lab):
    with echo_server(model, lab=lab) as server:
        point = load(server, clients=60, messages=20, generators=3, lab=lab)
    assert point.requests == 60 * 20
    assert point.wrong == 0  # each message names its client and number: a crossed echo counts here
    assert point.correct
    assert server.open_connections == 0 and server.accepted == 60 and server.errors == []


def test_thread_model_runs_one_thread_per_connection_and_event_loops_one_in_all(lab):
    threads = {}
    for model in MODELS:
        with echo_server(model, lab=lab) as server:
            threads[model] = load(server, clients=40, messages=2, lab=lab).server_threads
    assert threads == {"threads": 40 + 1, "selectors": 1, "asyncio": 1}  # + 1: the accepting thread


@pytest.mark.parametrize("model", list(MODELS))
def test_server_stops_with_idle_clients_still_connected_and_they_see_the_close(model, lab):
    server = echo_server(model, lab=lab)
    clients = [lab.create_connection(server.address) for _ in range(5)]
    try:
        clients[0].sendall(b"ping")
        assert netlab.recv_exactly(clients[0], 4) == b"ping"
        server.wait_for_connections(5)
        server.close()
        assert server.open_connections == 0
        for sock in clients:
            sock.settimeout(5.0)
            assert sock.recv(1) == b""  # the server's side closed: end of file
    finally:
        server.close()
        for sock in clients:
            sock.close()


def test_a_reply_larger_than_the_socket_buffers_is_echoed_whole_by_the_selector_server(lab):
    # 8 MB does not fit in the kernel's buffers: the server must keep what it could not send yet
    # and stop reading while it waits, or it would lose bytes or grow without bound.
    payload = bytes(range(256)) * (8 * 4096)
    with echo_server("selectors", lab=lab) as server, lab.create_connection(server.address, timeout=10) as sock:
        received = bytearray()
        sock.setblocking(False)
        view, sent = memoryview(payload), 0
        while len(received) < len(payload):
            if sent < len(payload):
                try:
                    sent += sock.send(view[sent:sent + 65536])
                except BlockingIOError:
                    pass
            try:
                received += sock.recv(1 << 20)
            except BlockingIOError:
                pass
        assert bytes(received) == payload


def test_load_on_a_closed_server_reports_the_refusal_instead_of_hanging(lab):
    server = echo_server("asyncio", lab=lab)
    server.close()
    with pytest.raises(ConcurrencyError, match="ConnectionRefusedError"):
        load(server, clients=3, messages=1, lab=lab, timeout=10)


def test_bad_input_is_named_in_our_own_error():
    with pytest.raises(ConcurrencyError, match="unknown server model 'fibers'"):
        echo_server("fibers")
    with pytest.raises(ConcurrencyError, match="clients ≥ 1"):
        load(None, clients=0)
    with pytest.raises(BulkError, match="nbytes ≥ 1"):
        transfer(0)


def test_comparison_on_the_host_loopback_when_the_lab_is_refused(monkeypatch, nothing_left_behind):
    monkeypatch.setenv("NETLAB_RECORDED", "1")
    result = compare(clients=(1, 20), messages=5, progress=False)
    assert result.where == "host" and "NETLAB_RECORDED" in result.why
    assert [(p.model, p.clients) for p in result.points] == [(m, c) for m in MODELS for c in (1, 20)]
    assert result.correct
    assert max(result.ratios(20).values()) == 1.0


def test_idle_connections_cost_a_thread_each_only_in_the_thread_model(nothing_left_behind):
    costs = {c.model: c for c in idle_cost(("threads", "asyncio"), connections=50)}
    assert costs["threads"].threads == 50 + 1
    assert costs["asyncio"].threads == 1
    # Each thread reserves its own stack (megabytes of address space); an asyncio connection does not.
    assert costs["threads"].virtual_per_connection > 1 << 20 > costs["asyncio"].virtual_per_connection


def test_fd_limit_is_raised_to_what_is_needed_and_never_lowered():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))
        limit = raise_fd_limit(600)
        assert (limit.soft_before, limit.soft, limit.enough) == (256, 600, True)
        assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] == 600
        assert raise_fd_limit(100).soft == 600  # never lowered
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


@pytest.mark.parametrize("nbytes, buffer", [(10_000_003, 65536), (3 * (1 << 20), 1 << 20), (1, 4096)])
def test_bulk_transfer_moves_exactly_n_bytes_with_matching_checksum(nbytes, buffer, lab):
    result = transfer(nbytes, buffer=buffer, lab=lab, verify=True)
    assert result.nbytes == nbytes
    assert result.checksum_ok is True


def test_bulk_checksum_catches_a_byte_changed_on_the_way(lab, monkeypatch):
    # Stand in for a corrupting link: the first block the sender hands the kernel has one bit flipped.
    real_sendall = socket.socket.sendall
    flipped = []

    def sendall(sock, data, *args):
        if isinstance(data, memoryview) and len(data) == 65536 and not flipped:
            changed = bytearray(data)
            changed[1000] ^= 1
            flipped.append(True)
            return real_sendall(sock, changed, *args)
        return real_sendall(sock, data, *args)

    monkeypatch.setattr(socket.socket, "sendall", sendall)
    result = transfer(4 * 65536, buffer=65536, lab=lab, verify=True)
    assert flipped and result.nbytes == 4 * 65536
    assert result.checksum_ok is False


@pytest.mark.skipif(shutil.which("iperf3") is None, reason="iperf3 is not installed")
def test_iperf3_in_the_lab_reports_the_bytes_it_sent(lab):
    result = iperf3(20_000_000, lab=lab)
    assert result.report["end"]["sum_sent"]["bytes"] >= 20_000_000
    assert 0 < result.nbytes <= result.report["end"]["sum_sent"]["bytes"]


@pytest.mark.skipif(shutil.which("iperf3") is None, reason="iperf3 is not installed")
def test_bulk_compare_reports_both_and_their_ratio(nothing_left_behind):
    result = bulk_compare(20_000_000, runs=1)
    assert result.transfer.nbytes == 20_000_000
    assert result.ratio == pytest.approx(result.transfer.gbit_per_second / result.iperf.gbit_per_second)
    assert "ratio netlab / iperf3" in str(result)


# ---------------------------------------------------------------------------
# The exercise checks of notebook 07: right answers pass, the usual slips get a pointer, not the answer.


def _point(**kw):
    from types import SimpleNamespace

    return SimpleNamespace(**{"requests": 10_000, "seconds": 0.25, "clients": 100, "messages": 100,
                              "server_threads": 101, **kw})


def test_requests_per_second_check_accepts_echoes_over_wall_time_and_names_the_slips():
    assert netlab.checks.requests_per_second(_point(), 40_000.0)
    assert "clients, not echoes" in netlab.checks.requests_per_second(_point(), 400.0).message
    assert "units" in netlab.checks.requests_per_second(_point(), 0.25 / 10_000).message
    assert not netlab.checks.requests_per_second(_point(), ...)


def test_thread_count_check_wants_one_per_client_plus_the_acceptor():
    assert netlab.checks.thread_count(_point(), 101)
    assert "who accepts" in netlab.checks.thread_count(_point(), 100).message
    assert "event loop" in netlab.checks.thread_count(_point(), 1).message
    # A run that measured fewer threads than clients is reported, whatever the answer.
    assert "run the load cell again" in netlab.checks.thread_count(_point(server_threads=40), 101).message


def test_idle_model_check_prefers_an_event_loop():
    assert netlab.checks.idle_model("asyncio") and netlab.checks.idle_model("selectors")
    assert not netlab.checks.idle_model("threads")
    assert "Answer" in netlab.checks.idle_model("goroutines").message


def test_bulk_check_wants_decimal_gigabits():
    from types import SimpleNamespace

    bulk = SimpleNamespace(nbytes=1_000_000_000, seconds=0.5)  # 16 Gbit/s
    assert netlab.checks.bulk_gbit_per_second(bulk, 16.0)
    assert "gigabytes" in netlab.checks.bulk_gbit_per_second(bulk, 2.0).message
    assert "decimal" in netlab.checks.bulk_gbit_per_second(bulk, 16e9 / 2**30).message
