"""What goes wrong between two programs, each failure run live in the lab and captured (notebook 06).

Theory of operation
-------------------
Each function sets up one failure between two sockets in a fresh lab (both ends are ordinary
sockets in the lab's network, so the kernel's TCP does everything a real peer's would), captures
the lab's loopback while the client meets the failure, and returns an `Experiment`: the
conversation on the wire, and in `result` what the program saw, usually the exception it got
(`ConnectionResetError(104, ...)`), so a notebook shows both sides of one failure.

Rules for this file:
1. A client catches only the exception its failure is about and returns it; anything else
   propagates, so a lab that behaves unexpectedly is never shown as the lesson.
2. Each experiment has a recording, netlab/data/errors-NAME.pcap (+ .json), shown when the lab is
   refused; `python -m netlab record` re-records them. `load_recorded` rebuilds a recorded exception
   from its repr, so `type(exp.result)` and its errno are the same live and recorded.
"""

from __future__ import annotations

import contextlib
import socket
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

from netlab.core.arguments import check_seconds
from netlab.core.errors import LabError, LabUnavailable
from netlab.core.experiment import LIVE, Experiment, all_closed, live_or_recorded, run
from netlab.core.lab import Lab, SocketState
from netlab.core.sockets import RetryError, connect_to_unused_port, connect_with_retry, recv_until_closed

__all__ = [
    "Attempts", "blocked_send", "broken_pipe", "connect_timeout", "half_close", "read_timeout", "rebooted_host",
    "refused", "reset_by_peer", "retry_refused", "syn_limits", "RECORDINGS",
]

# How long any one wait inside an experiment may take, in seconds: far longer than any step
# needs on loopback, short enough that a lab that misbehaves fails the cell instead of hanging.
_STEP = 5.0


def _run(name: str, client: Callable[[Lab, Any], Any],
         setup: Callable[[Lab, contextlib.ExitStack], Any] | None = None, capture_timeout: float = 10.0) -> Experiment:
    """Open a lab, let `setup(lab, stack)` prepare what must exist before the capture starts, then
    capture while `client(lab, prepared)` runs and until its connections have closed; or show the
    recording errors-NAME where the lab is refused."""

    def live(lab: Lab) -> Experiment:
        with contextlib.ExitStack() as stack:
            prepared = setup(lab, stack) if setup else None
            before = {(s.local, s.peer) for s in lab.socket_states()}  # set up before the capture: not waited for
            with lab.capture(timeout=capture_timeout) as cap:
                result = client(lab, prepared)
                states = lab.wait_until(lambda now: all_closed([s for s in now if (s.local, s.peer) not in before]),
                                        _STEP)
        return Experiment(cap.packets, "live", LIVE,
                          kernel_states=[s for s in states if s.state != "LISTEN" and (s.local, s.peer) not in before],
                          result=result, capture_ready_seconds=cap.ready_seconds)

    return live_or_recorded(live, f"errors-{name}")


def _connected_pair(lab: Lab, stack: contextlib.ExitStack) -> tuple[socket.socket, socket.socket]:
    """A client socket and the server's accepted socket, connected in the lab, closed by `stack`."""
    listener = stack.enter_context(lab.create_server())
    listener.settimeout(_STEP)
    client = stack.enter_context(lab.create_connection(listener.getsockname(), timeout=_STEP))
    server, _ = listener.accept()
    stack.enter_context(server)
    server.settimeout(_STEP)
    return client, server


def _wait_for_state(lab: Lab, ends: tuple[Any, Any], wanted: str | None) -> None:
    """Wait until the lab's kernel reports the connection `ends` (local, peer) in state `wanted`
    (None: gone, as after a RST); raise if it does not within `_STEP` seconds."""
    def state(now: list[SocketState]) -> str | None:
        return next((s.state for s in now if (s.local, s.peer) == ends), None)

    now = state(lab.wait_until(lambda states: state(states) == wanted, _STEP))
    if now != wanted:
        raise LabError(f"the lab's connection {ends[0]} stayed {now} instead of {wanted} within {_STEP:g} s")


# ---------------------------------------------------------------------------
# The failures.


