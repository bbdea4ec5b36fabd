"""Notebook 10 · Below TCP: a router in the lab — ARP, TTL, ICMP, traceroute, path MTU, names, IPv6.

Every experiment runs on the core's `Topology` (client — router — server, netlab.core.topology)
and returns a `PathExperiment`: the frames captured on the links it watched, each labelled with
the interface it was seen on, and a `result` dict of what the program saw. The notebook keeps
one live path for all its cells (`LabPath`, about 1 s to build, where a fresh one per cell would
cost that every time); each experiment first puts back what it depends on (empty neighbour
caches, no learned path MTU), so it shows the same thing whichever cell ran before. Called
without a path, an experiment builds its own, or loads its recording where the lab is refused.

The DNS server uses **dnslib** (a small, well-kept library that encodes and decodes DNS
messages): the lesson is where the question goes and what comes back before `connect()`, and
scapy dissects the same bytes in the capture, so a hand-written encoder would only add code to
trust. The resolver is the C library's own `getaddrinfo`, run by a program in the lab that first
makes a mount namespace of its own and binds the lab's resolv.conf, hosts and nsswitch.conf over
/etc's: the host's resolver settings are never read. It makes them with the system calls
themselves (not util-linux's `unshare` and `mount`, whose calls differ between versions), so the
seccomp profile in deploy/ names exactly these calls, and a refusal comes back as its errno.
"""

from __future__ import annotations

import select
import socket
import struct
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from netlab.core.arguments import check_int, check_seconds
from netlab.core.experiment import load_recorded
from netlab.core.programs import ProgramMissing, program
from netlab.core.routed import ICMP_NAMES, RoutedExperiment, RoutedLab, frame_line, lab_getaddrinfo, routed_experiment, run_routed
from netlab.core.sockets import SO_TIMESTAMPNS, kernel_time, tcp_info
from netlab.core.topology import INTERFACES, PATH, Topology

__all__ = [
    "LabPath", "PathExperiment", "Hop", "IcmpError", "traceroute", "probe", "icmp_error",
    "first_datagram", "unreachable", "trace",
    "path_mtu", "resolve", "ipv6_handshake", "frame_line", "hops_of", "tracepath", "NAMES", "RECORDINGS",
    "CLIENT", "ROUTER", "SERVER", "NOWHERE", "NAME", "BLOCK_FRAG_NEEDED",
]

CLIENT, ROUTER, SERVER = "10.1.0.2", "10.1.0.1", "10.2.0.2"  # the client's router is 10.1.0.1 (r0); r1 is 10.2.0.1
ROUTER_FAR = "10.2.0.1"
NOWHERE = "10.99.0.1"  # an address no namespace has and no route leads to
NAME = "server.netlab.test"  # .test: reserved for testing (RFC 6761), never a real name
DNS_PORT, WEB_PORT, DATAGRAM_PORT = 53, 80, 9
TRACE_PORT = 33434  # traceroute's first port: nothing listens there, so the last hop answers "port unreachable"
_TIMEOUT = 3.0  # seconds: no experiment waits longer for one answer

# nftables rules for the black hole: the client's kernel never sees the router's "fragmentation needed".
BLOCK_FRAG_NEEDED = """table inet netlab_blackhole {
    chain input {
        type filter hook input priority 0;
        icmp type destination-unreachable icmp code frag-needed drop
    }
}"""

# Linux's IP_RECVERR (include/uapi/linux/in.h) and struct sock_extended_err (linux/errqueue.h).
_IP_RECVERR = getattr(socket, "IP_RECVERR", 11)
_MSG_ERRQUEUE = getattr(socket, "MSG_ERRQUEUE", 0x2000)
_SO_EE_ORIGIN_ICMP = 2
_EXTENDED_ERR = struct.Struct("=IBBBBII")  # errno, origin, ICMP type, ICMP code, pad, info, data
_ICMP_NAMES = ICMP_NAMES


class PathExperiment(RoutedExperiment):
    """An experiment on the routed path: `packets` carry `sniffed_on` (c0, r0, r1 or s0), `result` is a dict."""


