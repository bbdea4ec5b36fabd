"""The lab's live behaviour, tested against the real kernel: handshakes captured complete every
time, a lab private to itself, the same live path for an ordinary user, one-sentence fallbacks
where namespaces are refused, and no hang and no leftover thread, descriptor or process when
something goes wrong.

These tests run live (Linux, root or not). Servers are synchronised by the kernel (a listening
socket accepts before anyone connects), never by a sleep; every wait is bounded and timed with
time.monotonic().
"""

from __future__ import annotations

import errno
import json
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest
from conftest import _children, _gone, _open_fds

import netlab
import netlab.core.experiment
from netlab import CaptureError, LabError, LabUnavailable
from netlab.core import programs
from netlab.core.conversation import CLIENT_TO_SERVER, SERVER_TO_CLIENT

pytestmark = [pytest.mark.lab, pytest.mark.skipif(sys.platform != "linux", reason="the lab is a Linux network namespace")]

MESSAGE = b"Hello, World!"  # what netlab.handshake() sends by default


# ---------------------------------------------------------------------------
# What "complete" means (what "nothing left behind" means is in conftest.py).


def _one_sentence(text: str) -> bool:
    """A message a student reads at once: one line, one sentence, ending with a full stop."""
    return "\n" not in text and text.endswith(".") and not re.search(r"[.!?]\s", text)


def assert_complete(conv, message: bytes = MESSAGE) -> None:
    """SYN, SYN-ACK, ACK, the data both ways, FIN from both sides, the client's final ACK last."""
    first = [(s.direction, s.flags) for s in conv.segments[:4]]
    assert first == [(CLIENT_TO_SERVER, "SYN"), (SERVER_TO_CLIENT, "SYN-ACK"),
                     (CLIENT_TO_SERVER, "ACK"), (CLIENT_TO_SERVER, "PSH-ACK")], conv.table()
    assert conv.data(CLIENT_TO_SERVER) == message and conv.data(SERVER_TO_CLIENT) == message, conv.table()
    assert not any(s.has("RST") for s in conv.segments), conv.table()
    assert conv.closed_first == "client", conv.table()
    teardown = conv.phase("teardown")
    assert (teardown[0].direction, teardown[0].flags) == (CLIENT_TO_SERVER, "FIN-ACK"), conv.table()
    server_fin = [s for s in teardown if s.direction == SERVER_TO_CLIENT and s.has("FIN")]
    assert len(server_fin) == 1, conv.table()
    last = conv.segments[-1]
    assert (last.direction, last.flags) == (CLIENT_TO_SERVER, "ACK"), conv.table()
    assert last.ack == server_fin[0].seq + 1, f"the final ACK does not acknowledge the server's FIN\n{conv.table()}"


# ---------------------------------------------------------------------------
# 1, 7, 8. Live handshakes: complete every time, the kernel's TIME-WAIT, nothing left behind.


def test_fifty_live_handshakes_in_a_row_are_complete_and_leave_nothing_behind(monkeypatch):
    netlab.handshake()  # warm up: the first run imports scapy's layers in this process
    helper_pids = []

    class RecordingLab(netlab.Lab):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            helper_pids.append(self.pid)

    monkeypatch.setattr(netlab.core.experiment, "Lab", RecordingLab)
    threads, fds = threading.active_count(), _open_fds()
    for run in range(50):
        exp = netlab.handshake()
        assert exp.source == "live" and exp.conversation.source == "live", exp.why
        assert_complete(exp.conversation)
        assert 0 < exp.capture_ready_seconds < 5, f"run {run}: ready after {exp.capture_ready_seconds} s"
    assert len(helper_pids) == 50 and len(set(helper_pids)) == 50, "one fresh lab per handshake"
    assert [pid for pid in helper_pids if not _gone(pid)] == [], "helper processes still running"
    assert _children() == []
    assert threading.active_count() == threads, f"threads left: {threading.enumerate()}"
    assert _open_fds() == fds


