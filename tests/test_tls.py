"""TLS in the lab: certificates made at run time verify for their names only, their keys never
outlive the `with` block, HTTPS hides the request that HTTP shows, each wrong certificate is
refused with its own error and alert, and the records are named as scapy (and tshark) name them.

Certificate tests run the TLS handshake in memory (ssl.MemoryBIO): the real OpenSSL handshake,
with no socket and no thread. The experiments run live in the lab, or recorded where told.
"""

from __future__ import annotations

import datetime
import shutil
import ssl
import stat
import subprocess
import sys

import pytest

import netlab
from netlab.core.conversation import CLIENT_TO_SERVER, SERVER_TO_CLIENT
from netlab.lessons.tls.experiments import TLS13_OVERHEAD, CertificateAuthority

linux_only = pytest.mark.skipif(sys.platform != "linux", reason="the lab is a Linux network namespace")


def _handshake(server_ctx: ssl.SSLContext, client_ctx: ssl.SSLContext, server_hostname: str) -> ssl.SSLObject:
    """Run a TLS handshake between the two contexts in memory; return the client's side, or raise its error."""
    client_in, client_out, server_in, server_out = (ssl.MemoryBIO() for _ in range(4))
    client = client_ctx.wrap_bio(client_in, client_out, server_hostname=server_hostname)
    server = server_ctx.wrap_bio(server_in, server_out, server_side=True)
    for _ in range(10):  # a TLS 1.3 handshake takes two flights each way
        finished = 0
        for side in (client, server):
            try:
                side.do_handshake()
                finished += 1
            except ssl.SSLWantReadError:
                pass
        server_in.write(client_out.read())
        client_in.write(server_out.read())
        if finished == 2:
            return client
    raise AssertionError("the in-memory handshake did not finish in 10 rounds")


@pytest.fixture(scope="module")
def authority():
    with CertificateAuthority() as ca:
        yield ca


# ---------------------------------------------------------------------------
# Certificates made at run time.


@pytest.mark.parametrize("name", ["localhost", "127.0.0.1"])
def test_certificate_verifies_for_its_names(authority, name):
    client = _handshake(authority.server_context(), authority.client_context(), name)
    assert client.version() == "TLSv1.3"
    assert ("DNS", "localhost") in client.getpeercert()["subjectAltName"]


@pytest.mark.parametrize("name, reason", [("www.example.com", "Hostname mismatch"),
                                          ("127.0.0.2", "IP address mismatch")])
def test_certificate_does_not_verify_for_other_names(authority, name, reason):
    with pytest.raises(ssl.SSLCertVerificationError, match=reason):
        _handshake(authority.server_context(), authority.client_context(), name)


def test_certificate_is_signed_by_the_run_time_authority_and_short_lived(authority):
    cert = authority.issue().certificate
    cert.verify_directly_issued_by(authority.certificate)  # raises if the signature is not the CA's
    left = cert.not_valid_after_utc - datetime.datetime.now(datetime.UTC)
    assert datetime.timedelta(minutes=55) < left <= datetime.timedelta(hours=1)


def test_client_trusts_only_its_own_authority(authority):
    client_ctx = authority.client_context()
    assert len(client_ctx.get_ca_certs()) == 1 and client_ctx.check_hostname
    with CertificateAuthority("another authority") as other:
        with pytest.raises(ssl.SSLCertVerificationError, match="unable to get local issuer certificate"):
            _handshake(other.server_context(), client_ctx, "localhost")


def test_expired_certificate_is_refused(authority):
    expired = authority.issue(expired=True)
    assert expired.certificate.not_valid_after_utc < datetime.datetime.now(datetime.UTC)
    with pytest.raises(ssl.SSLCertVerificationError, match="certificate has expired"):
        _handshake(authority.server_context(expired), authority.client_context(), "localhost")


def test_private_keys_exist_only_inside_the_block_and_only_for_their_owner():
    with CertificateAuthority() as ca:
        cert = ca.issue()
        directory = ca.directory
        assert stat.S_IMODE(cert.key_file.stat().st_mode) == 0o600
        assert cert.key_file.parent == directory
    assert not directory.exists()
    with pytest.raises(netlab.NetlabError, match="closed"):
        ca.issue()


def test_temporary_directory_is_removed_when_the_block_fails():
    with pytest.raises(ZeroDivisionError):
        with CertificateAuthority() as ca:
            ca.issue()
            directory = ca.directory
            raise ZeroDivisionError
    assert not directory.exists()


def test_contexts_keep_working_after_the_keys_are_gone():
    with CertificateAuthority() as ca:
        server_ctx, client_ctx = ca.server_context(), ca.client_context()
    assert _handshake(server_ctx, client_ctx, "localhost").version() == "TLSv1.3"


@pytest.mark.parametrize("call, message", [
    (lambda ca: ca.issue(names="localhost"), "tuples"),
    (lambda ca: ca.issue(names=(), addresses=()), "at least one name"),
    (lambda ca: ca.issue(addresses=("not-an-address",)), "not an IP address"),
    (lambda ca: ca.issue(valid_for=0), "positive"),
])
def test_bad_certificate_requests_raise_an_argument_error_naming_the_problem(authority, call, message):
    with pytest.raises((TypeError, ValueError), match=message):
        call(authority)


