"""Routed topologies in the lab: hosts, links, addresses and routes described as data, then built.

Theory of operation
-------------------
Everything below TCP (addresses and routes, ARP, TTL, ICMP, path MTU) needs a path with
routers on it, where the lab has one loopback. A topology is declared once, as data (a `Plan`:
its hosts, its interfaces with their addresses, the links between them, each host's routes),
and `Topology(lab, plan)` builds it in a few ms; the lesson's text, its table of addresses and
the lab agree because they read the same plan. `PATH`, notebook 10's, is one instance:

    client (the lab's own namespace)     router (a namespace)              server (a namespace)
    c0 10.1.0.2/24  fd00:1::2/64  ⇄  r0 10.1.0.1  r1 10.2.0.1  ⇄  s0 10.2.0.2/24  fd00:2::2/64
       default via 10.1.0.1              forwarding on (IPv4, IPv6)          default via 10.2.0.1

 - the **client** is the lab's namespace, so `lab.socket()` and `topology.client.socket()` are
   the same kind of socket; the router and the server are namespaces made by one small program
   (the *agent*, `python -m netlab.core.topology`) that runs in the lab and keeps them open. It
   enters each namespace in turn (`setns`) to configure it, to run a command there (`ip neigh`,
   `nft`, `tracepath`), to create a socket there and hand it back (SCM_RIGHTS), and to capture.
 - every MAC address spells its IP address (c0 is 02:00:0a:01:00:02 for 10.1.0.2), so a capture
   reads the same on every run and a student can tell who sent a frame without a table.
 - **captures** are raw packet sockets, one per interface asked for (any of c0, r0, r1, s0), in
   that interface's namespace: each frame once, stamped by the kernel, merged in time order, and
   labelled with the interface it was seen on (`packet.sniffed_on`). A packet socket is ready as
   soon as it is bound, so nothing sent after `capture()` returns is missed.
 - the veths compute their own checksums (offload off, as in bottleneck.py): a capture shows the
   TCP checksum the wire carries, not one left for hardware that does not exist.
 - what would make captures differ between runs is off or over before the topology is ready: no
   duplicate address detection, no router solicitations, the MLD reports of interfaces joining
   multicast groups sent 1 ms apart (not up to 1 s) and waited out; ICMP errors are not
   rate-limited in the router and server, so a traceroute gets an answer to every probe.

A plan of more routers (notebook 11's) is the same kind of data: any number of hosts, each link a
veth pair, an interface with no peer for a network that ends in a host (a bridge with no port:
this kernel has no `dummy` module, and a lab cannot load one), routes as `ip route` says them.
Per-link delays have their place in the plan (`Plan.delays`, `Link.delay`) for the delay line of
issue #27; until it lands a Topology refuses any delay but 0.
A long-running program (a routing daemon) is started on a host with `Topology.start` and ends
with the topology (the agent's `spawn`/`stop`, and a parent-death signal should the agent die).

Rules for this file:
1. Every wait has a bound: each request to the agent `REQUEST_TIMEOUT` s, its start `START_TIMEOUT` s;
   `Topology.close()` ends the agent (its namespaces and daemons go with it) and removes the first host's links.
2. Nothing leaves the lab: the namespaces are children of the lab's, their only links are the plan's.
3. The plan is data and the agent's orders are made from it here; the agent knows no plan.
"""

from __future__ import annotations

import ipaddress
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from netlab.core.arguments import check_int, check_seconds
from netlab.core.errors import HelperError, LabError, LabUnavailable
from netlab.core.lab import Lab, inner_refusal_sentence, last_line
from netlab.core.programs import command, program
from netlab.core.topology_agent import FRAME

__all__ = ["Topology", "TopologyError", "Host", "Interface", "Link", "Plan", "LinkCapture", "Daemon", "PATH", "HOSTS",
           "INTERFACES", "MIN_MTU", "MAX_MTU", "MIN_MTU4"]

START_TIMEOUT = 15.0  # seconds for the agent to build the topology
REQUEST_TIMEOUT = 15.0  # seconds for one request (a command's own timeout comes on top)
MIN_MTU, MAX_MTU = 1280, 9000  # bytes: IPv6 needs 1280 on every link
MIN_MTU4 = 576  # bytes: every IPv4 host must take a datagram this long (RFC 791); the least for a plan without IPv6