def test_time_wait_is_read_from_the_lab_kernel_on_the_client_side():
    exp = netlab.handshake()
    conv = exp.conversation
    assert exp.source == "live", exp.why
    # The side that closes first waits in TIME-WAIT; the server's socket is gone entirely.
    assert [(s.state, s.local, s.peer) for s in exp.kernel_states] == [("TIME-WAIT", conv.client, conv.server)]
    assert exp.result == MESSAGE


def test_refused_connection_is_a_syn_answered_by_a_reset(nothing_left_behind):
    exp = netlab.refused()
    assert exp.source == "live", exp.why
    assert isinstance(exp.result, ConnectionRefusedError)
    assert exp.conversation.refused
    assert exp.conversation.flags() == ["SYN", "RST-ACK"]


# ---------------------------------------------------------------------------
# 2. A lab is private.


def test_lab_has_its_own_network_namespace_with_only_loopback(nothing_left_behind):
    host = os.stat("/proc/self/ns/net").st_ino
    with netlab.Lab() as one, netlab.Lab() as two:
        assert len({host, one.netns, two.netns}) == 3
        links = one.run("ip", "-o", "link").splitlines()
        assert [line.split(":")[1].strip() for line in links] == ["lo"]


def test_server_in_a_lab_cannot_be_reached_from_the_host_or_another_lab(nothing_left_behind):
    # Hold the port on the host, bound but not listening: nothing on the host can accept there,
    # so a refusal below can only mean the lab's listener is out of reach.
    with socket.socket() as host_holder:
        host_holder.bind(("127.0.0.1", 0))
        port = host_holder.getsockname()[1]
        with netlab.Lab() as lab, netlab.Lab() as other:
            with lab.create_server(("127.0.0.1", port)) as server:
                with socket.socket() as from_host:
                    with pytest.raises(ConnectionRefusedError):
                        from_host.connect(("127.0.0.1", port))
                with pytest.raises(ConnectionRefusedError):
                    other.create_connection(("127.0.0.1", port), timeout=2)
                # ... while inside its own lab the server is right there.
                with lab.create_connection(("127.0.0.1", port), timeout=2):
                    server.settimeout(2)
                    conn, _ = server.accept()
                    conn.close()


def test_lab_has_no_route_to_any_real_network(nothing_left_behind):
    with netlab.Lab() as lab, lab.socket() as sock:
        sock.settimeout(2)
        with pytest.raises(OSError) as err:
            sock.connect(("192.0.2.1", 80))  # TEST-NET-1: documentation addresses
        assert err.value.errno == errno.ENETUNREACH


def test_two_labs_can_bind_the_same_port(nothing_left_behind):
    with netlab.Lab() as one, netlab.Lab() as two:
        with one.create_server() as first:
            address = first.getsockname()
            with two.create_server(address) as second:
                second.settimeout(2)
                first.settimeout(2)
                # A connection made in lab two reaches lab two's server; lab one's sees nothing.
                with two.create_connection(address, timeout=2) as client:
                    conn, peer = second.accept()
                    with conn:
                        assert peer == client.getsockname()
                first.settimeout(0)
                with pytest.raises(BlockingIOError):
                    first.accept()


def test_program_started_in_the_lab_sees_only_the_labs_network(nothing_left_behind):
    with netlab.Lab() as lab, lab.create_server() as server:
        host, port = server.getsockname()
        # A separate program (here Python itself) connects to the lab's server: it joined the lab.
        code = f"import socket; socket.create_connection(({host!r}, {port}), timeout=2).sendall(b'from outside')"
        with lab.popen([sys.executable, "-c", code]) as proc:
            server.settimeout(5)
            conn, _ = server.accept()
            with conn:
                conn.settimeout(5)
                assert netlab.recv_until_closed(conn) == b"from outside"
            assert proc.wait(timeout=5) == 0
        with lab.popen(["stat", "-L", "-c", "%i", "/proc/self/ns/net"], stdout=subprocess.PIPE, text=True) as proc:
            assert int(proc.communicate(timeout=5)[0]) == lab.netns


def test_programs_still_running_when_the_lab_closes_are_stopped(nothing_left_behind):
    with netlab.Lab() as lab:
        proc = lab.popen(["sleep", "60"])
    assert proc.poll() is not None


