"""Notebook 04: the lab's web server for a notebook cell, and keep-alive captured.

`site()` starts the lab web server (`netlab.core.http`) in a fresh lab, or on this machine's
loopback where labs are refused. `fetch()` makes requests to it while capturing, over one
connection or one each, and reads every request and response back from the captured bytes.
The parser and server themselves are core; this module re-exports the names notebook 04 uses
(`netlab.http.parse_response`, `netlab.http.serve`), so one `netlab.http` serves the notebook.
"""

from __future__ import annotations

import http.client
import socket
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from netlab.core.bottleneck import Bottleneck
from netlab.core.conversation import CLIENT_TO_SERVER, SERVER_TO_CLIENT
from netlab.core.errors import LabUnavailable, NetlabError
from netlab.core.experiment import LIVE, Experiment, all_closed, lab_or_none, live_or_recorded
from netlab.core.http import (
    HTTPParseError,
    HTTPServer,
    IncompleteMessage,
    LabHTTPConnection,
    Request,
    RequestRecord,
    Response,
    parse_messages,
    parse_request,
    parse_response,
    parse_response_with_stdlib,
    read_response,
    serve,
)
from netlab.core.lab import Lab
from netlab.core.sockets import recv_exactly

__all__ = [
    "HTTPExchange", "HTTPExperiment", "LinkRace", "Site", "fetch", "link_race", "site", "RECORDINGS",
    # the core's HTTP, as notebook 04 uses it
    "HTTPParseError", "HTTPServer", "IncompleteMessage", "Request", "RequestRecord", "Response", "parse_request",
    "parse_response", "parse_response_with_stdlib", "read_response", "serve",
]


class Site:
    """The lab's web server for a notebook cell: in a fresh lab when it runs live, else on this machine's loopback.

    `connect()` gives a TCP socket connected to it (in the same lab), `http_connection()` an
    `http.client.HTTPConnection` that reaches it; `log` is the server's request log.
    """

    def __init__(self, timeout: float = 5.0) -> None:
        self.timeout = timeout
        self.lab: Lab | None
        self.lab, why = lab_or_none()
        self.why = ("live: the web server runs in a private network namespace that netlab created" if self.lab
                    else f"on this machine's loopback (127.0.0.1), not in a lab: {why}")
        try:
            self.server = serve(self.lab, timeout=timeout)
        except BaseException:
            if self.lab is not None:
                self.lab.close()
            raise

    @property
    def address(self) -> tuple[str, int]:
        return self.server.address

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def log(self) -> list[RequestRecord]:
        return self.server.log

    def connect(self, timeout: float | None = None) -> socket.socket:
        """A new TCP connection to the server (a socket in the lab when it runs live)."""
        timeout = self.timeout if timeout is None else timeout
        if self.lab is not None:
            return self.lab.create_connection(self.address, timeout)
        return socket.create_connection(self.address, timeout)

    def http_connection(self, timeout: float | None = None) -> http.client.HTTPConnection:
        """An http.client.HTTPConnection to the server; its socket is made in the lab when it runs live."""
        return LabHTTPConnection(self.lab, self.address, self.timeout if timeout is None else timeout)

    def close(self) -> None:
        """Stop the server, then the lab."""
        try:
            self.server.close()
        finally:
            if self.lab is not None:
                self.lab.close()

    def __enter__(self) -> Site:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def site(timeout: float = 5.0) -> Site:
    """Start the lab web server in a fresh lab (or on loopback where labs are refused); use it with `with`."""
    return Site(timeout)


# ---------------------------------------------------------------------------
# The keep-alive experiment: several requests, captured, over one connection or one each.


@dataclass(frozen=True)
class HTTPExchange:
    """One request and its response, as read from the captured bytes of connection `connection` (from 1)."""

    connection: int
    request: Request
    response: Response

    def __str__(self) -> str:
        return (f"connection {self.connection}: {self.request.method} {self.request.target} "
                f"{self.request.version} → {self.response.status} {self.response.reason}")