def test_bad_experiment_arguments_raise_an_argument_error_naming_the_problem():
    with pytest.raises(ValueError, match="starts with '/'"):
        netlab.tls.same_request("large")
    with pytest.raises(ValueError, match="'unknown CA', 'wrong name', 'expired'"):
        netlab.tls.wrong_certificate("self-signed")


# ---------------------------------------------------------------------------
# Live in the lab: the same request over HTTP and HTTPS.


@pytest.fixture(scope="module")
def comparison():
    return netlab.tls.same_request()


@pytest.mark.lab
@linux_only
def test_https_exchange_in_the_lab_hides_the_request_http_shows(comparison):
    http, https = comparison.http, comparison.https
    assert http.live and https.live, https.why
    assert http.facts["status"] == https.facts["status"] == 200
    assert http.facts["body_length"] == https.facts["body_length"] == 3000
    request_line = b"GET /large?bytes=3000 HTTP/1.1"
    assert http.conversation.data(CLIENT_TO_SERVER).startswith(request_line)
    assert not https.shows(b"/large") and not https.shows(b"HTTP/1.1")
    assert http.shows(b"of netlab's large body") and not https.shows(b"of netlab's large body")
    assert https.certificate_der and not https.shows(https.certificate_der)


@pytest.mark.lab
@linux_only
def test_same_request_leaves_no_thread_socket_or_process_behind(nothing_left_behind):
    again = netlab.tls.same_request("/")
    assert again.https.live and again.https.facts["status"] == 200, again.https.why


@linux_only
def test_dissection_names_the_handshake_messages(comparison):
    https = comparison.https
    records = https.records()
    assert [(r.direction, r.type, r.messages) for r in records[:2]] == [
        (CLIENT_TO_SERVER, "handshake", ("client_hello",)), (SERVER_TO_CLIENT, "handshake", ("server_hello",))]
    assert {r.direction for r in records if r.type == "change_cipher_spec"} == {CLIENT_TO_SERVER, SERVER_TO_CLIENT}
    assert all(r.encrypted for r in records[2:] if r.type != "change_cipher_spec")
    assert (https.sni, https.alpn, https.version) == ("localhost", ["http/1.1"], "TLS 1.3")
    assert https.cipher_suite == https.facts["cipher"]  # scapy's reading of the capture == what ssl negotiated
    assert "TLS 1.3" in https.offered_versions


@linux_only
def test_records_cover_each_direction_exactly(comparison):
    https = comparison.https
    for direction in (CLIENT_TO_SERVER, SERVER_TO_CLIENT):
        sizes = [5 + r.length for r in https.records() if r.direction == direction]
        assert sum(sizes) == len(https.conversation.data(direction))
    assert comparison.http.records() == []  # a plain HTTP stream holds no TLS record


@linux_only
def test_response_size_shows_through_the_encryption(comparison):
    last = [r for r in comparison.https.records() if r.direction == SERVER_TO_CLIENT][-1]
    assert last.length - TLS13_OVERHEAD == len(comparison.http.conversation.data(SERVER_TO_CLIENT))
    assert (comparison.http.round_trips, comparison.https.round_trips) == (1, 2)


@pytest.mark.slow
@linux_only
@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark is not installed")
def test_tshark_reads_the_same_records(comparison, tmp_path):
    https = comparison.https
    path = https.save(tmp_path / "https.pcap")
    port = https.conversation.server[1]
    out = subprocess.run(["tshark", "-r", str(path), "-d", f"tcp.port=={port},tls", "-T", "fields",
                          "-e", "tls.record.length", "-e", "tls.handshake.type"],
                         capture_output=True, text=True, timeout=60, check=True).stdout
    rows = [line.split("\t") for line in out.splitlines()]
    # Record lengths in wire order (TLS 1.3 hides the encrypted records' real types from tshark too).
    lengths = [int(n) for row in rows for n in row[0].split(",") if n]
    assert lengths == [r.length for r in https.records()]
    handshakes = [t for row in rows for t in row[1].split(",") if t]
    assert handshakes == ["1", "2"]  # ClientHello, ServerHello: all tshark can read without the keys


# ---------------------------------------------------------------------------
# Wrong certificates: the error a user sees, and the alert on the wire.


@pytest.mark.lab
@linux_only
@pytest.mark.parametrize("case, reason, alert", [
    ("unknown CA", "unable to get local issuer certificate", "unknown_ca"),
    ("wrong name", "Hostname mismatch, certificate is not valid for 'localhost'", "bad_certificate"),
    ("expired", "certificate has expired", "certificate_expired"),
])
def test_each_wrong_certificate_is_refused_with_its_error_and_alert(case, reason, alert, nothing_left_behind):
    refusal = netlab.tls.wrong_certificate(case)
    assert refusal.live, refusal.why
    assert refusal.error.startswith("SSLCertVerificationError: [SSL: CERTIFICATE_VERIFY_FAILED]")
    assert reason in refusal.error and refusal.facts["verify_message"].startswith(reason[:20])
    last = refusal.records()[-1]
    assert (last.direction, last.type, last.messages) == (CLIENT_TO_SERVER, "alert", (f"alert: fatal {alert}",))
    # The server learns the reason only from that alert, and its own error names it.
    assert alert.replace("_", " ") in " ".join(refusal.facts["server_errors"]).lower()
    # The client refused during the handshake: it never sent a request (no encrypted record).
    assert not any(r.encrypted for r in refusal.records() if r.direction == CLIENT_TO_SERVER)