def test_socket_states_show_a_listening_server(nothing_left_behind):
    with netlab.Lab() as lab, lab.create_server() as server:
        states = lab.socket_states()
        assert [(s.state, s.local, s.peer) for s in states] == [("LISTEN", server.getsockname(), None)]


# ---------------------------------------------------------------------------
# 3. The same live path as an ordinary user; outside a lab that user cannot sniff.

ORDINARY_USER = "nobody"

SNIFF_LO = """
from scapy.sendrecv import sniff
try:
    sniff(iface="lo", count=1, timeout=0.5)
except PermissionError as err:
    print("PermissionError:", err)
else:
    print("sniffed")
"""

HANDSHAKE = """
import json, os, sys
import netlab
imported_matplotlib = "matplotlib" in sys.modules
exp = netlab.handshake()
print(json.dumps({"uid": os.geteuid(), "source": exp.source, "why": exp.why,
                  "flags": exp.conversation.flags(), "data": exp.conversation.data().decode(),
                  "imported_matplotlib": imported_matplotlib}))
"""

PEER_DROPS_A_SEGMENT = """
import json, os
import netlab
exp = netlab.peer.transfer(netlab.peer.Script(port=80).drop(3), data=30_000, recorded=None)
print(json.dumps({"uid": os.geteuid(), "source": exp.source, "sent": exp.result,
                  "received": len(exp.conversation.data()),
                  "retransmitted": [s.seq for s in exp.conversation.retransmissions()]}))
"""


def _can_run(user: str, python: str) -> bool:
    done = subprocess.run(["runuser", "-u", user, "--", python, "-c", "import sys; assert sys.version_info >= (3, 11)"],
                          capture_output=True, timeout=30)
    return done.returncode == 0


@pytest.fixture(scope="module")
def as_ordinary_user():
    """Return run(code) -> stdout: the code run by `nobody` with a copy of netlab and scapy.

    The venv's Python lives under /root (mode 700) on our machines, so `nobody` may not be able
    to run it; Debian's /usr/bin/python3 (3.11) then serves, with netlab and scapy (pure Python)
    copied where `nobody` can read them. Copies keep their mtimes, so the .pyc files stay valid.
    """
    if os.geteuid() != 0:
        pytest.skip("already an ordinary user: only root can switch to another (the in-process tests run as this one)")
    if programs.find("runuser") is None:  # in /usr/sbin, off an ordinary user's PATH
        pytest.skip("runuser is not installed, so the test cannot switch to an ordinary user")
    pwd.getpwnam(ORDINARY_USER)
    candidates = [os.path.realpath(sys.executable), "/usr/bin/python3"]
    python = next((p for p in candidates if os.path.exists(p) and _can_run(ORDINARY_USER, p)), None)
    if python is None:
        pytest.skip(f"user {ORDINARY_USER} can run no Python 3.11+ (tried {', '.join(candidates)})")
    import scapy

    root = Path(tempfile.mkdtemp(prefix="netlab-ordinary-user-"))
    try:
        root.chmod(0o755)
        shutil.copytree(Path(netlab.__file__).parent, root / "netlab")
        shutil.copytree(Path(scapy.__file__).parent, root / "scapy")
        home = root / "home"
        home.mkdir()
        shutil.chown(home, ORDINARY_USER)

        def run(code: str) -> str:
            env = ["env", "-i", "PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin", f"HOME={home}",
                   f"PYTHONPATH={root}", "PYTHONDONTWRITEBYTECODE=1"]
            done = subprocess.run(["runuser", "-u", ORDINARY_USER, "--", *env, python, "-c", code],
                                  cwd=root, capture_output=True, text=True, timeout=120)
            assert done.returncode == 0, done.stderr
            return done.stdout

        yield run
    finally:
        shutil.rmtree(root)


@pytest.mark.skipif(os.geteuid() != 0, reason="already an ordinary user: see the in-process tests")
def test_ordinary_user_cannot_sniff_loopback_outside_a_lab(as_ordinary_user):
    # The fact that motivates the lab: without privileges, capturing on the host fails.
    assert as_ordinary_user(SNIFF_LO).startswith("PermissionError")