def refused() -> Experiment:
    """`netlab.refused()`: a SYN answered by RST, `ConnectionRefusedError` (recorded or live)."""
    return run(connect_to_unused_port, recorded="refused", server=False)


def _fill_accept_queue(lab: Lab, stack: contextlib.ExitStack) -> tuple[str, int]:
    # listen(0) lets one finished connection wait for accept(); with it waiting, the queue is
    # full and Linux drops every new SYN without an answer (it does not refuse them: the
    # program may accept soon, and the client's retransmitted SYN will then get through).
    listener = stack.enter_context(lab.create_server(backlog=0))
    stack.enter_context(lab.create_connection(listener.getsockname(), timeout=_STEP))
    return listener.getsockname()


def connect_timeout(timeout: float = 2.2) -> Experiment:
    """Connect to a server whose accept queue is full: its kernel drops the SYNs, the client's
    kernel sends them again (after 1 s; then every 1 s on kernels with linear SYN timeouts, else
    doubling), and `connect` gives up after `timeout` seconds with `TimeoutError`.

    The default 2.2 s sees the SYN resent twice with linear timeouts (at 1 s and 2 s), once
    where they double (the next would leave at 3 s: `connect_timeout(3.5)` shows it)."""
    check_seconds("timeout", timeout, 10.0)
    def client(lab: Lab, address: tuple[str, int]) -> Any:
        try:
            with lab.create_connection(address, timeout=timeout):
                return "connected (unexpected)"
        except TimeoutError as err:
            return err

    return _run("connect-timeout", client, setup=_fill_accept_queue, capture_timeout=timeout + _STEP)


# Linux's SYN timer: the first wait is TCP_TIMEOUT_INIT (1 s); no wait exceeds TCP_RTO_MAX (120 s).
_SYN_FIRST_WAIT, _RTO_MAX = 1.0, 120.0
_SYN_SETTINGS = ("tcp_syn_retries", "tcp_syn_linear_timeouts")


def syn_limits() -> dict[str, Any]:
    """How long the lab's kernel keeps resending an unanswered SYN before `connect` fails on its own (ETIMEDOUT).

    Read in a fresh lab: a new network namespace starts with the kernel's own defaults for these,
    whatever the host set. `tcp_syn_linear_timeouts` is None on kernels without it (older ones),
    which double every wait. Where the lab is refused, this machine's own values (None where it
    has no /proc/sys). Also worked out, as net/ipv4/tcp_timer.c does: `retransmissions` (the two
    settings added; linear timeouts add their count to the SYN's allowance) and `seconds` from
    the first SYN until `connect` fails (the first linear_timeouts + 1 waits are 1 s, then they
    double, each at most 120 s).
    """
    def read(lab: Lab) -> dict[str, Any]:
        out = lab.run("sh", "-c", "cd /proc/sys/net/ipv4 && for f in " + " ".join(_SYN_SETTINGS)
                      + "; do cat $f 2>/dev/null || echo -; done")
        return dict(zip(_SYN_SETTINGS, out.split()))

    try:
        with Lab() as lab:
            raw = read(lab)
    except LabUnavailable:
        raw = {}
        for name in _SYN_SETTINGS:
            try:
                raw[name] = Path("/proc/sys/net/ipv4", name).read_text().strip()
            except OSError:
                raw[name] = "-"
    limits: dict[str, Any] = {name: int(raw[name]) if raw.get(name, "-").isdigit() else None
                              for name in _SYN_SETTINGS}
    retries, linear = limits["tcp_syn_retries"], limits["tcp_syn_linear_timeouts"] or 0
    if retries is None:
        return {**limits, "retransmissions": None, "seconds": None}
    return {**limits, "retransmissions": retries + linear, "seconds": _syn_give_up_seconds(retries, linear)}


def _syn_give_up_seconds(retries: int, linear: int) -> float:
    """Seconds from the first SYN until the kernel gives up: `retries` + `linear` retransmissions, then one more wait."""
    waits, wait = [], _SYN_FIRST_WAIT
    for n in range(retries + linear + 1):  # before each retransmission, then before giving up
        waits.append(wait)
        if n >= linear:
            wait = min(2 * wait, _RTO_MAX)
    return sum(waits)


