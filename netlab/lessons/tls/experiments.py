"""TLS in the lab: certificates made at run time, the same request over HTTP and HTTPS, the records dissected.

Theory of operation
-------------------
`CertificateAuthority()` makes a private certificate authority (CA) with the `cryptography`
package and issues server certificates from it ("localhost" and 127.0.0.1 by default, valid
for an hour). Nothing is downloaded and nothing is trusted but this CA: the client context
verifies the server against it alone, with host-name checking on. Python's `ssl` module reads
a private key only from a file, so the keys are written into a temporary directory that the
`with` block removes at its end.

`same_request()` sends one GET request to the lab's HTTP server (`netlab.core.http.serve`) twice,
once in the clear and once over TLS, capturing each connection. `wrong_certificate(case)`
connects a verifying client to a server whose certificate is wrong in one way. Each returns a
`TLSExchange`, an `Experiment` that adds what the client's `ssl` module reported. Its
`records()` are the TLS records of the capture, cut and named by scapy's TLS layer
(`scapy.layers.tls`), so a notebook reads the handshake as an observer on the wire would.

Rules for this file:
1. Private keys exist only inside a CertificateAuthority's temporary directory; public
   certificates (and recorded captures) may be kept.
2. Records are dissected by scapy; netlab only steps from one record to the next by the length
   scapy read from each record's header, and never decrypts.
"""

from __future__ import annotations

import dataclasses
import datetime
import functools
import http.client
import ipaddress
import os
import secrets
import ssl
import tempfile
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from netlab.core.conversation import CLIENT_TO_SERVER, SERVER_TO_CLIENT, Conversation
from netlab.core.errors import NetlabError
from netlab.core.experiment import Experiment, run
from netlab.core.http import LabHTTPConnection, serve
from netlab.core.lab import Lab

if TYPE_CHECKING:
    from cryptography import x509

__all__ = [
    "CASES", "RECORDINGS", "CertificateAuthority", "TLSComparison", "TLSExchange", "Record", "ServerCertificate",
    "TLS13_OVERHEAD", "describe", "https_request", "same_request", "wrong_certificate", "sign_handshake", "signature_valid",
]

# The name the lab's server answers to and the client asks for (it travels in the SNI).
SERVER_NAME = "localhost"
# What `same_request` asks for: a 3000-byte body, so that its size shows in the records.
DEFAULT_PATH = "/large?bytes=3000"
# The ways a certificate can be wrong that `wrong_certificate` shows, and their recordings.
CASES = {
    "unknown CA": "tls-unknown-ca",
    "wrong name": "tls-wrong-name",
    "expired": "tls-expired",
}
# TLS 1.3 adds this much to every encrypted record's payload: the real content type (1 byte)
# and the AEAD authentication tag (16 bytes with AES-GCM and ChaCha20-Poly1305), no padding.
TLS13_OVERHEAD = 17
# What a TLS 1.3 server's CertificateVerify signs before the transcript hash (RFC 8446, 4.4.3):
# 64 spaces, a context string and a zero byte, so a signature made for TLS 1.3 means nothing elsewhere.
CERTIFICATE_VERIFY_PREFIX = b" " * 64 + b"TLS 1.3, server CertificateVerify" + b"\0"




# ---------------------------------------------------------------------------
# Certificates made at run time.


@dataclass(frozen=True)
class ServerCertificate:
    """A server certificate issued by a CertificateAuthority, and where its files are."""

    certificate: x509.Certificate
    cert_file: Path  # PEM certificate (public)
    key_file: Path  # PEM private key, inside the authority's temporary directory

    def describe(self) -> str:
        """Subject, issuer, the names it is valid for and how long it is valid (no dates: they change)."""
        return describe(self.certificate)