# ---------------------------------------------------------------------------
# One path for the notebook's cells.


class LabPath(RoutedLab):
    """The lesson's path, kept for many cells: a live topology, or (where the lab is refused) the recordings.

        path = LabPath()       # about 1 s; path.why says which
        first_datagram(path)   # live on this path, or its recording
        path.close()

    Use it as a context manager, or close it in the notebook's last cell. A kernel that ends
    closes it anyway: the lab's programs end when their sockets to this process close.
    """

    def __init__(self, *, mtu: dict[str, int] | None = None) -> None:
        super().__init__(PATH, mtu=mtu,
                         why="live: a client, a router and a server in private network namespaces that netlab created")


def _run(path: LabPath | None, live: Callable[[Topology], PathExperiment], recorded: str,
         mtu: dict[str, int] | None = None) -> PathExperiment:
    """Run `live` on the path given, or on a fresh one, or load recording `recorded` where the lab is refused."""
    return run_routed(path, live, recorded, plan=PATH, kind=PathExperiment, mtu=mtu)


def _forget(net: Topology) -> None:
    """Put the path back as it was built: empty neighbour caches, no learned path MTU, the client's routes."""
    for host in ("client", "router", "server"):
        net.run(host, "ip", "neigh", "flush", "all", check=False)
        net.run(host, "ip", "route", "flush", "cache", check=False)
        net.run(host, "ip", "-6", "route", "flush", "cache", check=False)


def _experiment(cap: Any, result: dict[str, Any]) -> PathExperiment:
    return routed_experiment(cap, result, kind=PathExperiment)


class _Sink:
    """A server on the server's host for the length of an experiment: UDP or TCP, reading until told to stop."""

    def __init__(self, net: Topology, kind: int, address: tuple[str, int], family: int = socket.AF_INET) -> None:
        self.sock = net.server.socket(family, kind)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(address)
        self.received: list[bytes] = []
        self.arrived = threading.Event()
        if kind == socket.SOCK_STREAM:
            self.sock.listen(4)
        self.sock.settimeout(0.2)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, args=(kind,), daemon=True)
        self._thread.start()

    def _serve(self, kind: int) -> None:
        while not self._stop.is_set():
            try:
                if kind == socket.SOCK_DGRAM:
                    data, _ = self.sock.recvfrom(65535)
                    self.received.append(data)
                    self.arrived.set()
                    continue
                conn, _ = self.sock.accept()
            except (TimeoutError, OSError):
                continue
            with conn:
                conn.settimeout(0.2)
                while not self._stop.is_set():
                    try:
                        data = conn.recv(65536)
                    except TimeoutError:
                        continue
                    except OSError:
                        break
                    if not data:
                        break
                    self.received.append(data)
                    self.arrived.set()

    @property
    def bytes(self) -> int:
        return sum(len(d) for d in self.received)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2.0)
        self.sock.close()

    def __enter__(self) -> _Sink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# ---------------------------------------------------------------------------
# ARP, TTL and a datagram routed with no set-up.


def first_datagram(path: LabPath | None = None, *, ttl: int = 64) -> PathExperiment:
    """One UDP datagram from the client to the server, watched on both links (c0 and r1), neighbour caches empty.

    `result`: whether it arrived, the TTL it was sent with, and each host's neighbour table after it.
    """
    check_int("ttl", ttl, 1, 255)

    def live(net: Topology) -> PathExperiment:
        _forget(net)
        with _Sink(net, socket.SOCK_DGRAM, (SERVER, DATAGRAM_PORT)) as sink, net.capture("c0", "r1") as cap:
            with net.client.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
                sock.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, ttl)
                sock.sendto(b"one datagram, no connection", (SERVER, DATAGRAM_PORT))
                arrived = sink.arrived.wait(_TIMEOUT) if ttl > 1 else False
                if ttl == 1:
                    time.sleep(0.05)  # the router's Time Exceeded: a round trip on the first link
        neighbours = {h: net.neighbours(h) for h in ("client", "router", "server")}
        return _experiment(cap, {"arrived": arrived, "ttl": ttl, "neighbours": neighbours})

    recorded = f"below-datagram-ttl{ttl}" if ttl in (1, 2) else "below-datagram"
    if path is not None and path.net is None and recorded == "below-datagram" and ttl != 64:
        # A recording has the TTL it was made with: say so, rather than let a drawn TTL seem honoured.
        return load_recorded(recorded, why=f"{path.why} (the recording was sent with TTL 64, not {ttl})",
                             kind=PathExperiment)
    return _run(path, live, recorded)