@dataclass
class HTTPExperiment(Experiment):
    """What `fetch` captured: the packets, one Conversation per TCP connection, live or recorded.

    `result` holds the responses the client read, a tuple (or the exception it raised); `log`
    is the server's own log (live only).
    """

    log: list[RequestRecord] = field(default_factory=list)

    @property
    def syns(self) -> int:
        """How many connections the client opened: the first SYN of each (a SYN sent again is no new connection)."""
        return sum(1 for conv in self.conversations for s in conv.segments if s.flags == "SYN" and not s.retransmission)

    @property
    def exchanges(self) -> list[HTTPExchange]:
        """Every request and response, read back from the captured bytes of each connection."""
        found = []
        for number, conv in enumerate(self.conversations, 1):
            requests = parse_messages(conv.data(CLIENT_TO_SERVER), "request")
            responses = parse_messages(conv.data(SERVER_TO_CLIENT), "response", [r.method for r in requests])
            found += [HTTPExchange(number, q, r) for q, r in zip(requests, responses)]
        return found

    @property
    def seconds(self) -> float:
        """From the first SYN to the last byte of the last response, in seconds (from the capture)."""
        convs = self.conversations
        start = min(float(c.packets[0].time) for c in convs)
        ends = [float(s.packet.time) for c in convs for s in c.segments if s.direction == SERVER_TO_CLIENT and s.length]
        return max(ends) - start

    def time_spent(self) -> dict[str, float]:
        """Where `seconds` went, in milliseconds, read from the capture's time stamps; the parts add up to it.

        Every run is cut at the same points, so that a part one run lacks is really missing from it:
        "handshakes": from each SYN to the client's ACK that completes it;
        "server answering": from each request's first byte to its response's last byte;
        "client, after connecting": from that ACK to the connection's first request byte;
        "client, after each answer": from a response's last byte to the client's next segment on
        that connection (its next request, or its FIN): reading the answer, then going on;
        "opening the next connection": from the client's FIN to the next connection's SYN (a new
        socket and `connect`). Requests over one kept-alive connection leave it at 0.
        """
        spent = dict.fromkeys(("handshakes", "server answering", "client, after connecting",
                               "client, after each answer", "opening the next connection"), 0.0)
        convs = sorted((c for c in self.conversations if c.phase("handshake")), key=lambda c: float(c.packets[0].time))
        left: float | None = None  # when the client left the connection before: its FIN (or its last answer)
        for conv in convs:
            opened = conv.phase("handshake")
            syn, mark = float(opened[0].packet.time), float(opened[-1].packet.time)
            spent["handshakes"] += mark - syn
            if left is not None:
                spent["opening the next connection"] += syn - left
            part = "client, after connecting"  # what the time up to the client's next segment was
            for seg in conv.segments[len(opened):]:
                at = float(seg.packet.time)
                if seg.direction == CLIENT_TO_SERVER and part != "server answering" and (seg.length or "FIN" in seg.flags):
                    if not seg.length and conv is convs[-1]:
                        break  # `seconds` ends with the last answer: the client's last close is no part of it
                    spent[part] += at - mark  # the client's turn ends with a request byte or its FIN
                    mark, part = at, "server answering"
                    if not seg.length:  # the FIN: the client has left this connection
                        break
                elif seg.direction == SERVER_TO_CLIENT and seg.length:
                    spent["server answering"] += at - mark
                    mark, part = at, "client, after each answer"
            left = mark
        return {part: ms * 1000 for part, ms in spent.items()}

    def summary(self) -> str:
        """One line of stable facts: requests, connections, SYNs."""
        connections = len(self.conversations)
        return (f"{len(self.exchanges)} requests over {connections} connection{'s' if connections != 1 else ''}: "
                f"{self.syns} SYN{'s' if self.syns != 1 else ''}")

    def __str__(self) -> str:
        return "\n".join([self.summary()] + [str(e) for e in self.exchanges])


