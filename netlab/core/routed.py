"""Experiments on a routed topology: one kept for a notebook's cells, their captures, one line per frame.

Theory of operation
-------------------
A notebook below TCP (10, 11) keeps one live topology for all its cells (`RoutedLab`: a lab and a
`Topology` built from a plan, about 1 s to build, where a fresh one per cell would cost that every
time), or, where the lab is refused, nothing but the sentence saying why. Each experiment is a
function of the topology, run by `run_routed`: on the kept topology, on a fresh one, or as its
recording. It returns a `RoutedExperiment`: the frames captured on the links it watched, each
labelled with the interface it was seen on (`sniffed_on`, kept in the recording too), and a
`result` dict of what the program saw. A packet forwarded by a router is seen once on each link
it crosses: one packet, several frames, and `RoutedExperiment.on(NAME)` picks one link's.

Rules for this file:
1. It knows no lesson and no plan: the plan comes from the lesson.
2. `frame_line` says in one line what a person reads in a frame (who, TTL, fragment, ICMP, ...),
   nothing that changes between runs (no times, no ports the kernel picked, no IP identification).
"""

from __future__ import annotations

import errno
import json
import os
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from netlab.core.errors import LabError, LabUnavailable
from netlab.core.experiment import Experiment, live_or_recorded, load_recorded
from netlab.core.lab import Lab, inner_refusal_sentence
from netlab.core.topology import Plan, Topology

__all__ = ["RoutedLab", "RoutedExperiment", "run_routed", "frame_line", "ICMP_NAMES", "routed_experiment", "lab_getaddrinfo"]

# ICMP (type, code) in words (RFC 792), as frame lines and error queues say them.
ICMP_NAMES = {(11, 0): "time exceeded", (3, 3): "port unreachable", (3, 0): "network unreachable",
              (3, 1): "host unreachable", (3, 4): "fragmentation needed", (8, 0): "echo request",
              (0, 0): "echo reply", (11, 1): "fragment reassembly time exceeded"}


@dataclass
class RoutedExperiment(Experiment):
    """An experiment on a routed topology: `packets` carry `sniffed_on` (an interface's name), `result` is a dict."""

    interfaces: list[str] = field(default_factory=list)  # one per packet: where it was seen
    # Whether `lines` show the IP header checksum: it covers the IP identification, which Linux
    # draws anew for each packet a raw socket (ping) sends, so a lesson printing those turns it off.
    checksums = True

    def __post_init__(self) -> None:
        if self.interfaces and len(self.interfaces) == len(self.packets):
            for pkt, name in zip(self.packets, self.interfaces, strict=True):
                pkt.sniffed_on = name
        else:
            self.interfaces = [getattr(p, "sniffed_on", "?") for p in self.packets]

    def on(self, interface: str) -> list:
        """The frames seen on one interface, in time order."""
        return [p for p in self.packets if getattr(p, "sniffed_on", None) == interface]

    def lines(self, interface: str | None = None, *, keep: Callable[[Any], bool] | None = None) -> list[str]:
        """One line per frame (see `frame_line`), on one interface or all of them, optionally filtered."""
        frames = self.packets if interface is None else self.on(interface)
        width = max((len(getattr(p, "sniffed_on", "?")) for p in frames), default=2)  # the interface names line up
        return [frame_line(p, checksum=self.checksums, width=width) for p in frames if keep is None or keep(p)]

    def show(self, interface: str | None = None, *, keep: Callable[[Any], bool] | None = None) -> None:
        """Print `lines` (a table a person reads: no times, no ports the kernel picked)."""
        for line in self.lines(interface, keep=keep):
            print(line)

    def recording_fields(self) -> dict[str, Any]:
        return {"interfaces": self.interfaces}

    @classmethod
    def from_recording(cls, meta: dict[str, Any]) -> dict[str, Any]:
        return {"interfaces": meta.get("interfaces", [])}

    def __str__(self) -> str:
        return "\n".join(self.lines())


def routed_experiment(cap: Any, result: dict[str, Any], *, kind: type[RoutedExperiment] = RoutedExperiment,
                      why: str = "live: captured just now on the lab's routed path") -> RoutedExperiment:
    """A live experiment from a topology's capture (`Topology.capture`) and what the program saw."""
    return kind(cap.packets, "live", why, result=result, interfaces=[p.sniffed_on for p in cap.packets])


