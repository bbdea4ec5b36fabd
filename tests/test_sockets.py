"""netlab.sockets on the host's loopback: no lab needed.

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

from netlab.sockets import EchoServer, echo_server, hello, recv_exactly, recv_until_closed


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


def test_recv_exactly_reassembles_a_message_sent_in_pieces():
    pieces = [b"He", b"llo, ", b"Wor", b"ld!"]
    a, b = socket.socketpair()
    with a, b:
        a.settimeout(5)
        b.settimeout(5)
        reader = _SignallingSocket(b)

        def send_one_piece_per_recv():
            for piece in pieces:
                a.sendall(piece)
                reader.returned.acquire(timeout=5)  # the next piece only after a recv returned

        sender = threading.Thread(target=send_one_piece_per_recv)
        sender.start()
        try:
            assert recv_exactly(reader, 13) == b"Hello, World!"
        finally:
            sender.join(5)
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