def read_timeout(timeout: float = 0.3) -> Experiment:
    """Send a request to a server that never answers; `recv` gives up after `timeout` seconds with `TimeoutError`."""
    check_seconds("timeout", timeout, 10.0)
    def client(lab: Lab, _: Any) -> Any:
        with contextlib.ExitStack() as stack:
            sock, server = _connected_pair(lab, stack)
            sock.sendall(b"anybody there?")
            server.recv(1024)  # the server reads the request, and then says nothing
            sock.settimeout(timeout)
            try:
                result: Any = sock.recv(1024) or "end of stream (unexpected)"
            except TimeoutError as err:
                result = err
            sock.close()  # the client gives up first: its FIN, then the server's
            return result

    return _run("read-timeout", client)


def reset_by_peer() -> Experiment:
    """The server reads the request, then aborts (close with SO_LINGER 0): its kernel sends RST,
    and the client's `recv` raises `ConnectionResetError`."""
    def client(lab: Lab, _: Any) -> Any:
        with contextlib.ExitStack() as stack:
            sock, server = _connected_pair(lab, stack)
            sock.sendall(b"GET / HTTP/1.0\r\n\r\n")
            server.recv(1024)
            # Linger on, for 0 seconds: close() discards the connection at once and tells the
            # peer with a RST instead of the orderly FIN.
            server.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            server.close()
            try:
                return sock.recv(1024) or "end of stream (unexpected)"
            except ConnectionResetError as err:
                return err

    return _run("reset", client)


def broken_pipe() -> Experiment:
    """Write to a connection the server has closed: the first write leaves and is answered by a
    RST; the next raises `BrokenPipeError` (EPIPE)."""
    def client(lab: Lab, _: Any) -> Any:
        with contextlib.ExitStack() as stack:
            sock, server = _connected_pair(lab, stack)
            ends = (sock.getsockname(), sock.getpeername())
            server.close()  # FIN: "I will send no more" (and, closed, it will read no more either)
            _wait_for_state(lab, ends, "CLOSE-WAIT")  # the FIN has arrived
            sock.sendall(b"first write")  # accepted by our kernel: it cannot know yet
            _wait_for_state(lab, ends, None)  # the server's kernel answered RST: the connection is gone
            try:
                sock.sendall(b"second write")
                return "second write accepted (unexpected)"
            except BrokenPipeError as err:
                return err

    return _run("broken-pipe", client)


def rebooted_host() -> Experiment:
    """The server's host crashes and reboots while the connection is open: its kernel forgets the
    connection without a word, so the client's next request is answered by a RST, and `recv`
    raises `ConnectionResetError`.

    The crash is an abort (close with SO_LINGER 0) whose RST an nftables rule on the server's
    output drops, so nothing reaches the wire; the reboot removes the rule. The server's kernel
    then has no record of the connection, as a freshly booted one would not.
    """
    def client(lab: Lab, _: Any) -> Any:
        with contextlib.ExitStack() as stack:
            sock, server = _connected_pair(lab, stack)
            ends = (sock.getsockname(), sock.getpeername())
            sock.sendall(b"request 1")
            server.recv(1024)
            server.sendall(b"answer 1")
            sock.recv(1024)
            port = str(server.getsockname()[1])
            lab.run("nft", "add", "table", "inet", "crash")
            lab.run("nft", "add", "chain", "inet", "crash", "out", "{ type filter hook output priority 0 ; }")
            lab.run("nft", "add", "rule", "inet", "crash", "out", "tcp", "sport", port, "tcp", "flags", "rst", "drop")
            try:
                server.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                server.close()  # the crash: the server's kernel forgets the connection; its RST is dropped
            finally:
                lab.run("nft", "delete", "table", "inet", "crash")  # the reboot: the host answers again
            if _state(lab, ends) != "ESTAB":
                raise LabError("the client's side should still be established after the server's silent crash")
            sock.sendall(b"request 2")  # the client does not know: it sends its next request
            try:
                return sock.recv(1024) or "end of stream (unexpected)"
            except ConnectionResetError as err:
                return err

    return _run("rebooted", client)


def _state(lab: Lab, ends: tuple[Any, Any]) -> str | None:
    """The lab kernel's state of the connection `ends` (local, peer), or None if it has none."""
    return next((s.state for s in lab.socket_states() if (s.local, s.peer) == ends), None)