# ---------------------------------------------------------------------------
# A missing route.


def unreachable(path: LabPath | None = None) -> PathExperiment:
    """Two missing routes: the client's own (no default route: `connect` fails at once) and the router's (ICMP back).

    `result["local"]` is the error the client's kernel raised without sending anything;
    `result["from_router"]` is what the client's socket learned from the router's ICMP.
    """

    def live(net: Topology) -> PathExperiment:
        _forget(net)
        net.client.run("ip", "route", "del", "default")
        try:
            with net.client.socket() as sock:
                sock.settimeout(_TIMEOUT)
                try:
                    sock.connect((SERVER, WEB_PORT))
                    local: Any = "connected"
                except OSError as err:
                    local = err
        finally:
            net.client.run("ip", "route", "add", "default", "via", ROUTER)
        with net.capture("c0") as cap, net.client.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.setsockopt(socket.IPPROTO_IP, _IP_RECVERR, 1)
            # Linux's router rate-limits these errors per sender with a token bucket (ip_error: one a
            # second, bursts of up to five, full for a sender it has not answered yet), so the first
            # datagram is answered; a second leaves only if no answer came within a second.
            for sent in (1, 2):
                sock.sendto(b"to an address no route leads to", (NOWHERE, DATAGRAM_PORT))
                error = icmp_error(sock, 1.1 if sent == 1 else _TIMEOUT)
                if error is not None:
                    break
        return _experiment(cap, {"local": repr(local), "local_errno": getattr(local, "errno", None),
                                 "from_router": error.reply if error else None,
                                 "from_address": error.address if error else None, "datagrams": sent})

    return _run(path, live, "below-unreachable")


# ---------------------------------------------------------------------------
# traceroute: one implementation, for the notebook and `python -m netlab traceroute`.


@dataclass(frozen=True)
class Hop:
    """One traceroute probe's answer: the TTL it was sent with, who answered (None: nobody), the round trip (s)."""

    ttl: int
    address: str | None
    rtt: float | None  # seconds, from the send to the kernel's receipt of the ICMP error
    reply: str  # "time exceeded", "port unreachable", ... or "no answer"

    def line(self, names: dict[str, str] | None = None) -> str:
        """The hop as traceroute prints it: TTL, address, name, round trip in ms, what answered."""
        if self.address is None:
            return f"{self.ttl:2d}  *"
        name = (names or {}).get(self.address, "")
        return f"{self.ttl:2d}  {self.address:<10} {name:<7} {self.rtt * 1000:7.3f} ms  ICMP {self.reply}"


def probe(sock: socket.socket, destination: str, ttl: int, *, port: int = TRACE_PORT, timeout: float = 1.0) -> Hop:
    """Send one UDP probe with IP TTL `ttl` from `sock` (a UDP socket) and wait (up to `timeout` s) for the ICMP error.

    No raw socket is needed: with IP_RECVERR the kernel queues the ICMP error on the socket
    whose datagram caused it, with the address of who sent it (tracepath works this way too).
    """
    sock.setsockopt(socket.IPPROTO_IP, _IP_RECVERR, 1)
    sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    sock.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, ttl)
    sent = time.time()
    sock.sendto(b"netlab traceroute probe", (destination, port + ttl))  # the port says which probe an answer is for
    error = icmp_error(sock, timeout, sent)
    return Hop(ttl, None, None, "no answer") if error is None else Hop(ttl, error.address, error.rtt, error.reply)