@dataclass(frozen=True)
class Interface:
    """One interface: its name, host, addresses and MAC (which spells the IPv4 address).

    `peer` is the interface at the link's other end, or None for a `dummy` interface: a network
    that ends in its host (what is routed there is swallowed, what is addressed to it answered).
    """

    name: str
    host: str
    ipv4: str
    ipv6: str
    mac: str
    peer: str | None
    prefix: int = 24  # the IPv4 prefix length (bits)
    prefix6: int = 64

    @property
    def network(self) -> str:
        """The IPv4 network this interface is on, such as 10.1.0.0/24."""
        return str(ipaddress.ip_interface(f"{self.ipv4}/{self.prefix}").network)


@dataclass(frozen=True)
class Link:
    """A link between two interfaces (a veth pair): `a` and `b` name them.

    `delay` (seconds, one way) is the place for the per-link delay of the delay line (issue #27);
    until that lands, a Topology refuses a delay other than 0 rather than pretend it has one.
    """

    a: str
    b: str
    delay: float = 0.0


def interface(name: str, host: str, ipv4: str, peer: str | None, *, ipv6: str = "") -> Interface:
    """An Interface from its name, host, IPv4 address with prefix ("10.1.0.2/24") and peer; the MAC spells the address."""
    address = ipaddress.ip_interface(ipv4)
    plain = str(address.ip)
    return Interface(name, host, plain, ipv6, _mac(plain), peer, address.network.prefixlen)


@dataclass(frozen=True)
class Plan:
    """A topology as data: hosts (the first is the lab's own namespace), interfaces, routes per host.

    `routes[host]` are `ip route add` arguments ("default via 10.1.0.1", "10.2.0.0/16 via 10.0.13.3");
    `routers` forward packets (ip_forward on). Links come from the interfaces' peers.
    """

    hosts: tuple[str, ...]
    interfaces: tuple[Interface, ...]
    routes: dict[str, tuple[str, ...]] = field(default_factory=dict)
    routers: tuple[str, ...] = ()
    delays: dict[frozenset, float] = field(default_factory=dict)  # #27's per-link delays, by the link's two ends

    def __post_init__(self) -> None:
        names = [i.name for i in self.interfaces]
        if len(set(names)) != len(names):
            raise ValueError(f"a plan's interface names must differ: {names}")
        for i in self.interfaces:
            if i.host not in self.hosts:
                raise ValueError(f"interface {i.name} is on {i.host!r}, which is not one of the plan's hosts")
            if not 1 <= len(i.name) <= 15:
                raise ValueError(f"an interface name has 1 to 15 characters (Linux's limit): {i.name!r}")
            if i.peer is not None and self.interface(i.peer).peer != i.name:
                raise ValueError(f"interface {i.name}'s peer {i.peer} does not name it back")

    def interface(self, name: str) -> Interface:
        for i in self.interfaces:
            if i.name == name:
                return i
        raise ValueError(f"no interface {name!r} in this topology (it has {', '.join(i.name for i in self.interfaces)})")

    @property
    def by_name(self) -> dict[str, Interface]:
        return {i.name: i for i in self.interfaces}

    @property
    def links(self) -> list[Link]:
        """Each veth link once, named from the end listed first."""
        seen, links = set(), []
        for i in self.interfaces:
            if i.peer is not None and i.peer not in seen:
                seen.add(i.name)
                links.append(Link(i.name, i.peer, self.delays.get(frozenset((i.name, i.peer)), 0.0)))
        return links

    def on(self, host: str) -> list[Interface]:
        """The interfaces of `host`, in the plan's order."""
        return [i for i in self.interfaces if i.host == host]

    def owner(self, address: str) -> str | None:
        """The host that has IPv4 `address` on one of its interfaces, or None."""
        for i in self.interfaces:
            if i.ipv4 == address:
                return i.host
        return None


def _mac(ipv4: str) -> str:
    return "02:00:" + ":".join(f"{int(b):02x}" for b in ipv4.split("."))