class CertificateAuthority:
    """A certificate authority made at run time; its files live in a temporary directory.

    Use it as a context manager: at the end of the `with` block the directory, with every
    private key in it, is removed. `issue()` makes server certificates; `server_context()` and
    `client_context()` make the `ssl.SSLContext`s for each side.
    """

    def __init__(self, name: str = "netlab lab CA", valid_for: float = 3600.0) -> None:
        from cryptography import x509
        from cryptography.hazmat.primitives.asymmetric import ed25519
        from cryptography.x509.oid import NameOID

        if valid_for <= 0:
            raise ValueError(f"valid_for is in seconds and must be positive, not {valid_for!r}")
        self.name = name
        self._tmp = tempfile.TemporaryDirectory(prefix="netlab-tls-")
        self.directory = Path(self._tmp.name)
        self._closed = False
        try:
            # Ed25519 keys: signatures have a fixed length, so every certificate (and every
            # handshake record that carries one) has the same size from run to run.
            self._key = ed25519.Ed25519PrivateKey.generate()
            subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
            now = _now()
            self.certificate = (
                _builder(subject, subject, self._key.public_key(), now, valid_for)
                .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
                .add_extension(_key_usage(ca=True), critical=True)
                .sign(self._key, None)
            )
            self.ca_file = self.directory / "ca.pem"
            self.ca_file.write_bytes(_pem(self.certificate))
            self._issued = 0
        except BaseException:
            self._tmp.cleanup()
            raise

    def issue(self, names: tuple[str, ...] = (SERVER_NAME,), addresses: tuple[str, ...] = ("127.0.0.1",), *,
              valid_for: float = 3600.0, expired: bool = False) -> ServerCertificate:
        """Issue a server certificate for these DNS `names` and IP `addresses`, valid `valid_for` seconds.

        `expired=True` makes one whose validity ended a day ago (for the client to refuse).
        """
        from cryptography import x509
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ed25519
        from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

        self._check_open()
        if isinstance(names, str) or isinstance(addresses, str):
            raise TypeError("names and addresses are tuples of strings, e.g. names=('localhost',)")
        if not names and not addresses:
            raise ValueError("a server certificate needs at least one name or address to be valid for")
        if valid_for <= 0:
            raise ValueError(f"valid_for is in seconds and must be positive, not {valid_for!r}")
        try:
            ips = [x509.IPAddress(ipaddress.ip_address(a)) for a in addresses]
        except ValueError as err:
            raise ValueError(f"not an IP address: {err}") from None
        key = ed25519.Ed25519PrivateKey.generate()
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, (names or addresses)[0])])
        start = _now() - datetime.timedelta(days=2) if expired else _now()
        lifetime = 86400.0 if expired else valid_for
        cert = (
            _builder(subject, self.certificate.subject, key.public_key(), start, lifetime)
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names] + ips), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_key_usage(ca=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(self._key, None)
        )
        self._issued += 1
        cert_file = self.directory / f"server{self._issued}.pem"
        key_file = self.directory / f"server{self._issued}.key"
        cert_file.write_bytes(_pem(cert))
        # Only the owner may read a private key, even for the moment it exists.
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                        serialization.NoEncryption()))
        return ServerCertificate(cert, cert_file, key_file)

    def server_context(self, certificate: ServerCertificate | None = None) -> ssl.SSLContext:
        """A server-side context presenting `certificate` (a new one for localhost if not given)."""
        self._check_open()
        cert = certificate or self.issue()
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(cert.cert_file, cert.key_file)  # read now: the context keeps the key in memory
        ctx.set_alpn_protocols(["http/1.1"])
        # No session tickets: a web server would send one or two NewSessionTicket records after
        # the handshake, at a moment that races with the client's request. Without them the
        # records come in the same order on every run.
        ctx.num_tickets = 0
        return ctx

    def client_context(self) -> ssl.SSLContext:
        """A client-side context that trusts this CA only and checks the server's host name."""
        self._check_open()
        ctx = ssl.create_default_context(cadata=_pem(self.certificate).decode())  # nothing else trusted
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.set_alpn_protocols(["http/1.1"])
        return ctx  # check_hostname is on and verify_mode is CERT_REQUIRED, as in every default context

    def _check_open(self) -> None:
        if self._closed:
            raise NetlabError("this certificate authority is closed (its directory is gone); make a new one")

    def close(self) -> None:
        """Remove the temporary directory and every key in it."""
        if not self._closed:
            self._closed = True
            self._tmp.cleanup()

    def __enter__(self) -> CertificateAuthority:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<netlab.tls.CertificateAuthority {self.name!r} {'closed' if self._closed else 'open'}>"


# Certificates are valid from a few minutes before they are made: a peer whose clock is a little
# behind must not see them as not yet valid.
_SLACK = datetime.timedelta(minutes=5)


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC).replace(microsecond=0)