@dataclass(frozen=True)
class IcmpError:
    """An ICMP error the kernel queued on a socket: who sent it, what it said, and the round trip (s) since the send."""

    address: str
    reply: str  # "time exceeded", "port unreachable", "network unreachable", ...
    rtt: float


def icmp_error(sock: socket.socket, timeout: float, sent: float | None = None) -> IcmpError | None:
    """Wait up to `timeout` s for an ICMP error on `sock`'s error queue (IP_RECVERR); None if none came.

    The kernel wakes `poll` with POLLERR; `recvmsg(..., MSG_ERRQUEUE)` then returns the error as
    ancillary data: a struct sock_extended_err (the ICMP type and code) followed by the address
    of the host that sent it, and the time the ICMP arrived (SO_TIMESTAMPNS). `sent` (Unix
    seconds) gives the round trip.
    """
    poller = select.poll()
    poller.register(sock, select.POLLERR)
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0 or not poller.poll(left * 1000):
            return None
        try:
            _, ancillary, _, _ = sock.recvmsg(512, socket.CMSG_SPACE(512) * 2, _MSG_ERRQUEUE)
        except BlockingIOError:
            continue
        stamp = kernel_time(ancillary)
        found = None
        for level, kind, data in ancillary:
            if level == socket.IPPROTO_IP and kind == _IP_RECVERR and len(data) >= _EXTENDED_ERR.size + 8:
                _errno, origin, icmp_type, icmp_code, _pad, _info, _data = _EXTENDED_ERR.unpack_from(data)
                if origin == _SO_EE_ORIGIN_ICMP:
                    # After the struct: the address of the host that sent the ICMP error (a sockaddr_in).
                    address = socket.inet_ntoa(data[_EXTENDED_ERR.size + 4:_EXTENDED_ERR.size + 8])
                    found = (address, _ICMP_NAMES.get((icmp_type, icmp_code), f"type {icmp_type} code {icmp_code}"))
        if found is not None:
            return IcmpError(found[0], found[1], max(0.0, stamp - sent) if sent is not None else 0.0)


def traceroute(new_socket: Callable[[], socket.socket], destination: str, *, max_hops: int = 8,
               timeout: float = 1.0) -> list[Hop]:
    """Probe `destination` with TTL 1, 2, 3, ... until it answers "port unreachable" (or `max_hops`).

    `new_socket()` returns a fresh UDP socket (in the lab: `path.net.client.socket(AF_INET, SOCK_DGRAM)`);
    each probe has its own, so a late answer to one probe is never taken for the next one's.
    """
    check_int("max_hops", max_hops, 1, 30)
    check_seconds("timeout", timeout, 5.0)
    hops = []
    for ttl in range(1, max_hops + 1):
        with new_socket() as sock:
            hop = probe(sock, destination, ttl, timeout=timeout)
        hops.append(hop)
        if hop.address is not None and hop.reply != "time exceeded":
            break  # the destination itself answered: nothing beyond it
    return hops


NAMES = {ROUTER: "router", ROUTER_FAR: "router", SERVER: "server", CLIENT: "client"}


def trace(path: LabPath | None = None, *, max_hops: int = 8) -> PathExperiment:
    """traceroute from the client to the server, captured on c0; `result["hops"]`: one dict per hop (rtt in s).

    With `max_hops` 1 the trace ends at the router. (The recording holds the whole path.)
    """
    check_int("max_hops", max_hops, 1, 30)

    def live(net: Topology) -> PathExperiment:
        _forget(net)
        with net.client.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            probe(sock, SERVER, 64)  # ARP on both links done first: the round trips below are the probes' own
        with net.capture("c0") as cap:
            hops = traceroute(lambda: net.client.socket(socket.AF_INET, socket.SOCK_DGRAM), SERVER, max_hops=max_hops)
        return _experiment(cap, {"hops": [h.__dict__ for h in hops]})

    return _run(path, live, "below-traceroute")


def hops_of(exp: PathExperiment) -> list[Hop]:
    """The hops a `trace` experiment found."""
    return [Hop(**h) for h in exp.result["hops"]]


