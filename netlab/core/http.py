"""HTTP/1.1 for the lessons: parse requests and responses, a lab web server, keep-alive captured.

Theory of operation
-------------------
An HTTP/1.1 message is text lines followed by bytes (RFC 9112): a start line (`GET / HTTP/1.1`
or `HTTP/1.1 200 OK`), header lines `Name: value`, an empty line, then a body. Every line ends
with CRLF (`\\r\\n`). Only the headers say where the body ends: `Content-Length: N` (N bytes),
`Transfer-Encoding: chunked` (chunks, each prefixed by its size in hex, a zero-size chunk last),
or, for a response with neither, the server closing the connection.

`parse_request` and `parse_response` read one whole message from bytes and return a `Request`
or `Response`. They raise `HTTPParseError` naming the broken rule, or `IncompleteMessage` (a
subclass) saying what is still missing, and how many bytes when the headers tell. Limits keep
bad input from costing much: `MAX_LINE` bytes per line, `MAX_HEADERS` header lines,
`MAX_BODY` bytes of body.

`serve()` runs the lab's web server: the standard library's `http.server` with HTTP/1.1
keep-alive, a handful of routes for the lessons and no files. `LabHTTPConnection` is
`http.client`'s own connection on a socket in the lab. Notebook 04's experiments (`fetch`,
`site`) are in `netlab.lessons.http.experiments`.

Rules for this file:
1. The parser is strict where RFC 9112 says a recipient must reject (bare LF, whitespace before
   a colon, conflicting lengths), and every message it accepts is read the same way by
   `http.client` / `http.server` (tests/test_http.py checks both, and pins each difference).
2. Every socket, thread and wait here has a timeout; `HTTPServer.close()` ends within about
   `timeout` seconds, whatever its clients do.
"""

from __future__ import annotations

import email.utils
import http.client
import http.server
import io
import re
import selectors
import socket
import socketserver
import ssl
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from netlab.core.errors import ProtocolError, WaitTimeout
from netlab.core.sockets import recv_exactly, recv_until_closed

if TYPE_CHECKING:
    from netlab.core.lab import Lab

__all__ = [
    "MAX_BODY", "MAX_HEADERS", "MAX_LINE", "HTTPParseError", "HTTPServer", "Headers", "IncompleteMessage",
    "LabHTTPConnection", "Request", "RequestRecord", "Response", "parse_messages", "parse_request",
    "parse_response", "parse_response_with_stdlib", "read_response", "serve",
]

MAX_LINE = 8192  # bytes in one start line, header line or chunk-size line (CRLF not counted)
MAX_HEADERS = 100  # header lines in one message (the standard library's limit too)
MAX_BODY = 16 * 1024 * 1024  # bytes of body


class HTTPParseError(ProtocolError, ValueError):
    """The bytes are not a valid HTTP/1.x message; the message names the rule broken."""


class IncompleteMessage(HTTPParseError):
    """The bytes are the start of a valid message, but it is not finished.

    `missing` is how many more bytes the message needs when its headers tell (Content-Length,
    a chunk's size), or None when only more data can tell (headers not finished yet).
    """

    def __init__(self, message: str, missing: int | None = None, *, until_close: bool = False) -> None:
        super().__init__(message)
        self.missing = missing
        self.until_close = until_close  # True: a response whose body ends when the server closes


# ---------------------------------------------------------------------------
# Messages.


class Headers(Sequence[tuple[str, str]]):
    """Header fields in the order they came, names as written; look-up ignores case.

    `headers["content-length"]` gives the first value (KeyError if absent), `headers.get(name)`
    the first or a default, `headers.get_all(name)` every value; iterating gives (name, value).
    """

    def __init__(self, fields: Any = ()) -> None:
        self._fields = tuple((str(name), str(value)) for name, value in fields)

    def get(self, name: str, default: str | None = None) -> str | None:
        """The first value of header `name` (any case), or `default`."""
        lower = name.lower()
        return next((v for n, v in self._fields if n.lower() == lower), default)

    def get_all(self, name: str) -> list[str]:
        """Every value of header `name` (any case), in order."""
        lower = name.lower()
        return [v for n, v in self._fields if n.lower() == lower]

    def __getitem__(self, key):  # type: ignore[override]
        if isinstance(key, str):
            value = self.get(key)
            if value is None:
                raise KeyError(key)
            return value
        return self._fields[key]

    def __contains__(self, name: object) -> bool:
        if isinstance(name, str):
            return self.get(name) is not None
        return name in self._fields

    def __len__(self) -> int:
        return len(self._fields)

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self._fields)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Headers):
            return self._fields == other._fields
        if isinstance(other, (list, tuple)):
            return list(self._fields) == [tuple(f) for f in other]
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._fields)

    def __repr__(self) -> str:
        return f"Headers({list(self._fields)!r})"

    def encode(self) -> bytes:
        """The header lines as bytes, each ending in CRLF (no empty line after them)."""
        return b"".join(f"{n}: {v}\r\n".encode("latin-1") for n, v in self._fields)