def _builder(subject: Any, issuer: Any, public_key: Any, start: datetime.datetime, seconds: float) -> Any:
    from cryptography import x509

    # A 63-bit serial with its top bit set: random, positive, always 8 bytes long (RFC 5280 4.1.2.2).
    serial = secrets.randbits(62) | (1 << 62)
    return (
        x509.CertificateBuilder()
        .subject_name(subject).issuer_name(issuer).public_key(public_key).serial_number(serial)
        .not_valid_before(start - _SLACK).not_valid_after(start + datetime.timedelta(seconds=seconds))
    )


def _key_usage(ca: bool) -> Any:
    from cryptography import x509

    return x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                         data_encipherment=False, key_agreement=False, key_cert_sign=ca, crl_sign=ca,
                         encipher_only=False, decipher_only=False)


def _pem(cert: Any) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return cert.public_bytes(serialization.Encoding.PEM)


def _summary(cert: Any) -> dict:
    """The public facts of a certificate, as JSON-friendly values."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = [str(n) for n in san.get_values_for_type(x509.DNSName)]
        names += [str(a) for a in san.get_values_for_type(x509.IPAddress)]
    except x509.ExtensionNotFound:
        names = []
    start, end = cert.not_valid_before_utc, cert.not_valid_after_utc
    return {
        "subject": cert.subject.rfc4514_string(),
        "issuer": cert.issuer.rfc4514_string(),
        "names": names,
        "valid_seconds": (end - start).total_seconds(),
        "expired": end < datetime.datetime.now(datetime.UTC),
        "der_length": len(cert.public_bytes(serialization.Encoding.DER)),
        "pem": _pem(cert).decode(),
    }


def describe(cert: Any) -> str:
    """A certificate in four lines: subject, issuer, names, validity (a length, never dates), size."""
    facts = cert if isinstance(cert, dict) else _summary(cert)
    minutes = facts["valid_seconds"] / 60
    return "\n".join([
        f"subject: {facts['subject']}",
        f"issuer:  {facts['issuer']}",
        f"names:   {', '.join(facts['names']) or '(none)'}",
        f"valid:   {minutes:.0f} minutes{' (expired)' if facts['expired'] else ''}",
        f"size:    {facts['der_length']} bytes (DER, as it travels)",
    ])


def sign_handshake(key_file: Path | None, transcript_hash: bytes) -> bytes:
    """Sign a handshake's transcript hash the way a TLS 1.3 server's CertificateVerify does (RFC 8446, 4.4.3).

    `key_file` is the server's Ed25519 private key (a `ServerCertificate.key_file`); None signs with
    a key made on the spot, as an impostor that copied the public certificate but not the key must.
    Returns the 64-byte signature.
    """
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    if not isinstance(transcript_hash, bytes):
        raise TypeError(f"transcript_hash is bytes (a hash of the handshake so far), not {type(transcript_hash).__name__}")
    if key_file is None:
        key: Any = ed25519.Ed25519PrivateKey.generate()
    else:
        key = serialization.load_pem_private_key(Path(key_file).read_bytes(), password=None)
    return key.sign(CERTIFICATE_VERIFY_PREFIX + transcript_hash)


def signature_valid(certificate: ServerCertificate, signature: bytes, transcript_hash: bytes) -> bool:
    """Check a CertificateVerify signature with the public key in `certificate`, as the client does.

    True only when the signature was made over this transcript with the private key that matches
    the certificate: a copied certificate alone cannot produce it.
    """
    from cryptography.exceptions import InvalidSignature

    try:
        certificate.certificate.public_key().verify(signature, CERTIFICATE_VERIFY_PREFIX + transcript_hash)
    except InvalidSignature:
        return False
    return True


# ---------------------------------------------------------------------------
# TLS records, as scapy dissects them.


@dataclass(frozen=True)
class Record:
    """One TLS record of a capture, as scapy's TLS layer reads it."""

    number: int  # 1-based, in the order the records appear on the wire
    direction: str  # "C→S" or "S→C"
    segment: int  # the TCP segment (its # in the conversation table) where the record starts
    type: str  # content type: "handshake", "change_cipher_spec", "alert", "application_data"
    version: str  # the record layer's version field as scapy names it ("TLS 1.2")
    length: int  # bytes after the 5-byte record header
    messages: tuple[str, ...]  # handshake messages ("client_hello", ...) or the alert, when readable
    packet: Any = field(repr=False, compare=False)  # the scapy TLS record

    @property
    def encrypted(self) -> bool:
        """True for records whose content an observer cannot read (TLS 1.3 hides everything after ServerHello)."""
        return self.type == "application_data"

    def contents(self) -> str:
        """What an observer can say is inside: the messages, or '(encrypted)', or '(dummy)'."""
        if self.messages:
            return ", ".join(self.messages)
        if self.type == "change_cipher_spec":
            return "(a dummy in TLS 1.3)"
        return "(encrypted)" if self.encrypted else ""