@pytest.mark.skipif(os.geteuid() != 0, reason="already an ordinary user: see the in-process tests")
def test_ordinary_user_captures_a_complete_live_handshake_in_a_lab(as_ordinary_user):
    result = json.loads(as_ordinary_user(HANDSHAKE).splitlines()[-1])
    assert result["uid"] == pwd.getpwnam(ORDINARY_USER).pw_uid
    assert result["source"] == "live", result["why"]
    flags = result["flags"]
    assert flags[:4] == ["SYN", "SYN-ACK", "ACK", "PSH-ACK"] and flags[-1] == "ACK", flags
    assert flags.count("FIN-ACK") == 2
    assert result["data"] == MESSAGE.decode()
    assert not result["imported_matplotlib"], "importing netlab must not import matplotlib"


def test_ordinary_user_runs_the_scripted_peer_on_the_labs_veth_link(as_ordinary_user):
    # The peer is a separate program that joins the lab (Lab.popen, nsenter) and sends raw frames:
    # both must work without privileges on the host.
    result = json.loads(as_ordinary_user(PEER_DROPS_A_SEGMENT).splitlines()[-1])
    assert result["uid"] == pwd.getpwnam(ORDINARY_USER).pw_uid
    assert result["source"] == "live"
    assert result["sent"] == result["received"] == 30_000
    assert result["retransmitted"] == [2 * 1460 + 1], "the dropped third segment, sent again once"


@pytest.mark.skipif(os.geteuid() == 0, reason="root may sniff the host's loopback")
def test_as_an_ordinary_user_sniffing_loopback_is_refused_but_the_lab_works():
    from scapy.sendrecv import sniff

    with pytest.raises(PermissionError):
        sniff(iface="lo", count=1, timeout=0.5)
    exp = netlab.handshake()
    assert exp.source == "live", exp.why
    assert_complete(exp.conversation)


# ---------------------------------------------------------------------------
# 4. Recorded fallback, told in one sentence.


def test_netlab_recorded_forces_the_recorded_capture(monkeypatch):
    monkeypatch.setenv("NETLAB_RECORDED", "1")
    exp = netlab.handshake()
    assert exp.source == "recorded" and exp.conversation.source == "recorded"
    assert _one_sentence(exp.why) and "NETLAB_RECORDED" in exp.why, exp.why
    assert "recorded" in exp.conversation.table().splitlines()[0]
    assert_complete(exp.conversation)


def test_without_unshare_the_lab_is_unavailable_and_handshake_is_recorded(monkeypatch, tmp_path, nothing_left_behind):
    # No `unshare` anywhere netlab looks: PATH is an empty directory, and no system folders.
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(programs, "SYSTEM_DIRS", ())
    with pytest.raises(LabUnavailable) as err:
        netlab.Lab()
    assert _one_sentence(str(err.value)) and "unshare" in str(err.value), err.value
    exp = netlab.handshake()
    assert exp.source == "recorded" and exp.why == str(err.value)


def _fake_unshare(directory: Path, script: str) -> None:
    tool = directory / "unshare"
    tool.write_text("#!/bin/sh\n" + script + "\n")
    tool.chmod(0o755)


def test_refused_namespace_is_unavailable_not_an_error(monkeypatch, tmp_path, nothing_left_behind):
    _fake_unshare(tmp_path, "echo 'unshare: unshare failed: Operation not permitted' >&2\nexit 1")
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(LabUnavailable) as err:
        netlab.Lab()
    assert _one_sentence(str(err.value)) and "Operation not permitted" in str(err.value), err.value
    assert netlab.handshake().source == "recorded"


def test_lab_that_never_starts_fails_within_its_timeout(monkeypatch, tmp_path, nothing_left_behind):
    _fake_unshare(tmp_path, "exec sleep 30")
    monkeypatch.setenv("PATH", f"{tmp_path}:/usr/bin:/bin")
    start = time.monotonic()
    with pytest.raises(LabError, match="did not start within 0.5 s") as err:
        netlab.Lab(timeout=0.5)
    assert type(err.value) is LabError
    assert time.monotonic() - start < 2


# ---------------------------------------------------------------------------
# 5. Never a hang: every failure is an error within seconds, and close() always works.