def _encode_body(headers: Headers, body: bytes, trailers: Headers) -> bytes:
    # Chunked when the last coding is "chunked", as the parser reads it ("chunked:" is another coding).
    codings = [c.strip().lower() for value in headers.get_all("Transfer-Encoding") for c in value.split(",")]
    if codings and codings[-1] == "chunked":
        chunk = f"{len(body):x}\r\n".encode() + body + b"\r\n" if body else b""
        return chunk + b"0\r\n" + trailers.encode() + b"\r\n"
    return body


@dataclass(frozen=True)
class Request:
    """One HTTP request: `GET /path HTTP/1.1`, its headers and its body (chunks already joined)."""

    method: str
    target: str
    version: str  # "HTTP/1.1" or "HTTP/1.0"
    headers: Headers = field(default_factory=Headers)
    body: bytes = b""
    trailers: Headers = field(default_factory=Headers)  # fields after a chunked body

    def encode(self) -> bytes:
        """The request as bytes on the wire (a chunked body is sent as one chunk)."""
        start = f"{self.method} {self.target} {self.version}\r\n".encode("latin-1")
        return start + self.headers.encode() + b"\r\n" + _encode_body(self.headers, self.body, self.trailers)


@dataclass(frozen=True)
class Response:
    """One HTTP response: `HTTP/1.1 200 OK`, its headers and its body (chunks already joined)."""

    version: str
    status: int
    reason: str
    headers: Headers = field(default_factory=Headers)
    body: bytes = b""
    trailers: Headers = field(default_factory=Headers)

    def encode(self) -> bytes:
        """The response as bytes on the wire (a chunked body is sent as one chunk)."""
        start = f"{self.version} {self.status} {self.reason}\r\n".encode("latin-1")
        return start + self.headers.encode() + b"\r\n" + _encode_body(self.headers, self.body, self.trailers)


# ---------------------------------------------------------------------------
# Parsing (RFC 9112). Everything works on bytes; text is decoded only once it is checked.

_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_TARGET = re.compile(rb"[\x21-\x7e]+")  # visible ASCII: no spaces, no control characters
_VERSION = re.compile(rb"HTTP/(\d)\.(\d)")
_STATUS = re.compile(rb"\d{3}")
_FIELD_VALUE = re.compile(rb"[\t \x21-\x7e\x80-\xff]*")  # no control characters but tab
_CHUNK_SIZE = re.compile(rb"[0-9A-Fa-f]{1,16}")
_DIGITS = re.compile(r"[0-9]{1,20}")
_REQUEST_LINE_BYTES = re.compile(rb"[^\x20-\x7e]")  # finds the first byte no request line holds
_STATUS_LINE_BYTES = re.compile(rb"[^\t\x20-\x7e\x80-\xff]")


def _line(data: bytes, pos: int, what: str) -> tuple[bytes, int]:
    """The line starting at `pos` (without its CRLF) and the position after it."""
    end = data.find(b"\r\n", pos, pos + MAX_LINE + 2)
    line = data[pos:end] if end >= 0 else data[pos:pos + MAX_LINE + 1]
    lf = line.find(b"\n")
    if lf >= 0:
        raise HTTPParseError(f"{what} ends with a bare LF at byte {pos + lf}: HTTP lines end with CRLF (\\r\\n)")
    cr = line.find(b"\r")
    if cr >= 0 and (end >= 0 or cr < len(line) - 1):
        raise HTTPParseError(f"{what} holds a bare CR at byte {pos + cr}: CR may only come right before LF")
    if len(line) > MAX_LINE:
        raise HTTPParseError(f"{what} is longer than {MAX_LINE} bytes")
    if end < 0:
        raise IncompleteMessage(f"{what} is not finished: no CRLF after it yet")
    return line, end + 2