def _load_tls() -> Any:
    from scapy.main import load_layer

    load_layer("tls")
    from scapy.layers.tls.record import TLS

    return TLS


def _records_of(conv: Conversation) -> list[Record]:
    tls_record = _load_tls()
    found = []
    for direction in (CLIENT_TO_SERVER, SERVER_TO_CLIENT):
        stream = conv.data(direction)
        starts = [(s.seq - 1, s.length, s.number) for s in conv.segments if s.direction == direction and s.length]
        offset = 0
        while offset + 5 <= len(stream):
            # Each record is parsed on its own, in a fresh scapy session: what a passive
            # observer knows, with no keys and no memory of the handshake.
            first = tls_record(stream[offset:])
            if type(first) is not tls_record or first.type not in (20, 21, 22, 23) or first.len is None:
                break  # not TLS: a plain HTTP stream
            end = offset + 5 + int(first.len)
            if end > len(stream):
                break  # the capture ends in the middle of this record
            rec = tls_record(stream[offset:end])
            segment = next((n for start, length, n in starts if start <= offset < start + length), 0)
            found.append((segment, offset, direction, rec))
            offset = end
    found.sort(key=lambda item: (item[0], item[1]))
    return [Record(number, direction, segment, _name(rec, "type"), _name(rec, "version"), int(rec.len),
                   _messages(rec), rec)
            for number, (segment, _, direction, rec) in enumerate(found, 1)]


def _name(pkt: Any, field_name: str) -> str:
    value = getattr(pkt, field_name)
    return str(pkt.get_field(field_name).i2repr(pkt, value)).strip("'")


def _messages(rec: Any) -> tuple[str, ...]:
    from scapy.layers.tls.record import TLSAlert, TLSApplicationData

    names = []
    for msg in rec.msg or []:
        if isinstance(msg, TLSApplicationData) or isinstance(msg, bytes):
            continue
        if isinstance(msg, TLSAlert):
            names.append(f"alert: {_name(msg, 'level')} {_name(msg, 'descr')}")
        elif hasattr(msg, "msgtype") and rec.type == 22:
            names.append(_name(msg, "msgtype"))
    return tuple(names)


def _extension(hello: Any, cls_name: str) -> Any:
    return next((ext for ext in getattr(hello, "ext", None) or [] if type(ext).__name__ == cls_name), None)


# ---------------------------------------------------------------------------
# One captured request (or refused connection), live or recorded.