def test_capture_filter_that_cannot_compile_fails_at_once(nothing_left_behind):
    with netlab.Lab() as lab:
        start = time.monotonic()
        with pytest.raises(CaptureError, match="cannot be used"):
            with lab.capture(filter="this is not bpf"):
                pass
        assert time.monotonic() - start < 3
        # The lab is still usable: a filter that compiles keeps only what it matches.
        with netlab.echo_server(lab) as server, lab.capture(filter="tcp") as cap:
            netlab.hello(server.address, lab=lab)
        assert cap.packets and all(pkt.haslayer("TCP") for pkt in cap.packets)


def test_capture_filter_without_libpcap_fails_at_once_naming_libpcap(monkeypatch, tmp_path, nothing_left_behind):
    # The helper process starts with this sitecustomize, which hides libpcap from ctypes.
    (tmp_path / "sitecustomize.py").write_text(
        "import ctypes.util\n"
        "_find = ctypes.util.find_library\n"
        "ctypes.util.find_library = lambda name: None if name == 'pcap' else _find(name)\n"
    )
    # In front of what is there: a run whose packages come by PYTHONPATH (tests/test_ordinary_user.py) keeps them.
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(tmp_path), *filter(None, [os.environ.get("PYTHONPATH")])]))
    with netlab.Lab() as lab:
        start = time.monotonic()
        with pytest.raises(CaptureError, match="libpcap"):
            with lab.capture(filter="tcp"):
                pass
        assert time.monotonic() - start < 3
        with lab.capture() as cap:  # no filter, no libpcap needed
            lab.run("true")
        assert cap.packets == []


def test_request_to_a_killed_lab_fails_fast_and_close_still_works(nothing_left_behind):
    lab = netlab.Lab()
    os.kill(lab.pid, signal.SIGKILL)
    start = time.monotonic()
    with pytest.raises(LabError, match=r"was killed \(signal 9\) during 'socket'"):
        lab.socket()
    assert time.monotonic() - start < 2
    lab.close()
    lab.close()
    assert _gone(lab.pid)
    with pytest.raises(LabError, match="closed"):
        lab.socket()


def test_no_program_joins_a_lab_whose_process_has_ended(nothing_left_behind):
    lab = netlab.Lab()
    os.kill(lab.pid, signal.SIGKILL)
    lab._proc.wait(timeout=5)  # it has ended: its pid is free for another process
    with pytest.raises(LabError, match="has ended"):
        lab.popen(["true"])
    lab.close()


def test_popen_leaves_the_callers_environment_as_it_was(nothing_left_behind):
    env = {"PATH": os.environ["PATH"]}
    with netlab.Lab() as lab:
        for _ in range(2):
            with lab.popen(["true"], env=env) as proc:
                assert proc.wait(timeout=5) == 0
    assert env == {"PATH": os.environ["PATH"]}


def test_lab_killed_during_a_capture_raises_at_the_end_of_the_block(nothing_left_behind):
    with netlab.Lab() as lab:
        start = time.monotonic()
        with pytest.raises(LabError):
            with lab.capture():
                os.kill(lab.pid, signal.SIGKILL)
        assert time.monotonic() - start < 2


def test_request_the_lab_does_not_answer_times_out_and_stops_the_lab(nothing_left_behind):
    lab = netlab.Lab()
    os.kill(lab.pid, signal.SIGSTOP)  # a helper that hangs
    start = time.monotonic()
    with pytest.raises(LabError, match="did not answer 'socket' within 0.5 s"):
        lab.request("socket", socket.AF_INET, socket.SOCK_STREAM, 0, timeout=0.5)
    assert time.monotonic() - start < 2
    assert _gone(lab.pid)
    lab.close()


def test_command_that_runs_too_long_in_the_lab_times_out_and_the_lab_goes_on(nothing_left_behind):
    with netlab.Lab() as lab:
        start = time.monotonic()
        with pytest.raises(LabError, match="sleep 10 did not finish within 0.3 s in the lab"):
            lab.run("sleep", "10", timeout=0.3)
        assert time.monotonic() - start < 2
        assert lab.run("echo", "still here") == "still here\n"