_RECORDED = {(True, "1.1"): "http-keepalive", (False, "1.1"): "http-close", (False, "1.0"): "http-1.0"}
DEFAULT_PATHS = ("/", "/", "/")
# The recordings `python -m netlab record` makes for fetch()'s fallback (see netlab.recordings).
RECORDINGS: dict[str, Callable[[], HTTPExperiment]] = {
    "http-keepalive": lambda: fetch(),
    "http-close": lambda: fetch(reuse=False),
    "http-1.0": lambda: fetch(reuse=False, version="1.0"),
}


def _get(sock: socket.socket, path: str, version: str, connection: str | None) -> Response:
    lines = [f"GET {path} HTTP/{version}", "Host: lab"] + ([f"Connection: {connection}"] if connection else [])
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("ascii"))
    return read_response(sock)


def fetch(paths: Sequence[str] = DEFAULT_PATHS, *, reuse: bool = True, version: str = "1.1",
          timeout: float = 5.0) -> HTTPExperiment:
    """GET each path from the lab web server while capturing, and return what the capture shows.

    `reuse=True` sends every request over one kept-alive connection (HTTP/1.1's default; with
    version="1.0" the client asks for it with `Connection: keep-alive`). `reuse=False` opens a
    connection per request and ends each one (`Connection: close` in HTTP/1.1; HTTP/1.0 closes
    by default). Where the lab is refused, a recorded capture of the default three requests
    is shown, labelled as recorded. `timeout` (seconds) bounds every wait.
    """
    if version not in ("1.0", "1.1"):
        raise ValueError(f"version {version!r}: fetch speaks HTTP '1.0' or '1.1'")
    if isinstance(paths, str) or not paths:
        raise ValueError(f"paths must be a non-empty list of paths such as ['/', '/large'], not {paths!r}")
    for path in paths:
        if not isinstance(path, str) or not path.startswith("/") or not path.isascii() or any(c in path for c in " \r\n"):
            raise ValueError(f"{path!r} is no request target: a path starts with '/' and holds no spaces "
                             "or non-ASCII characters (percent-encode them, e.g. urllib.parse.quote)")
    name = _RECORDED.get((reuse, version))
    try:
        exp = live_or_recorded(lambda lab: _fetch(lab, paths, reuse, version, timeout), name, kind=HTTPExperiment)
    except LabUnavailable as err:
        raise LabUnavailable(f"{err} (and there is no recording for reuse={reuse}, version={version!r})") from None
    if not exp.live:
        exp.why = f"recorded: {name}.pcap, {len(DEFAULT_PATHS)} requests for /. {exp.why}"
    return exp


def _fetch(lab: Lab, paths: Sequence[str], reuse: bool, version: str, timeout: float) -> HTTPExperiment:
    with serve(lab, timeout=timeout) as server:
        with lab.capture(timeout=timeout) as cap:
            responses: Any = []  # a tuple once done: recordings store it as its repr
            try:
                if reuse:
                    with lab.create_connection(server.address, timeout) as sock:
                        for path in paths:
                            responses.append(_get(sock, path, version, "keep-alive" if version == "1.0" else None))
                else:
                    for path in paths:
                        with lab.create_connection(server.address, timeout) as sock:
                            responses.append(_get(sock, path, version, "close" if version == "1.1" else None))
                responses = tuple(responses)
            except (OSError, HTTPParseError) as err:
                responses = err
            states = lab.wait_until(all_closed, timeout)
        log = list(server.log)
    return HTTPExperiment(cap.packets, "live", LIVE, kernel_states=[s for s in states if s.state != "LISTEN"],
                          result=responses, log=log)


# ---------------------------------------------------------------------------
# A faster link, or a shorter round trip: what a small request and answer wait for.

