"""netlab.sockets: the primitives on the host's loopback (no lab needed), then notebook 02's
experiments live in the lab and recorded.

Servers listen on ("127.0.0.1", 0); everything that waits is synchronised by the protocol itself
(a recv returns, EOF arrives) or by an event, and bounded by a timeout; nothing sleeps.
"""

from __future__ import annotations

import os
import socket
import struct
import threading
import time

import pytest

import netlab
from netlab.core.sockets import (
    EchoServer,
    MessageTooLarge,
    echo_server,
    hello,
    recv_exactly,
    recv_message,
    recv_until_closed,
    send_message,
)


def _echo_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("netlab-echo-")]


@pytest.fixture
def server():
    with EchoServer(timeout=2.0) as srv:
        yield srv
    assert not srv._thread.is_alive()


def test_echo_server_binds_loopback_on_a_port_the_kernel_picks(server):
    host, port = server.address
    assert host == "127.0.0.1"
    assert port > 0


def test_echo_server_sends_every_byte_back_then_closes(server):
    message = bytes(range(256)) * 40
    with socket.create_connection(server.address, timeout=5) as sock:
        sock.sendall(message)
        sock.shutdown(socket.SHUT_WR)  # our FIN: the server echoes what is left, then closes
        assert recv_until_closed(sock) == message


def test_echo_server_serves_several_connections_one_after_another(server):
    replies = [hello(server.address, f"message {i}".encode()) for i in range(3)]
    assert replies == [b"message 0", b"message 1", b"message 2"]
    assert server.connections == 3


def test_echo_server_serves_the_next_client_after_a_reset(server):
    with socket.create_connection(server.address, timeout=5) as sock:
        sock.sendall(b"ping")
        assert recv_exactly(sock, 4) == b"ping"
        # Linger 0: close() sends a RST instead of a FIN.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    assert hello(server.address) == b"Hello, World!"
    assert server.connections == 2


def test_close_delay_holds_the_servers_fin():
    with EchoServer(close_delay=0.1, timeout=2.0) as srv:
        with socket.create_connection(srv.address, timeout=5) as sock:
            sock.sendall(b"x")
            assert recv_exactly(sock, 1) == b"x"
            sock.shutdown(socket.SHUT_WR)
            t0 = time.monotonic()
            assert recv_until_closed(sock) == b""  # EOF: the server's FIN
            assert time.monotonic() - t0 >= 0.1


def test_close_returns_promptly_and_leaves_no_thread():
    srv = echo_server()
    assert isinstance(srv, EchoServer)
    assert hello(srv.address) == b"Hello, World!"
    assert srv._thread in _echo_threads()
    t0 = time.monotonic()
    srv.close()
    assert time.monotonic() - t0 < 0.5  # accept() wakes every 50 ms to notice close()
    assert not srv._thread.is_alive()
    assert srv._thread not in _echo_threads()
    with pytest.raises(OSError):
        socket.create_connection(srv.address, timeout=1).close()  # nobody listens any more


def test_close_is_bounded_by_the_timeout_while_a_client_is_idle():
    srv = EchoServer(timeout=0.3)
    connected = socket.create_connection(srv.address, timeout=5)
    try:
        connected.sendall(b"x")
        assert recv_exactly(connected, 1) == b"x"  # the server is now inside this connection
        t0 = time.monotonic()
        srv.close()
        assert time.monotonic() - t0 < 0.3 + 1.0
        assert not srv._thread.is_alive()
    finally:
        connected.close()


def test_echo_server_refuses_a_port_in_use(server):
    with pytest.raises(OSError):
        EchoServer(port=server.address[1])
    assert hello(server.address) == b"Hello, World!"  # the first one is unharmed


# ---------------------------------------------------------------------------
# Framing: one recv is not a message