def frame_line(pkt: Any, *, checksum: bool = True, width: int = 2) -> str:
    """One frame in a line: interface, MACs, and what it carries (ARP, IP with TTL and checksum, fragments,
    ICMP, TCP, UDP, DNS, RIP). Without `checksum` the IP header checksum is left out; `width` pads the
    interface's name (characters)."""
    from scapy.layers.dns import DNS
    from scapy.layers.inet import ICMP, IP, TCP, UDP
    from scapy.layers.inet6 import ICMPv6ND_NA, ICMPv6ND_NS, IPv6
    from scapy.layers.l2 import ARP
    from scapy.layers.rip import RIP

    where = f"{getattr(pkt, 'sniffed_on', '?'):>{width}}  {pkt.src} → {pkt.dst}  "
    if ARP in pkt:
        arp = pkt[ARP]
        if arp.op == 1:
            return where + f"ARP who has {arp.pdst}? tell {arp.psrc}"
        return where + f"ARP {arp.psrc} is at {arp.hwsrc}"
    if IP in pkt:
        ip = pkt[IP]
        summed = f" checksum 0x{ip.chksum:04x}" if checksum else ""
        head = where + f"IP {ip.src} → {ip.dst} TTL {ip.ttl}{summed} DF {int(bool(ip.flags.DF))} len {ip.len}"
        if ip.flags.MF or ip.frag:
            head += f" · fragment: offset {ip.frag * 8} MF {int(bool(ip.flags.MF))}"
            if ip.frag:  # the rest of a datagram: no UDP or ICMP header here, only data
                return head
        if ICMP in pkt:
            icmp = pkt[ICMP]
            name = ICMP_NAMES.get((icmp.type, icmp.code), f"type {icmp.type} code {icmp.code}")
            extra = f" (next-hop MTU {icmp.nexthopmtu})" if (icmp.type, icmp.code) == (3, 4) else ""
            return head + f" · ICMP {name}{extra}"
        if DNS in pkt:
            return head + " · " + _dns_line(pkt[DNS])
        if TCP in pkt:
            return head + " · " + _tcp_line(pkt[TCP])
        if RIP in pkt:
            return head + " · " + _rip_line(pkt[RIP])
        if UDP in pkt:
            return head + f" · UDP {len(bytes(pkt[UDP].payload))} bytes"
        return head
    if IPv6 in pkt:
        ip6 = pkt[IPv6]
        head = where + f"IPv6 {ip6.src} → {ip6.dst} hop limit {ip6.hlim}"
        if ICMPv6ND_NS in pkt:
            return head + f" · neighbour solicitation: who has {pkt[ICMPv6ND_NS].tgt}?"
        if ICMPv6ND_NA in pkt:
            return head + f" · neighbour advertisement: {pkt[ICMPv6ND_NA].tgt} is here"
        if TCP in pkt:
            return head + " · " + _tcp_line(pkt[TCP])
        return head + f" · next header {ip6.nh}"
    return where + pkt.summary()


def _tcp_line(tcp: Any) -> str:
    flags = [name for bit, name in ((0x02, "SYN"), (0x10, "ACK"), (0x08, "PSH"), (0x01, "FIN"), (0x04, "RST"))
             if tcp.flags & bit]
    mss = [v for k, v in tcp.options if k == "MSS"]
    return f"TCP {'+'.join(flags) or '-'}" + (f" MSS {mss[0]}" if mss else "") + f" {len(bytes(tcp.payload))} bytes"


def _dns_line(dns: Any) -> str:
    qtype = {1: "A", 28: "AAAA"}.get(dns.qd[0].qtype, str(dns.qd[0].qtype)) if dns.qd else "?"
    name = dns.qd[0].qname.decode().rstrip(".") if dns.qd else "?"
    if not dns.qr:
        return f"DNS query {qtype} {name}?"
    answers = [str(dns.an[i].rdata) for i in range(dns.ancount)] if dns.ancount else []
    return f"DNS answer {qtype} {name}: {', '.join(answers) or 'no such record'}"


def _rip_line(rip: Any) -> str:
    from scapy.layers.rip import RIPEntry

    kind = {1: "request", 2: "response"}.get(rip.cmd, f"command {rip.cmd}")
    entries, entry = [], rip.getlayer(RIPEntry)
    while entry is not None:
        prefix = bin(int.from_bytes(bytes(map(int, entry.mask.split("."))), "big")).count("1")
        entries.append(f"{entry.addr}/{prefix} metric {entry.metric}")
        entry = entry.payload.getlayer(RIPEntry)
    return f"RIPv{rip.version} {kind}" + (f": {', '.join(sorted(entries))}" if entries else "")


class RoutedLab:
    """A topology kept for many cells: live (a lab and the plan built in it), or the reason it is not.

        net = RoutedLab(PLAN, why="live: …")   # about 1 s; net.why says which
        experiment(net)                        # live on this topology, or its recording
        net.close()

    Use it as a context manager, or close it in the notebook's last cell. A kernel that ends
    closes it anyway: the lab's programs end when their sockets to this process close.
    """

    def __init__(self, plan: Plan, *, why: str, mtu: dict[str, int] | None = None, ipv6: bool = True) -> None:
        self.plan = plan
        self.lab: Lab | None = None
        self.net: Topology | None = None
        try:
            self.lab = Lab()
            self.lab.check_join()
            self.net = Topology(self.lab, plan, mtu=mtu, ipv6=ipv6).__enter__()
            self.why = why
        except LabUnavailable as err:
            self.close()
            self.why = str(err)
        except BaseException:
            self.close()
            raise

    @property
    def live(self) -> bool:
        return self.net is not None

    def close(self) -> None:
        """Remove the topology and close the lab (nothing is left running)."""
        net, lab, self.net, self.lab = self.net, self.lab, None, None
        try:
            if net is not None:
                net.close()
        finally:
            if lab is not None:
                lab.close()

    def __enter__(self) -> RoutedLab:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__module__}.{type(self).__name__} {'live' if self.live else 'recorded'}>"


