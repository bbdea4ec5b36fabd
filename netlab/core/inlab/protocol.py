"""The one protocol between the notebook side and a program in the lab: a length, then a pickle.

A message is a 4-byte length (network order) and a pickle of a tuple; file descriptors travel
with its header (SCM_RIGHTS), so a socket made in the lab arrives as an open socket. A request
is `(op, args)`; its answer `("ok", result)` or `("error", exception)`, answered from a table of
request names (`answer`): one framing and one dispatch for every agent that speaks it. Both ends
are netlab's own processes, so pickle is safe here.
"""

from __future__ import annotations

import pickle
import socket
import struct
from collections.abc import Callable
from typing import Any

from netlab.core.errors import LabError

__all__ = ["send_msg", "recv_msg", "answer"]

_HEADER = struct.Struct("!I")


def send_msg(sock: socket.socket, obj: Any, fds: list[int] | None = None) -> None:
    """Send one message, with `fds` (file descriptors) riding on its header."""
    data = pickle.dumps(obj)
    header = _HEADER.pack(len(data))
    if fds:
        socket.send_fds(sock, [header], fds)
        sock.sendall(data)
    else:
        sock.sendall(header + data)


def recv_msg(sock: socket.socket) -> tuple[Any, list[int]]:
    """Receive one message and the descriptors that came with it; EOFError when the other end is gone."""
    # The header is read with recv_fds so a descriptor sent with it is not lost.
    header, fds, _flags, _addr = socket.recv_fds(sock, _HEADER.size, 4)
    if not header:
        raise EOFError("lab channel closed")
    header += _read_exactly(sock, _HEADER.size - len(header))
    (size,) = _HEADER.unpack(header)
    return pickle.loads(_read_exactly(sock, size)), fds


def _read_exactly(sock: socket.socket, size: int) -> bytes:
    data = bytearray()
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise EOFError(f"lab channel closed {size - len(data)} bytes short of a message")
        data += chunk
    return bytes(data)


def answer(chan: socket.socket, requests: dict[str, Callable[..., tuple[Any, list]]], state: Any, op: str,
           args: tuple) -> None:
    """Run request `op` from the table `requests` on `state` and send its reply: ("ok", result) with
    any sockets it returned (closed here once sent), or ("error", exception)."""
    try:
        method = requests.get(op)
        if method is None:
            raise LabError(f"unknown lab request {op!r}")
        result, socks = method(state, *args)
    except Exception as err:
        try:
            pickle.dumps(err)
        except Exception:
            err = LabError(f"{type(err).__name__}: {err}")
        send_msg(chan, ("error", err))
        return
    try:
        send_msg(chan, ("ok", result), [s.fileno() for s in socks])
    finally:
        for sock in socks:
            sock.close()  # the notebook side holds its own copy of the descriptor now