class _SignallingSocket:
    """A socket whose every recv() releases `returned`, so a sender can wait for it."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self.returned = threading.Semaphore(0)
        self.sizes: list[int] = []

    def recv(self, n: int) -> bytes:
        data = self._sock.recv(n)
        self.sizes.append(len(data))
        self.returned.release()
        return data


def _read_while_sent_in_pieces(pieces: list[bytes], read):
    """Send `pieces` one per recv (the next only after a recv returned); return (read(reader), reader)."""
    a, b = socket.socketpair()
    with a, b:
        a.settimeout(5)
        b.settimeout(5)
        reader = _SignallingSocket(b)

        def send_one_piece_per_recv():
            for piece in pieces:
                a.sendall(piece)
                reader.returned.acquire(timeout=5)

        sender = threading.Thread(target=send_one_piece_per_recv)
        sender.start()
        try:
            return read(reader), reader
        finally:
            sender.join(5)


def test_recv_exactly_reassembles_a_message_sent_in_pieces():
    pieces = [b"He", b"llo, ", b"Wor", b"ld!"]
    message, reader = _read_while_sent_in_pieces(pieces, lambda sock: recv_exactly(sock, 13))
    assert message == b"Hello, World!"
    assert reader.sizes == [len(p) for p in pieces]  # four recvs for one message


def test_recv_exactly_names_the_missing_bytes_when_the_peer_closes_early():
    a, b = socket.socketpair()
    with a, b:
        b.settimeout(5)
        a.sendall(b"abc")
        a.close()
        with pytest.raises(EOFError, match=r"\b7 of 10 bytes"):
            recv_exactly(b, 10)


def test_recv_exactly_leaves_the_rest_for_the_next_read():
    a, b = socket.socketpair()
    with a, b:
        b.settimeout(5)
        a.sendall(b"firstsecond")
        assert recv_exactly(b, 5) == b"first"
        assert recv_exactly(b, 6) == b"second"


def test_recv_until_closed_reads_everything_up_to_the_limit():
    a, b = socket.socketpair()
    with a, b:
        b.settimeout(5)
        a.sendall(b"x" * 100)
        a.close()
        assert recv_until_closed(b, limit=100) == b"x" * 100


def test_recv_until_closed_refuses_more_than_the_limit():
    a, b = socket.socketpair()
    with a, b:
        b.settimeout(5)
        a.sendall(b"x" * 100)
        a.close()
        with pytest.raises(ValueError, match=r"more than 99 bytes"):
            recv_until_closed(b, limit=99)


def test_hello_returns_the_whole_echo_of_a_megabyte(server):
    message = os.urandom(1 << 20)
    assert hello(server.address, message) == message


def test_hello_to_a_port_where_nothing_listens_is_refused():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()
    with pytest.raises(ConnectionRefusedError):
        hello(closed)



# ---------------------------------------------------------------------------
# Framing: send_message / recv_message, a 4-byte big-endian length before each message


def _frame(data: bytes) -> bytes:
    return struct.pack("!I", len(data)) + data


def test_send_message_puts_a_big_endian_length_before_the_bytes():
    a, b = socket.socketpair()
    with a, b:
        b.settimeout(5)
        send_message(a, b"Hello")
        assert recv_exactly(b, 9) == b"\x00\x00\x00\x05Hello"


def test_recv_message_reassembles_one_send_split_across_many_recvs():
    message = bytes(range(256)) * 4
    wire = _frame(message)
    pieces = [wire[:2], wire[2:3], wire[3:500], wire[500:501], wire[501:]]
    received, reader = _read_while_sent_in_pieces(pieces, recv_message)
    assert received == message
    assert len(reader.sizes) >= len(pieces)  # the message really came in pieces
    assert sum(reader.sizes) == len(wire)


def test_recv_message_separates_two_messages_that_arrive_in_one_recv():
    a, b = socket.socketpair()
    with a, b:
        b.settimeout(5)
        a.sendall(_frame(b"first") + _frame(b"second"))  # both are queued before any read
        a.close()
        assert b.recv(1024, socket.MSG_PEEK) == _frame(b"first") + _frame(b"second")  # one recv would get both
        assert recv_message(b) == b"first"
        assert recv_message(b) == b"second"
        assert recv_message(b) is None


def test_recv_message_over_tcp_keeps_every_message_whole(server):
    messages = [b"", b"x", os.urandom(100_000), b"last"]
    with socket.create_connection(server.address, timeout=5) as sock:
        for message in messages:
            send_message(sock, message)  # the echo server sends the framed bytes back unchanged
        assert [recv_message(sock) for _ in messages] == messages


def test_an_empty_message_is_not_the_end_of_the_stream():
    a, b = socket.socketpair()
    with a, b:
        b.settimeout(5)
        send_message(a, b"")
        a.close()
        assert recv_message(b) == b""
        assert recv_message(b) is None


def test_recv_message_returns_none_on_a_clean_close_between_messages():
    a, b = socket.socketpair()
    with a, b:
        b.settimeout(5)
        a.close()
        assert recv_message(b) is None


def test_recv_message_names_the_missing_bytes_when_the_peer_closes_mid_message():
    a, b = socket.socketpair()
    with a, b:
        b.settimeout(5)
        a.sendall(_frame(b"0123456789")[:-3])  # 7 of the 10 body bytes
        a.close()
        with pytest.raises(EOFError, match=r"middle of a 10-byte message: 3 bytes still missing"):
            recv_message(b)


def test_recv_message_names_a_length_prefix_cut_short():
    a, b = socket.socketpair()
    with a, b:
        b.settimeout(5)
        a.sendall(b"\x00\x00")
        a.close()
        with pytest.raises(EOFError, match=r"inside a length prefix: 2 of its 4 bytes"):
            recv_message(b)


def test_recv_message_refuses_a_length_above_the_limit_before_reading_it():
    a, b = socket.socketpair()
    with a, b:
        b.settimeout(5)
        a.sendall(struct.pack("!I", 1001) + b"abc")
        with pytest.raises(MessageTooLarge, match=r"1001 bytes, more than the limit of 1000 bytes"):
            recv_message(b, limit=1000)
        assert b.recv(16) == b"abc"  # the body was left unread
    assert issubclass(MessageTooLarge, ValueError)


def test_recv_message_accepts_a_message_exactly_at_the_limit():
    a, b = socket.socketpair()
    with a, b:
        b.settimeout(5)
        send_message(a, b"x" * 1000)
        assert recv_message(b, limit=1000) == b"x" * 1000


def test_send_message_refuses_text_with_a_hint_to_encode():
    a, b = socket.socketpair()
    with a, b:
        with pytest.raises(TypeError, match=r"bytes, not str.*encode"):
            send_message(a, "Hello")


def test_recv_message_times_out_like_any_blocking_recv():
    a, b = socket.socketpair()
    with a, b:
        b.settimeout(0.05)
        a.sendall(b"\x00\x00\x00\x05He")  # a message that never completes
        with pytest.raises(TimeoutError):
            recv_message(b)


# ---------------------------------------------------------------------------
# Notebook 02's experiments, live in the lab and recorded


@pytest.mark.lab
def test_socket_walk_shows_which_calls_put_segments_on_the_wire():
    walk = netlab.socket_walk()
    assert walk.live, walk.why
    on_wire = {call: [f"{s.direction} {s.flags}" for s in segments] for call, segments in netlab.walk_steps(walk)}
    for quiet in ("server = socket()", 'server.bind(("127.0.0.1", 0))', "server.listen()", "client = socket()",
                  "conn, peer = server.accept()", "data = conn.recv(1024)", "client.recv(1024)", "server.close()"):
        assert on_wire[quiet] == [], (quiet, walk.conversation.table())
    assert on_wire["client.connect(address)"] == ["C→S SYN", "S→C SYN-ACK", "C→S ACK"]
    assert on_wire["client.sendall(b'Hello')"] == ["C→S PSH-ACK", "S→C ACK"]
    assert on_wire["conn.sendall(data)"] == ["S→C PSH-ACK", "C→S ACK"]
    assert on_wire["client.close()"] == ["C→S FIN-ACK", "S→C ACK"]
    assert on_wire["conn.close()"] == ["S→C FIN-ACK", "C→S ACK"]
    assert walk.conversation.data() == b"Hello"


@pytest.mark.lab
def test_two_sends_leave_as_two_segments_and_arrive_in_one_recv():
    exp = netlab.two_sends_one_recv()
    assert exp.live, exp.why
    data = [s.payload for s in exp.conversation.segments if s.direction == "C→S" and s.length]
    assert data == [b"Hello, ", b"World!"]
    assert exp.result == {"sent": ["Hello, ", "World!"], "received": ["Hello, World!"]}


@pytest.mark.lab
def test_one_send_arrives_in_recvs_of_at_most_bufsize():
    exp = netlab.one_send_many_recvs(size=3000, bufsize=1024)
    assert exp.live, exp.why
    assert [s.length for s in exp.conversation.segments if s.direction == "C→S" and s.length] == [3000]
    assert exp.result["recvs"] == [1024, 1024, 952]


def test_one_send_many_recvs_refuses_a_size_beyond_one_segment():
    with pytest.raises(ValueError, match="size must be"):
        netlab.one_send_many_recvs(size=100_000)


@pytest.mark.lab
def test_udp_exchange_has_no_handshake_and_keeps_datagram_boundaries():
    from scapy.layers.inet import TCP, UDP

    udp = netlab.udp_exchange()
    assert udp.live, udp.why
    assert not any(TCP in p for p in udp.packets)
    assert [bytes(p[UDP].payload) for p in udp.packets] == [b"one", b"two", b"three", b"got 3"]
    assert udp.result["received"] == ["one", "two", "three"]
    assert "S→C     5  b'got 3'" in udp.table()


@pytest.mark.lab
@pytest.mark.parametrize("experiment", ["socket_walk", "two_sends_one_recv", "one_send_many_recvs", "udp_exchange"])
def test_every_notebook_02_experiment_falls_back_to_a_labelled_recording(experiment, monkeypatch):
    live = getattr(netlab, experiment)()
    monkeypatch.setenv("NETLAB_RECORDED", "1")
    recorded = getattr(netlab, experiment)()
    assert (live.source, recorded.source) == ("live", "recorded")
    assert "NETLAB_RECORDED" in recorded.why
    # The program-side facts (which call sent what, what each recv returned) match the live run.
    assert recorded.result == live.result
    if experiment != "udp_exchange":  # UDP has no conversation, only datagrams
        assert recorded.conversation.data() == live.conversation.data()


@pytest.fixture
def scapy_loaded():
    """Run one lab experiment first: the first imports scapy, which keeps descriptors open for good."""
    netlab.udp_exchange()


@pytest.mark.lab
def test_notebook_02_experiments_leave_no_thread_socket_or_process_behind(scapy_loaded, nothing_left_behind):
    for experiment in (netlab.socket_walk, netlab.two_sends_one_recv, netlab.one_send_many_recvs, netlab.udp_exchange):
        assert experiment().live


def test_waiting_for_the_network_to_settle_gives_up_naming_what_did_not_happen():
    from netlab.lessons.sockets.experiments import _wait_for

    t0 = time.monotonic()
    with pytest.raises(netlab.LabError, match=r"the peer's ACK did not happen within 0.05 s"):
        _wait_for(lambda: False, "the peer's ACK", timeout=0.05)
    assert time.monotonic() - t0 < 1.0


@pytest.mark.parametrize("call, named", [
    (lambda: netlab.socket_walk(b""), "message must hold 1 to"),
    (lambda: netlab.socket_walk("hi"), "message must be bytes"),
    (lambda: netlab.two_sends_one_recv("a", b"b"), "first must be bytes"),
    (lambda: netlab.one_send_many_recvs(3000, 0.5), "size and bufsize"),
    (lambda: netlab.udp_exchange(()), "non-empty tuple of bytes"),
    (lambda: netlab.udp_exchange((b"ok", b"x" * 2000)), r"messages\[1\] must hold 1 to 1024"),
])
def test_experiments_refuse_bad_arguments_naming_them_before_opening_a_lab(call, named):
    with pytest.raises((TypeError, ValueError), match=named):
        call()


# --- issue 12: a short read, a lost datagram, the 4-tuple, a server written by the student ---


@pytest.mark.lab
@pytest.mark.parametrize("recorded", [False, True])
def test_a_recv_returns_the_first_piece_of_a_message_sent_in_pieces(recorded, monkeypatch):
    if recorded:
        monkeypatch.setenv("NETLAB_RECORDED", "1")
    exp = netlab.short_read()
    assert exp.source == ("recorded" if recorded else "live")
    assert exp.result["message"] == "Hello, World!"
    assert exp.result["recvs"][0] == "Hello"  # a short read: 5 bytes of 13, with room for 1024
    assert "".join(exp.result["recvs"]) == "Hello, World!"
    pieces = [s.payload for s in exp.conversation.segments if s.direction == "S→C" and s.length]
    assert pieces == [b"Hello", b", Wor", b"ld!"]


@pytest.mark.parametrize("recorded", [False, True])
def test_a_udp_datagram_dropped_on_the_way_is_lost_and_nobody_is_told(recorded, monkeypatch):
    if recorded:
        monkeypatch.setenv("NETLAB_RECORDED", "1")
    exp = netlab.udp_loss()
    from scapy.layers.inet import UDP

    on_the_wire = [bytes(p[UDP].payload) for p in exp.packets]
    assert on_the_wire == [b"one", b"two", b"three"]  # no handshake, no retransmission
    assert exp.result["sendto returned"] == [3, 3, 5]
    assert exp.result["received"] == ["one", "three"]
    assert exp.result["dropped by the rule"] == 1
    assert exp.result["the sender was told"].startswith("nothing")


def test_two_clients_share_the_server_port_and_each_socket_reads_its_own_client():
    exp = netlab.two_clients()
    assert len(exp.conversations) == 2
    assert len({conv.server for conv in exp.conversations}) == 1
    assert len({conv.client for conv in exp.conversations}) == 2
    assert [r["read"] for r in exp.result] == ["from A", "from B"]
    assert len({r["server socket"] for r in exp.result}) == 1
    assert [s.state for s in exp.kernel_states].count("ESTAB") == 4  # two connections, seen from both ends


@pytest.mark.lab
def test_a_server_the_student_writes_is_run_in_the_lab_and_talked_to():
    def upper(lab):
        with lab.socket() as listener:
            listener.bind(("127.0.0.1", 0))
            listener.listen()
            listener.settimeout(5)
            conn, _ = listener.accept()
            with conn:
                conn.settimeout(5)
                conn.sendall(conn.recv(1024).upper())
            return "done"

    exp = netlab.run_server(upper, b"hi there")
    assert exp.live
    assert exp.result["client read"] == "HI THERE"
    assert exp.result["your server returned"] == "'done'"
    assert exp.conversation.closed_first == "server"


@pytest.mark.lab
def test_a_student_server_that_never_listens_is_named_not_waited_for():
    def forgot_listen(lab):
        with lab.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            return "bound only"

    t0 = time.monotonic()
    with pytest.raises(netlab.LabError, match="never listened"):
        netlab.run_server(forgot_listen, timeout=1.0)
    assert time.monotonic() - t0 < 5


@pytest.mark.parametrize("call, named", [
    (lambda: netlab.short_read(()), "non-empty tuple of bytes"),
    (lambda: netlab.short_read(pause=5), "pause is in seconds"),
    (lambda: netlab.udp_loss(drop=b"four"), "none of the messages"),
    (lambda: netlab.two_clients((b"a",)), "two byte strings"),
    (lambda: netlab.run_server("not a function"), "server must be a function"),
])
def test_the_new_experiments_refuse_bad_arguments_naming_them(call, named):
    with pytest.raises((TypeError, ValueError), match=named):
        call()


@pytest.mark.lab
def test_udp_loss_without_nftables_shows_the_recording_and_says_why(without_programs):
    without_programs("nft")
    exp = netlab.udp_loss()
    assert exp.source == "recorded"
    assert exp.why.startswith("recorded: ") and "`nft`" in exp.why and "nftables" in exp.why, exp.why
    assert exp.result["received"] == ["one", "three"]