# Notebook 10's path: client — router — server, two /24s (and two IPv6 /64s).
PATH = Plan(
    hosts=("client", "router", "server"),
    interfaces=(
        Interface("c0", "client", "10.1.0.2", "fd00:1::2", _mac("10.1.0.2"), "r0"),
        Interface("r0", "router", "10.1.0.1", "fd00:1::1", _mac("10.1.0.1"), "c0"),
        Interface("r1", "router", "10.2.0.1", "fd00:2::1", _mac("10.2.0.1"), "s0"),
        Interface("s0", "server", "10.2.0.2", "fd00:2::2", _mac("10.2.0.2"), "r1"),
    ),
    routes={"client": ("default via 10.1.0.1", "-6 default via fd00:1::1"),
            "server": ("default via 10.2.0.1", "-6 default via fd00:2::1")},
    routers=("router",),
)
INTERFACES = PATH.by_name
HOSTS = PATH.hosts
_AGENT = str(Path(__file__).with_name("topology_agent.py"))


class TopologyError(HelperError):
    """The topology's agent could not build the path, or stopped answering."""


class Host:
    """One of the topology's machines: run a command there, or get a socket that lives there."""

    def __init__(self, topology: Topology, name: str) -> None:
        self.topology, self.name = topology, name

    @property
    def interfaces(self) -> list[Interface]:
        return self.topology.plan.on(self.name)

    @property
    def address(self) -> str:
        """Its first IPv4 address."""
        return self.interfaces[0].ipv4

    @property
    def address6(self) -> str:
        """Its first IPv6 address."""
        return self.interfaces[0].ipv6

    def run(self, *argv: str, timeout: float = 5.0, check: bool = True) -> str:
        """Run a command on this host (in its network namespace) and return its output (stdout then stderr)."""
        return self.topology.run(self.name, *argv, timeout=timeout, check=check)

    def socket(self, family: int = socket.AF_INET, type: int = socket.SOCK_STREAM, proto: int = 0) -> socket.socket:
        """A socket that lives on this host's network (use it like any socket)."""
        return self.topology.socket(self.name, family, type, proto)

    def __repr__(self) -> str:
        return f"<{self.name} {', '.join(f'{i.name} {i.ipv4}' for i in self.interfaces)}>"


class Daemon:
    """A program running on one host of a topology until stopped (or until the topology closes)."""

    def __init__(self, topology: Topology, host: str, pid: int, argv: list[str]) -> None:
        self.topology, self.host, self.pid, self.argv = topology, host, pid, argv

    def stop(self) -> None:
        """Stop the program (SIGTERM, then SIGKILL after 2 s)."""
        if self.topology._chan is not None and self.pid in self.topology._daemons:
            self.topology._daemons.pop(self.pid, None)
            self.topology._request({"op": "stop", "pid": self.pid})

    def __enter__(self) -> Daemon:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<{os.path.basename(self.argv[0])} on the {self.host}, pid {self.pid}>"