# The paths `link_race` compares, (rate in bits/s, round trip in s): a link ten times faster, and
# the first path's round trip halved.
RACE_PATHS = ((10e6, 0.04), (100e6, 0.04), (10e6, 0.02))
# What link_race measured live in a lab here (the median of 3 fresh connections on each path, 14,000
# bytes each way), shown, labelled as recorded, where this machine refuses the lab.
_RACE_RECORDED = {(10e6, 0.04): 0.0910, (100e6, 0.04): 0.0826, (10e6, 0.02): 0.0508}
_RACE_RECORDED_KEPT = 0.0512


@dataclass
class LinkRace:
    """How long a small request and its answer took on each path, each over a fresh connection."""

    size: int  # bytes each way: the request, then the same bytes echoed back
    seconds: dict[tuple[float, float], float]  # (rate bits/s, round trip s) → the median time, first SYN to last byte
    kept_open: float  # the same on the first path over a connection opened before the clock started (no handshake)
    source: str  # "live" or "recorded"
    why: str

    def speedup(self, path: tuple[float, float], base: tuple[float, float] = RACE_PATHS[0]) -> float:
        """How many times faster the exchange was on `path` than on `base` (1.0: no faster at all)."""
        return self.seconds[base] / self.seconds[path]

    def __str__(self) -> str:
        lines = [f"{self.size} bytes each way over a fresh connection ({self.source}):"]
        for (rate, rtt), seconds in self.seconds.items():
            lines.append(f"  {rate / 1e6:g} Mbit/s, round trip {rtt * 1000:g} ms: {seconds * 1000:.1f} ms")
        rate, rtt = next(iter(self.seconds))
        lines.append(f"  {rate / 1e6:g} Mbit/s, round trip {rtt * 1000:g} ms, on a connection already open: "
                     f"{self.kept_open * 1000:.1f} ms")
        return "\n".join(lines)


def link_race(paths: Sequence[tuple[float, float]] = RACE_PATHS, *, size: int = 14_000, tries: int = 3) -> LinkRace:
    """Time a small exchange (`size` bytes to the echo service and back, on a new connection) on each path.

    Each path is the lab's bottleneck (`netlab.core.bottleneck`): a link of `rate` bits/s towards a
    real Linux receiver, `rtt` seconds of round trip. The time runs from `connect` to the answer's
    last byte; each path keeps the median of `tries` connections. Where the lab is refused, the
    figures measured here for `RACE_PATHS` are shown, labelled as recorded.
    """
    if not 1 <= size <= 1_000_000:
        raise ValueError(f"size is bytes each way, from 1 to 1,000,000, not {size!r}")
    if not 1 <= tries <= 20:
        raise ValueError(f"tries must be from 1 to 20, not {tries!r}")
    lab, why = lab_or_none()
    if lab is None:
        if tuple(paths) != RACE_PATHS:
            raise LabUnavailable(f"{why} (and there is a recording only for the default paths)")
        return LinkRace(14_000, dict(_RACE_RECORDED), _RACE_RECORDED_KEPT, "recorded",
                        f"recorded: measured live in a lab here. {why}")
    message = bytes(range(256)) * (size // 256) + bytes(size % 256)

    def exchange(sock: socket.socket) -> None:
        sock.sendall(message)
        if recv_exactly(sock, size) != message:
            raise NetlabError("the lab's echo service answered other bytes than it was sent")

    seconds: dict[tuple[float, float], float] = {}
    kept: list[float] = []
    with lab:
        for rate, rtt in paths:
            with Bottleneck(lab, rate=rate, queue=100, rtt=rtt, capture=False) as path:
                times = []
                for _ in range(tries):
                    began = time.perf_counter()
                    with path.connect(address=path.echo) as sock:
                        exchange(sock)
                        times.append(time.perf_counter() - began)
                seconds[(float(rate), float(rtt))] = statistics.median(times)
                if not kept:  # the first path once more, on one connection opened beforehand
                    with path.connect(address=path.echo) as sock:
                        exchange(sock)  # untimed: what a kept-alive connection has done before
                        for _ in range(tries):
                            began = time.perf_counter()
                            exchange(sock)
                            kept.append(time.perf_counter() - began)
    return LinkRace(size, seconds, statistics.median(kept), "live", why)