# ---------------------------------------------------------------------------
# Recorded, where the lab is refused.


def test_recorded_fallback_is_labelled_and_reads_the_same(monkeypatch):
    monkeypatch.setenv("NETLAB_RECORDED", "1")
    comparison = netlab.tls.same_request()
    assert comparison.http.source == comparison.https.source == "recorded"
    assert "NETLAB_RECORDED" in comparison.https.why
    assert comparison.https.facts["status"] == 200 and comparison.https.sni == "localhost"
    assert [r.messages for r in comparison.https.records()[:2]] == [("client_hello",), ("server_hello",)]
    refusal = netlab.tls.wrong_certificate("expired")
    assert refusal.source == "recorded" and "certificate has expired" in refusal.error
    other = netlab.tls.same_request("/")
    assert "The recording asked for 'GET /large?bytes=3000 HTTP/1.1'" in other.https.why


def test_an_exchange_is_an_experiment_with_the_clients_facts_as_its_result(monkeypatch):
    monkeypatch.setenv("NETLAB_RECORDED", "1")
    comparison = netlab.tls.same_request()
    refusal = netlab.tls.wrong_certificate("wrong name")
    for exchange, scheme in ((comparison.http, "http"), (comparison.https, "https"), (refusal, "https")):
        assert isinstance(exchange, netlab.Experiment) and exchange.scheme == scheme
        assert exchange.facts is exchange.result  # one object: the client's report is the experiment's result
        assert exchange.conversation.isn["client"] == exchange.conversations[0].isn["client"]
        assert str(exchange) == exchange.conversation.table()
    assert not hasattr(comparison.https, "experiment")  # no wrapped second result to keep in step


def test_an_exchange_whose_client_raised_keeps_the_error_as_its_facts():
    from netlab.lessons.tls.experiments import TLSExchange

    exchange = TLSExchange([], "live", "live: …", result=ConnectionResetError(104, "Connection reset by peer"))
    assert exchange.facts == {"error": "ConnectionResetError(104, 'Connection reset by peer')"}
    assert exchange.error.startswith("ConnectionResetError") and isinstance(exchange.result, ConnectionResetError)


@pytest.mark.parametrize("name", sorted(netlab.tls.RECORDINGS))
def test_recordings_ship_with_the_package(name):
    from netlab.core.pcapfiles import DATA

    assert (DATA / f"{name}.pcap").is_file() and (DATA / f"{name}.json").is_file()


# ---------------------------------------------------------------------------
# The exercise checks: right answers pass, wrong ones say what to look at.


@pytest.fixture(scope="module")
def recorded(request):
    mp = pytest.MonkeyPatch()
    mp.setenv("NETLAB_RECORDED", "1")
    try:
        yield netlab.tls.same_request(), netlab.tls.wrong_certificate("unknown CA")
    finally:
        mp.undo()


def test_certificate_verify_signature_needs_the_private_key_behind_the_certificate():
    import hashlib

    with CertificateAuthority() as ca:
        cert, other = ca.issue(), ca.issue()
        transcript = hashlib.sha384(b"this handshake").digest()
        real = netlab.tls.sign_handshake(cert.key_file, transcript)
        assert len(real) == 64  # Ed25519
        assert netlab.tls.signature_valid(cert, real, transcript)
        # An impostor with a copy of the certificate but its own key, or another server's key, fails.
        assert not netlab.tls.signature_valid(cert, netlab.tls.sign_handshake(None, transcript), transcript)
        assert not netlab.tls.signature_valid(cert, netlab.tls.sign_handshake(other.key_file, transcript), transcript)
        # A signature is bound to its handshake: replayed in another one, it fails.
        assert not netlab.tls.signature_valid(cert, real, hashlib.sha384(b"another handshake").digest())
        with pytest.raises(TypeError, match="transcript_hash is bytes"):
            netlab.tls.sign_handshake(cert.key_file, "not bytes")


def test_certificate_verify_signs_the_context_rfc_8446_gives():
    # RFC 8446, 4.4.3: 64 bytes of 0x20, the context string, a zero byte, then the transcript hash.
    assert netlab.tls.CERTIFICATE_VERIFY_PREFIX == bytes([0x20] * 64) + b"TLS 1.3, server CertificateVerify\x00"


def test_the_recorded_certificate_verify_record_has_the_size_of_an_ed25519_signature(recorded):
    comparison, _ = recorded
    flight = [r for r in comparison.https.records() if r.direction == SERVER_TO_CLIENT and r.encrypted][:4]
    assert flight[2].length == 4 + 2 + 2 + 64 + TLS13_OVERHEAD