class Topology:
    """A plan (by default `PATH`, client — router — server) built in the lab, from one call.

        with netlab.Lab() as lab, Topology(lab, mtu={"r1": 1280}) as net:
            with net.capture("c0", "r1") as cap:
                sock = net.client.socket(); sock.connect((net.server.address, 9))

    `mtu` maps an interface name to its MTU in bytes (1500 by default). Forwarding is on in the
    plan's routers; each host gets the plan's routes. Hosts are `net.host(NAME)` (or `net.NAME`).
    """

    def __init__(self, lab: Lab, plan: Plan = PATH, *, mtu: dict[str, int] | None = None, ipv6: bool = True) -> None:
        if not isinstance(plan, Plan):
            raise TypeError(f"plan must be a netlab.core.topology.Plan, not {type(plan).__name__}")
        ipv6 = bool(ipv6) and all(i.ipv6 for i in plan.interfaces)
        mtu = dict(mtu or {})
        for name, value in mtu.items():
            if name not in plan.by_name:
                raise ValueError(f"mtu names an interface this topology does not have: {name!r} "
                                 f"(it has {', '.join(plan.by_name)})")
            check_int(f"the MTU of {name}", value, MIN_MTU if ipv6 else MIN_MTU4, MAX_MTU)
        for link in plan.links:
            if link.delay:
                raise ValueError(f"the link {link.a}–{link.b} asks for a delay of {link.delay:g} s: per-link delays "
                                 "come with the delay line (issue #27), which this topology does not have yet")
        self.lab, self.plan, self.ipv6 = lab, plan, ipv6
        self.mtu = {n: mtu.get(n, 1500) for n in plan.by_name}
        self.hosts = {n: Host(self, n) for n in plan.hosts}
        self._agent: subprocess.Popen | None = None
        self._chan: socket.socket | None = None
        self._dir: str | None = None
        self._capturing = False
        self._daemons: dict[int, Daemon] = {}

    def host(self, name: str) -> Host:
        if name not in self.hosts:
            raise ValueError(f"host must be one of {', '.join(self.hosts)}, not {name!r}")
        return self.hosts[name]

    def __getattr__(self, name: str) -> Host:
        hosts = self.__dict__.get("hosts", {})
        if name in hosts:
            return hosts[name]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    # -- life cycle ---------------------------------------------------------

    def __enter__(self) -> Topology:
        try:
            self._open()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _open(self) -> None:
        first = self.plan.on(self.plan.hosts[0])
        if first and first[0].name in self.lab.run("ip", "-o", "link", "show").replace("@", " ").split():
            raise TopologyError("this lab has a topology already; close it first")
        self._dir = tempfile.mkdtemp(prefix="netlab-topology-")
        os.chmod(self._dir, 0o755)  # a daemon may read its configuration from here
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self._chan = ours
        try:
            # Started by path, not `-m`: without netlab's imports it starts in tens of ms.
            self._agent = self.lab.popen([sys.executable, "-I", _AGENT, str(theirs.fileno())],
                                         pass_fds=[theirs.fileno()], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        finally:
            theirs.close()
        reply, _ = self._request({"op": "build", **self._orders()}, timeout=START_TIMEOUT, what="start")
        self.agent_pid = reply["pid"]

    def _orders(self) -> dict[str, Any]:
        """The agent's orders from the plan: which namespaces to make, then per host its sysctls and one `ip -batch`."""
        v6, plan = self.ipv6, self.plan
        first = plan.hosts[0]
        steps: list[dict[str, Any]] = []
        for host in plan.hosts:
            # Set before the links exist, so that new interfaces take them as their defaults: no
            # duplicate address detection (an address is usable at once), no router solicitations.
            # MLD reports (joining multicast groups) repeated 1 ms apart instead of up to 1 s: all sent
            # before the topology is ready (see the agent's settle), none in a capture.
            sysctl = {"ipv6.conf.default.accept_dad": "0", "ipv6.conf.all.accept_dad": "0",
                      "ipv6.conf.default.router_solicitations": "0", "ipv6.conf.default.disable_ipv6": "0" if v6 else "1",
                      "ipv6.conf.default.mldv1_unsolicited_report_interval": "1",
                      "ipv6.conf.default.mldv2_unsolicited_report_interval": "1"}
            if host != first:
                # An ICMP error for every probe (Linux sends at most one a second per destination by default).
                sysctl.update({"ipv4.icmp_ratelimit": "0", "ipv6.icmp.ratelimit": "0"})
            steps.append({"host": host, "sysctl": sysctl, "sysctl_must": False})
        for host in plan.routers:
            steps.append({"host": host, "sysctl": {"ipv4.ip_forward": "1", **({"ipv6.conf.all.forwarding": "1"} if v6 else {})}})
        batches: dict[str, list[str]] = {h: ([] if h == first else ["link set lo up"]) for h in plan.hosts}
        for link in plan.links:
            ia, ib = plan.interface(link.a), plan.interface(link.b)
            batches[ia.host].append(f"link add {ia.name} address {ia.mac} mtu {self.mtu[ia.name]} type veth peer name "
                                    f"{ib.name} address {ib.mac} mtu {self.mtu[ib.name]} netns ns:{ib.host}")
        for i in plan.interfaces:
            if i.peer is None:
                batches[i.host].append(f"link add {i.name} address {i.mac} mtu {self.mtu[i.name]} type bridge")
            batches[i.host].append(f"addr add {i.ipv4}/{i.prefix} dev {i.name}")
            if v6:
                batches[i.host].append(f"addr add {i.ipv6}/{i.prefix6} dev {i.name} nodad")
            batches[i.host].append(f"link set {i.name} up")
        for host, routes in plan.routes.items():
            for route in routes:
                if route.startswith("-6 "):
                    if v6:
                        batches[host].append(f"route add {route[3:]}")  # `ip` tells the family from the address
                else:
                    batches[host].append(f"route add {route}")
        for host in plan.hosts:  # in this order: each link is made by the host at its first end
            steps.append({"host": host, "ip": "\n".join(batches[host]) + "\n",
                          "no_offload": [i.name for i in plan.on(host) if i.peer is not None]})
        # The agent imports nothing of netlab, so it gets `ip`'s path, found where the system keeps it.
        return {"first": first, "hosts": list(plan.hosts[1:]), "steps": steps, "ip": program("ip"),
                "interfaces": {i.name: i.host for i in plan.interfaces}, "settle": 2.0 if v6 else 0.0}

    def close(self) -> None:
        """End the agent (the other hosts' namespaces and any daemons go with it) and remove the first host's links."""
        agent, self._agent = self._agent, None
        self._daemons = {}
        if self._chan is not None:
            self._chan.close()  # the agent's signal to end (it stops its daemons first)
            self._chan = None
        if agent is not None:
            try:
                agent.wait(5.0)
            except subprocess.TimeoutExpired:
                agent.kill()
                agent.wait(3.0)
            if agent.stderr:
                agent.stderr.close()
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None
        for i in self.plan.on(self.plan.hosts[0]):
            try:
                self.lab.run("ip", "link", "del", i.name)
            except LabError:
                pass  # gone with the peer's namespace already, or the lab closed

    # -- requests -------------------------------------------------------------

    def _request(self, order: dict[str, Any], *, timeout: float = REQUEST_TIMEOUT, what: str | None = None
                 ) -> tuple[dict[str, Any], list[int]]:
        if self._chan is None:
            raise TopologyError("this topology is closed; build a new one with Topology(lab)")
        self._chan.settimeout(timeout)
        try:
            self._chan.sendall(json.dumps(order).encode())
            data, fds, _, _ = socket.recv_fds(self._chan, 1 << 16, 1)
        except TimeoutError:
            self._fail()
            raise TopologyError(f"the topology's agent did not answer {what or order['op']!r} within {timeout:g} s; "
                                "it was stopped") from None
        except OSError as err:
            detail = self._fail()
            raise TopologyError(f"the topology's agent ended during {what or order['op']!r}: {detail or err}") from None
        except BaseException:
            # Interrupted half-way (Jupyter's stop button): the reply may still come and would be
            # read as the answer to the next request. An agent out of step is no use: stop it.
            self._fail()
            raise
        if not data:
            detail = self._fail()
            raise TopologyError(f"the topology's agent ended during {what or order['op']!r}"
                                + (f": {detail}" if detail else ""))
        reply = json.loads(data)
        if not reply.get("ok"):
            for fd in fds:
                os.close(fd)
            if reply.get("refused"):  # the system would not make the router's and server's namespaces
                call, code = reply["refused"]
                *some, last = self.plan.hosts[1:]  # "the router and the server", "the r1, r2, r3 and the server"
                others = f"{', '.join(some)} and the {last}" if some else last
                raise LabUnavailable(inner_refusal_sentence(call, code, f"network namespaces for the {others}"))
            raise TopologyError(reply.get("error", "the agent failed"))
        return reply, fds

    def _fail(self) -> str:
        """Stop the agent after a failure; return the last line it wrote to stderr."""
        agent = self._agent
        detail = ""
        if agent is not None and agent.stderr is not None:
            if agent.poll() is None:
                agent.kill()
            agent.wait(3.0)
            detail = last_line(agent.stderr.read().decode(errors="replace"))
        self.close()
        return detail

    def run(self, host: str, *argv: str, timeout: float = 5.0, check: bool = True) -> str:
        """Run a command in `host`'s namespace; `timeout` in seconds. With check, a failure raises TopologyError."""
        self.host(host)
        check_seconds("timeout", timeout, 60.0)
        reply, _ = self._request({"op": "run", "host": host, "argv": command(argv), "timeout": timeout},
                                 timeout=timeout + REQUEST_TIMEOUT)
        if check and reply["code"] != 0:
            raise TopologyError(f"{' '.join(argv)} failed on the {host}: {last_line(reply['err']) or reply['code']}")
        return reply["out"] + reply["err"]

    def socket(self, host: str, family: int = socket.AF_INET, type: int = socket.SOCK_STREAM, proto: int = 0
               ) -> socket.socket:
        """A socket created in `host`'s namespace."""
        self.host(host)
        _, fds = self._request({"op": "socket", "host": host, "family": int(family), "type": int(type), "proto": proto})
        return socket.socket(fileno=fds[0])

    def capture(self, *interfaces: str, timeout: float = 5.0) -> LinkCapture:
        """Record every frame on the named interfaces (of the plan's) from the `with` block's start to its end."""
        for name in interfaces:
            self.plan.interface(name)  # a ValueError naming the interfaces there are
        if not interfaces:
            raise ValueError(f"name at least one interface to capture on: {', '.join(self.plan.by_name)}")
        return LinkCapture(self, list(interfaces), timeout)

    def start(self, host: str, *argv: str) -> Daemon:
        """Start a long-running program on `host` (a routing daemon, in the foreground); it ends with the topology.

        Its stdout and stderr go to a file in the topology's folder (`Topology.folder`).
        """
        self.host(host)
        if not argv:
            raise ValueError("name the program to start")
        log = str(Path(self.folder) / f"{host}-{os.path.basename(argv[0])}.log")
        reply, _ = self._request({"op": "spawn", "host": host, "argv": command(argv), "log": log})
        daemon = Daemon(self, host, reply["pid"], list(argv))
        self._daemons[daemon.pid] = daemon
        return daemon

    @property
    def folder(self) -> str:
        """A folder the topology owns until it closes (daemons' configurations, sockets and logs)."""
        if self._dir is None:
            raise TopologyError("this topology is closed; build a new one with Topology(lab)")
        return self._dir

    def neighbours(self, host: str) -> list[str]:
        """`host`'s neighbour table (ARP and NDP), one line per entry as `ip neigh` prints it, sorted."""
        return sorted(line.strip() for line in self.run(host, "ip", "neigh", "show").splitlines() if line.strip())


class LinkCapture:
    """Frames seen on some of a topology's interfaces during a `with` block: `packets`, each with `sniffed_on`."""

    def __init__(self, topology: Topology, interfaces: list[str], timeout: float) -> None:
        self.topology, self.interfaces, self.timeout = topology, interfaces, timeout
        self.packets: list = []
        self.missed = 0  # frames the kernel dropped before the capture read them

    def __enter__(self) -> LinkCapture:
        self.topology._request({"op": "capture_start", "interfaces": self.interfaces}, timeout=self.timeout)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.topology._chan is None:
            return
        path = Path(self.topology._dir or tempfile.gettempdir()) / "capture.frames"
        reply, _ = self.topology._request({"op": "capture_stop", "path": str(path)}, timeout=self.timeout)
        self.missed = reply["missed"]
        self.packets = read_frames(path)
        path.unlink(missing_ok=True)


def read_frames(path: Path) -> list:
    """Read the agent's capture file: Ethernet frames as scapy packets with `time` and `sniffed_on`."""
    import scapy.layers.all  # noqa: F401  (dissects what the frames carry: ARP, IP, ICMP, DNS, IPv6)
    from scapy.layers.l2 import Ether

    packets, data = [], Path(path).read_bytes()
    at = 0
    while at < len(data):
        name, stamp, size = FRAME.unpack_from(data, at)
        at += FRAME.size
        pkt = Ether(data[at:at + size])
        at += size
        pkt.time, pkt.sniffed_on = stamp, name.rstrip(b"\0").decode()
        packets.append(pkt)
    return packets