def _fields(data: bytes, pos: int, what: str) -> tuple[Headers, int]:
    """Header (or trailer) lines from `pos` up to and including the empty line."""
    fields = []
    while True:
        number = len(fields) + 1
        line, pos = _line(data, pos, f"{what} line {number}")
        if not line:
            return Headers(fields), pos
        if line[:1] in (b" ", b"\t"):
            raise HTTPParseError(f"{what} line {number} starts with whitespace (obsolete line folding, "
                                 "which RFC 9112 forbids)")
        if len(fields) == MAX_HEADERS:
            raise HTTPParseError(f"more than {MAX_HEADERS} {what} lines")
        name, colon, value = line.partition(b":")
        if not colon:
            raise HTTPParseError(f"{what} line {number} has no colon: {line[:40]!r}")
        if not _TOKEN.fullmatch(name):
            if name and name.rstrip(b" \t") != name:
                raise HTTPParseError(f"{what} line {number}: whitespace between the name {name.strip()[:40]!r} "
                                     "and the colon (RFC 9112 says reject it)")
            raise HTTPParseError(f"{what} line {number}: {name[:40]!r} is not a valid field name")
        value = value.strip(b" \t")
        if not _FIELD_VALUE.fullmatch(value):
            raise HTTPParseError(f"{what} line {number} ({name.decode()}) holds a control character")
        fields.append((name.decode("ascii"), value.decode("latin-1")))


def _version(raw: bytes, where: str) -> str:
    match = _VERSION.fullmatch(raw)
    if match is None:
        raise HTTPParseError(f"{where}: {raw[:20]!r} is not an HTTP version such as HTTP/1.1")
    if match.group(1) != b"1":
        raise HTTPParseError(f"{where}: {raw.decode()} is not HTTP/1.x; only HTTP/1.x is written as text lines")
    return raw.decode("ascii")


def _request_line(line: bytes) -> tuple[str, str, str]:
    if not line:
        raise HTTPParseError("the request starts with an empty line; expected a request line such as 'GET / HTTP/1.1'")
    parts = line.split(b" ")
    if len(parts) != 3:
        raise HTTPParseError(f"the request line {line[:60]!r} is not 'METHOD TARGET VERSION' "
                             "separated by single spaces")
    method, target, version = parts
    if not _TOKEN.fullmatch(method):
        raise HTTPParseError(f"the method {method[:20]!r} is not a token (letters, digits and !#$%&'*+-.^_`|~)")
    if not _TARGET.fullmatch(target):
        raise HTTPParseError(f"the target {target[:40]!r} holds characters a URL may not (spaces, control characters)")
    return method.decode("ascii"), target.decode("ascii"), _version(version, "the request line")


def _status_line(line: bytes) -> tuple[str, int, str]:
    if not line:
        raise HTTPParseError("the response starts with an empty line; expected a status line such as 'HTTP/1.1 200 OK'")
    version, _, rest = line.partition(b" ")
    status, space, reason = rest.partition(b" ")
    if not _STATUS.fullmatch(status) or not 100 <= int(status) <= 599:
        raise HTTPParseError(f"the status line {line[:60]!r} has no status code 100-599 after the version")
    if not _FIELD_VALUE.fullmatch(reason):
        raise HTTPParseError("the status line's reason phrase holds a control character")
    return _version(version, "the status line"), int(status), reason.decode("latin-1")


def _body_framing(headers: Headers, kind: str, status: int = 0, method: str = "GET") -> tuple[str, int]:
    """How the body is delimited: ("length", N), ("chunked", 0) or ("close", 0) (RFC 9112 6.3)."""
    if kind == "response" and (status < 200 or status in (204, 304) or method == "HEAD"):
        return "length", 0  # these responses never have a body, whatever their headers say
    encodings = headers.get_all("Transfer-Encoding")
    lengths = headers.get_all("Content-Length")
    if encodings:
        if lengths:
            raise HTTPParseError("both Transfer-Encoding and Content-Length: a message may use only one "
                                 "(RFC 9112 6.1; two lengths is how request smuggling starts)")
        codings = [c.strip().lower() for value in encodings for c in value.split(",")]
        if codings == ["chunked"]:
            return "chunked", 0
        if codings[-1] != "chunked" and kind == "response":
            return "close", 0
        raise HTTPParseError(f"Transfer-Encoding {', '.join(codings)!r} is not supported: only 'chunked'")
    if lengths:
        values = {v.strip() for value in lengths for v in value.split(",")}
        if len(values) > 1:
            raise HTTPParseError(f"Content-Length has different values {sorted(values)}")
        value = values.pop()
        if not _DIGITS.fullmatch(value):
            raise HTTPParseError(f"Content-Length {value[:20]!r} is not a number of bytes")
        if int(value) > MAX_BODY:
            raise HTTPParseError(f"Content-Length {value} is larger than the limit of {MAX_BODY} bytes")
        return "length", int(value)
    return ("length", 0) if kind == "request" else ("close", 0)


