"""Small correct socket primitives: an echo server, a client that reads a whole reply, framing.

Every function here works the same on the host's loopback and inside a `netlab.Lab` (pass
`lab=`): a lab only changes where the socket is created, never how it is used.
"""

from __future__ import annotations

import socket
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from netlab.lab import Lab

__all__ = ["EchoServer", "echo_server", "recv_exactly", "recv_until_closed", "hello"]


def _new_socket(lab: "Lab | None", type: int = socket.SOCK_STREAM) -> socket.socket:
    return lab.socket(socket.AF_INET, type) if lab is not None else socket.socket(socket.AF_INET, type)


class EchoServer:
    """A TCP echo server on a background thread: it sends every byte back, then closes when the client does.

    Serves one connection at a time, each with a read timeout, and stops within `timeout`
    seconds of `close()`. Bound to loopback on a port the kernel picks unless told otherwise.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, lab: "Lab | None" = None,
                 timeout: float = 5.0, close_delay: float = 0.0) -> None:
        self.timeout = timeout
        # close_delay (seconds) holds the server's close after the client's FIN: with a delay
        # longer than the delayed-ACK timer (40 ms on Linux) the teardown shows four segments.
        self.close_delay = close_delay
        self.connections = 0
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._listener = _new_socket(lab)
        try:
            self._listener.bind((host, port))
            self._listener.listen(8)
            # accept() wakes up regularly to notice close(): a blocked accept is never interrupted.
            self._listener.settimeout(0.05)
        except BaseException:
            self._listener.close()
            raise
        self.address: tuple[str, int] = self._listener.getsockname()
        self._thread = threading.Thread(target=self._serve, name=f"netlab-echo-{self.address[1]}", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except socket.timeout:
                continue
            except OSError:
                break  # the listener was closed
            self.connections += 1
            with conn:
                conn.settimeout(self.timeout)
                try:
                    while data := conn.recv(65536):
                        conn.sendall(data)
                    if self.close_delay:
                        self._stop.wait(self.close_delay)
                except OSError as err:  # a reset or a timeout ends this connection, not the server
                    self.error = err

    def close(self) -> None:
        """Stop serving and wait (up to `timeout` seconds) for the server thread to end."""
        self._stop.set()
        self._thread.join(self.timeout + 1)
        self._listener.close()
        if self._thread.is_alive():
            raise RuntimeError(f"echo server on port {self.address[1]} did not stop within {self.timeout + 1:g} s")

    def __enter__(self) -> "EchoServer":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def echo_server(lab: "Lab | None" = None, host: str = "127.0.0.1", port: int = 0, **kwargs) -> EchoServer:
    """Start an echo server (in `lab` if given) and return it; use it in a `with` block."""
    return EchoServer(host, port, lab=lab, **kwargs)


def recv_exactly(sock: socket.socket, length: int) -> bytes:
    """Read exactly `length` bytes: TCP is a byte stream and one recv may return fewer."""
    data = bytearray()
    while len(data) < length:
        chunk = sock.recv(length - len(data))
        if not chunk:
            raise EOFError(f"the peer closed the connection with {length - len(data)} of {length} bytes still missing")
        data += chunk
    return bytes(data)


def recv_until_closed(sock: socket.socket, limit: int = 16 * 1024 * 1024) -> bytes:
    """Read until the peer closes its side (recv returns b''); refuse more than `limit` bytes."""
    data = bytearray()
    while chunk := sock.recv(65536):
        data += chunk
        if len(data) > limit:
            raise ValueError(f"the peer sent more than {limit} bytes without closing")
    return bytes(data)


def hello(address: tuple[str, int], message: bytes = b"Hello, World!", *, lab: "Lab | None" = None,
          timeout: float = 5.0) -> bytes:
    """The seed's TCP client, done right: connect, send `message`, read the whole echo, close.

    An echo server sends back exactly what it received, so the client knows how many bytes to
    wait for; one `recv` is not a message. Meant for messages up to about a megabyte: the
    client sends everything before it reads, so a much larger message fills the buffers both
    ways and both sides wait for each other until `timeout` (a deadlock worth seeing once).
    """
    with _new_socket(lab) as sock:
        sock.settimeout(timeout)
        sock.connect(address)
        sock.sendall(message)
        return recv_exactly(sock, len(message))