def tracepath(net: Topology, destination: str = SERVER) -> list[str]:
    """The hops the system's `tracepath -n` (iputils) finds from the client, as addresses, in order."""
    out = net.client.run("tracepath", "-n", "-m", "8", destination, timeout=10.0)
    hops: dict[int, str] = {}
    for line in out.splitlines():
        words = line.replace(":", " ").split()
        if len(words) >= 2 and words[0].isdigit() and words[1].count(".") == 3:
            hops.setdefault(int(words[0]), words[1])
    return [hops[k] for k in sorted(hops)]


# ---------------------------------------------------------------------------
# Path MTU discovery, and the black hole.


def path_mtu(path: LabPath | None = None, *, mtu: int = 1280, blocked: bool = False, size: int = 8000,
             seconds: float = 2.0) -> PathExperiment:
    """Send `size` bytes over TCP from the client to the server while the router's way out (r1) carries at most `mtu`.

    The client and the server are on 1500-byte links and announce MSS 1460; only the router
    knows the narrower link. With `blocked`, an nftables rule in the client drops the router's
    "fragmentation needed", and the transfer stalls (the black hole) until `seconds` have passed.
    `result`: the client's MSS (bytes) and path MTU before and after, and the bytes the server got.
    """
    check_int("mtu", mtu, 1280, 1500)
    check_int("size", size, 1, 100_000)
    check_seconds("seconds", seconds, 5.0)

    def live(net: Topology) -> PathExperiment:
        _forget(net)
        net.router.run("ip", "link", "set", "r1", "mtu", str(mtu))
        if blocked:
            _nft(net, BLOCK_FRAG_NEEDED)
        try:
            with _Sink(net, socket.SOCK_STREAM, (SERVER, WEB_PORT)) as sink, net.capture("c0", "r1") as cap:
                with net.client.socket() as sock:
                    sock.settimeout(_TIMEOUT)
                    sock.connect((SERVER, WEB_PORT))
                    before = tcp_info(sock)
                    sock.settimeout(seconds)
                    try:
                        sock.sendall(b"x" * size)
                    except TimeoutError:
                        pass
                    deadline = time.monotonic() + seconds
                    while sink.bytes < size and time.monotonic() < deadline:
                        time.sleep(0.01)
                    after = tcp_info(sock)
                    # Ends with a reset (SO_LINGER 0): a stalled connection's FIN would wait behind its data.
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                received = sink.bytes
        finally:
            if blocked:
                net.client.run("nft", "delete", "table", "inet", "netlab_blackhole", check=False)
            net.router.run("ip", "link", "set", "r1", "mtu", "1500")
            _forget(net)
        return _experiment(cap, {"mtu": mtu, "blocked": blocked, "size": size, "received": received,
                                 "mss_before": before.mss, "mss_after": after.mss,
                                 "pmtu_before": _pmtu(before), "pmtu_after": _pmtu(after),
                                 "retransmitted": after.total_retrans})

    name = "below-blackhole" if blocked else "below-pmtu"
    if blocked:
        try:
            program("nft", "to block the router's ICMP")
        except ProgramMissing as err:
            return load_recorded(name, kind=PathExperiment, why=f"recorded: {err}")
    return _run(path, live, name if mtu == 1280 else f"{name}-{mtu}")


def _pmtu(info: Any) -> int:
    return info.mss + 40 + 12  # the kernel's MSS here leaves room for IP (20), TCP (20) and timestamps (12)


def _nft(net: Topology, rules: str) -> None:
    """Load nftables `rules` in the client (nft reads them from a file: `nft -f`)."""
    with tempfile.NamedTemporaryFile("w", suffix=".nft", delete=False) as f:
        f.write(rules + "\n")
    try:
        net.client.run("nft", "-f", f.name)
    finally:
        Path(f.name).unlink(missing_ok=True)


# ---------------------------------------------------------------------------
# Names: a DNS server in the lab, getaddrinfo in the lab.