def half_close() -> Experiment:
    """The client sends its request and shuts down its sending side (FIN); the server reads to
    the end, then answers on the still-open direction. `result` is what the client read."""
    def client(lab: Lab, _: Any) -> Any:
        with contextlib.ExitStack() as stack:
            sock, server = _connected_pair(lab, stack)
            sock.sendall(b"count these bytes")
            sock.shutdown(socket.SHUT_WR)  # FIN: the client is done sending, not done reading
            request = recv_until_closed(server)  # ends at the FIN
            server.sendall(f"got {len(request)} bytes after which you sent FIN".encode())
            server.close()
            return recv_until_closed(sock)

    return _run("half-close", client)


def blocked_send(timeout: float = 0.8) -> Experiment:
    """Flow control felt by the program: a receiver with a 4 KB buffer that does not read. Its
    window falls to zero, the sender's kernel probes it, and `sendall` blocks until it times
    out after `timeout` seconds (`TimeoutError`); then the receiver reads everything and the
    window opens again. The default 0.8 s holds two probes: on loopback the probe timer starts
    at the minimum retransmission timeout (200 ms) and doubles, so they leave at about 0.25 and 0.7 s."""
    check_seconds("timeout", timeout, 10.0)
    def setup(lab: Lab, stack: contextlib.ExitStack) -> socket.socket:
        listener = stack.enter_context(lab.socket())
        # Small buffers on both sides, set before the handshake (the window scale is agreed then),
        # so a few kilobytes fill them and the graph stays readable.
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        listener.settimeout(_STEP)
        return listener

    def client(lab: Lab, listener: socket.socket) -> Any:
        with lab.socket() as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
            sock.settimeout(_STEP)
            sock.connect(listener.getsockname())
            server, _ = listener.accept()
            with server:
                server.settimeout(_STEP)
                sock.settimeout(timeout)
                try:
                    sock.sendall(b"x" * 100_000)
                    result: Any = "everything sent (unexpected)"
                except TimeoutError as err:
                    result = err
                sock.close()  # FIN after the bytes still queued
                recv_until_closed(server)  # reading frees the buffer: the window reopens
        return result

    return _run("blocked-send", client, setup=setup)


# ---------------------------------------------------------------------------
# Retrying with backoff: several connections, so several conversations.


class Attempts(Experiment):
    """The attempts of one retrying client: a conversation per attempt, and how it ended.

    `result` is the socket's peer address on success, else the RetryError.
    """

    @property
    def starts(self) -> list[float]:
        """When each attempt's first segment was captured, in seconds after the first attempt's."""
        first = [float(c.packets[0].time) for c in self.conversations]
        return [t - first[0] for t in first]

    @property
    def waits(self) -> list[float]:
        """The pause before each attempt after the first, in seconds, as seen on the wire."""
        starts = self.starts
        return [b - a for a, b in zip(starts, starts[1:])]


def retry_refused(attempts: int = 4, first_delay: float = 0.1) -> Attempts:
    """Connect with `netlab.connect_with_retry` to a lab port where nothing listens: each attempt
    is refused (SYN, RST), the waits between them double (with jitter), and after `attempts`
    tries it gives up with `RetryError`."""

    def live(lab: Lab) -> Attempts:
        closed = lab.unused_port()
        with lab.capture(timeout=_STEP + attempts * first_delay * 2 ** attempts) as cap:
            try:
                with connect_with_retry(closed, attempts=attempts, first_delay=first_delay, lab=lab) as sock:
                    result: Any = sock.getpeername()
            except RetryError as err:
                result = err
        return Attempts(cap.packets, "live", LIVE, result=result)

    return live_or_recorded(live, "errors-retry", kind=Attempts)


# The recordings shipped in netlab/data, re-recorded by `python -m netlab record`.
RECORDINGS: dict[str, Callable[[], Experiment]] = {
    "errors-connect-timeout": connect_timeout,
    "errors-read-timeout": read_timeout,
    "errors-reset": reset_by_peer,
    "errors-rebooted": rebooted_host,
    "errors-broken-pipe": broken_pipe,
    "errors-half-close": half_close,
    "errors-blocked-send": blocked_send,
    "errors-retry": retry_refused,
}