def test_client_that_raises_in_run_leaves_nothing_behind(nothing_left_behind):
    def broken_client(lab, address):
        with lab.create_connection(address) as sock:
            sock.sendall(b"half a message")
            raise ValueError("the student's bug")

    start = time.monotonic()
    with pytest.raises(ValueError, match="the student's bug"):
        netlab.run(broken_client, recorded="handshake")
    assert time.monotonic() - start < 10


# ---------------------------------------------------------------------------
# 6. The student's own code runs in the lab, TCP and UDP.


def test_students_own_socket_code_is_captured_with_both_messages(nothing_left_behind):
    with netlab.Lab() as lab, netlab.echo_server(lab) as server, lab.capture() as cap:
        with lab.create_connection(server.address) as sock:
            for message in (b"first message;", b"second message"):
                sock.sendall(message)
                assert netlab.recv_exactly(sock, len(message)) == message
    conv = cap.conversation()
    assert conv.data(CLIENT_TO_SERVER) == b"first message;second message"
    assert conv.data(SERVER_TO_CLIENT) == b"first message;second message"
    assert conv.flags()[:3] == ["SYN", "SYN-ACK", "ACK"]
    assert 0 < cap.ready_seconds < 5


def test_udp_in_the_lab_is_captured_without_any_handshake(nothing_left_behind):
    from scapy.layers.inet import TCP, UDP

    with netlab.Lab() as lab, lab.capture() as cap:
        with lab.socket(socket.AF_INET, socket.SOCK_DGRAM) as server, \
                lab.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
            server.bind(("127.0.0.1", 0))
            server.settimeout(2)
            client.settimeout(2)
            client.sendto(b"ping", server.getsockname())
            data, peer = server.recvfrom(100)
            server.sendto(b"pong", peer)
            assert (data, client.recv(100)) == (b"ping", b"pong")
    assert [bytes(pkt[UDP].payload) for pkt in cap.packets] == [b"ping", b"pong"]  # end marker removed
    assert not any(TCP in pkt for pkt in cap.packets)
    with pytest.raises(netlab.ConversationError, match="no TCP segments"):
        cap.conversation()


def test_capture_on_a_veth_link_sees_each_frame_once_and_stops_cleanly(nothing_left_behind):
    from scapy.layers.inet import UDP

    with netlab.Lab() as lab:
        netlab.peer.add_link(lab)  # lab0 (10.0.0.1) ⇄ peer0; nothing answers at 10.0.0.2
        with lab.capture(iface="lab0", timeout=3) as cap, lab.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            for n in range(3):
                sock.sendto(b"datagram %d" % n, (netlab.peer.PEER_ADDRESS, 9))
    assert [bytes(pkt[UDP].payload) for pkt in cap.packets] == [b"datagram 0", b"datagram 1", b"datagram 2"]


def test_capture_on_an_interface_the_lab_lacks_fails_at_once_naming_it(nothing_left_behind):
    with netlab.Lab() as lab:
        started = time.monotonic()
        with pytest.raises(CaptureError, match="eth7"):
            with lab.capture(iface="eth7", timeout=3):
                pass
        assert time.monotonic() - started < 2


def test_interrupted_request_stops_the_lab_instead_of_leaving_it_out_of_step(nothing_left_behind, interrupt_in):
    # Jupyter's stop button raises KeyboardInterrupt wherever the kernel is: here, while the
    # notebook waits for the lab's answer. The late answer must never pass for the next one's.
    with netlab.Lab() as lab:
        interrupt_in(0.2)
        with pytest.raises(KeyboardInterrupt):
            lab.run("sleep", "1")
        assert _gone(lab.pid)
        with pytest.raises(LabError, match="closed"):
            lab.run("echo", "late")


def test_interrupt_inside_a_capture_block_surfaces_as_itself(nothing_left_behind, interrupt_in):
    with netlab.Lab() as lab:
        with pytest.raises(KeyboardInterrupt):
            with lab.capture():
                interrupt_in(0.2)
                lab.run("sleep", "1")  # interrupted while waiting for the lab
        assert _gone(lab.pid)
