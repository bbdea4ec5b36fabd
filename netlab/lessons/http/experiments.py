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
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from netlab.core.conversation import CLIENT_TO_SERVER, SERVER_TO_CLIENT
from netlab.core.errors import LabUnavailable
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

__all__ = [
    "HTTPExchange", "HTTPExperiment", "Site", "fetch", "site", "RECORDINGS",
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
        """Where `seconds` went, in milliseconds, read from the capture's time stamps.

        "handshakes": from each SYN to the client's ACK that completes it; "requests and responses":
        from there to the connection's last response byte; "between connections": the rest, from one
        connection's last response byte to the next one's SYN (closing one, opening the next socket).
        """
        handshakes = exchanges = 0.0
        for conv in self.conversations:
            opened = conv.phase("handshake")
            answers = [float(s.packet.time) for s in conv.segments if s.direction == SERVER_TO_CLIENT and s.length]
            if not opened or not answers:
                continue
            handshakes += float(opened[-1].packet.time) - float(opened[0].packet.time)
            exchanges += max(answers) - float(opened[-1].packet.time)
        between = self.seconds - handshakes - exchanges
        return {"handshakes": handshakes * 1000, "requests and responses": exchanges * 1000,
                "between connections": between * 1000}

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