@dataclass
class TLSExchange(Experiment):
    """A request to the lab's server over HTTP or HTTPS: the experiment's capture, and what the client saw.

    `result` (and `facts`, the same dict) holds what the client's own libraries reported (status,
    response size, the TLS version and cipher the `ssl` module negotiated, the server's
    certificate, or the error).
    """

    scheme: str = "https"  # "http" or "https"
    _records: list[Record] | None = field(default=None, init=False, repr=False)

    @cached_property
    def facts(self) -> dict:
        """What the client reported: live, the dict its function returned; recorded, that dict read back from NAME.json."""
        # Where the client raised, `run` kept the exception as the result instead of a dict.
        return self.result if isinstance(self.result, dict) else {"error": repr(self.result)}

    @property
    def error(self) -> str | None:
        """The error the client raised, as a user sees it ('SSLCertVerificationError: ...'), or None."""
        return self.facts.get("error")

    def records(self) -> list[Record]:
        """The TLS records on the wire, in order (empty for plain HTTP)."""
        if self._records is None:
            self._records = _records_of(self.conversation)
        return self._records

    def shows(self, text: str | bytes) -> bool:
        """True when `text` appears in the captured payload bytes, in either direction."""
        data = text.encode() if isinstance(text, str) else text
        return any(data in self.conversation.data(d) for d in (CLIENT_TO_SERVER, SERVER_TO_CLIENT))

    def payload_bytes(self) -> dict[str, int]:
        """How many payload bytes the capture shows in each direction."""
        return {d: len(self.conversation.data(d)) for d in (CLIENT_TO_SERVER, SERVER_TO_CLIENT)}

    def record_table(self, segments: bool = False) -> str:
        """The TLS records as a table: direction, content type, record-layer version, length (bytes), contents.

        `segments=True` adds the TCP segment each record starts in; which segment that is
        depends on when each side's kernel sent its ACKs, so it can change from run to run.
        """
        seg = f"{'seg':>3}  " if segments else ""
        lines = [f"{'#':>3}  {seg}{'dir':<4} {'record type':<19} {'version':<8} {'length':>6}  contents"]
        for r in self.records():
            seg = f"{r.segment:>3}  " if segments else ""
            lines.append(f"{r.number:>3}  {seg}{r.direction:<4} {r.type:<19} {r.version:<8} {r.length:>6}  {r.contents()}")
        return "\n".join(lines)

    @property
    def certificate_der(self) -> bytes | None:
        """The server's certificate as the bytes that travel in a Certificate message (DER), if the client got one."""
        cert = self.facts.get("certificate")
        return ssl.PEM_cert_to_DER_cert(cert["pem"]) if cert else None

    # -- what the handshake tells an observer (read from the capture by scapy) -------------

    def _hello(self, message: str) -> Any:
        for r in self.records():
            if message in r.messages:
                return next(m for m in r.packet.msg if _name(m, "msgtype") == message)
        return None

    @property
    def sni(self) -> str | None:
        """The server name the client asked for in its ClientHello (in the clear)."""
        ext = _extension(self._hello("client_hello"), "TLS_Ext_ServerName")
        return ext.servernames[0].servername.decode() if ext and ext.servernames else None

    @property
    def alpn(self) -> list[str]:
        """The application protocols the client offered (ALPN), in the clear."""
        ext = _extension(self._hello("client_hello"), "TLS_Ext_ALPN")
        return [p.protocol.decode() for p in ext.protocols] if ext else []

    @property
    def cipher_suite(self) -> str | None:
        """The cipher suite the server chose, from its ServerHello."""
        hello = self._hello("server_hello")
        return _name(hello, "cipher") if hello is not None else None

    @property
    def offered_versions(self) -> list[str]:
        """The TLS versions the ClientHello offers in its supported_versions extension."""
        ext = _extension(self._hello("client_hello"), "TLS_Ext_SupportedVersion_CH")
        return [ext.get_field("versions").i2repr(ext, [v]).strip("[]") for v in ext.versions] if ext else []

    @property
    def version(self) -> str | None:
        """The TLS version the server chose: supported_versions in its ServerHello, else its version field."""
        hello = self._hello("server_hello")
        if hello is None:
            return None
        ext = _extension(hello, "TLS_Ext_SupportedVersion_SH")
        return _name(ext, "version") if ext is not None else _name(hello, "version")

    @property
    def round_trips(self) -> int:
        """How many times the client sent data and then waited for the server's data (TCP's handshake not counted)."""
        turns, last = 0, None
        for s in self.conversation.segments:
            if s.length:
                turns += last == CLIENT_TO_SERVER and s.direction == SERVER_TO_CLIENT
                last = s.direction
        return turns


@dataclass
class TLSComparison:
    """The same request over HTTP and over HTTPS, each captured."""

    http: TLSExchange
    https: TLSExchange
    path: str


def _client(server_context: ssl.SSLContext | None, client_context: ssl.SSLContext | None, path: str,
            timeout: float):
    """The client an experiment runs in the lab: one GET request, facts about it returned."""

    def client(lab: Lab, _address: Any) -> dict:
        facts: dict[str, Any] = {"request": f"GET {path} HTTP/1.1", "server_name": SERVER_NAME}
        with serve(lab=lab, ssl_context=server_context, timeout=timeout) as server:
            conn = LabHTTPConnection(lab, server.address, timeout, host=SERVER_NAME, context=client_context)
            try:
                # Connection: close, so the server closes after its answer and the capture ends
                # with a complete teardown.
                conn.request("GET", path, headers={"Connection": "close"})
                if isinstance(conn.sock, ssl.SSLSocket):
                    facts.update(_tls_facts(conn.sock))
                response = conn.getresponse()
                body = response.read()
                facts.update(status=response.status, body_length=len(body))
            except (OSError, http.client.HTTPException) as err:
                facts["error"] = f"{type(err).__name__}: {err}"
                facts["verify_message"] = getattr(err, "verify_message", None)
            finally:
                conn.close()
        if server.errors:
            facts["server_errors"] = list(server.errors)  # what the server saw: the client's alert
        return facts

    return client


