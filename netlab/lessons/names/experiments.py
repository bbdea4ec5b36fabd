"""Notebook 12 · Names and the home network: DNS as a system, DHCP, NAT, with the daemons a network runs.

The lesson's topology is `PLAN`, declared once as data and read by the notebook's text and the lab:

    laptop ── l0 192.168.1.2/24 ⇄ h0 192.168.1.1/24 ── home ── w0 203.0.113.2/24 ⇄ i0 203.0.113.1/24 ── internet
    (the lab's own namespace)       the home router: NAT (nftables),                 a router, and on its own
                                    DHCP (dnsmasq), the resolver (Unbound)            networks: the DNS servers
                                                                                      (NSD: root 192.0.2.1, test.
                                                                                      .2, example.test .3,
                                                                                      cdn.test .4) and a web
                                                                                      server 198.51.100.80

The internet has no route to 192.168.1.0/24 (a private network, RFC 1918): only the home router's
public address 203.0.113.2 is reachable from there, which is why the home router translates.

Programs from Debian, each found with `netlab.core.programs` and run inside the lab, as root of
the lab's user namespace, with its files in the topology's folder, stopped with the topology:
`nsd` (four authoritative servers), `unbound` (the recursive resolver), `dnsmasq` (dnsmasq-base:
the DHCP server), `nft` (NAT and the home router's firewall) and `conntrack` (its table). A
missing program, or one that cannot read its files (Ubuntu's AppArmor profile for Unbound allows
only its own folders), gives the section's recording, labelled, with the sentence saying why.

The client side is the field's own: the C library's getaddrinfo through the lab's resolv.conf
(`netlab.core.routed.lab_getaddrinfo`), dnslib for DNS messages, scapy for DHCP, ordinary
sockets for TCP. Every wait is bounded (`_TIMEOUT`, `_READY`).
"""

from __future__ import annotations

import ipaddress
import random
import re
import socket
import struct
import threading
import time
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any

from netlab.core.arguments import check_int
from netlab.core.errors import LabUnavailable, ProtocolError, WaitTimeout
from netlab.core.experiment import load_recorded
from netlab.core.programs import ProgramMissing, find, program
from netlab.core.routed import RoutedExperiment, RoutedLab, frame_line, lab_getaddrinfo, routed_experiment, run_routed
from netlab.core.topology import Daemon, Plan, Topology, interface
from netlab.lessons.names import zones
from netlab.lessons.names.zones import SERVERS, check_name

# What a DHCP client writes where it has no address yet (RFC 2131 §4.1): the source of its DISCOVER and
# REQUEST, and the empty ciaddr/yiaddr fields. Nothing here binds to it.
NO_ADDRESS = str(ipaddress.IPv4Address(0))

__all__ = [
    "PLAN", "LAPTOP", "HOME", "HOME_OUT", "INTERNET", "ROOT", "WEB", "PHONE", "HomeNetwork", "NamesExperiment",
    "addresses", "lookup", "cache", "records", "truncated", "dhcp", "dhcp_offer", "discover_for",
    "nat", "unsolicited", "nat_port", "walk_name", "your_mac", "iterate_in_lab", "describe", "RECORDINGS", "SERVERS", "NAT_RULES",
]

_I = interface
PLAN = Plan(
    hosts=("laptop", "home", "internet"),
    interfaces=(
        _I("l0", "laptop", "192.168.1.2/24", "h0"), _I("h0", "home", "192.168.1.1/24", "l0"),
        _I("w0", "home", "203.0.113.2/24", "i0"), _I("i0", "internet", "203.0.113.1/24", "w0"),
        _I("root", "internet", "192.0.2.1/32", None), _I("tld", "internet", "192.0.2.2/32", None),
        _I("ns1", "internet", "192.0.2.3/32", None), _I("ns2", "internet", "192.0.2.4/32", None),
        _I("web", "internet", "198.51.100.80/24", None),
    ),
    routes={"laptop": ("default via 192.168.1.1",), "home": ("default via 203.0.113.1",)},
    routers=("home", "internet"),
)
LAPTOP, HOME, HOME_OUT, INTERNET = "192.168.1.2", "192.168.1.1", "203.0.113.2", "203.0.113.1"
OUTSIDER_PORT = 20080  # the internet host's source port when it connects to the home router
PHONE = "192.168.1.3"  # a second device at home: an address added to the laptop's link for the NAT clash
ROOT = SERVERS["."][1]
WEB = "198.51.100.80"
LEASE = "2m"  # dnsmasq's shortest lease: 120 s (T1, the renewal time, is half of it)
POOL = ("192.168.1.100", "192.168.1.199")
_TIMEOUT = 2.0  # seconds: no experiment waits longer for one answer
_READY = 8.0  # seconds for a daemon to answer its first question
_LIVE = "live: captured just now in the lab's home network and its small internet"
_NAMES = {i.ipv4: i.name for i in PLAN.interfaces}

# The home router's NAT and firewall: everything from home goes out with the router's public
# address (masquerade); from outside only replies come in (connection tracking's "established"),
# and nothing new reaches the router itself or the laptop.
NAT_RULES = """table ip home {
    chain postrouting {
        type nat hook postrouting priority srcnat;
        oifname "w0" masquerade
    }
    chain forward {
        type filter hook forward priority filter; policy drop;
        ct state established,related accept
        iifname "h0" oifname "w0" accept
        ct status dnat accept
    }
    chain input {
        type filter hook input priority filter;
        iifname "w0" ct state established,related accept
        iifname "w0" drop
    }
}"""
# A port forward: new connections to the router's port 8080 go to the laptop's port 8080.
FORWARD_RULES = """table ip home {
    chain prerouting {
        type nat hook prerouting priority dstnat;
        iifname "w0" tcp dport 8080 dnat to 192.168.1.2:8080
    }
}"""