def run_routed(kept: RoutedLab | None, live: Callable[[Topology], RoutedExperiment], recorded: str, *,
               plan: Plan, kind: type[RoutedExperiment] = RoutedExperiment, mtu: dict[str, int] | None = None,
               ipv6: bool = True) -> RoutedExperiment:
    """Run `live` on the kept topology, or on a fresh one of `plan`, or load recording `recorded` where the lab is refused."""
    if kept is not None:
        if kept.net is None:
            return load_recorded(recorded, why=kept.why, kind=kind)
        net = kept.net
        return live_or_recorded(lambda lab: live(net), recorded, kind=kind, lab=kept.lab)

    def fresh(lab: Lab) -> RoutedExperiment:
        lab.check_join()
        with Topology(lab, plan, mtu=mtu, ipv6=ipv6) as net:
            return live(net)

    return live_or_recorded(fresh, recorded, kind=kind)


# The C library's resolver, run in a lab's host with the lab's own resolver files: a program that
# first makes a mount namespace of its own and binds the files over /etc's, so the host's
# /etc/resolv.conf is never read. It makes it with the system calls themselves (not util-linux's
# `unshare` and `mount`, whose calls differ between versions), so the seccomp profile in deploy/
# names exactly these calls, and a refusal comes back as its errno.
_GETADDRINFO = """
import ctypes, json, socket, sys
CLONE_NEWNS, MS_BIND, MS_REC, MS_PRIVATE = 0x20000, 0x1000, 0x4000, 0x40000
libc = ctypes.CDLL(None, use_errno=True)
# A mount namespace of its own, private (nothing mounted here reaches the lab's), with the lab's
# files bound over /etc's. Each step that fails says which and its errno, and nothing more runs.
steps = [("unshare(CLONE_NEWNS)", lambda: libc.unshare(CLONE_NEWNS)),
         ("mount(MS_REC|MS_PRIVATE)", lambda: libc.mount(b"none", b"/", None, MS_REC | MS_PRIVATE, None))]
for name in ("resolv.conf", "hosts", "nsswitch.conf"):
    source, target = f"{sys.argv[1]}/{name}".encode(), f"/etc/{name}".encode()
    steps.append(("mount(MS_BIND)", lambda s=source, t=target: libc.mount(s, t, None, MS_BIND, None)))
for call, step in steps:
    if step() != 0:
        print(json.dumps({"failed": [call, ctypes.get_errno()]}))
        raise SystemExit
name, port, mode = sys.argv[2], int(sys.argv[3]), sys.argv[4]
try:
    if mode == "connect":
        sock = socket.create_connection((name, port), timeout=3)
        print(json.dumps({"peer": list(sock.getpeername()[:2])}))
        sock.close()
    else:
        found = socket.getaddrinfo(name, port, type=socket.SOCK_STREAM)
        print(json.dumps({"addresses": [info[4][0] for info in found]}))
except OSError as err:
    print(json.dumps({"error": f"{type(err).__name__}: {err}"}))
"""


def lab_getaddrinfo(net: Any, host: str, nameserver: str, name: str, port: int, *, connect: bool = False,
                    single_request: bool = False, timeout: float = 10.0) -> dict[str, Any]:
    """getaddrinfo(name) as a program on `host` does it, asking `nameserver` (the lab's resolv.conf, not the host's).

    With `connect`, the program also connects to `name` on TCP `port` (socket.create_connection). With
    `single_request` the library asks for A, waits for its answer, then asks for AAAA (resolv.conf's
    `options single-request`), instead of both at once: a capture then reads the same every run.
    Returns what it saw: {"addresses": [...]} (or {"peer": [address, port]}), or {"error": "gaierror: ..."}.
    A mount namespace the system refuses raises LabUnavailable (the caller's recording takes over).
    """
    etc = Path(tempfile.mkdtemp(prefix="netlab-resolver-"))
    try:
        options = "timeout:1 attempts:1" + (" single-request" if single_request else "")
        (etc / "resolv.conf").write_text(f"nameserver {nameserver}\noptions {options}\n")
        (etc / "hosts").write_text("127.0.0.1 localhost\n")
        (etc / "nsswitch.conf").write_text("hosts: files dns\n")
        script = etc / "resolve.py"
        script.write_text(_GETADDRINFO)
        out = net.run(host, sys.executable, "-I", str(script), str(etc), name, str(port),
                      "connect" if connect else "lookup", timeout=timeout)
    finally:
        for f in etc.iterdir():
            f.unlink()
        etc.rmdir()
    said = json.loads(out.strip().splitlines()[-1])
    if "failed" in said:
        call, code = said["failed"]
        # unshare refused whatever its errno (as the lab's own); a bind mount refused with these
        if call.startswith("unshare") or code in (errno.EPERM, errno.EACCES, errno.ENOSYS):
            raise LabUnavailable(inner_refusal_sentence(call, code, "a mount namespace for the resolver's own files"))
        raise LabError(f"{call} failed in the resolver's mount namespace: {os.strerror(code)}")
    return said