def _chunks(data: bytes, pos: int) -> tuple[bytes, Headers, int]:
    body = bytearray()
    number = 0
    while True:
        number += 1
        line, pos = _line(data, pos, f"the size line of chunk {number}")
        size_field = line.split(b";", 1)[0].rstrip(b" \t")  # a chunk extension after ';' is ignored
        if not _CHUNK_SIZE.fullmatch(size_field):
            raise HTTPParseError(f"chunk {number}: the size {size_field[:20]!r} is not a hexadecimal number")
        size = int(size_field, 16)
        if len(body) + size > MAX_BODY:
            raise HTTPParseError(f"the chunked body grows past the limit of {MAX_BODY} bytes")
        if size == 0:
            trailers, pos = _fields(data, pos, "trailer")
            return bytes(body), trailers, pos
        end = pos + size
        if len(data) < end + 2:
            missing = end + 2 - len(data)
            raise IncompleteMessage(f"chunk {number} ({size} bytes and CRLF) is missing {missing} bytes", missing)
        if data[end:end + 2] != b"\r\n":
            raise HTTPParseError(f"chunk {number} is not followed by CRLF after its {size} bytes: "
                                 "its size line does not match its data")
        body += data[pos:end]
        pos = end + 2


def _parse(data: bytes, kind: str, *, method: str = "GET", eof: bool = True, start: int = 0) -> tuple[Request | Response, int]:
    """Parse one message at `start` in `data`; return it and where it ends (an index into `data`).

    `eof` says the sender has closed the connection, so a response delimited by the close is
    complete; without it such a response is incomplete. Positions in errors count from the
    start of `data`. Parsing at an offset, not in a copy of the rest, keeps `parse_messages`
    linear in the bytes given.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise HTTPParseError(f"an HTTP message is bytes, not {type(data).__name__}; encode text first")
    data = bytes(data)  # the same object when `data` is bytes already: no copy
    if start >= len(data):
        raise IncompleteMessage(f"no data: not even the start of the {kind} line")
    start_what = "the request line" if kind == "request" else "the status line"
    try:
        line, pos = _line(data, start, start_what)
    except IncompleteMessage:
        # Unfinished, but it may already show it is no HTTP at all: say so now, not after more bytes.
        allowed = _REQUEST_LINE_BYTES if kind == "request" else _STATUS_LINE_BYTES
        bad = allowed.search(data[start:].rstrip(b"\r"))
        if bad:
            raise HTTPParseError(f"{start_what} holds byte {bad.group()!r} at {start + bad.start()}: "
                                 "this is not HTTP/1.x") from None
        raise
    if kind == "request":
        method, target, version = _request_line(line)
    else:
        version, status, reason = _status_line(line)
    headers, pos = _fields(data, pos, "header")
    how, length = _body_framing(headers, kind, 0 if kind == "request" else status, method)
    trailers = Headers()
    if how == "length":
        have = len(data) - pos
        if have < length:
            raise IncompleteMessage(f"the body is {length} bytes (Content-Length) but only {have} are here: "
                                    f"{length - have} bytes missing", length - have)
        body, end = data[pos:pos + length], pos + length
    elif how == "chunked":
        body, trailers, end = _chunks(data, pos)
    else:
        if not eof:
            raise IncompleteMessage("the body has no length: it ends when the server closes the connection",
                                    until_close=True)
        if len(data) - pos > MAX_BODY:
            raise HTTPParseError(f"the body is larger than the limit of {MAX_BODY} bytes")
        body, end = data[pos:], len(data)
    if kind == "request":
        return Request(method, target, version, headers, body, trailers), end
    return Response(version, status, reason, headers, body, trailers), end


def _exactly_one(data: Any, kind: str, method: str = "GET") -> Any:
    message, end = _parse(data, kind, method=method)
    extra = len(data) - end
    if extra:
        raise HTTPParseError(f"{extra} bytes follow the end of the {kind}: a second message? "
                             f"(its framing headers say it ends after byte {end})")
    return message


def parse_request(data: bytes) -> Request:
    """Parse one whole HTTP/1.x request from `data` (bytes as received).

    Raises IncompleteMessage when the request is not finished (its `missing` says how many
    bytes, when known) and HTTPParseError, naming the problem, when the bytes are not a request.
    """
    return _exactly_one(data, "request")


def parse_response(data: bytes, method: str = "GET") -> Response:
    """Parse one whole HTTP/1.x response from `data`, all the bytes the server sent.

    `method` is the request's: a response to HEAD has no body. A response with neither
    Content-Length nor chunked encoding ends where `data` ends (the server closed).
    Raises IncompleteMessage or HTTPParseError like `parse_request`.
    """
    return _exactly_one(data, "response", method)


def parse_messages(data: bytes, kind: str, methods: Sequence[str] = ()) -> list[Any]:
    """Every whole message in `data`, back to back (the bytes one side sent on a connection)."""
    if isinstance(data, (bytearray, memoryview)):
        data = bytes(data)  # once, not once per message
    messages, pos = [], 0
    while pos < len(data):
        method = methods[len(messages)] if len(messages) < len(methods) else "GET"
        message, pos = _parse(data, kind, method=method, start=pos)
        messages.append(message)
    return messages


class _BytesSocket:
    """Just enough of a socket for http.client.HTTPResponse: it reads `data`, then end of file."""

    def __init__(self, data: bytes) -> None:
        self._data = data

    def makefile(self, mode: str, *args: Any, **kwargs: Any) -> io.BytesIO:
        return io.BytesIO(self._data)


def parse_response_with_stdlib(data: bytes, method: str = "GET") -> Response:
    """Read the same bytes with the standard library's `http.client`, to compare with `parse_response`.

    Raises HTTPParseError when http.client rejects them (it is more lenient than netlab: see
    tests/test_http.py for each known difference).
    """
    response = http.client.HTTPResponse(_BytesSocket(bytes(data)), method=method)  # type: ignore[arg-type]
    try:
        response.begin()
        body = response.read()
    except (http.client.HTTPException, ValueError) as err:
        raise HTTPParseError(f"http.client rejects it: {type(err).__name__}: {err}") from None
    finally:
        response.close()
    version = {10: "HTTP/1.0", 11: "HTTP/1.1"}[response.version]
    return Response(version, response.status, response.reason, Headers(response.getheaders()), body)


def read_response(sock: socket.socket, method: str = "GET") -> Response:
    """Read one whole response from a connected socket, and not one byte of the next.

    The headers say where the body ends (Content-Length, chunked, or the server's close), so
    this reads exactly that far: on a kept-alive connection the next response stays in the
    socket for the next call. The socket's own timeout bounds every wait.
    """
    data = b""
    while True:
        try:
            # The whole message is parsed again after each read: simple, and cheap at a lesson's sizes.
            response, _ = _parse(data, "response", method=method, eof=False)
            return response  # type: ignore[return-value]
        except IncompleteMessage as missing:
            try:
                if missing.until_close:
                    try:
                        return parse_response(data + recv_until_closed(sock, MAX_BODY), method)
                    except ValueError as err:  # recv_until_closed's limit
                        raise HTTPParseError(f"the body has no length and {err}") from None
                more = recv_exactly(sock, missing.missing) if missing.missing else _recv_line(sock)
            except EOFError:
                more = b""
            if not more:
                raise IncompleteMessage(f"the server closed the connection before the response was complete: "
                                        f"{missing}", missing.missing) from None
            data += more


def _recv_line(sock: socket.socket) -> bytes:
    """Take bytes from `sock` up to the next LF, never beyond it (b"" if the peer has closed)."""
    line = b""
    while len(line) <= MAX_LINE + 2:
        if isinstance(sock, ssl.SSLSocket):
            peek = sock.recv(1)  # TLS cannot peek: take one byte at a time (only for the head's lines)
            taken = peek
        else:
            peek = sock.recv(MAX_LINE + 2, socket.MSG_PEEK)  # look at what has arrived, taking nothing
            taken = b""
        if not peek:
            return line
        end = peek.find(b"\n")
        want = len(peek) if end < 0 else end + 1
        line += taken or _take(sock, want)
        if end >= 0:
            return line
    return line  # longer than any line may be: the parser says so


def _take(sock: socket.socket, count: int) -> bytes:
    return recv_exactly(sock, count)  # bytes already seen with MSG_PEEK: no wait


# ---------------------------------------------------------------------------
# The lab web server.


@dataclass(frozen=True)
class RequestRecord:
    """One request the server answered: on which connection (numbered from 1 in accept order)."""

    connection: int
    method: str
    path: str
    version: str
    status: int
    bytes: int  # body bytes sent (0 for HEAD)

    def __str__(self) -> str:
        return f"connection {self.connection}: {self.method} {self.path} {self.version} → {self.status} ({self.bytes} bytes)"


_PAGE = b"""<!doctype html>
<html>
<head><title>netlab</title></head>
<body><h1>Hello from the lab</h1><p>This page came from netlab's HTTP server.</p></body>
</html>
"""
LARGE_DEFAULT = 1_000_000  # bytes /large sends unless ?bytes=N says otherwise
LARGE_MAX = 16_000_000
SLOW_DEFAULT = 0.5  # seconds /slow waits unless ?seconds=S says otherwise
SLOW_MAX = 5.0
CHUNKS_DEFAULT = 5
CHUNKS_MAX = 100


def large_body(size: int) -> bytes:
    """The body of /large?bytes=SIZE: numbered lines ('line 000001 of netlab's large body'), cut at SIZE bytes."""
    line_length = len(b"line 000000 of netlab's large body\n")
    lines = (f"line {n:06d} of netlab's large body\n".encode() for n in range(1, size // line_length + 2))
    return b"".join(lines)[:size]


class _BadQuery(ValueError):
    pass


def _number(query: dict[str, list[str]], name: str, default: float, top: float, kind: type = int) -> Any:
    values = query.get(name)
    if not values:
        return default
    try:
        value = kind(values[-1])
    except ValueError:
        raise _BadQuery(f"{name}={values[-1]!r} is not a number") from None
    if not 0 <= value <= top:
        raise _BadQuery(f"{name}={value} is out of range 0..{top:g}")
    return value


class _Handler(http.server.BaseHTTPRequestHandler):
    """Answers the lessons' routes; everything else is 404. Serves no files."""

    protocol_version = "HTTP/1.1"  # keep-alive: the connection stays open between requests
    server_version = "netlab-http/1.0"
    sys_version = ""  # the Server header says netlab, not the Python version
    server: _Server

    def setup(self) -> None:
        # An idle keep-alive connection is closed after `timeout` seconds (StreamRequestHandler
        # sets it on the socket, so it bounds every read and write too).
        self.timeout = self.server.netlab.timeout
        self.number = self.server.number_of(self.request)
        self._tls_failed = False
        context = self.server.netlab.ssl_context
        if context is not None:
            # The TLS handshake happens here, in this connection's own thread: a client that
            # connects and stays silent delays only itself, never accept().
            self.request.settimeout(self.timeout)
            try:
                tls = context.wrap_socket(self.request, server_side=True, do_handshake_on_connect=False)
                self.server.replace(self.number, tls)
                self.request = tls
                tls.do_handshake()
            except (OSError, ValueError) as err:
                self._tls_failed = True
                self.server.netlab.errors.append(f"connection {self.number}: TLS handshake failed: {err}")
        super().setup()

    def handle(self) -> None:
        if not self._tls_failed:
            super().handle()

    def finish(self) -> None:
        try:
            super().finish()
        except OSError:
            pass
        finally:
            # Forgotten before any close, so close() never shuts down a socket number reused since.
            self.server.forget(self.number)
            if isinstance(self.request, ssl.SSLSocket):
                self.request.close()  # the plain socket was handed to TLS; the server closes only that

    def log_message(self, format: str, *args: Any) -> None:
        pass  # requests go to the server's log; timeouts and resets are ordinary here

    def log_request(self, code: Any = "-", size: Any = "-") -> None:
        pass

    def do_GET(self) -> None:
        self._route()

    def do_HEAD(self) -> None:
        self._route()

    def _route(self) -> None:
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        try:
            if url.path == "/":
                self._reply(200, _PAGE, "text/html; charset=utf-8")
            elif url.path == "/large":
                self._reply(200, large_body(_number(query, "bytes", LARGE_DEFAULT, LARGE_MAX)), "text/plain")
            elif url.path == "/chunked":
                count = _number(query, "chunks", CHUNKS_DEFAULT, CHUNKS_MAX)
                self._reply_chunked([f"chunk {n} of {count}\n".encode() for n in range(1, count + 1)])
            elif url.path == "/slow":
                seconds = _number(query, "seconds", SLOW_DEFAULT, SLOW_MAX, float)
                self.server.netlab._stop.wait(seconds)  # close() cuts the wait short
                self._reply(200, f"answered after {seconds:g} s\n".encode(), "text/plain")
            else:
                self._reply(404, f"{self.path} is not here: try / /large /chunked /slow\n".encode(), "text/plain")
        except _BadQuery as err:
            self._reply(400, f"{err}\n".encode(), "text/plain")

    def _start(self, status: int, content_type: str) -> None:
        self.send_response_only(status)
        self.send_header("Date", email.utils.formatdate(usegmt=True))
        self.send_header("Server", self.server_version)
        self.send_header("Content-Type", content_type)
        if self.close_connection:
            self.send_header("Connection", "close")  # tell the client this is the last response
        elif self.request_version == "HTTP/1.0":
            self.send_header("Connection", "keep-alive")  # an HTTP/1.0 client asked to keep it open

    def _reply(self, status: int, body: bytes, content_type: str) -> None:
        # Each answer is logged before it is sent: a client that has read it finds it in the log.
        if self.request_version == "HTTP/0.9":  # "GET /" alone: an HTTP/0.9 answer is the bare body
            self._record(status, len(body))
            self.wfile.write(body)
            return
        self._start(status, content_type)
        self.send_header("Content-Length", str(len(body)))
        sent = body if self.command != "HEAD" else b""
        self._record(status, len(sent))
        # Head and body leave in one write, so the first segment holds the start of the body.
        self._headers_buffer.append(b"\r\n" + sent)
        self.flush_headers()

    def _reply_chunked(self, chunks: list[bytes]) -> None:
        self._start(200, "text/plain")
        self.send_header("Transfer-Encoding", "chunked")
        self._record(200, 0 if self.command == "HEAD" else sum(len(c) for c in chunks))
        self.end_headers()
        if self.command == "HEAD":
            return
        for chunk in chunks:  # each chunk is its own write, as a server streaming its answer would
            self.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
        self.wfile.write(b"0\r\n\r\n")

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        # The standard library's errors (bad request line, 501 for an unknown method) as a short
        # text page, logged like every answer; the connection closes after a malformed request.
        self.close_connection = True
        try:
            phrase = HTTPStatus(code).phrase
        except ValueError:
            phrase = ""
        if self.command is None:
            self.request_version = "HTTP/1.1"
        self._reply(code, f"{code} {message or phrase}\n".encode(), "text/plain")

    def _record(self, status: int, size: int) -> None:
        record = RequestRecord(self.number, self.command or "-", self.path if self.command else "-",
                               self.request_version, status, size)
        self.server.netlab.log.append(record)
        if self.server.netlab.on_request is not None:
            self.server.netlab.on_request(record)


class _Server(socketserver.ThreadingMixIn, socketserver.TCPServer):
    # One thread per connection. socketserver does not keep daemon threads to join, so this
    # class keeps them itself (`threads`), and HTTPServer.close() joins them with a time limit.
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True
    request_queue_size = 32

    def __init__(self, owner: HTTPServer, address: tuple[str, int], sock: socket.socket | None) -> None:
        self.netlab = owner
        self._lock = threading.Lock()
        self._count = 0
        self._open: dict[int, socket.socket] = {}
        self._numbers: dict[int, int] = {}
        self.threads: list[threading.Thread] = []
        super().__init__(address, _Handler, bind_and_activate=False)
        if sock is not None:
            self.socket.close()
            self.socket = sock

    def process_request(self, request: socket.socket, client_address: Any) -> None:
        # Connections are numbered here, in accept order, before their threads race.
        with self._lock:
            self._count += 1
            self._open[self._count] = request
            self._numbers[id(request)] = self._count
            self.threads = [t for t in self.threads if t.is_alive()]
        thread = threading.Thread(target=self.process_request_thread, args=(request, client_address),
                                  name=f"netlab-http-connection-{self._count}", daemon=True)
        self.threads.append(thread)
        thread.start()

    def number_of(self, request: socket.socket) -> int:
        with self._lock:
            return self._numbers.pop(id(request))

    def replace(self, number: int, sock: socket.socket) -> None:
        with self._lock:
            self._open[number] = sock

    def forget(self, number: int) -> None:
        """The handler is done with connection `number` (called before its socket is closed)."""
        with self._lock:
            self._open.pop(number, None)

    def handle_error(self, request: Any, client_address: Any) -> None:
        error = sys.exc_info()[1]  # a client that reset or went silent ends its connection, not the server
        self.netlab.errors.append(f"{type(error).__name__}: {error}")

    def cut_connections(self) -> None:
        """Shut down every open connection, so each handler's read ends at once."""
        with self._lock:
            socks = list(self._open.values())
        for sock in socks:
            try:
                socket.socket.shutdown(sock, socket.SHUT_RDWR)  # the plain socket's, under TLS too
            except OSError:
                pass


class HTTPServer:
    """The lab's web server on a background thread: HTTP/1.1, keep-alive, the lessons' routes.

    Routes: `/` a small HTML page, `/large?bytes=N` N bytes (default 1,000,000), `/chunked?chunks=N`
    a chunked body, `/slow?seconds=S` an answer after S seconds (default 0.5, at most 5), 404 for
    anything else. Every answer is appended to `log` as a RequestRecord. An idle connection is
    closed after `timeout` seconds; `close()` returns within about `timeout` seconds.
    """

    def __init__(self, lab: Lab | None = None, host: str = "127.0.0.1", port: int = 0, *,
                 ssl_context: ssl.SSLContext | None = None, timeout: float = 5.0,
                 on_request: Callable[[RequestRecord], Any] | None = None) -> None:
        self.timeout = timeout
        self.ssl_context = ssl_context
        self.on_request = on_request
        self.log: list[RequestRecord] = []
        self.errors: list[str] = []  # connections that failed (a TLS handshake, a handler error)
        self._stop = threading.Event()
        self._closed = False
        listener = lab.socket(socket.AF_INET, socket.SOCK_STREAM) if lab is not None else None
        self._server = _Server(self, (host, port), listener)
        try:
            self._server.server_bind()
            self._server.server_activate()
        except BaseException:
            self._server.server_close()
            raise
        self.address: tuple[str, int] = self._server.socket.getsockname()[:2]
        scheme = "https" if ssl_context is not None else "http"
        self.url = f"{scheme}://{self.address[0]}:{self.address[1]}"
        self._thread = threading.Thread(target=self._serve, name=f"netlab-http-{self.address[1]}", daemon=True)
        self._thread.start()

    @property
    def connections(self) -> int:
        """How many connections the server has accepted so far."""
        return self._server._count

    def _serve(self) -> None:
        # socketserver's own serve_forever(), with a stop flag we can set without waiting on it.
        with selectors.DefaultSelector() as selector:
            selector.register(self._server, selectors.EVENT_READ)
            while not self._stop.is_set():
                if selector.select(0.05):
                    self._server._handle_request_noblock()  # accept, then one thread per connection

    def close(self) -> None:
        """Stop accepting, end every open connection, and wait (bounded) for the threads to end."""
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        self._thread.join(1.0)
        self._server.cut_connections()
        self._server.server_close()  # closes the listener
        # Each connection thread ends at once now (its socket is shut down, /slow's wait is cut
        # short); a TLS handshake caught half-way ends within `timeout`.
        deadline = time.monotonic() + self.timeout + 1
        for thread in list(self._server.threads):
            thread.join(max(0.0, deadline - time.monotonic()))
        stuck = [t.name for t in self._server.threads if t.is_alive()] + ([self._thread.name] if self._thread.is_alive() else [])
        if stuck:
            raise WaitTimeout(f"the HTTP server on port {self.address[1]} did not stop within "
                               f"{self.timeout + 1:g} s: {', '.join(stuck)} still running")

    def __enter__(self) -> HTTPServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<netlab.http.HTTPServer {self.url} {'closed' if self._closed else 'serving'}>"


def serve(lab: Lab | None = None, host: str = "127.0.0.1", port: int = 0, *,
          ssl_context: ssl.SSLContext | None = None, timeout: float = 5.0) -> HTTPServer:
    """Start the lab web server (in `lab`'s network if given) and return it; use it in a `with` block.

    `ssl_context` (a server-side ssl.SSLContext) makes it serve HTTPS. `timeout` (seconds)
    closes idle keep-alive connections and bounds every read, write and the shutdown.
    """
    return HTTPServer(lab, host, port, ssl_context=ssl_context, timeout=timeout)


# ---------------------------------------------------------------------------
# For notebooks: the web server in a lab, and clients that reach it there.


class LabHTTPConnection(http.client.HTTPConnection):
    """http.client's own connection, on a socket that lives in a lab (or on this machine's
    loopback without one), wrapped in TLS when given a `context`.

    `host` is the name the request's Host header and TLS's SNI carry; the connection itself goes
    to `address`.
    """

    def __init__(self, lab: Lab | None, address: tuple[str, int], timeout: float, *,
                 host: str | None = None, context: ssl.SSLContext | None = None) -> None:
        super().__init__(host or address[0], address[1], timeout=timeout)
        self._lab, self._address, self._context = lab, address, context

    def connect(self) -> None:
        if self._lab is None:
            sock = socket.create_connection(self._address, self.timeout)
        else:
            sock = self._lab.create_connection(self._address, timeout=self.timeout)
        # As http.client itself does: send small writes at once. Otherwise Nagle's algorithm can
        # hold a request back until the server ACKs the previous segment (a delayed ACK, 40 ms).
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self._context is not None:
            try:
                sock = self._context.wrap_socket(sock, server_hostname=self.host)  # sends the SNI
            except BaseException:
                sock.close()
                raise
        self.sock = sock