# The lookups shipped as recordings: the section's, and each name the walk exercise may draw.
_LOOKUP_RECORDINGS = {"www.example.test": "names-lookup", "mail.example.test": "names-lookup-mail",
                      "shop.example.test": "names-lookup-shop", "edge.cdn.test": "names-lookup-edge"}
_WALK_NAMES = tuple(_LOOKUP_RECORDINGS)


class NamesExperiment(RoutedExperiment):
    """An experiment in the home network: frames labelled with their interface, lines that spell DNS, DHCP and ports."""

    def lines(self, interface: str | None = None, *, keep: Callable[[Any], bool] | None = None) -> list[str]:
        frames = self.packets if interface is None else self.on(interface)
        flows: dict = {}
        return [describe(p, flows) for p in frames if keep is None or keep(p)]


# ---------------------------------------------------------------------------
# The network kept for the notebook's cells, and its daemons.


class HomeNetwork(RoutedLab):
    """The lesson's network, kept for many cells: live (about 1 s to build; daemons start when first needed), or the recordings.

        home = netlab.names.HomeNetwork()    # home.why says which
        netlab.names.walk(home)
        home.close()                         # every daemon stops with it
    """

    def __init__(self) -> None:
        super().__init__(PLAN, ipv6=False,
                         why="live: a laptop, a home router and a small internet in private network namespaces that "
                             "netlab created, with Debian's NSD, Unbound and dnsmasq running in them")


class _Daemons:
    """The daemons started on one topology: which, and their configuration folder."""

    def __init__(self, net: Topology) -> None:
        self.folder = Path(net.folder) / "names"
        self.folder.mkdir(exist_ok=True)
        self.nsd: list[Daemon] = []
        self.unbound: Daemon | None = None
        self.dnsmasq: Daemon | None = None
        self.nat = False


_STARTED: weakref.WeakKeyDictionary[Topology, _Daemons] = weakref.WeakKeyDictionary()


def _daemons(net: Topology) -> _Daemons:
    if net not in _STARTED:
        _STARTED[net] = _Daemons(net)
    return _STARTED[net]


def _dns(net: Topology, *, extra: dict[str, str] | None = None, fresh_cache: bool = True) -> None:
    """Start the four authoritative servers (once) and Unbound (again where `fresh_cache`: an empty cache)."""
    d = _daemons(net)
    nsd = program("nsd", "to serve the lab's DNS zones (Debian's nsd)")
    unbound = program("unbound", "to resolve names recursively in the lab (Debian's unbound)")
    logs = Path(net.folder)  # Topology.start writes each program's output to HOST-PROGRAM.log there
    if not d.nsd:
        configs = zones.write_all(d.folder, extra)
        for conf in configs.values():
            d.nsd.append(net.start("internet", nsd, "-d", "-c", str(conf)))
        try:
            for zone, (_, address) in SERVERS.items():
                _wait_ready(net, "internet", address, zone, "SOA", f"NSD for {zone}", logs / "internet-nsd.log")
        except LabUnavailable:
            for daemon in d.nsd:
                daemon.stop()
            d.nsd = []
            raise
    if d.unbound is not None and fresh_cache:
        d.unbound.stop()
        d.unbound = None
    if d.unbound is None:
        conf = d.folder / "unbound.conf"
        conf.write_text(zones.unbound_config(d.folder, HOME, "192.168.1.0/24"))
        d.unbound = net.start("home", unbound, "-d", "-c", str(conf))
        try:
            # A question Unbound answers itself (its own name, class CHAOS): ready, and nothing asked upstream.
            _wait_ready(net, "laptop", HOME, "id.server.", "TXT", "Unbound", logs / "home-unbound.log", qclass="CH")
        except LabUnavailable:
            d.unbound.stop()
            d.unbound = None
            raise


def _wait_ready(net: Topology, host: str, server: str, name: str, qtype: str, what: str, log: Path,
                qclass: str = "IN") -> None:
    """Ask until the daemon answers (at most `_READY` s); a daemon that says it failed ends the wait at once."""
    deadline = time.monotonic() + _READY
    said = ""
    while time.monotonic() < deadline:
        try:
            _ask(net, host, server, name, qtype, qclass=qclass, timeout=0.2)
            return
        except OSError:  # no answer yet, or "port unreachable" until the daemon has bound its socket
            said = log.read_text(errors="replace") if log.exists() else ""
            if "fatal" in said.lower() or "error:" in said.lower():
                break
            time.sleep(0.02)
    failed = [line for line in said.splitlines() if "error" in line.lower() or "fatal" in line.lower()]
    detail = failed[-1].strip() if failed else f"no answer within {_READY:g} s"
    if "permission denied" in said.lower():
        # Ubuntu's AppArmor profiles confine unbound and nsd to their own folders.
        raise LabUnavailable(f"{what} could not read its files in the lab's folder ({detail}): on Ubuntu, AppArmor's "
                             "profile for it allows only its own folders, so netlab shows recorded captures instead.")
    raise LabUnavailable(f"{what} did not start in the lab ({detail}), so netlab shows recorded captures instead.")