class _NameServer:
    """A DNS server on the server's host (UDP port 53), answering for `zone` (name → IPv4 address)."""

    def __init__(self, net: Topology, zone: dict[str, str]) -> None:
        self.zone = {k.rstrip(".").lower(): v for k, v in zone.items()}
        self.sock = net.server.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((SERVER, DNS_PORT))
        self.sock.settimeout(0.2)
        self.queries: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        from dnslib import QTYPE, RCODE, RR, A, DNSRecord

        while not self._stop.is_set():
            try:
                data, peer = self.sock.recvfrom(4096)
            except (TimeoutError, OSError):
                continue
            try:
                query = DNSRecord.parse(data)
            except Exception:  # noqa: BLE001  (not DNS: ignore it, as a server does)
                continue
            reply = query.reply()
            name = str(query.q.qname).rstrip(".").lower()
            self.queries.append(f"{QTYPE[query.q.qtype]} {name}")
            if name not in self.zone:
                reply.header.rcode = RCODE.NXDOMAIN
            elif query.q.qtype == QTYPE.A:
                reply.add_answer(RR(query.q.qname, QTYPE.A, rdata=A(self.zone[name]), ttl=60))
            # An AAAA question for a known name: no answer, no error (the name has only IPv4).
            self.sock.sendto(reply.pack(), peer)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2.0)
        self.sock.close()


def resolve(path: LabPath | None = None, *, name: str = NAME) -> PathExperiment:
    """A program in the lab connects to `name`: getaddrinfo asks the lab's DNS server, then TCP connects.

    The program runs on the client in a mount namespace it makes itself, where /etc/resolv.conf names the
    lab's DNS server (the server, 10.2.0.2) and /etc/hosts and /etc/nsswitch.conf are the lab's:
    nothing of the host's resolver is read. `result`: the address it connected to, the questions
    the DNS server got.
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"name must be a host name, such as {NAME!r}, not {name!r}")

    def live(net: Topology) -> PathExperiment:
        _forget(net)
        dns = _NameServer(net, {NAME: SERVER})
        try:
            with _Sink(net, socket.SOCK_STREAM, (SERVER, WEB_PORT)), net.capture("c0") as cap:
                said = lab_getaddrinfo(net, "client", SERVER, name, WEB_PORT, connect=True)
        finally:
            dns.close()
        return _experiment(cap, {"name": name, **said, "questions": sorted(set(dns.queries))})

    return _run(path, live, "below-dns" if name == NAME else "below-dns-unknown")


# ---------------------------------------------------------------------------
# IPv6.


def ipv6_handshake(path: LabPath | None = None) -> PathExperiment:
    """A TCP connection from the client to the server over IPv6 (fd00:2::2), captured on both links."""

    def live(net: Topology) -> PathExperiment:
        _forget(net)
        with _Sink(net, socket.SOCK_STREAM, (INTERFACES["s0"].ipv6, WEB_PORT), socket.AF_INET6) as sink, \
                net.capture("c0", "r1") as cap:
            with net.client.socket(socket.AF_INET6) as sock:
                sock.settimeout(_TIMEOUT)
                sock.connect((INTERFACES["s0"].ipv6, WEB_PORT))
                sock.sendall(b"hello over IPv6")
                sink.arrived.wait(_TIMEOUT)
            time.sleep(0.05)  # the server's FIN and the last ACK
        neighbours = {h: net.neighbours(h) for h in ("client", "router", "server")}
        return _experiment(cap, {"received": b"".join(sink.received).decode(), "neighbours": neighbours})

    return _run(path, live, "below-ipv6")


# Every recording this lesson ships (`python -m netlab record` remakes them).
RECORDINGS = {
    "below-datagram": first_datagram,
    "below-datagram-ttl1": lambda: first_datagram(ttl=1),
    "below-datagram-ttl2": lambda: first_datagram(ttl=2),
    "below-unreachable": unreachable,
    "below-traceroute": trace,
    "below-pmtu": path_mtu,
    "below-blackhole": lambda: path_mtu(blocked=True),
    "below-dns": resolve,
    "below-ipv6": ipv6_handshake,
}