def _tls_facts(sock: ssl.SSLSocket) -> dict:
    from cryptography import x509

    der = sock.getpeercert(binary_form=True)
    return {
        "tls_version": sock.version(),
        "cipher": sock.cipher()[0],
        "alpn": sock.selected_alpn_protocol(),
        "certificate": _summary(x509.load_der_x509_certificate(der)) if der else None,
    }


def _plain(path: str = DEFAULT_PATH, timeout: float = 5.0) -> TLSExchange:
    exchange = run(_client(None, None, path, timeout), recorded="tls-http", server=False, timeout=timeout, kind=TLSExchange)
    return dataclasses.replace(exchange, scheme="http")


def _secure(path: str = DEFAULT_PATH, timeout: float = 5.0) -> TLSExchange:
    with CertificateAuthority() as ca:
        server_ctx, client_ctx = ca.server_context(), ca.client_context()
    # The contexts hold the keys in memory: the directory is already gone when the request runs.
    return run(_client(server_ctx, client_ctx, path, timeout), recorded="tls-https", server=False, timeout=timeout,
               kind=TLSExchange)


def _refusal(case: str, timeout: float = 5.0) -> TLSExchange:
    with CertificateAuthority() as trusted, CertificateAuthority("an authority nobody trusts") as stranger:
        client_ctx = trusted.client_context()
        if case == "unknown CA":
            server_ctx = stranger.server_context()
        elif case == "wrong name":
            server_ctx = trusted.server_context(trusted.issue(names=("www.example.com",), addresses=()))
        else:
            server_ctx = trusted.server_context(trusted.issue(expired=True))
    return run(_client(server_ctx, client_ctx, "/", timeout), recorded=CASES[case], server=False, timeout=timeout,
               kind=TLSExchange)


def same_request(path: str = DEFAULT_PATH, timeout: float = 5.0) -> TLSComparison:
    """Send the same GET request for `path` to the lab's web server over HTTP and over HTTPS, capturing both.

    Where the lab is refused, the recorded captures (netlab/data/tls-http, tls-https) are shown,
    labelled as recorded. `timeout` is in seconds, for every connect and read.
    """
    if not isinstance(path, str) or not path.startswith("/"):
        raise ValueError(f"the path is the part of a URL after the host and starts with '/', not {path!r}")
    comparison = TLSComparison(_plain(path, timeout), _secure(path, timeout), path)
    for exchange in (comparison.http, comparison.https):
        asked = exchange.facts.get("request")
        if not exchange.live and asked != f"GET {path} HTTP/1.1":
            exchange.why += f" (The recording asked for {asked!r}.)"
    return comparison


def https_request(path: str = DEFAULT_PATH, timeout: float = 5.0) -> TLSExchange:
    """One GET request for `path` to the lab's web server over HTTPS, captured (the recording tls-https where the
    lab is refused, labelled as recorded). `timeout` is in seconds, for every connect and read."""
    if not isinstance(path, str) or not path.startswith("/"):
        raise ValueError(f"the path is the part of a URL after the host and starts with '/', not {path!r}")
    return _secure(path, timeout)


def wrong_certificate(case: str, timeout: float = 5.0) -> TLSExchange:
    """Connect a verifying client to a lab server whose certificate is wrong: 'unknown CA', 'wrong name' or 'expired'.

    The client refuses it: `TLSExchange.error` is the error it raised, and the capture shows the
    alert it sent. Recorded captures are shown where the lab is refused.
    """
    if case not in CASES:
        raise ValueError(f"no certificate case {case!r}; choose one of {', '.join(repr(c) for c in CASES)}")
    return _refusal(case, timeout)


# The captures shipped in netlab/data for the recorded fallback; `python -m netlab record`
# re-records them (netlab.recordings).
RECORDINGS: dict[str, Any] = {
    "tls-http": _plain,
    "tls-https": _secure,
    **{name: functools.partial(_refusal, case) for case, name in CASES.items()},
}