def _ask(net: Topology, host: str, server: str, name: str, qtype: str, *, qclass: str = "IN", timeout: float = _TIMEOUT,
         tcp: bool = False, edns: int | None = None) -> Any:
    """Ask `server` one question from `host` (UDP, or TCP with `tcp`) and return dnslib's reply; TimeoutError if none."""
    from dnslib import EDNS0, DNSRecord

    query = DNSRecord.question(name, qtype, qclass)
    if edns is not None:
        query.add_ar(EDNS0(udp_len=edns))
    data = query.pack()
    if tcp:
        with net.socket(host, socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect((server, 53))
            sock.sendall(struct.pack("!H", len(data)) + data)
            size = struct.unpack("!H", _recv_exactly(sock, 2))[0]
            return DNSRecord.parse(_recv_exactly(sock, size))
    with net.socket(host, socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        sock.connect((server, 53))
        sock.send(data)
        deadline = time.monotonic() + timeout
        while True:
            sock.settimeout(max(0.001, deadline - time.monotonic()))
            reply = DNSRecord.parse(sock.recv(65535))
            if reply.header.id == query.header.id:
                return reply


def _recv_exactly(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ProtocolError(f"the DNS server closed the connection {size - len(data)} bytes short of its message")
        data += chunk
    return data


def _run(home: HomeNetwork | None, live: Callable[[Topology], NamesExperiment], recorded: str) -> NamesExperiment:
    try:
        return run_routed(home, live, recorded, plan=PLAN, ipv6=False, kind=NamesExperiment)
    except ValueError:  # what netlab says of a recording it does not ship
        if recorded in RECORDINGS:
            raise
        raise _not_recorded(recorded) from None


def _not_recorded(recorded: str) -> ValueError:
    """The lab is refused here (or a program is missing) and this variant (another name, port or question) was never
    recorded: one sentence naming what is shipped."""
    family = recorded.split("-")[1]
    shipped = sorted(n for n in RECORDINGS if n.split("-")[1] == family)
    return ValueError(f"this machine shows recordings instead of running the lab, and {recorded!r} was not "
                      f"recorded: netlab ships {', '.join(shipped)} (call the experiment with its defaults)")


def _experiment(cap: Any, result: dict[str, Any]) -> NamesExperiment:
    return routed_experiment(cap, result, why=_LIVE, kind=NamesExperiment)  # type: ignore[return-value]


def _needs(names: tuple[str, ...], recorded: str) -> NamesExperiment | None:
    """The recording (saying which program is missing) where one of Debian's programs is not installed, else None."""
    for name in names:
        try:
            program(name)
        except ProgramMissing as err:
            if recorded not in RECORDINGS:
                raise _not_recorded(recorded) from None
            return load_recorded(recorded, kind=NamesExperiment, why=f"recorded: {err}")
    return None


def addresses() -> list[dict[str, str]]:
    """The plan's addresses, one row per interface: host, interface, address with its prefix, and what it is for."""
    role = {"l0": "the laptop", "h0": "home router, inside (LAN)", "w0": "home router, outside (its public address)",
            "i0": "the internet's router", "root": "root name server (NSD)", "tld": "test. name server (NSD)",
            "ns1": "example.test name server (NSD)", "ns2": "cdn.test name server (NSD)", "web": "a web server"}
    return [{"host": i.host, "interface": i.name, "address": f"{i.ipv4}/{i.prefix}", "role": role[i.name]}
            for i in PLAN.interfaces]


# ---------------------------------------------------------------------------
# What a frame says, in one line.


def describe(pkt: Any, flows: dict | None = None) -> str:
    """One frame in a line: where it was seen, who to whom, and what it says (DNS, DHCP, TCP with ports).

    A DNS line shows the server's port (53) and not the asker's, which the resolver draws at
    random for every question (a defence against forged answers). `flows` (a dict kept across
    the frames of one capture) follows DNS messages over TCP that take several segments.
    """
    from scapy.layers.dhcp import BOOTP, DHCP
    from scapy.layers.inet import IP, TCP, UDP

    where = f"{getattr(pkt, 'sniffed_on', '?'):>2}  "
    if IP not in pkt:
        return frame_line(pkt)
    ip = pkt[IP]
    layer = pkt[UDP] if UDP in pkt else (pkt[TCP] if TCP in pkt else None)
    if layer is None:
        return where + f"{ip.src} → {ip.dst}  " + frame_line(pkt).split(" · ")[-1]
    ends = f"{ip.src}:{layer.sport} → {ip.dst}:{layer.dport}"
    if 53 in (layer.sport, layer.dport):
        ends = f"{ip.src}{':53' if layer.sport == 53 else ''} → {ip.dst}{':53' if layer.dport == 53 else ''}"
    if DHCP in pkt:
        return where + f"{ends}  " + _dhcp_line(pkt[BOOTP], pkt[DHCP])
    if UDP in pkt and 53 in (layer.sport, layer.dport):
        return where + f"{ends}  UDP " + _dns_line(bytes(pkt[UDP].payload))
    if TCP in pkt and 53 in (layer.sport, layer.dport) and len(pkt[TCP].payload):
        # DNS over TCP: each message after its length in two bytes (RFC 1035 4.2.2); a long one takes several segments
        data, flow = bytes(pkt[TCP].payload), (ip.src, layer.sport, ip.dst, layer.dport)
        flows = {} if flows is None else flows
        if flows.get(flow, 0) > 0:
            flows[flow] -= len(data)
            return where + f"{ends}  TCP DNS: the next {len(data)} bytes of that message"
        size = int.from_bytes(data[:2], "big") if len(data) >= 2 else 0
        if size > len(data) - 2:
            flows[flow] = size - (len(data) - 2)
            kind = "answer" if len(data) > 4 and data[4] & 0x80 else "query"
            return where + f"{ends}  TCP DNS {kind}: a {size}-byte message, its first {len(data) - 2} bytes here"
        return where + f"{ends}  TCP " + _dns_line(data[2:])
    if TCP in pkt:
        tcp = pkt[TCP]
        flags = [n for bit, n in ((0x02, "SYN"), (0x10, "ACK"), (0x08, "PSH"), (0x01, "FIN"), (0x04, "RST")) if tcp.flags & bit]
        return where + f"{ends}  TCP {'+'.join(flags)} {len(bytes(tcp.payload))} bytes"
    return where + f"{ends}  UDP {len(bytes(layer.payload))} bytes"


def _dns_line(message: bytes) -> str:
    from dnslib import RCODE, DNSError, DNSRecord

    try:
        msg = DNSRecord.parse(message)
    except DNSError:
        return f"DNS, {len(message)} bytes that are not one whole message"
    q = msg.q
    question = f"{_qtype(q.qtype)} {str(q.qname).rstrip('.') or '.'}"
    if not msg.header.qr:
        return f"query {question}?"
    flags = (" TC" if msg.header.tc else "") + (" AA" if msg.header.aa else "")
    rcode = msg.header.rcode
    if rcode == 3:
        return f"answer{flags} {question}: no such name (NXDOMAIN)"
    if rcode:
        return f"answer{flags} {question}: error {RCODE.get(rcode)}"
    if msg.rr:
        shown = [f"{_qtype(r.rtype)} {r.rdata}" for r in msg.rr[:3]]
        more = f" and {len(msg.rr) - 3} more" if len(msg.rr) > 3 else ""
        return f"answer{flags} {question}: {', '.join(shown)}{more}"
    ns = [r for r in msg.auth if r.rtype == 2]
    if ns:
        glue = [str(r.rdata) for r in msg.ar if r.rtype == 1]
        zone = str(ns[0].rname).rstrip(".") or "."
        return (f"referral{flags} {question}: {zone} is served by {', '.join(str(r.rdata).rstrip('.') for r in ns)}"
                + (f" (glue {', '.join(glue)})" if glue else ""))
    if msg.header.tc:
        return f"answer{flags} {question}: truncated, ask again over TCP"
    return f"answer{flags} {question}: no such record"


def _qtype(value: int) -> str:
    from dnslib import QTYPE

    return QTYPE.get(value, str(value))


_DHCP_KINDS = {1: "DISCOVER", 2: "OFFER", 3: "REQUEST", 4: "DECLINE", 5: "ACK", 6: "NAK", 7: "RELEASE", 8: "INFORM"}


def _dhcp_options(dhcp: Any) -> dict[str, Any]:
    return {opt[0]: (opt[1] if len(opt) == 2 else list(opt[1:])) for opt in dhcp.options if isinstance(opt, tuple)}


def _dhcp_line(bootp: Any, dhcp: Any) -> str:
    opts = _dhcp_options(dhcp)
    kind = _DHCP_KINDS.get(opts.get("message-type"), "?")
    text = f"DHCP {kind}"
    if bootp.ciaddr != NO_ADDRESS:
        text += f" ciaddr {bootp.ciaddr}"
    if bootp.yiaddr != NO_ADDRESS:
        text += f" yiaddr {bootp.yiaddr}"
    # Not T1 (renewal_time): dnsmasq draws it a little earlier for each renewal, so that clients spread out.
    shown = [f"{k} {opts[k]}" for k in ("requested_addr", "server_id", "router", "name_server", "lease_time") if k in opts]
    return text + (f" · {', '.join(shown)}" if shown else "")


# ---------------------------------------------------------------------------
# DNS: a lookup, the walk, the cache, record types, a truncated reply.


def _upstream(packets: list) -> list:
    """The DNS frames the resolver exchanged with the internet's servers (seen on w0)."""
    return [p for p in packets if getattr(p, "sniffed_on", None) == "w0" and p.haslayer("DNS")]


def _queries(packets: list) -> list[str]:
    """Each upstream query in a line: the server asked (its name) and the question."""
    from scapy.layers.dns import DNS

    out = []
    for p in _upstream(packets):
        if p.haslayer("UDP") and not p[DNS].qr:
            out.append(f"{p['IP'].dst} ({_NAMES.get(p['IP'].dst, '?')}): {_dns_line(bytes(p['UDP'].payload))}")
    return out


def lookup(home: HomeNetwork | None = None, *, name: str = "www.example.test") -> NamesExperiment:
    """getaddrinfo(name) on the laptop, twice, through the lab's resolv.conf (nameserver 192.168.1.1, Unbound).

    The C library asks for A, then for AAAA (`single-request`), so the capture reads the same every run.
    Unbound starts with an empty cache. `result`: `addresses` (what getaddrinfo returned, each time),
    `upstream` (the queries Unbound sent the internet for each lookup: the first walks, the second none).
    """
    fqdn = check_name(name)
    recorded = _LOOKUP_RECORDINGS.get(fqdn.rstrip("."), f"names-lookup-{fqdn.rstrip('.')}")
    if (missing := _needs(("nsd", "unbound"), recorded)):
        return missing

    def live(net: Topology) -> NamesExperiment:
        _dns(net)
        said, upstream = [], []
        with net.capture("l0", "w0") as cap:
            for _ in range(2):
                before = time.time()
                said.append(lab_getaddrinfo(net, "laptop", HOME, fqdn.rstrip("."), 80, single_request=True))
                time.sleep(0.02)  # the last frames of this lookup
                upstream.append(before)
        frames = cap.packets
        marks = upstream + [float("inf")]
        per = [_queries([p for p in frames if marks[i] <= p.time < marks[i + 1]]) for i in range(2)]
        return _experiment(cap, {"name": fqdn.rstrip("."), "addresses": [s.get("addresses", []) for s in said],
                                 "errors": [s.get("error") for s in said], "upstream": per})

    return _run(home, live, recorded)


def cache(home: HomeNetwork | None = None, *, wait: float = 1.1) -> NamesExperiment:
    """Ask Unbound for www.example.test twice, `wait` seconds apart, then for a name that does not exist, twice.

    `result`: `ttl` (the two TTLs the laptop got, seconds), `waited` (seconds between them),
    `negative` (the two replies' rcode names) and `upstream` (queries Unbound sent for each of the four).
    """
    from netlab.core.arguments import check_seconds

    check_seconds("wait", wait, 10.0)
    if (missing := _needs(("nsd", "unbound"), "names-cache")):
        return missing

    def live(net: Topology) -> NamesExperiment:
        from dnslib import RCODE

        _dns(net)
        ttls, rcodes, negative_ttls, marks = [], [], [], []
        with net.capture("l0", "w0") as cap:
            for i in range(2):
                if i:
                    time.sleep(wait)
                marks.append(time.time())
                reply = _ask(net, "laptop", HOME, "www.example.test", "A")
                ttls.append(reply.rr[0].ttl)
            waited = marks[1] - marks[0]
            for _ in range(2):
                marks.append(time.time())
                reply = _ask(net, "laptop", HOME, "nowhere.example.test", "A")
                rcodes.append(RCODE.get(reply.header.rcode))
                negative_ttls.append(reply.auth[0].ttl if reply.auth else None)
            time.sleep(0.02)
        marks.append(float("inf"))
        per = [_queries([p for p in cap.packets if marks[i] <= p.time < marks[i + 1]]) for i in range(4)]
        return _experiment(cap, {"ttl": ttls, "waited": round(waited, 3), "negative": rcodes,
                                 "negative_ttl": negative_ttls, "upstream": per})

    return _run(home, live, "names-cache")


_RECORD_QUESTIONS = (("www.example.test", "A"), ("www.example.test", "AAAA"), ("example.test", "NS"),
                     ("example.test", "MX"), ("shop.example.test", "A"))


def records(home: HomeNetwork | None = None, questions: list[tuple[str, str]] | None = None) -> NamesExperiment:
    """Ask Unbound each question, a (name, record type) pair: by default A, AAAA, NS, MX, and an A behind a chain of
    CNAMEs.

    `result["answers"]`: for each question, [question, its records as "owner TYPE value" lines].
    """
    from dnslib import QTYPE

    asked = list(_RECORD_QUESTIONS if questions is None else questions)
    for question in asked:
        if not isinstance(question, (tuple, list)) or len(question) != 2:
            raise ValueError(f"a question is a (name, record type) pair such as ('example.test', 'MX'), not {question!r}")
        check_name(question[0])
        if not isinstance(question[1], str) or question[1].upper() not in QTYPE.reverse:
            raise ValueError(f"{question[1]!r} is not a DNS record type: try A, AAAA, NS, MX, CNAME, SOA or TXT")
    asked = [(name, qtype.upper()) for name, qtype in asked]
    recorded = "names-records" if questions is None else "names-records-yours"
    if (missing := _needs(("nsd", "unbound"), recorded)):
        return missing

    def live(net: Topology) -> NamesExperiment:
        _dns(net)
        answers = []
        with net.capture("l0") as cap:
            for name, qtype in asked:
                reply = _ask(net, "laptop", HOME, name, qtype)
                answers.append([f"{name} {qtype}", [f"{str(r.rname).rstrip('.')} {_qtype(r.rtype)} "
                                                    f"{str(r.rdata).rstrip('.')}" for r in reply.rr]])
        return _experiment(cap, {"answers": answers})

    return _run(home, live, recorded)


def truncated(home: HomeNetwork | None = None) -> NamesExperiment:
    """Ask for many.example.test (90 A records, 1.5 KB): too big for UDP, so truncated (TC) and asked again over TCP.

    The laptop asks over UDP offering 1232 bytes (EDNS, as resolvers do), then over TCP when told
    to; Unbound does the same with the authoritative server. `result`: `udp_truncated` (the laptop's
    UDP reply had TC), `records` (how many the TCP answer held), `upstream` (Unbound's exchange, lines).
    """
    if (missing := _needs(("nsd", "unbound"), "names-truncated")):
        return missing

    def live(net: Topology) -> NamesExperiment:
        _dns(net)
        _ask(net, "laptop", HOME, "www.example.test", "A")  # the referrals down to example.test, cached first
        with net.capture("l0", "w0") as cap:
            first = _ask(net, "laptop", HOME, "many.example.test", "A", edns=1232)
            again = _ask(net, "laptop", HOME, "many.example.test", "A", tcp=True) if first.header.tc else first
            time.sleep(0.02)
        upstream = [describe(p) for p in cap.packets if p.sniffed_on == "w0" and (p.haslayer("DNS") or p.haslayer("TCP"))]
        return _experiment(cap, {"udp_truncated": bool(first.header.tc), "udp_records": len(first.rr),
                                 "records": len(again.rr), "upstream": upstream})

    return _run(home, live, "names-truncated")


def iterate_in_lab(resolve: Callable[[str, str, Callable[[str, bytes], bytes]], Any], names: dict[str, str]
                   ) -> dict[str, Any]:
    """Run `resolve(name, ROOT, ask)` for each of `names` (added to the zones: name → IPv4) in a fresh lab; ask Unbound too.

    `ask(server, query)` sends a DNS message (bytes) from the laptop to `server` over UDP and
    returns the reply's bytes (a TimeoutError after 2 s). Returns, per name, what `resolve`
    returned (or the error it raised, as text), Unbound's addresses, and the servers `resolve` asked.
    For checks: the lab is the oracle, the verdict is the caller's.
    """
    program("nsd", "to serve the lab's DNS zones (Debian's nsd)")
    program("unbound", "to resolve names recursively in the lab (Debian's unbound)")
    from netlab.core.experiment import live_or_recorded

    def live(lab: Any) -> NamesExperiment:
        lab.check_join()
        with Topology(lab, PLAN, ipv6=False) as net:
            _nat(net)  # the laptop's questions go out with the router's address: the internet has no way back to 192.168.1.x
            _dns(net, extra=names)
            out: dict[str, Any] = {}
            for name in names:
                asked: list[str] = []

                def ask(server: str, query: bytes, asked: list[str] = asked) -> bytes:
                    asked.append(str(server))
                    if len(asked) > 30:
                        raise ProtocolError("more than 30 questions for one name: does your resolver go round in circles?")
                    with net.socket("laptop", socket.AF_INET, socket.SOCK_DGRAM) as sock:
                        sock.settimeout(_TIMEOUT)
                        sock.sendto(bytes(query), (str(server), 53))
                        return sock.recv(65535)

                try:
                    got: Any = resolve(name, ROOT, ask)
                except Exception as err:  # noqa: BLE001  (the student's function: its failure is a verdict's input)
                    got = f"{type(err).__name__}: {err}"
                truth = [str(r.rdata) for r in _ask(net, "laptop", HOME, name, "A").rr if r.rtype == 1]
                out[name] = {"yours": got, "unbound": truth, "asked": asked}
            return NamesExperiment([], "live", _LIVE, result=out)

    return live_or_recorded(live, None, kind=NamesExperiment).result


# ---------------------------------------------------------------------------
# DHCP: dnsmasq on the home link.


def _dhcp_server(net: Topology) -> None:
    d = _daemons(net)
    if d.dnsmasq is not None:
        return
    dnsmasq = program("dnsmasq", "to serve DHCP on the home link (Debian's dnsmasq-base)")
    laptop_mac = PLAN.interface("l0").mac
    d.dnsmasq = net.start(
        # --user=root and an empty --group: no user or group to change to (a lab has only root mapped)
        "home", dnsmasq, "--keep-in-foreground", "--conf-file=/dev/null", "--port=0", "--log-facility=-",
        "--interface=h0", "--bind-interfaces", f"--dhcp-range={POOL[0]},{POOL[1]},255.255.255.0,{LEASE}",
        f"--dhcp-host={laptop_mac},{LAPTOP}", f"--dhcp-option=option:router,{HOME}",
        f"--dhcp-option=option:dns-server,{HOME}", f"--dhcp-leasefile={d.folder}/dnsmasq.leases",
        f"--pid-file={d.folder}/dnsmasq.pid", "--user=root", "--group=", "--no-ping", "--dhcp-authoritative",
        "--log-dhcp")
    log = Path(net.folder) / "home-dnsmasq.log"  # Topology.start's file for its output
    deadline = time.monotonic() + _READY
    said = ""
    while time.monotonic() < deadline:
        said = log.read_text(errors="replace") if log.exists() else ""
        if "DHCP, IP range" in said:  # written once its socket is bound
            return
        if "FAILED to start" in said:
            break
        time.sleep(0.02)
    d.dnsmasq.stop()
    d.dnsmasq = None
    detail = said.strip().splitlines()[0] if said.strip() else f"no word within {_READY:g} s"
    if "permission denied" in said.lower():
        detail += " (on Ubuntu, AppArmor's profile for dnsmasq allows only its own folders)"
    raise LabUnavailable(f"dnsmasq could not start its DHCP server in the lab ({detail}), "
                         "so netlab shows recorded captures instead.")


def discover_for(mac: str, xid: int) -> Any:
    """A DHCP DISCOVER from `mac` with transaction id `xid`, as scapy builds it (broadcast, from 0.0.0.0:68)."""
    from scapy.layers.dhcp import BOOTP, DHCP
    from scapy.layers.inet import IP, UDP
    from scapy.layers.l2 import Ether

    raw = bytes.fromhex(mac.replace(":", ""))
    return (Ether(src=mac, dst="ff:ff:ff:ff:ff:ff") / IP(src=NO_ADDRESS, dst="255.255.255.255") /
            UDP(sport=68, dport=67) / BOOTP(chaddr=raw, xid=xid, flags=0x8000) /
            DHCP(options=[("message-type", "discover"), ("param_req_list", [1, 3, 6, 51, 58, 59]), "end"]))


def _raw_exchange(net: Topology, frames: list[bytes], xid: int, want: set[int]) -> list:
    """Send Ethernet frames on the laptop's l0; return the first DHCP reply with transaction id `xid` of a kind in `want`
    (as a list of one), or [] after `_TIMEOUT` seconds."""
    from scapy.layers.dhcp import BOOTP, DHCP
    from scapy.layers.l2 import Ether

    with net.socket("laptop", socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003)) as sock:
        sock.bind(("l0", 0))
        for frame in frames:
            sock.send(frame)
        replies: list = []
        deadline = time.monotonic() + _TIMEOUT
        while time.monotonic() < deadline:
            sock.settimeout(max(0.001, deadline - time.monotonic()))
            try:
                pkt = Ether(sock.recv(65535))
            except TimeoutError:
                break
            if DHCP in pkt and pkt[BOOTP].op == 2 and pkt[BOOTP].xid == xid:
                if _dhcp_options(pkt[DHCP]).get("message-type") in want:
                    return [pkt]
        return replies


def dhcp(home: HomeNetwork | None = None) -> NamesExperiment:
    """The laptop asks for an address: DISCOVER, OFFER, REQUEST, ACK (broadcast), then renews it (unicast REQUEST, ACK).

    dnsmasq serves the home link with a lease of 2 minutes and reserves the laptop's address for
    its MAC. The renewal is asked for at once rather than after T1 (60 s), as a client does when
    told to renew. `result`: `offer` and `ack` (address, router, DNS server, lease, renewal time) and
    `renewed` (the lease the renewal's ACK gave).
    """
    if (missing := _needs(("dnsmasq",), "names-dhcp")):
        return missing

    def live(net: Topology) -> NamesExperiment:
        from scapy.layers.dhcp import BOOTP, DHCP
        from scapy.layers.inet import IP, UDP
        from scapy.layers.l2 import Ether

        _dhcp_server(net)
        mac = PLAN.interface("l0").mac
        xid = random.getrandbits(32)
        with net.capture("l0") as cap:
            offer = _raw_exchange(net, [bytes(discover_for(mac, xid))], xid, {2})
            if not offer:
                raise WaitTimeout(f"dnsmasq sent no OFFER within {_TIMEOUT:g} s")
            o = offer[0]
            request = (Ether(src=mac, dst="ff:ff:ff:ff:ff:ff") / IP(src=NO_ADDRESS, dst="255.255.255.255") /
                       UDP(sport=68, dport=67) / BOOTP(chaddr=bytes.fromhex(mac.replace(":", "")), xid=xid, flags=0x8000) /
                       DHCP(options=[("message-type", "request"), ("requested_addr", o[BOOTP].yiaddr),
                                     ("server_id", _dhcp_options(o[DHCP])["server_id"]), "end"]))
            ack = _raw_exchange(net, [bytes(request)], xid, {5, 6})
            # Renewing (RFC 2131 4.3.2): the client has its address, asks its server directly, ciaddr set.
            renew_xid = random.getrandbits(32)
            renew = BOOTP(chaddr=bytes.fromhex(mac.replace(":", "")), xid=renew_xid, ciaddr=LAPTOP) / \
                DHCP(options=[("message-type", "request"), "end"])
            with net.socket("laptop", socket.AF_INET, socket.SOCK_DGRAM) as sock:
                sock.settimeout(_TIMEOUT)
                sock.bind((LAPTOP, 68))
                sock.sendto(bytes(renew), (HOME, 67))
                renewed = BOOTP(sock.recv(4096))
            time.sleep(0.02)
        return _experiment(cap, {"offer": _lease_facts(o), "ack": _lease_facts(ack[0]) if ack else None,
                                 "renewed": _lease_facts(renewed)})

    return _run(home, live, "names-dhcp")


def _lease_facts(pkt: Any) -> dict[str, Any]:
    from scapy.layers.dhcp import BOOTP, DHCP

    opts = _dhcp_options(pkt[DHCP])
    return {"kind": _DHCP_KINDS.get(opts.get("message-type"), "?"), "address": pkt[BOOTP].yiaddr,
            "router": opts.get("router"), "dns": opts.get("name_server"), "lease": opts.get("lease_time"),
            "renewal": opts.get("renewal_time"), "server": opts.get("server_id")}


def dhcp_offer(home: HomeNetwork | None, discover: Any) -> NamesExperiment:
    """Send your own DISCOVER (a scapy packet from Ether up) on the laptop's link; capture it and the OFFER it gets.

    `result["offer"]`: the OFFER's facts as `dhcp` gives them (None when no OFFER came in 2 s).
    """
    from scapy.layers.dhcp import BOOTP, DHCP
    from scapy.layers.l2 import Ether
    from scapy.packet import Packet

    if not isinstance(discover, Packet) or Ether not in discover or DHCP not in discover:
        raise ValueError("discover must be a scapy packet built from Ether up to DHCP (Ether()/IP()/UDP()/BOOTP()/DHCP()), "
                         f"not {type(discover).__name__}")
    frame = bytes(discover)
    if len(frame) > 1500:
        raise ValueError(f"a DISCOVER fits in one Ethernet frame: this one has {len(frame)} bytes")
    if (missing := _needs(("dnsmasq",), "names-dhcp-offer")):
        return missing

    def live(net: Topology) -> NamesExperiment:
        _dhcp_server(net)
        xid = discover[BOOTP].xid
        with net.capture("l0") as cap:
            offer = _raw_exchange(net, [frame], xid, {2})
            time.sleep(0.02)
        return _experiment(cap, {"offer": _lease_facts(offer[0]) if offer else None, "xid": xid})

    return _run(home, live, "names-dhcp-offer")


# ---------------------------------------------------------------------------
# NAT: the home router's masquerade, its table, what comes in from outside.


def _nat(net: Topology) -> None:
    d = _daemons(net)
    if not d.nat:
        _nft(net, NAT_RULES)
        d.nat = True


def _nft(net: Topology, rules: str) -> None:
    path = _daemons(net).folder / "rules.nft"
    path.write_text(rules + "\n")
    net.run("home", program("nft", "for the home router's NAT (Debian's nftables)"), "-f", str(path))


def _conntrack(net: Topology) -> list[str]:
    """The home router's connection-tracking table for TCP, one line per connection: state, then both directions."""
    tool = find("conntrack")
    text = net.run("home", tool, "-L", "-p", "tcp", check=False) if tool else net.run("home", "cat", "/proc/net/nf_conntrack")
    out = []
    for line in text.splitlines():
        pairs = re.findall(r"(src|dst|sport|dport)=(\S+)", line)
        if len(pairs) < 8 or " tcp " not in f" {line} ":
            continue
        v = [value for _, value in pairs[:8]]
        found = re.search(r"\b\d+\s+([A-Z_]{4,})\s+src=", line)  # "tcp 6 431999 ESTABLISHED src=..."
        state = found.group(1) if found else "?"
        out.append(f"{state}  {v[0]}:{v[2]} → {v[1]}:{v[3]}  replies: {v[4]}:{v[6]} → {v[5]}:{v[7]}")
    return sorted(out)


class _Server:
    """A TCP server on `host` at `address`, accepting in a thread: the peers it saw, the bytes it got."""

    def __init__(self, net: Topology, host: str, address: tuple[str, int]) -> None:
        self.sock = net.socket(host, socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(address)
        self.sock.listen(8)
        self.sock.settimeout(0.1)
        self.peers: list[tuple[str, int]] = []
        self._handlers: list[threading.Thread] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, peer = self.sock.accept()
            except (TimeoutError, OSError):
                continue
            self.peers.append((peer[0], peer[1]))
            handler = threading.Thread(target=self._answer, args=(conn, peer[0]), daemon=True)
            handler.start()
            self._handlers.append(handler)

    def _answer(self, conn: socket.socket, peer: str) -> None:
        with conn:
            conn.settimeout(_TIMEOUT)
            try:
                conn.recv(1024)
                conn.sendall(b"hello from " + peer.encode())
                conn.recv(1024)  # the client closes first: the connection stays open until then
            except OSError:
                pass

    def __enter__(self) -> _Server:
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(2.0)
        for handler in self._handlers:
            handler.join(_TIMEOUT)
        self.sock.close()


def _connect(net: Topology, source: tuple[str, int], destination: tuple[str, int]) -> socket.socket:
    sock = net.socket("laptop", socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.settimeout(_TIMEOUT)
    sock.bind(source)
    sock.connect(destination)
    sock.sendall(b"hello")
    sock.recv(1024)
    return sock


def _tuples(packets: list, interface: str) -> list[tuple[str, int, str, int]]:
    """The 4-tuple of each SYN seen on `interface` (source address, port, destination address, port)."""
    from scapy.layers.inet import IP, TCP

    return [(p[IP].src, p[TCP].sport, p[IP].dst, p[TCP].dport) for p in packets
            if p.sniffed_on == interface and TCP in p and p[TCP].flags == "S"]


def nat(home: HomeNetwork | None = None, *, port: int = 20000, clash: bool = True) -> NamesExperiment:
    """The laptop (192.168.1.2, source `port`: 20000 is below the ports Linux draws) connects to the web server;
    with `clash`, a second device at home (192.168.1.3) does too from the same port. Captured inside (h0) and
    outside (w0).

    `result`: `inside` and `outside` (each connection's 4-tuple on either side), `server_saw` (the
    peers the web server accepted), `conntrack` (the home router's table while both were open).
    """
    check_int("port", port, 1024, 65535)
    recorded = "names-nat" if (port, clash) == (20000, True) else ("names-nat-one" if (port, clash) == (20000, False)
                                                                    else f"names-nat-{port}{'' if clash else '-one'}")
    if (missing := _needs(("nft",), recorded)):
        return missing

    def live(net: Topology) -> NamesExperiment:
        _nat(net)
        if find("conntrack"):
            net.run("home", "conntrack", "-F", check=False)  # the lookups' entries, from earlier cells
        net.run("laptop", "ip", "addr", "add", f"{PHONE}/24", "dev", "l0")
        try:
            with _Server(net, "internet", (WEB, 80)) as server, net.capture("h0", "w0") as cap:
                sockets = [_connect(net, (LAPTOP, port), (WEB, 80))]
                if clash:
                    sockets.append(_connect(net, (PHONE, port), (WEB, 80)))
                table = _conntrack(net)
                for sock in sockets:
                    sock.close()
                time.sleep(0.05)  # the FINs
        finally:
            net.run("laptop", "ip", "addr", "del", f"{PHONE}/24", "dev", "l0", check=False)
        return _experiment(cap, {"inside": _tuples(cap.packets, "h0"), "outside": _tuples(cap.packets, "w0"),
                                 "server_saw": list(server.peers), "conntrack": table})

    return _run(home, live, recorded)


def nat_port(home: HomeNetwork | None = None) -> int:
    """A source port drawn for this run, for the NAT exercise (between 20000 and 60000)."""
    return random.Random().randrange(20000, 60000)


def walk_name(home: HomeNetwork | None = None) -> str:
    """A name drawn for this run, for the walk exercise: one of the zones' names with an address."""
    return random.Random().choice(sorted(_WALK_NAMES))


def your_mac(home: HomeNetwork | None = None) -> str:
    """A MAC address drawn for this run (locally administered, 02:…), for the DHCP exercise."""
    rng = random.Random()
    return "02:00:" + ":".join(f"{rng.randrange(256):02x}" for _ in range(4))


def unsolicited(home: HomeNetwork | None = None, *, forward: bool = False) -> NamesExperiment:
    """A host on the internet connects to the home router's public address, port 8080, where the laptop listens.

    Without `forward` the router drops the SYN (nothing new comes in); with `forward` a port
    forward (DNAT to 192.168.1.2:8080) lets it in. `result`: `connected`, `error`, `laptop_saw`
    (the peers the laptop's server accepted), `inside`/`outside` (the SYNs' 4-tuples on h0 and w0).
    """
    recorded = "names-forward" if forward else "names-unsolicited"
    if (missing := _needs(("nft",), recorded)):
        return missing

    def live(net: Topology) -> NamesExperiment:
        _nat(net)
        if forward:
            _nft(net, FORWARD_RULES)
        connected, error = False, None
        try:
            with _Server(net, "laptop", (LAPTOP, 8080)) as server, net.capture("h0", "w0") as cap:
                with net.socket("internet", socket.AF_INET, socket.SOCK_STREAM) as sock:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                    sock.bind((INTERNET, OUTSIDER_PORT))  # a port of its own, so that the capture reads the same every run
                    sock.settimeout(0.5)  # under the first retransmission (1 s): one SYN on the wire
                    try:
                        sock.connect((HOME_OUT, 8080))
                        sock.sendall(b"hello")
                        sock.recv(1024)
                        connected = True
                    except OSError as err:
                        error = type(err).__name__
                time.sleep(0.05)
        finally:
            if forward:
                net.run("home", program("nft"), "delete", "chain", "ip", "home", "prerouting", check=False)
        return _experiment(cap, {"connected": connected, "error": error, "laptop_saw": list(server.peers),
                                 "inside": _tuples(cap.packets, "h0"), "outside": _tuples(cap.packets, "w0")})

    return _run(home, live, recorded)


# Every recording this lesson ships (`python -m netlab record` remakes them).
RECORDINGS = {
    "names-lookup": lookup,
    "names-lookup-mail": lambda: lookup(name="mail.example.test"),
    "names-lookup-shop": lambda: lookup(name="shop.example.test"),
    "names-lookup-edge": lambda: lookup(name="edge.cdn.test"),
    "names-lookup-nowhere.example.test": lambda: lookup(name="nowhere.example.test"),
    "names-cache": cache,
    "names-records": records,
    "names-truncated": truncated,
    "names-dhcp": dhcp,
    "names-dhcp-offer": lambda: dhcp_offer(None, discover_for("02:00:00:00:12:34", 0x1234)),
    "names-nat": nat,
    "names-nat-one": lambda: nat(clash=False),
    "names-unsolicited": unsolicited,
    "names-forward": lambda: unsolicited(forward=True),
}
